// The connection pool as a hard cap (counted at the server side), the derived worker defaults, the config file
// and its precedence, the runtime threads, and the bandwidth cap.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { TransferClient } from '../index.js'
import { MiB, bytes, clientOptions, countingProxy, makeBucket, tempDir, writeTree } from './helpers.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

function manySmallFiles(dir, n) {
  const files = {}
  for (let i = 0; i < n; i++) files[`d${i % 50}/f${i}.bin`] = bytes(256 + (i % 512), i)
  writeTree(dir, files)
}

test('maxPoolConnections is a hard cap: 5000 small files and three concurrent calls never open more connections', async () => {
  const proxy = await countingProxy()
  try {
    const pool = 8
    const client = new TransferClient(await clientOptions({ endpoint: proxy.endpoint, maxPoolConnections: pool }))
    const bucket = await makeBucket()
    const dir = tempDir()
    manySmallFiles(path.join(dir, 'src'), 5000)
    const up = await client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: 'a/' })
    assert.equal(up.files, 5000)
    assert.ok(proxy.stats.peak <= pool, `peak connections ${proxy.stats.peak} > pool ${pool}`)
    assert.equal(proxy.stats.peak, pool, 'many tiny files keep the whole pool busy')

    proxy.resetPeak()
    const calls = await Promise.all([
      client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: 'b/' }),
      client.download({ bucket, keyPrefix: 'a/', localDir: path.join(dir, 'down1') }),
      client.download({ bucket, keyPrefix: 'a/', localDir: path.join(dir, 'down2') }),
    ])
    assert.deepEqual(calls.map((c) => c.files), [5000, 5000, 5000])
    assert.ok(proxy.stats.peak <= pool, `peak connections ${proxy.stats.peak} > pool ${pool} across concurrent calls`)
  } finally {
    await proxy.close()
  }
})

// Known defect (issue 17, item 4): the SDK's pool gives a dropped connection's place back before its socket is
// closed, and the kernel then goes on sending what was queued on it (megabytes, at the server's pace) before
// its FIN, so the server sees 10-11 connections here. Counting closing connections against the cap in a wrapper
// (tried) brought the client's own count to the cap in most runs but left the server's unchanged: the pool
// offers no hook on its sockets (SO_LINGER, a connector for HTTPS), so this needs a transport of our own.
// Runs on every test run, reported as TODO.
test('maxPoolConnections stays a hard cap while calls are aborted: a new connection waits for a dropped one to close', { todo: 'issue 17 item 4' }, async () => {
  // Twenty calls share a pool of 8; four are aborted while their 24 MiB bodies are being sent. Each abort drops a
  // connection mid-request, and the socket that replaces it must not open before the dropped one has closed.
  const proxy = await countingProxy()
  try {
    const pool = 8
    const client = new TransferClient(await clientOptions({ endpoint: proxy.endpoint, maxPoolConnections: pool }))
    const bucket = await makeBucket()
    const dir = tempDir()
    manySmallFiles(path.join(dir, 'small'), 20)
    writeTree(dir, { 'big.bin': bytes(24 * MiB, 3) })
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) => {
        const ac = new AbortController()
        // Calls 0, 4, 8 and 12 are aborted 2 MiB into their file's body.
        const onProgress = (p) => i % 4 === 0 && i < 16 && p.transferredBytes >= 2 * MiB && ac.abort()
        const what = i % 2 ? { localDir: path.join(dir, 'small'), keyPrefix: `s${i}/` } : { files: [{ path: path.join(dir, 'big.bin'), key: `b${i}` }] }
        return client.upload({ bucket, signal: ac.signal, onProgress, ...what }).then(
          () => 'done',
          (e) => e.name,
        )
      }),
    )
    assert.deepEqual(
      outcomes.map((o, i) => [i, o]).filter(([, o]) => o !== 'done'),
      [0, 4, 8, 12].map((i) => [i, 'AbortError']),
    )
    assert.ok(proxy.stats.total > pool, `dropped connections were replaced (${proxy.stats.total} opened in all)`)
    assert.ok(proxy.stats.peak <= pool, `peak connections ${proxy.stats.peak} > pool ${pool} with aborts`)
  } finally {
    await proxy.close()
  }
})

test('worker defaults are derived from the pool as in the original system, and overridable', () => {
  const s = (o) => new TransferClient(o).settings
  assert.deepEqual([s({}).maxPoolConnections, s({}).uploadWorkers, s({}).downloadWorkers], [50, 5, 5])
  assert.deepEqual([s({}).maxAttempts, s({}).connectTimeoutMs, s({}).readTimeoutMs], [5, 10_000, 30_000])
  assert.deepEqual([s({ maxPoolConnections: 7 }).uploadWorkers, s({ maxPoolConnections: 7 }).downloadWorkers], [1, 1])
  const big = s({ maxPoolConnections: 100, smallFileThresholdMultiplier: 4 })
  assert.deepEqual([big.uploadWorkers, big.downloadWorkers], [25, 10])
  assert.deepEqual([s({ uploadWorkers: 3, downloadWorkers: 9 }).uploadWorkers, s({ uploadWorkers: 3, downloadWorkers: 9 }).downloadWorkers], [3, 9])
})

test('config file: [settings] keys, explicit options override the file, the file overrides the defaults', () => {
  const dir = tempDir()
  const file = path.join(dir, 'deadline.ini')
  writeFileSync(
    file,
    ['# shared with other tools', '[other]', 's3_max_pool_connections = 3', '', '[settings]', 's3_max_pool_connections = 64',
      'small_file_threshold_multiplier: 4', 's3_max_bandwidth = 2000000', 'part_size = 16777216', 'read_timeout_ms = 5000', 'unrelated = yes', ''].join('\n'),
  )
  const fromFile = new TransferClient({ configFile: file }).settings
  assert.equal(fromFile.maxPoolConnections, 64)
  assert.equal(fromFile.smallFileThresholdMultiplier, 4)
  assert.equal(fromFile.uploadWorkers, 16, 'derived from the file\'s pool and multiplier')
  assert.equal(fromFile.maxBandwidth, 2_000_000)
  assert.equal(fromFile.partSize, 16 * MiB)
  assert.equal(fromFile.multipartThreshold, 8 * MiB, 'not in the file: the default')
  assert.equal(fromFile.readTimeoutMs, 5000)
  const explicit = new TransferClient({ configFile: file, maxPoolConnections: 10, partSize: 5 * MiB }).settings
  assert.equal(explicit.maxPoolConnections, 10)
  assert.equal(explicit.partSize, 5 * MiB)
  assert.equal(explicit.smallFileThresholdMultiplier, 4)
})

test('config file from S3_FERRY_CONFIG, when the options name none', () => {
  const dir = tempDir()
  const file = path.join(dir, 'env.ini')
  writeFileSync(file, '[settings]\ns3_max_pool_connections = 33\n')
  const script = `console.log(new (require(${JSON.stringify(path.join(ROOT, 'index.js'))}).TransferClient)().settings.maxPoolConnections)`
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, S3_FERRY_CONFIG: file } })
  assert.equal(r.stdout.trim(), '33', r.stderr)
})

test('config file errors: a malformed value names the file, section and key; a missing file is ENOENT', () => {
  const dir = tempDir()
  for (const bad of ['0', '-1', 'fifty', '2.5', '']) {
    const file = path.join(dir, 'bad.ini')
    writeFileSync(file, `[settings]\nsmall_file_threshold_multiplier = ${bad}\n`)
    assert.throws(() => new TransferClient({ configFile: file }), (e) => {
      assert.equal(e.code, 'ERR_INVALID_ARG_VALUE')
      assert.ok(e.message.includes(file) && e.message.includes('[settings]') && e.message.includes('small_file_threshold_multiplier'), e.message)
      return true
    })
  }
  const missing = path.join(dir, 'missing.ini')
  assert.throws(() => new TransferClient({ configFile: missing }), (e) => e.code === 'ENOENT' && e.path === missing)
})

test('runtime threads: S3_FERRY_THREADS, else the config file, else half the cores (2 to 8)', (t) => {
  const dir = tempDir()
  const file = path.join(dir, 't.ini')
  writeFileSync(file, '[settings]\nthreads = 5\n')
  const script = `console.log(new (require(${JSON.stringify(path.join(ROOT, 'index.js'))}).TransferClient)().settings.threads)`
  const run = (env) => spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, ...env } }).stdout.trim()
  assert.equal(run({ S3_FERRY_THREADS: '3' }), '3')
  assert.equal(run({ S3_FERRY_CONFIG: file }), '5')
  assert.equal(run({ S3_FERRY_CONFIG: file, S3_FERRY_THREADS: '1' }), '1')
  const env = { ...process.env }
  delete env.S3_FERRY_THREADS
  delete env.S3_FERRY_CONFIG
  // The default on one core is the documented floor, 2 (the whole table is the engine's cargo test).
  const oneCore = spawnSync('taskset', ['-c', '0', process.execPath, '-e', script], { encoding: 'utf8', env })
  if (oneCore.error || oneCore.status !== 0) return t.skip(`taskset -c 0 is not available here: ${oneCore.error?.message ?? oneCore.stderr}`)
  assert.equal(oneCore.stdout.trim(), '2', oneCore.stderr)
})

test('maxBandwidth caps uploads and downloads (client-wide and per request), with smooth progress', async () => {
  const cap = 1_000_000
  const client = new TransferClient(await clientOptions({ maxBandwidth: cap }))
  const bucket = await makeBucket()
  const dir = tempDir()
  const size = 3 * 1_000_000
  writeFileSync(path.join(dir, 'f.bin'), bytes(size, 1))
  const events = []
  const up = await client.upload({ bucket, files: [{ path: path.join(dir, 'f.bin'), key: 'f.bin' }], progressIntervalMs: 50, onProgress: (p) => events.push(p) })
  // A generous band: the cap is respected (never much above it) and the transfer is not starved far below it.
  // The precise figures come from `npm run bench:bandwidth`.
  assert.ok(up.bytesPerSecond <= cap * 1.15, `upload at ${up.bytesPerSecond} B/s over a ${cap} B/s cap`)
  assert.ok(up.bytesPerSecond >= cap * 0.5, `upload at ${up.bytesPerSecond} B/s, far below the cap`)
  assert.ok(events.filter((e) => e.transferredBytes > 0 && e.transferredBytes < size).length >= 10, 'progress flows smoothly under the cap')

  const down = await client.download({ bucket, objects: [{ key: 'f.bin', path: path.join(dir, 'back.bin') }] })
  assert.ok(down.bytesPerSecond <= cap * 1.15 && down.bytesPerSecond >= cap * 0.5, `download at ${down.bytesPerSecond} B/s`)
  assert.ok(readFileSync(path.join(dir, 'back.bin')).equals(bytes(size, 1)))

  // A request's own cap replaces the client's.
  const faster = await client.download({ bucket, objects: [{ key: 'f.bin', path: path.join(dir, 'again.bin') }], maxBandwidth: 3 * cap })
  assert.ok(faster.bytesPerSecond > cap * 1.5 && faster.bytesPerSecond <= 3 * cap * 1.15, `override at ${faster.bytesPerSecond} B/s`)
})

test('an abort under a small bandwidth cap is still prompt, and leaves nothing behind', { timeout: 30_000 }, async () => {
  // 20 MB at 100 kB/s would take 200 s; the test's timeout fails it long before that if the abort waits.
  const client = new TransferClient(await clientOptions({ maxBandwidth: 100_000, partSize: 5 * MiB, multipartThreshold: 5 * MiB }))
  const bucket = await makeBucket()
  const dir = tempDir()
  writeFileSync(path.join(dir, 'big.bin'), bytes(20 * 1_000_000, 2))
  const signal = AbortSignal.timeout(500)
  await assert.rejects(client.upload({ bucket, localDir: dir, signal }), (e) => e.name === 'AbortError')
  const { openUploads } = await import('./helpers.mjs')
  assert.deepEqual(await openUploads(bucket), [])
})

test('bad maxBandwidth values are refused before any request', async () => {
  assert.throws(() => new TransferClient({ maxBandwidth: 0 }), (e) => e.code === 'ERR_INVALID_ARG_VALUE' && /maxBandwidth/.test(e.message))
  assert.throws(() => new TransferClient({ maxBandwidth: -5 }), (e) => e.code === 'ERR_INVALID_ARG_VALUE')
  const client = new TransferClient({ endpoint: 'http://127.0.0.1:9', forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } })
  await assert.rejects(client.upload({ bucket: 'b', localDir: os.tmpdir(), maxBandwidth: 1.5 }), (e) => e.code === 'ERR_INVALID_ARG_VALUE')
})

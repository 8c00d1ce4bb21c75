// Cancellation through AbortSignal and progress events, against the real server.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { truncateSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { TransferClient } from '../index.js'
import { MiB, allFiles, bytes, clientOptions, countingProxy, listKeys, makeBucket, openUploads, server, tempDir, treeHashes, writeTree } from './helpers.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

function isAbortError(e, reason) {
  assert.equal(e.name, 'AbortError')
  assert.equal(e.code, 'ABORT_ERR')
  assert.equal(e.cause, reason)
  assert.equal(typeof e.summary?.files, 'number')
  return true
}

test('an already-aborted signal rejects without sending any request', async () => {
  let connections = 0
  const srv = net.createServer((s) => {
    connections++
    s.destroy()
  })
  await new Promise((r) => srv.listen(0, '127.0.0.1', r))
  try {
    const client = new TransferClient({ endpoint: `http://127.0.0.1:${srv.address().port}`, forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } })
    const dir = tempDir()
    writeFileSync(path.join(dir, 'f'), 'x')
    const reason = new Error('user changed their mind')
    const signal = AbortSignal.abort(reason)
    await assert.rejects(client.upload({ bucket: 'b', localDir: dir, signal }), (e) => isAbortError(e, reason) && e.summary.files === 0)
    await assert.rejects(client.download({ bucket: 'b', localDir: dir, signal }), (e) => isAbortError(e, reason))
    assert.equal(connections, 0)
  } finally {
    await new Promise((r) => srv.close(r))
  }
})

test('abort during a 2 GiB multipart upload: AbortError with cause and summary, no multipart upload left on the server', async () => {
  const client = new TransferClient(await clientOptions({ partSize: 5 * MiB, multipartThreshold: 5 * MiB, uploadWorkers: 1 }))
  const bucket = await makeBucket()
  const dir = tempDir()
  const src = path.join(dir, 'big.bin')
  // Multi-GB scale without writing gigabytes: a 2 GiB sparse file reads as zeros.
  writeFileSync(src, '')
  truncateSync(src, 2048 * MiB)
  const controller = new AbortController()
  const reason = new Error('stop now')
  let events = 0
  const p = client.upload({
    bucket,
    files: [{ path: src, key: 'big.bin' }],
    signal: controller.signal,
    progressIntervalMs: 5,
    onProgress: (ev) => {
      events++
      if (ev.transferredBytes > 0 && !controller.signal.aborted) controller.abort(reason)
    },
  })
  await assert.rejects(p, (e) => isAbortError(e, reason))
  assert.ok(events >= 1)
  assert.deepEqual(await openUploads(bucket), [], 'the multipart upload was aborted before the promise settled')
  assert.deepEqual(await listKeys(bucket), [])
  // The client is still fully usable.
  writeFileSync(path.join(dir, 'small.txt'), 'after')
  const after = await client.upload({ bucket, files: [{ path: path.join(dir, 'small.txt'), key: 'small.txt' }] })
  assert.equal(after.files, 1)
})

test('an abort while CreateMultipartUpload is in flight still leaves no multipart upload', async () => {
  // Every response is held back 400 ms. The abort comes as soon as the server lists the upload (asked directly,
  // not through the proxy): the server has created it, and its answer (the upload id) has not arrived.
  const proxy = await countingProxy({ responseDelayMs: 400 })
  try {
    const client = new TransferClient(await clientOptions({ endpoint: proxy.endpoint, partSize: 5 * MiB, multipartThreshold: 5 * MiB }))
    const bucket = await makeBucket()
    const dir = tempDir()
    writeFileSync(path.join(dir, 'big.bin'), bytes(12 * MiB, 12))
    const ac = new AbortController()
    const upload = client.upload({ bucket, localDir: dir, signal: ac.signal })
    let created = []
    for (let polls = 0; created.length === 0 && polls < 2000; polls++) {
      created = await openUploads(bucket)
      if (created.length === 0) await new Promise((r) => setTimeout(r, 5))
    }
    ac.abort()
    await assert.rejects(upload, (e) => e.name === 'AbortError')
    assert.equal(created.length, 1, 'the abort came while CreateMultipartUpload was in flight')
    assert.deepEqual(await openUploads(bucket), [])
  } finally {
    await proxy.close()
  }
})

test('abort during a 5000-file upload and download: only whole files, no temporary files', async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir()
  const src = path.join(dir, 'src')
  const files = {}
  for (let i = 0; i < 5000; i++) files[`d${i % 10}/f${i}.bin`] = bytes(1024 + (i % 4096), i)
  writeTree(src, files)
  const up = new AbortController()
  const upPromise = client.upload({
    bucket, localDir: src, keyPrefix: 'a/', signal: up.signal, progressIntervalMs: 1,
    onProgress: (ev) => ev.completedFiles >= 300 && up.abort(),
  })
  await assert.rejects(upPromise, (e) => {
    assert.equal(e.name, 'AbortError')
    assert.ok(e.summary.files >= 300 && e.summary.files < 5000, `completed before abort: ${e.summary.files}`)
    return true
  })
  const uploaded = await listKeys(bucket, 'a/')
  assert.ok(uploaded.length < 5000)

  // Complete the upload, then abort a download part way.
  await client.upload({ bucket, localDir: src, keyPrefix: 'a/' })
  const out = path.join(dir, 'out')
  const down = new AbortController()
  const downPromise = client.download({
    bucket, keyPrefix: 'a/', localDir: out, signal: down.signal, progressIntervalMs: 1,
    onProgress: (ev) => ev.completedFiles >= 300 && down.abort(),
  })
  await assert.rejects(downPromise, (e) => e.name === 'AbortError')
  const written = allFiles(out)
  assert.ok(written.length >= 300 && written.length < 5000, `files written: ${written.length}`)
  assert.deepEqual(written.filter((f) => f.includes('s3ferry-part')), [], 'no temporary files')
  const srcHashes = treeHashes(src)
  for (const [rel, hash] of Object.entries(treeHashes(out))) assert.equal(hash, srcHashes[rel], `${rel} is whole`)
})

test('progress: monotonic, never above the total, counts zero-byte files, ends at the totals before resolving', async () => {
  const client = new TransferClient(await clientOptions({ partSize: 5 * MiB, multipartThreshold: 5 * MiB }))
  const bucket = await makeBucket()
  const dir = tempDir()
  const src = path.join(dir, 'src')
  writeTree(src, { 'big.bin': bytes(48 * MiB, 2), 'empty-1': '', 'empty-2': '', 'small.txt': 'hello' })
  const total = 48 * MiB + 5
  const events = []
  let resolved = false
  const summary = await client
    .upload({
      bucket, localDir: src, keyPrefix: 'p/', progressIntervalMs: 5,
      onProgress: (ev) => {
        assert.equal(resolved, false, 'no event after the promise settles')
        events.push(ev)
      },
    })
    .then((s) => {
      resolved = true
      return s
    })
  assert.ok(
    // Above the 5 bytes of small.txt and below the total: only the big file moving can give that.
    events.some((e) => e.transferredBytes > 5 && e.transferredBytes < total),
    `progress reported while the large file was in flight, not only at its end: ${events.map((e) => e.transferredBytes)}`,
  )
  for (const ev of events) {
    assert.equal(ev.totalFiles, 4, 'totals known from the first event')
    assert.equal(ev.totalBytes, total)
    assert.ok(ev.transferredBytes <= ev.totalBytes)
  }
  for (let i = 1; i < events.length; i++) {
    assert.ok(events[i].transferredBytes >= events[i - 1].transferredBytes, 'monotonic bytes')
    assert.ok(events[i].completedFiles >= events[i - 1].completedFiles, 'monotonic files')
  }
  const inside = events.filter((e) => e.transferredBytes > 0 && e.transferredBytes < total)
  assert.ok(inside.length >= 2, 'progress moves inside the big file, not once per file')
  const last = events.at(-1)
  assert.equal(last.transferredBytes, total)
  assert.equal(last.completedFiles, 4, 'zero-byte files count as completed')
  assert.equal(last.totalFiles, 4)
  assert.equal(summary.files, 4)
  assert.equal(summary.bytes, total)

  const downEvents = []
  await client.download({ bucket, keyPrefix: 'p/', localDir: path.join(dir, 'out'), progressIntervalMs: 5, onProgress: (e) => downEvents.push(e) })
  assert.equal(downEvents.at(-1).transferredBytes, total)
  assert.equal(downEvents.at(-1).completedFiles, 4)
  assert.ok(downEvents.every((e, i) => i === 0 || e.transferredBytes >= downEvents[i - 1].transferredBytes))
})

test('a throwing progress callback cancels the transfer and the promise rejects with what it threw', async () => {
  const client = new TransferClient(await clientOptions({ partSize: 5 * MiB, multipartThreshold: 5 * MiB }))
  const bucket = await makeBucket()
  const dir = tempDir()
  writeFileSync(path.join(dir, 'big.bin'), bytes(60 * MiB, 4))
  const boom = new Error('callback bug')
  let uncaught = null
  const onUncaught = (e) => (uncaught = e)
  process.on('uncaughtException', onUncaught)
  try {
    await assert.rejects(
      client.upload({ bucket, localDir: dir, progressIntervalMs: 5, onProgress: () => { throw boom } }),
      (e) => e === boom,
    )
  } finally {
    process.off('uncaughtException', onUncaught)
  }
  assert.equal(uncaught, null)
  assert.deepEqual(await openUploads(bucket), [])
})

test('one signal cancels several calls; aborting one call leaves another on the same client untouched', async () => {
  const client = new TransferClient(await clientOptions({ partSize: 5 * MiB, multipartThreshold: 5 * MiB }))
  const bucket = await makeBucket()
  const dir = tempDir()
  writeTree(dir, { 'a/big.bin': bytes(80 * MiB, 5), 'b/big.bin': bytes(80 * MiB, 6), 'c/data.bin': bytes(12 * MiB, 7) })
  const shared = new AbortController()
  const started = []
  const mk = (sub) =>
    client.upload({ bucket, localDir: path.join(dir, sub), keyPrefix: sub + '/', signal: shared.signal, progressIntervalMs: 5,
      onProgress: (e) => { if (e.transferredBytes > 0 && !started.includes(sub)) started.push(sub); if (started.length === 2) shared.abort() } })
  const other = client.upload({ bucket, localDir: path.join(dir, 'c'), keyPrefix: 'c/' })
  const results = await Promise.allSettled([mk('a'), mk('b'), other])
  assert.equal(results[0].status, 'rejected')
  assert.equal(results[0].reason.name, 'AbortError')
  assert.equal(results[1].status, 'rejected')
  assert.equal(results[1].reason.name, 'AbortError')
  assert.equal(results[2].status, 'fulfilled', 'the call without the signal completed')
  assert.deepEqual(await listKeys(bucket), ['c/data.bin'])
  assert.deepEqual(await openUploads(bucket), [])
})

test('AbortSignal.timeout cancels like a manual abort', async () => {
  const client = new TransferClient(await clientOptions({ partSize: 5 * MiB, multipartThreshold: 5 * MiB }))
  const bucket = await makeBucket()
  const dir = tempDir()
  writeFileSync(path.join(dir, 'big.bin'), bytes(300 * MiB, 8))
  const signal = AbortSignal.timeout(150)
  await assert.rejects(client.upload({ bucket, localDir: dir, signal }), (e) => {
    assert.equal(e.name, 'AbortError')
    assert.equal(e.cause, signal.reason)
    assert.equal(e.cause.name, 'TimeoutError')
    return true
  })
  assert.deepEqual(await openUploads(bucket), [])
})

test('the process exits by itself after a transfer (no handle keeps the event loop alive)', async () => {
  const s = await server()
  const bucket = await makeBucket()
  const dir = tempDir()
  writeFileSync(path.join(dir, 'f.txt'), 'bye')
  const script = `
    const { TransferClient } = require(${JSON.stringify(path.join(ROOT, 'index.js'))})
    const c = new TransferClient(${JSON.stringify({ endpoint: s.endpoint, forcePathStyle: true, credentials: s.credentials })})
    c.upload({ bucket: ${JSON.stringify(bucket)}, localDir: ${JSON.stringify(dir)}, onProgress: () => {} })
      .then((r) => console.log('done', r.files))`
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 })
  assert.equal(r.signal, null, 'the process had to be killed: something kept it alive')
  assert.equal(r.status, 0, r.stderr)
  assert.match(r.stdout, /done 1/)
})

test('worker_threads: a transfer in a worker completes, and a worker terminated mid-upload leaves no multipart upload', async () => {
  const { Worker } = await import('node:worker_threads')
  const opts = await clientOptions({ partSize: 5 * MiB, multipartThreshold: 5 * MiB })
  const bucket = await makeBucket()
  const dir = tempDir()
  writeFileSync(path.join(dir, 'big.bin'), bytes(150 * MiB, 9))
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const { TransferClient } = require(${JSON.stringify(path.join(ROOT, 'index.js'))})
    const c = new TransferClient(workerData.opts)
    c.upload({ bucket: workerData.bucket, localDir: workerData.dir, keyPrefix: workerData.prefix, progressIntervalMs: 5,
               onProgress: (p) => parentPort.postMessage({ bytes: p.transferredBytes }) })
      .then((r) => parentPort.postMessage({ done: r.files }), (e) => parentPort.postMessage({ error: e.code }))`
  const run = (prefix, stopAfterBytes) =>
    new Promise((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { opts, bucket, dir, prefix } })
      w.on('error', reject)
      w.on('message', (m) => {
        if (m.done !== undefined || m.error !== undefined) w.terminate().then(() => resolve(m))
        else if (stopAfterBytes && m.bytes > stopAfterBytes) w.terminate().then(() => resolve({ terminated: true }))
      })
    })
  assert.deepEqual(await run('whole/'), { done: 1 })
  assert.deepEqual(await run('cut/', 10 * MiB), { terminated: true })
  // The worker is gone; its environment's teardown cancelled the call, and the engine aborts the upload.
  let open = await openUploads(bucket)
  for (let i = 0; i < 100 && open.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100))
    open = await openUploads(bucket)
  }
  assert.deepEqual(open, [], 'the terminated worker\'s multipart upload was aborted')
  assert.deepEqual(await listKeys(bucket), ['whole/big.bin'])
})

test('a worker that alone loaded the addon, terminated mid-upload: the upload is aborted before terminate() resolves; the addon runs on its own runtime after', async () => {
  const opts = await clientOptions({ partSize: 5 * MiB, multipartThreshold: 5 * MiB })
  const bucket = await makeBucket()
  const dir = tempDir()
  writeFileSync(path.join(dir, 'big.bin'), bytes(150 * MiB, 11))
  // A separate process whose main thread does not load the addon until the worker is gone: the worker's
  // environment is then the addon's last, and napi shuts its runtime down with it.
  const child = `
    const { Worker } = require('node:worker_threads')
    const [opts, bucket, dir, index] = JSON.parse(process.argv[1])
    const code = \`
      const { parentPort, workerData: w } = require('node:worker_threads')
      const { TransferClient } = require(w.index)
      new TransferClient(w.opts).upload({ bucket: w.bucket, localDir: w.dir, keyPrefix: 'cut/', progressIntervalMs: 5,
        onProgress: (p) => parentPort.postMessage(p.transferredBytes) })\`
    const w = new Worker(code, { eval: true, workerData: { opts, bucket, dir, index } })
    w.on('message', async (bytes) => {
      if (bytes < 30 * 1024 * 1024 || w.stopping) return
      w.stopping = true
      await w.terminate()
      // Asked at once: the teardown must already have aborted the upload (nothing runs on in the background).
      const { S3Client, ListMultipartUploadsCommand } = require('@aws-sdk/client-s3')
      const sdk = new S3Client({ endpoint: opts.endpoint, region: opts.region, forcePathStyle: true, credentials: opts.credentials })
      const listed = await sdk.send(new ListMultipartUploadsCommand({ Bucket: bucket }))
      console.log('terminated, open uploads: ' + (listed.Uploads ?? []).length)
      // Now the main thread loads the addon: a new first environment.
      const { TransferClient } = require(index)
      const client = new TransferClient(opts)
      const r = await client.upload({ bucket, files: [{ path: require('node:path').join(dir, 'big.bin'), key: 'after/big.bin' }] })
      const names = process.platform === 'linux'
        ? require('node:fs').readdirSync('/proc/self/task').map((t) => require('node:fs').readFileSync('/proc/self/task/' + t + '/comm', 'utf8').trim())
        : []
      console.log(JSON.stringify({ files: r.files, threads: client.settings.threads, engineThreads: names.filter((n) => n === 's3-ferry').length }))
      process.exit(0)
    })`
  const out = await new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', child, JSON.stringify([opts, bucket, dir, path.join(ROOT, 'index.js')])], { stdio: ['ignore', 'pipe', 'inherit'] })
    let stdout = ''
    p.stdout.on('data', (d) => (stdout += d))
    p.on('error', reject)
    p.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`child exited ${code}: ${stdout}`))))
  })
  const [first, summary] = out.trim().split('\n')
  assert.equal(first, 'terminated, open uploads: 0')
  const after = JSON.parse(summary)
  assert.equal(after.files, 1)
  // The engine runtime's threads (its workers, and its blocking pool as it grows) are named s3-ferry; napi's
  // restarted default runtime would have none.
  if (process.platform === 'linux') assert.ok(after.engineThreads >= after.threads, JSON.stringify(after))
  assert.deepEqual(await openUploads(bucket), [], 'the terminated worker\'s multipart upload was aborted')
  assert.deepEqual(await listKeys(bucket), ['after/big.bin'])
})

// A flaky network between the client and the real S3 server (scripts/fault-proxy.mjs): 500s, 503 SlowDown,
// connections reset mid-upload and mid-download, requests and bodies that go silent past the read timeout.
// Transfers must come through byte-exact; when retries run out the error says why and after how many attempts,
// and nothing is left behind.
import assert from 'node:assert/strict'
import { createWriteStream, existsSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { TransferClient } from '../index.js'
import { MiB, allFiles, bytes, clientOptions, listKeys, makeBucket, openUploads, server, tempDir, treeHashes, writeTree } from './helpers.mjs'
import { startFaultProxy } from '../scripts/fault-proxy.mjs'

// About one request in four is faulted, each kind about equally; a request is faulted at most twice, so five
// attempts always get through.
const MIX = { error500: 0.05, slowDown: 0.04, resetRequest: 0.05, stall: 0.03, cutResponse: 0.05, stallBody: 0.03 }

async function faultProxy(options) {
  return startFaultProxy((await server()).endpoint, { stallMs: 30_000, ...options })
}

function assertEveryFault(stats) {
  for (const kind of Object.keys(MIX)) assert.ok(stats[kind] > 0, `some ${kind} faults were injected: ${JSON.stringify(stats)}`)
}

test('a 2000-file round trip under a mix of faults, corrupted bodies included, completes byte-exact', async () => {
  // Small objects come back in one GET each, which the SDK checks against the stored checksum: a flipped byte
  // is caught and the object fetched again. (A flipped byte in one range of a large object is caught by the
  // full-object check and fails the file: see integrity.test.mjs.)
  const proxy = await faultProxy({ faults: { ...MIX, corruptBody: 0.04 }, seed: 7 })
  try {
    const client = new TransferClient(await clientOptions({ endpoint: proxy.endpoint, readTimeoutMs: 1000, checksum: 'whenSupported' }))
    const bucket = await makeBucket('faults')
    const dir = tempDir()
    const files = {}
    for (let i = 0; i < 2000; i++) files[`d${i % 25}/f${i}.bin`] = bytes(500 + ((i * 997) % 20_000), i)
    writeTree(path.join(dir, 'src'), files)

    const up = await client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: 'job/' })
    assert.equal(up.files, 2000)
    const down = await client.download({ bucket, keyPrefix: 'job/', localDir: path.join(dir, 'out') })
    assert.equal(down.files, 2000)
    assert.deepEqual(treeHashes(path.join(dir, 'out')), treeHashes(path.join(dir, 'src')))
    assert.deepEqual(await openUploads(bucket), [])
    assertEveryFault(proxy.stats)
    assert.ok(proxy.stats.corruptBody > 0)
  } finally {
    await proxy.close()
  }
})

test('a 1 GiB file goes up and comes down byte-exact under a mix of faults', async () => {
  const proxy = await faultProxy({ faults: MIX, seed: 11 })
  try {
    const client = new TransferClient(await clientOptions({ endpoint: proxy.endpoint, readTimeoutMs: 2000 }))
    const bucket = await makeBucket('faults')
    const dir = tempDir()
    const src = path.join(dir, 'src', 'scene.bin')
    writeTree(path.join(dir, 'src'), { 'scene.bin': '' })
    // Written in 64 MiB pieces so the test never holds the whole GiB.
    const out = createWriteStream(src)
    for (let i = 0; i < 16; i++) if (!out.write(bytes(64 * MiB, 100 + i))) await new Promise((r) => out.once('drain', r))
    await new Promise((r, j) => out.end((e) => (e ? j(e) : r())))

    const up = await client.upload({ bucket, files: [{ path: src, key: 'scene.bin' }] })
    assert.equal(up.bytes, 1024 * MiB)
    assert.deepEqual(await openUploads(bucket), [])
    const down = await client.download({ bucket, objects: [{ key: 'scene.bin', path: path.join(dir, 'out', 'scene.bin') }] })
    assert.equal(down.bytes, 1024 * MiB)
    assert.deepEqual(treeHashes(path.join(dir, 'out')), treeHashes(path.join(dir, 'src')))
    assert.ok(proxy.injected >= 30, `faults were injected: ${JSON.stringify(proxy.stats)}`)
  } finally {
    await proxy.close()
  }
})

test('when retries run out, the error carries the last cause and the attempt count, and nothing is left', async () => {
  const opts = await clientOptions({ partSize: 5 * MiB, multipartThreshold: 5 * MiB, maxAttempts: 3, readTimeoutMs: 300 })
  const bucket = await makeBucket('faults')
  const dir = tempDir()
  writeTree(path.join(dir, 'src'), { 'small.bin': bytes(1000, 1), 'big.bin': bytes(12 * MiB, 2) })
  await new TransferClient(opts).upload({ bucket, files: [{ path: path.join(dir, 'src/small.bin'), key: 'present.bin' }] })
  const failing = (fault, applies) => faultProxy({ faults: { [fault]: 1 }, maxFaultsPerRequest: Infinity, applies })

  // Every PutObject answered with 503 SlowDown.
  let proxy = await failing('slowDown', (req) => req.method === 'PUT')
  try {
    const client = new TransferClient({ ...opts, endpoint: proxy.endpoint })
    await assert.rejects(client.upload({ bucket, files: [{ path: path.join(dir, 'src/small.bin'), key: 'small.bin' }] }), (e) => {
      assert.equal(e.code, 'SlowDown')
      assert.equal(e.statusCode, 503)
      assert.equal(e.attempts, 3)
      assert.equal(e.key, 'small.bin')
      assert.match(e.message, /after 3 attempts/)
      return true
    })
    assert.equal(proxy.stats.slowDown, 3)
  } finally {
    await proxy.close()
  }

  // The second part of a multipart upload answered with 500 every time: the upload is aborted on the server.
  proxy = await failing('error500', (req) => req.method === 'PUT' && req.url.includes('partNumber=2&'))
  try {
    const client = new TransferClient({ ...opts, endpoint: proxy.endpoint })
    await assert.rejects(client.upload({ bucket, files: [{ path: path.join(dir, 'src/big.bin'), key: 'big.bin' }] }), (e) => {
      assert.equal(e.code, 'InternalError')
      assert.equal(e.statusCode, 500)
      assert.equal(e.attempts, 3)
      return true
    })
    assert.equal(proxy.stats.error500, 3)
    assert.deepEqual(await openUploads(bucket), [])
    assert.deepEqual(await listKeys(bucket), ['present.bin'])
  } finally {
    await proxy.close()
  }

  // A GET that never answers: the read timeout fires on each attempt, and no file is created.
  proxy = await failing('stall', (req) => req.method === 'GET' && !req.url.includes('list-type'))
  try {
    const client = new TransferClient({ ...opts, endpoint: proxy.endpoint })
    const dest = path.join(dir, 'out', 'present.bin')
    await assert.rejects(client.download({ bucket, objects: [{ key: 'present.bin', path: dest }] }), (e) => {
      assert.equal(e.code, 'ETIMEDOUT')
      assert.equal(e.attempts, 3)
      assert.equal(e.key, 'present.bin')
      return true
    })
    assert.equal(proxy.stats.stall, 3)
    assert.equal(existsSync(path.join(dir, 'out')) ? allFiles(path.join(dir, 'out')).length : 0, 0)
  } finally {
    await proxy.close()
  }
})

test('a download slowed by the bandwidth cap is not timed out: only silence on the network counts', async () => {
  // 40 objects of 64 KiB share 1 MiB/s, and bodies move in 64 KiB chunks under that cap, so most readers wait
  // seconds for their turn: far past the 800 ms timeout. With nothing faulted, every GET must succeed on its first
  // attempt. (The upload side is covered by the engine's own tests: SeaweedFS itself holds back the answers to
  // concurrent slow PUTs, which would make such a test here flaky.)
  const bucket = await makeBucket('faults')
  const dir = tempDir()
  const files = {}
  for (let i = 0; i < 40; i++) files[`f${i}.bin`] = bytes(64 * 1024, 30 + i)
  writeTree(path.join(dir, 'src'), files)
  await new TransferClient(await clientOptions()).upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: '' })
  const proxy = await faultProxy({ faults: {} })
  try {
    const client = new TransferClient(await clientOptions({ endpoint: proxy.endpoint, readTimeoutMs: 800, maxAttempts: 1, maxBandwidth: MiB }))
    await client.download({ bucket, keyPrefix: '', localDir: path.join(dir, 'out') })
    assert.deepEqual(treeHashes(path.join(dir, 'out')), treeHashes(path.join(dir, 'src')))
    assert.equal(proxy.stats.requests, 41, 'one listing and one GET per object, no retries')
  } finally {
    await proxy.close()
  }
})

test('after an outage, a new call on the same client gets its full maxAttempts (no spent retry quota)', async () => {
  const bucket = await makeBucket('faults')
  const dir = tempDir()
  writeTree(path.join(dir, 'a'), Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`f${i}.bin`, bytes(2000, i)])))
  writeTree(path.join(dir, 'b'), Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`g${i}.bin`, bytes(3000, 100 + i)])))
  // 'outage': every request fails. 'flaky': each request fails twice, then passes.
  let mode = 'outage'
  const seen = new Map()
  const applies = (req) => {
    if (mode === 'outage') return true
    const n = (seen.get(req.url) ?? 0) + 1
    seen.set(req.url, n)
    return n <= 2
  }
  const proxy = await faultProxy({ faults: { error500: 1 }, maxFaultsPerRequest: Infinity, applies })
  try {
    const client = new TransferClient(await clientOptions({ endpoint: proxy.endpoint, maxAttempts: 5 }))
    const outage = await client.upload({ bucket, localDir: path.join(dir, 'a'), continueOnError: true }).then(() => assert.fail('resolved'), (e) => e)
    assert.equal(outage.failures.length, 40)
    mode = 'flaky'
    const after = await client.upload({ bucket, localDir: path.join(dir, 'b'), keyPrefix: 'b' })
    assert.equal(after.files, 5, 'each request retried past its two failures')
    assert.equal(proxy.stats.operations.PutObject, 40 * 5 + 5 * 3, 'every outage request made all 5 attempts; each later one 3')
  } finally {
    await proxy.close()
  }
})

// Content addressing checked by the store: a job attachment's single PUT carries its xxh128 as the XXHASH128
// checksum, and a store that verifies it (s3s-fs 0.17; SeaweedFS does not) refuses other bytes under that key.
import assert from 'node:assert/strict'
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, test as nodeTest } from 'node:test'
import { TransferClient } from '../index.js'
import { startFaultProxy } from '../scripts/fault-proxy.mjs'
import { VERIFYING_VERSION, s3sFsBinary, startS3sFs } from '../scripts/s3s-fs.mjs'
import { bytes, tempDir, writeTree } from './helpers.mjs'

const BUCKET = 'jobs'
let store

// `npm test` builds s3s-fs 0.17 where it can (Debian, root); elsewhere these tests skip, except in CI
// (S3_FERRY_REQUIRE_S3SFS=1), where a missing store fails them.
const skip =
  !existsSync(s3sFsBinary(VERIFYING_VERSION)) && process.env.S3_FERRY_REQUIRE_S3SFS !== '1' && 's3s-fs 0.17 is not built here'
const test = (name, fn) => nodeTest(name, { skip }, fn)

before(async () => {
  // Under the system's temporary directory; `stop()` removes what it stored.
  if (!skip) store = await startS3sFs(BUCKET, undefined, VERIFYING_VERSION)
})
after(() => store?.stop())

/** A client of the verifying store through a logging proxy (`proxyOptions` may corrupt requests). */
async function verifyingClient(options = {}, proxyOptions = {}) {
  const proxy = await startFaultProxy(store.endpoint, { log: true, ...proxyOptions })
  after(() => proxy.close())
  const client = new TransferClient({ endpoint: proxy.endpoint, region: store.region, forcePathStyle: true, credentials: store.credentials, ...options })
  return { client, proxy }
}

const storedAt = (key) => path.join(store.root, BUCKET, ...key.split('/'))
const contentPuts = (proxy) => proxy.stats.requestLog.filter((r) => r.op === 'PutObject' && r.url.includes('/Data/'))
const keyHash = (url) => url.match(/\/Data\/([0-9a-f]{32})\.xxh128/)[1]

test('with checksums on, each content PUT carries its own hash as XXHASH128, and the verifying store keeps it', async () => {
  const dir = tempDir('job')
  writeTree(dir, { 'hello.txt': 'hello world', 'tex/a.bin': bytes(300 * 1024, 1), 'tex/copy.bin': bytes(300 * 1024, 1), 'empty.txt': '' })
  const { client, proxy } = await verifyingClient({ checksum: 'whenSupported' })
  const out = await client.uploadContentAddressed({ bucket: BUCKET, rootPrefix: 'farm', localDir: dir })
  const puts = contentPuts(proxy)
  assert.equal(puts.length, 3, 'three distinct contents')
  for (const put of puts) {
    const hash = keyHash(put.url)
    assert.equal(put.headers['x-amz-checksum-xxhash128'], Buffer.from(hash, 'hex').toString('base64'), put.url)
    assert.deepEqual(
      Object.keys(put.headers).filter((h) => h.startsWith('x-amz-checksum-') || h === 'x-amz-trailer'),
      ['x-amz-checksum-xxhash128'],
      'no second checksum',
    )
  }
  // Python: base64.b64encode(xxhash.xxh3_128(b"hello world").digest())
  const hello = puts.find((p) => p.url.includes('df8d09e93f874900a99b8775cc15b6c7'))
  assert.equal(hello.headers['x-amz-checksum-xxhash128'], '340J6T+HSQCpm4d1zBW2xw==')
  for (const p of JSON.parse(out.manifest).paths) {
    assert.ok(readFileSync(storedAt(`farm/Data/${p.hash}.xxh128`)).equals(readFileSync(path.join(dir, p.path))), p.path)
  }
  // Back down: the GETs ask for the stored checksum (an XXHASH128 one, which the SDK cannot check and leaves
  // alone); every file is checked against its xxh128 from the manifest, the value the store verified.
  const down = tempDir('down')
  await client.downloadManifest({ bucket: BUCKET, rootPrefix: 'farm', manifest: out.manifest, localDir: down })
  const gets = proxy.stats.requestLog.filter((r) => r.op === 'GetObject')
  assert.equal(gets.length, 4, 'one GET per file')
  assert.ok(gets.every((g) => g.headers['x-amz-checksum-mode'] === 'ENABLED'))
  for (const name of ['hello.txt', 'tex/a.bin', 'tex/copy.bin', 'empty.txt']) {
    assert.ok(readFileSync(path.join(down, name)).equals(readFileSync(path.join(dir, name))), name)
  }
})

test('a content corrupted on the way is refused by the store: ERR_CHECKSUM_MISMATCH naming the file and key, nothing stored', async () => {
  const dir = tempDir('job')
  writeTree(dir, { 'scene.blend': bytes(2 * 1024 * 1024, 7) })
  const { client, proxy } = await verifyingClient({ checksum: 'whenSupported' }, { corruptRequest: (req, op) => op === 'PutObject' })
  const err = await client.uploadContentAddressed({ bucket: BUCKET, rootPrefix: 'bad', localDir: dir }).then(
    () => assert.fail('the corrupted upload was accepted'),
    (e) => e,
  )
  const key = `bad/Data/${keyHash(contentPuts(proxy)[0].url)}.xxh128`
  assert.equal(err.code, 'ERR_CHECKSUM_MISMATCH')
  assert.equal(err.key, key)
  assert.equal(err.path, path.join(dir, 'scene.blend'))
  assert.match(err.message, /the store refused the bytes sent from '.*scene\.blend': their XXHASH128 is not [0-9a-f]{32}/)
  assert.equal(proxy.stats.corruptedRequests, 1, 'refused once, not retried')
  assert.equal(existsSync(storedAt(key)), false, 'nothing stored under the content key')
})

test('a refusal caused by a stale cached hash (new bytes, same size and mtime) is not repeated: the file is hashed again', async () => {
  const dir = tempDir('job')
  const file = path.join(dir, 'scene.blend')
  const when = new Date('2026-01-02T03:04:05Z')
  writeFileSync(file, bytes(64 * 1024, 1))
  utimesSync(file, when, when)
  const { client, proxy } = await verifyingClient({ checksum: 'whenSupported', cacheDir: tempDir('cache') })
  const first = await client.uploadContentAddressed({ bucket: BUCKET, rootPrefix: 'v1', localDir: dir })
  // New bytes, same size and mtime (as `cp -p` or `rsync -t` leave them): the cache still has the old hash.
  writeFileSync(file, bytes(64 * 1024, 2))
  utimesSync(file, when, when)
  const err = await client.uploadContentAddressed({ bucket: BUCKET, rootPrefix: 'v2', localDir: dir }).then(
    () => assert.fail('the store accepted bytes under another content key'),
    (e) => e,
  )
  assert.equal(err.code, 'ERR_CHECKSUM_MISMATCH')
  assert.equal(err.statusCode, 400)
  assert.equal(err.key, `v2/Data/${JSON.parse(first.manifest).paths[0].hash}.xxh128`)
  const again = await client.uploadContentAddressed({ bucket: BUCKET, rootPrefix: 'v2', localDir: dir })
  assert.equal(again.cachedHashes, 0, 'hashed again')
  const [entry] = JSON.parse(again.manifest).paths
  assert.notEqual(entry.hash, JSON.parse(first.manifest).paths[0].hash)
  assert.ok(readFileSync(storedAt(`v2/Data/${entry.hash}.xxh128`)).equals(readFileSync(file)))
  assert.equal(contentPuts(proxy).length, 3)
})

test('a content above multipartThreshold keeps the CRC64NVME full-object checksum (XXHASH128 is composite-only there)', async () => {
  const dir = tempDir('job')
  writeTree(dir, { 'scene.blend': bytes(12 * 1024 * 1024 + 3, 9) })
  const { client, proxy } = await verifyingClient({ checksum: 'whenSupported', multipartThreshold: 8 * 1024 * 1024, partSize: 5 * 1024 * 1024 })
  const out = await client.uploadContentAddressed({ bucket: BUCKET, rootPrefix: 'big', localDir: dir })
  const [create] = proxy.stats.requestLog.filter((r) => r.op === 'CreateMultipartUpload')
  assert.equal(create.headers['x-amz-checksum-algorithm'], 'CRC64NVME')
  assert.equal(create.headers['x-amz-checksum-type'], 'FULL_OBJECT')
  const parts = proxy.stats.requestLog.filter((r) => r.op === 'UploadPart')
  assert.equal(parts.length, 3)
  assert.ok(parts.every((p) => !('x-amz-checksum-xxhash128' in p.headers)))
  const [p] = JSON.parse(out.manifest).paths
  assert.ok(readFileSync(storedAt(`big/Data/${p.hash}.xxh128`)).equals(readFileSync(path.join(dir, 'scene.blend'))))
})

test('with checksums off (the default for a custom endpoint) no checksum is sent', async () => {
  const dir = tempDir('job')
  writeTree(dir, { 'hello.txt': 'hello world' })
  const { client, proxy } = await verifyingClient()
  await client.uploadContentAddressed({ bucket: BUCKET, rootPrefix: 'plain', localDir: dir })
  const [put] = contentPuts(proxy)
  assert.deepEqual(Object.keys(put.headers).filter((h) => h.startsWith('x-amz-checksum-') || h === 'x-amz-trailer'), [])
})

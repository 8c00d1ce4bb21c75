// Integrity: a local file that changes while it is being uploaded is never stored as a mix of old and new bytes;
// request checksums are sent and stored; downloads verify what the server returns.
import assert from 'node:assert/strict'
import { appendFileSync, readFileSync, utimesSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { TransferClient } from '../index.js'
import { MiB, bytes, clientOptions, listKeys, makeBucket, openUploads, s3, server, tempDir, treeHashes, writeTree } from './helpers.mjs'
import { startFaultProxy } from '../scripts/fault-proxy.mjs'

/** Calls `change` once the upload has sent `after` bytes (the bandwidth cap keeps it going for seconds). */
function changeWhenSent(after, change) {
  let done = false
  return (p) => {
    if (!done && p.transferredBytes >= after) {
      done = true
      change()
    }
  }
}

test('a file that changes while it is uploaded: ERR_FILE_CHANGED, and nothing is stored (single PUT and multipart)', async () => {
  const client = new TransferClient(await clientOptions({ partSize: 5 * MiB, multipartThreshold: 5 * MiB, maxBandwidth: 4 * MiB }))
  const bucket = await makeBucket()
  const dir = tempDir()
  writeTree(dir, { 'small.bin': bytes(3 * MiB, 1), 'big.bin': bytes(12 * MiB, 2) })

  // Single PUT: the file grows after 1 MiB has gone; the check after the last chunk fails the request before
  // the server has the whole body, so no object appears (before, it was stored and then reported).
  const small = path.join(dir, 'small.bin')
  await assert.rejects(
    client.upload({ bucket, files: [{ path: small, key: 'small.bin' }], progressIntervalMs: 0, onProgress: changeWhenSent(MiB, () => appendFileSync(small, 'more')) }),
    (e) => e.code === 'ERR_FILE_CHANGED' && e.path === small,
  )
  assert.deepEqual(await listKeys(bucket), [])

  // Multipart: only the modification time changes; the upload is aborted on the server.
  const big = path.join(dir, 'big.bin')
  await assert.rejects(
    client.upload({ bucket, files: [{ path: big, key: 'big.bin' }], progressIntervalMs: 0, onProgress: changeWhenSent(MiB, () => utimesSync(big, new Date(), new Date(Date.now() + 5000))) }),
    (e) => e.code === 'ERR_FILE_CHANGED' && e.path === big,
  )
  assert.deepEqual(await openUploads(bucket), [])
  assert.deepEqual(await listKeys(bucket), [])
})

test('uploads store a whole-object checksum of the chosen algorithm, single PUT and multipart', async () => {
  const { HeadObjectCommand } = await import('@aws-sdk/client-s3')
  const bucket = await makeBucket()
  const dir = tempDir()
  writeTree(dir, { 'small.bin': bytes(100_000, 3), 'big.bin': bytes(11 * MiB, 4) })
  const sdk = await s3()
  const outs = tempDir('out')
  for (const [algorithm, field] of [[undefined, 'ChecksumCRC64NVME'], ['crc32c', 'ChecksumCRC32C'], ['crc32', 'ChecksumCRC32']]) {
    const client = new TransferClient(await clientOptions({ checksum: 'whenSupported', checksumAlgorithm: algorithm, partSize: 5 * MiB, multipartThreshold: 5 * MiB }))
    assert.equal(client.settings.checksumAlgorithm, algorithm ?? 'crc64nvme')
    await client.upload({ bucket, localDir: dir, keyPrefix: `${field}/` })
    for (const name of ['small.bin', 'big.bin']) {
      const head = await sdk.send(new HeadObjectCommand({ Bucket: bucket, Key: `${field}/${name}`, ChecksumMode: 'ENABLED' }))
      assert.match(head[field] ?? '', /^[A-Za-z0-9+/]+=*$/, `${field} stored for ${name}`)
      if (name === 'big.bin') assert.equal(head.ChecksumType, 'FULL_OBJECT')
    }
    await client.download({ bucket, keyPrefix: `${field}/`, localDir: path.join(outs, field) })
    assert.deepEqual(treeHashes(path.join(outs, field)), treeHashes(dir))
  }
})

test('downloads verify the stored checksum: a corrupted body is fetched again, or fails with ERR_CHECKSUM_MISMATCH leaving the destination untouched', async () => {
  const opts = await clientOptions({ checksum: 'whenSupported', partSize: 5 * MiB, multipartThreshold: 5 * MiB, maxAttempts: 3 })
  const bucket = await makeBucket()
  const dir = tempDir()
  const small = bytes(300_000, 5)
  const big = bytes(12 * MiB, 6)
  writeTree(path.join(dir, 'src'), { 'small.bin': small, 'big.bin': big })
  await new TransferClient(opts).upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: '' })
  // Stored with CRC32 while the client computes CRC64NVME by default: verified by a second pass over the file.
  await new TransferClient({ ...opts, checksumAlgorithm: 'crc32' }).upload({ bucket, files: [{ path: path.join(dir, 'src/big.bin'), key: 'big-crc32.bin' }] })
  const getsOf = (key) => (req) => req.method === 'GET' && req.url.split('?')[0].endsWith(`/${key}`)

  // Corrupted once: the SDK notices on the whole-object GET, the object is fetched again, and arrives intact.
  let proxy = await startFaultProxy((await server()).endpoint, { faults: { corruptBody: 1 }, maxFaultsPerRequest: 1, applies: getsOf('small.bin') })
  try {
    const client = new TransferClient({ ...opts, endpoint: proxy.endpoint })
    await client.download({ bucket, objects: [{ key: 'small.bin', path: path.join(dir, 'once/small.bin') }] })
    assert.equal(proxy.stats.corruptBody, 1)
    assert.ok(readFileSync(path.join(dir, 'once/small.bin')).equals(small))
  } finally {
    await proxy.close()
  }

  // Corrupted every time. The destinations exist beforehand and must be left exactly as they were.
  const out = path.join(dir, 'out')
  writeTree(out, { 'small.bin': 'old small', 'big.bin': 'old big', 'big-crc32.bin': 'old crc32' })
  const cases = [
    ['small.bin', getsOf('small.bin')],
    // One ranged part of a multipart object: no ranged response carries a checksum, the full-object one catches it.
    ['big.bin', (req) => getsOf('big.bin')(req) && /^bytes=5242880-/.test(req.headers.range ?? '')],
    // Size unknown (explicit list): asked for whole, its first part read, the rest in ranges; corrupt that first part.
    ['big-crc32.bin', (req) => getsOf('big-crc32.bin')(req) && !req.headers.range],
  ]
  for (const [key, applies] of cases) {
    proxy = await startFaultProxy((await server()).endpoint, { faults: { corruptBody: 1 }, maxFaultsPerRequest: Infinity, applies })
    try {
      const client = new TransferClient({ ...opts, endpoint: proxy.endpoint })
      await assert.rejects(client.download({ bucket, objects: [{ key, path: path.join(out, key) }] }), (e) => {
        assert.equal(e.code, 'ERR_CHECKSUM_MISMATCH', e.message)
        assert.equal(e.key, key)
        return true
      }, `${key} must fail its check`)
      assert.ok(proxy.stats.corruptBody >= 1)
    } finally {
      await proxy.close()
    }
  }
  writeTree(path.join(dir, 'expected'), { 'small.bin': 'old small', 'big.bin': 'old big', 'big-crc32.bin': 'old crc32' })
  assert.deepEqual(treeHashes(out), treeHashes(path.join(dir, 'expected')), 'no destination touched, no temporary file left')

  // Without faults, all three come down intact through the same checks.
  const client = new TransferClient(opts)
  await client.download({ bucket, keyPrefix: '', localDir: out })
  assert.ok(readFileSync(path.join(out, 'big.bin')).equals(big))
  assert.ok(readFileSync(path.join(out, 'big-crc32.bin')).equals(big))
})

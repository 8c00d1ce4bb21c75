// Integrity: a local file that changes while it is being uploaded is never stored as a mix of old and new bytes;
// request checksums are sent and stored; downloads verify what the server returns.
import assert from 'node:assert/strict'
import { appendFileSync, utimesSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { TransferClient } from '../index.js'
import { MiB, bytes, clientOptions, listKeys, makeBucket, openUploads, tempDir, writeTree } from './helpers.mjs'

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

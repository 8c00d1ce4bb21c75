// Resumable multipart uploads: a process killed mid-upload, or an upload that failed with `resumable: true`,
// leaves its multipart upload on the server and its record in the cache; the next upload of the same unchanged
// file to the same key sends only the parts the server does not have. Requests are counted per S3 operation at
// a pass-through proxy in front of the real server.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream, openSync, utimesSync, writeSync, closeSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { GetObjectCommand, ListPartsCommand } from '@aws-sdk/client-s3'
import { TransferClient } from '../index.js'
import { MiB, bytes, clientOptions, makeBucket, openUploads, s3, server, tempDir } from './helpers.mjs'
import { operationOf, startFaultProxy } from '../scripts/fault-proxy.mjs'

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')

async function sha256OfFile(p) {
  const h = createHash('sha256')
  for await (const chunk of createReadStream(p)) h.update(chunk)
  return h.digest('hex')
}

async function sha256OfObject(bucket, key) {
  const out = await (await s3()).send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  const h = createHash('sha256')
  for await (const chunk of out.Body) h.update(chunk)
  return h.digest('hex')
}

/** A file of `size` bytes, written in 16 MiB blocks that all differ. */
function bigFile(dir, size, seed) {
  const p = path.join(dir, 'scene.bin')
  const block = bytes(16 * MiB, seed)
  const fd = openSync(p, 'w')
  for (let at = 0, i = 0; at < size; at += block.length, i++) {
    block.writeUInt32LE(i, 0)
    writeSync(fd, block, 0, Math.min(block.length, size - at), at)
  }
  closeSync(fd)
  return p
}

test('a killed 1 GiB upload resumes without re-sending the parts the server has', async () => {
  const bucket = await makeBucket('resume')
  const dir = tempDir('resume')
  const cacheDir = tempDir('cache')
  const size = 1024 * MiB
  const file = bigFile(dir, size, 1)
  // Child and parent use the same endpoint (the cache tells servers apart by it).
  const proxy = await startFaultProxy((await server()).endpoint)
  const options = await clientOptions({ endpoint: proxy.endpoint, cacheDir, checksum: 'whenSupported' })

  // The child uploads and reports progress; it is killed (SIGKILL: no cleanup runs) at 40%.
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { TransferClient } from ${JSON.stringify(path.join(ROOT, 'index.js'))}
       const [options, bucket, file] = JSON.parse(process.argv[1])
       await new TransferClient(options).upload({
         bucket, files: [{ path: file, key: 'big/scene.bin' }], progressIntervalMs: 20,
         onProgress: (p) => process.stdout.write(p.transferredBytes + '\\n'),
       })
       process.stdout.write('finished\\n')`,
      JSON.stringify([options, bucket, file]),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  let killedAt = 0
  await new Promise((resolve, reject) => {
    let buffered = ''
    child.stdout.on('data', (d) => {
      buffered += d
      const lines = buffered.split('\n')
      buffered = lines.pop()
      for (const line of lines) {
        if (line === 'finished') reject(new Error('the child finished before it was killed'))
        if (!killedAt && Number(line) >= 0.4 * size) {
          killedAt = Number(line)
          child.kill('SIGKILL')
        }
      }
    })
    child.on('exit', resolve)
  })
  const [open] = await openUploads(bucket)
  assert.ok(open, 'the killed upload is still on the server')
  const listed = await (await s3()).send(new ListPartsCommand({ Bucket: bucket, Key: 'big/scene.bin', UploadId: open.UploadId }))
  const onServer = listed.Parts?.length ?? 0
  assert.ok(onServer > 0, 'some parts were stored before the kill')

  try {
    const before = { ...proxy.stats.operations }
    const client = new TransferClient(options)
    const summary = await client.upload({ bucket, files: [{ path: file, key: 'big/scene.bin' }] })
    const ops = Object.fromEntries(Object.entries(proxy.stats.operations).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => v > 0))
    const parts = size / (8 * MiB)
    const resumedParts = summary.resumedBytes / (8 * MiB)
    assert.ok(Number.isInteger(resumedParts) && resumedParts > 0, `resumed ${summary.resumedBytes} bytes`)
    // Parts stored but not yet recorded when the process died (at most the ten in flight) are sent again.
    assert.ok(resumedParts >= onServer - 10 && resumedParts <= onServer, `${resumedParts} of ${onServer} listed parts reused`)
    assert.equal(ops.UploadPart, parts - resumedParts, 'only the missing parts were sent')
    assert.equal(ops.CreateMultipartUpload, undefined, 'no new upload was created')
    assert.equal(ops.ListParts, 1)
    assert.equal(ops.CompleteMultipartUpload, 1)
    assert.equal(summary.bytes + summary.resumedBytes, size)
    assert.deepEqual(await openUploads(bucket), [])
    assert.equal(await sha256OfObject(bucket, 'big/scene.bin'), await sha256OfFile(file))
    console.log(`# killed at ${(killedAt / MiB).toFixed(0)} MiB sent; ${onServer} parts on the server, ${resumedParts} reused, ${ops.UploadPart} sent on resume`)
  } finally {
    await proxy.close()
  }
})

test('resumable: true keeps a failed upload for the next call; a changed file starts over and aborts it', async () => {
  const bucket = await makeBucket('resume')
  const dir = tempDir('resume')
  const cacheDir = tempDir('cache')
  const file = bigFile(dir, 40 * MiB, 2)
  // One request at a time, so parts go in order: 1 and 2 are stored, 3 fails for good.
  const base = await clientOptions({ cacheDir, maxPoolConnections: 1, maxAttempts: 2 })
  // One proxy (the cache tells servers apart by endpoint); while `failing`, parts from the third on get 500s.
  let failing = false
  const counting = await startFaultProxy((await server()).endpoint, {
    faults: { error500: 1 },
    maxFaultsPerRequest: Infinity,
    applies: (req) =>
      failing && operationOf(req) === 'UploadPart' && Number(new URL(req.url, 'http://x').searchParams.get('partNumber')) >= 3,
  })
  const client = new TransferClient({ ...base, endpoint: counting.endpoint })
  const failed = async (request) => {
    failing = true
    try {
      await assert.rejects(client.upload(request), { code: 'InternalError' })
    } finally {
      failing = false
    }
  }
  try {
    const request = { bucket, files: [{ path: file, key: 'k' }] }
    await failed({ ...request, resumable: true })
    assert.equal((await openUploads(bucket)).length, 1, 'kept for the next call')

    counting.stats.operations.UploadPart = 0
    const summary = await client.upload(request)
    assert.equal(summary.resumedBytes, 16 * MiB)
    assert.equal(counting.stats.operations.UploadPart, 3)
    assert.deepEqual(await openUploads(bucket), [])
    assert.equal(await sha256OfObject(bucket, 'k'), await sha256OfFile(file))

    // Again: it fails with resumable, then the file changes (mtime): the kept upload cannot be resumed, is
    // aborted, and the file goes whole.
    await failed({ ...request, resumable: true })
    assert.equal((await openUploads(bucket)).length, 1)
    utimesSync(file, new Date(), new Date(Date.now() + 5000))
    const before = counting.stats.operations.UploadPart
    const fresh = await client.upload(request)
    assert.equal(fresh.resumedBytes, 0)
    assert.equal(counting.stats.operations.UploadPart - before, 5)
    assert.deepEqual(await openUploads(bucket), [], 'the stale upload was aborted')

    // Without resumable, a failure aborts as before.
    await failed(request)
    assert.deepEqual(await openUploads(bucket), [])
  } finally {
    await counting.close()
  }
})

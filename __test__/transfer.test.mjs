// Round trips against the real local S3 server: single PUT, multipart, zero-byte files, a 1200-file tree with
// nested directories, spaces and unicode, prefix downloads across list pages, explicit lists, one-shot calls.
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { TransferClient, upload, download } from '../index.js'
import { MiB, allFiles, bytes, clientOptions, getObject, listKeys, makeBucket, openUploads, tempDir, treeHashes, writeTree } from './helpers.mjs'

test('a small file goes up as one PutObject and comes back byte-exact', async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir()
  const data = bytes(300 * 1024, 7)
  writeFileSync(path.join(dir, 'tex.png'), data)
  const up = await client.upload({ bucket, files: [{ path: path.join(dir, 'tex.png'), key: 'job/tex.png' }] })
  assert.equal(up.files, 1)
  assert.equal(up.bytes, data.length)
  assert.ok(up.seconds > 0 && up.bytesPerSecond > 0)
  assert.deepEqual(await getObject(bucket, 'job/tex.png'), data)

  const dest = path.join(dir, 'out', 'nested', 'copy.png')
  const down = await client.download({ bucket, objects: [{ key: 'job/tex.png', path: dest }] })
  assert.equal(down.files, 1)
  assert.equal(down.bytes, data.length)
  assert.deepEqual(readFileSync(dest), data)
})

test('a large file goes up as a multipart upload and down as ranged GETs', async () => {
  // 5 MiB parts so a 23 MiB file is 5 parts, the last one short.
  const client = new TransferClient(await clientOptions({ partSize: 5 * MiB, multipartThreshold: 5 * MiB }))
  const bucket = await makeBucket()
  const dir = tempDir()
  const data = bytes(23 * MiB + 12345, 3)
  const src = path.join(dir, 'scene.blend')
  writeFileSync(src, data)
  const up = await client.upload({ bucket, files: [{ path: src, key: 'scene.blend' }] })
  assert.equal(up.bytes, data.length)
  assert.deepEqual(await openUploads(bucket), [], 'the multipart upload was completed, none left open')
  const stored = await getObject(bucket, 'scene.blend')
  assert.equal(stored.length, data.length)
  assert.ok(stored.equals(data), 'stored object is byte-exact')

  // Prefix download (size known from the listing) and explicit download (size learned from the first part).
  const out = path.join(dir, 'out')
  await client.download({ bucket, keyPrefix: '', localDir: out })
  assert.ok(readFileSync(path.join(out, 'scene.blend')).equals(data))
  const explicit = path.join(dir, 'explicit.blend')
  const down = await client.download({ bucket, objects: [{ key: 'scene.blend', path: explicit }] })
  assert.equal(down.bytes, data.length)
  assert.ok(readFileSync(explicit).equals(data))
  assert.deepEqual(allFiles(dir).filter((f) => f.includes('s3ferry-part')), [], 'no temporary files left')
})

test('zero-byte files go up and come back, by list and by prefix', async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir()
  writeTree(dir, { 'src/empty.txt': '', 'src/sub/also-empty': '' })
  const up = await client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: 'z/' })
  assert.equal(up.files, 2)
  assert.equal(up.bytes, 0)
  assert.deepEqual((await listKeys(bucket)).sort(), ['z/empty.txt', 'z/sub/also-empty'])
  const down = await client.download({ bucket, keyPrefix: 'z/', localDir: path.join(dir, 'back') })
  assert.equal(down.files, 2)
  assert.deepEqual(treeHashes(path.join(dir, 'back')), treeHashes(path.join(dir, 'src')))
  const one = path.join(dir, 'one-empty')
  await client.download({ bucket, objects: [{ key: 'z/empty.txt', path: one }] })
  assert.equal(readFileSync(one).length, 0)
})

test('a 1200-file tree with nested directories, spaces and unicode round-trips byte-exact (prefix > 1000 keys)', async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir()
  const src = path.join(dir, 'bundle')
  const files = {}
  for (let i = 0; i < 1200; i++) {
    const sub = i % 3 === 0 ? `textures/set ${i % 7}/` : i % 3 === 1 ? `géo/ñ/深い/${i % 5}/` : ''
    files[`${sub}file ${i}.bin`] = bytes(1 + ((i * 7919) % 20000), i)
  }
  files['scene with spaces.blend'] = bytes(9 * MiB, 99) // one multipart file among the small ones
  writeTree(src, files)
  const events = []
  const up = await client.upload({ bucket, localDir: src, keyPrefix: 'job-42/', onProgress: (p) => events.push(p) })
  assert.equal(up.files, 1201)
  const keys = await listKeys(bucket, 'job-42/')
  assert.equal(keys.length, 1201)
  assert.ok(keys.includes('job-42/géo/ñ/深い/1/file 1.bin'), 'unicode key with / separators')
  // Progress only moves forward, and the last event is the whole call (README, "Cancellation and progress").
  const total = Object.values(files).reduce((n, b) => n + b.length, 0)
  for (let i = 1; i < events.length; i++) assert.ok(events[i].transferredBytes >= events[i - 1].transferredBytes, `event ${i} went back`)
  assert.deepEqual(
    [events.at(-1).completedFiles, events.at(-1).totalFiles, events.at(-1).transferredBytes, events.at(-1).totalBytes],
    [1201, 1201, total, total],
  )

  const back = path.join(dir, 'back')
  const down = await client.download({ bucket, keyPrefix: 'job-42/', localDir: back })
  assert.equal(down.files, 1201)
  assert.deepEqual(treeHashes(back), treeHashes(src))
})

test('the one-shot upload and download take client options and the request in one object', async () => {
  const opts = await clientOptions()
  const bucket = await makeBucket()
  const dir = tempDir()
  writeTree(dir, { 'in/a.txt': 'alpha', 'in/b/c.txt': 'gamma' })
  const up = await upload({ ...opts, bucket, localDir: path.join(dir, 'in'), keyPrefix: 'one/' })
  assert.equal(up.files, 2)
  const again = await upload({ ...opts, bucket, files: [{ path: path.join(dir, 'in/a.txt'), key: 'one/a2.txt' }] })
  assert.equal(again.files, 1)
  const down = await download({ ...opts, bucket, keyPrefix: 'one/', localDir: path.join(dir, 'out') })
  assert.equal(down.files, 3)
  assert.equal(readFileSync(path.join(dir, 'out/b/c.txt'), 'utf8'), 'gamma')
  assert.equal(readFileSync(path.join(dir, 'out/a2.txt'), 'utf8'), 'alpha')
})

test('uploads with request checksums (whenSupported) are accepted and stored intact', async () => {
  const client = new TransferClient(await clientOptions({ checksum: 'whenSupported', partSize: 5 * MiB, multipartThreshold: 5 * MiB }))
  assert.equal(client.settings.checksum, 'whenSupported')
  const bucket = await makeBucket()
  const dir = tempDir()
  const small = bytes(1000, 5)
  const big = bytes(11 * MiB, 6)
  writeTree(dir, { 's.bin': small, 'b.bin': big })
  await client.upload({ bucket, localDir: dir, keyPrefix: '' })
  assert.ok((await getObject(bucket, 's.bin')).equals(small))
  assert.ok((await getObject(bucket, 'b.bin')).equals(big))
})

test('an existing destination file is replaced whole', async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir()
  writeTree(dir, { 'src/f.txt': 'new content' })
  await client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: '' })
  writeTree(dir, { 'dst/f.txt': 'old content that is longer than the new one' })
  await client.download({ bucket, keyPrefix: '', localDir: path.join(dir, 'dst') })
  assert.equal(readFileSync(path.join(dir, 'dst/f.txt'), 'utf8'), 'new content')
  assert.deepEqual(allFiles(path.join(dir, 'dst')), ['f.txt'])
})

test('a download whose connections break off mid-body is fetched again and completes byte-exact', async () => {
  const { countingProxy } = await import('./helpers.mjs')
  const opts = await clientOptions({ partSize: 5 * MiB, multipartThreshold: 5 * MiB })
  const bucket = await makeBucket()
  const dir = tempDir()
  const big = bytes(17 * MiB, 21)
  const small = bytes(700 * 1024, 22)
  writeTree(path.join(dir, 'src'), { 'big.bin': big, 'small.bin': small })
  await new TransferClient(opts).upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: '' })

  // The first four connections are reset after 300 KiB of response: the listing is unaffected (small), the
  // ranged parts and the small object's body break off and must be fetched again.
  const proxy = await countingProxy({ cutAfterBytes: 300 * 1024, cutConnections: 4 })
  try {
    const client = new TransferClient({ ...opts, endpoint: proxy.endpoint })
    const events = []
    const r = await client.download({ bucket, objects: [{ key: 'big.bin', path: path.join(dir, 'out/big.bin') }, { key: 'small.bin', path: path.join(dir, 'out/small.bin') }], progressIntervalMs: 5, onProgress: (p) => events.push(p) })
    assert.equal(proxy.stats.cut, 4, 'the faults happened')
    assert.equal(r.files, 2)
    assert.ok(readFileSync(path.join(dir, 'out/big.bin')).equals(big))
    assert.ok(readFileSync(path.join(dir, 'out/small.bin')).equals(small))
    assert.equal(r.bytes, big.length + small.length, 're-fetched bytes are not counted twice')
    assert.ok(events.every((e) => e.transferredBytes <= e.totalBytes))
  } finally {
    await proxy.close()
  }

  // With retries off, the same fault is an ERR_NETWORK naming the key, and nothing is left at the destination.
  const strict = await countingProxy({ cutAfterBytes: 300 * 1024, cutConnections: 1 })
  try {
    const client = new TransferClient({ ...opts, endpoint: strict.endpoint, maxAttempts: 1 })
    await assert.rejects(client.download({ bucket, objects: [{ key: 'small.bin', path: path.join(dir, 'strict/small.bin') }] }), (e) => e.code === 'ERR_NETWORK' && e.key === 'small.bin')
    assert.deepEqual(allFiles(path.join(dir, 'strict')), [])
  } finally {
    await strict.close()
  }
})

test('keyPrefix names a folder: uploads go under prefix/, downloads take the object of that name and the folder, never f10 for f1', async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir()
  writeTree(path.join(dir, 'src'), { 'hello.txt': 'hello', 'sub/x.txt': 'x' })
  const up = await client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: 'noslash' })
  assert.equal(up.files, 2)
  assert.deepEqual((await listKeys(bucket)).sort(), ['noslash/hello.txt', 'noslash/sub/x.txt'])
  const big = bytes(12 * MiB, 3) // ranged, to show the single-object path is the ordinary one
  writeTree(path.join(dir, 'objs'), { 'scene.blend': big, f1: 'f1', 'f1.dat': 'no', 'f10.dat': 'no' })
  for (const name of ['scene.blend', 'f1', 'f1.dat', 'f10.dat']) {
    await client.upload({ bucket, files: [{ path: path.join(dir, 'objs', name), key: `job/${name}` }] })
  }
  await client.upload({ bucket, files: [{ path: path.join(dir, 'src', 'hello.txt'), key: 'job/f1/inner.txt' }] })

  const one = await client.download({ bucket, keyPrefix: 'job/scene.blend', localDir: path.join(dir, 'o1') })
  assert.equal(one.files, 1)
  assert.deepEqual(readFileSync(path.join(dir, 'o1', 'scene.blend')), big)
  const f1 = await client.download({ bucket, keyPrefix: 'job/f1', localDir: path.join(dir, 'o2') })
  assert.equal(f1.files, 2)
  assert.deepEqual(allFiles(path.join(dir, 'o2')), ['f1', 'inner.txt'])
  const slash = await client.download({ bucket, keyPrefix: 'noslash', localDir: path.join(dir, 'o3') })
  assert.equal(slash.files, 2)
  assert.deepEqual(treeHashes(path.join(dir, 'o3')), treeHashes(path.join(dir, 'src')))
})

test('a name as long as the file system allows (255 bytes) downloads: its temporary file fits too', async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir()
  const names = ['n'.repeat(255), `${'é'.repeat(120)}.blend`] // 255 and 246 bytes
  writeTree(path.join(dir, 'src'), Object.fromEntries(names.map((n, i) => [n, bytes(1000 + i, i)])))
  await client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: 'long/' })
  const down = await client.download({ bucket, keyPrefix: 'long/', localDir: path.join(dir, 'out') })
  assert.equal(down.files, 2)
  assert.deepEqual(treeHashes(path.join(dir, 'out')), treeHashes(path.join(dir, 'src')))
})

test('keys XML cannot carry (U+0001-U+001F, U+FFFE), and spaces, + and % round-trip through a prefix download', async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir()
  // Control characters cannot be in Windows file names; the listing's encoding is the same there.
  const names = ['sp ace+plus%25.txt', 'é\uFFFE.txt', ...(process.platform === 'win32' ? [] : ['a\u0001b.txt', 'tab\there\u001f.txt'])]
  writeTree(path.join(dir, 'src'), Object.fromEntries(names.map((n, i) => [n, bytes(100 + i, i)])))
  const up = await client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: 'odd' })
  assert.equal(up.files, names.length)
  const down = await client.download({ bucket, keyPrefix: 'odd', localDir: path.join(dir, 'out') })
  assert.equal(down.files, names.length)
  assert.deepEqual(treeHashes(path.join(dir, 'out')), treeHashes(path.join(dir, 'src')))
})

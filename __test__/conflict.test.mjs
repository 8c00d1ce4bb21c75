// Download conflict policies: overwrite (default), skip, createCopy and error, each leaving destinations whole.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { TransferClient } from '../index.js'
import { allFiles, clientOptions, makeBucket, tempDir, writeTree } from './helpers.mjs'

async function setUp() {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir()
  writeTree(path.join(dir, 'src'), { 'scene.blend': 'new scene', 'tex/a.png': 'new a', 'README': 'new readme' })
  await client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: 'j/' })
  const out = path.join(dir, 'out')
  writeTree(out, { 'scene.blend': 'old scene', 'README': 'old readme' })
  return { client, bucket, out }
}
const read = (out, rel) => readFileSync(path.join(out, rel), 'utf8')

test('overwrite (the default) replaces existing files', async () => {
  const { client, bucket, out } = await setUp()
  const r = await client.download({ bucket, keyPrefix: 'j/', localDir: out })
  assert.equal(r.files, 3)
  assert.equal(read(out, 'scene.blend'), 'new scene')
  assert.deepEqual(allFiles(out), ['README', 'scene.blend', 'tex/a.png'])
})

test('skip leaves existing files alone and counts them as skipped; progress still ends at its totals', async () => {
  const { client, bucket, out } = await setUp()
  const events = []
  const r = await client.download({ bucket, keyPrefix: 'j/', localDir: out, conflict: 'skip', onProgress: (p) => events.push(p) })
  assert.equal(r.files, 1)
  assert.equal(r.skippedFiles, 2)
  assert.equal(r.skippedBytes, 'new scene'.length + 'new readme'.length)
  assert.equal(read(out, 'scene.blend'), 'old scene')
  assert.equal(read(out, 'README'), 'old readme')
  assert.equal(read(out, 'tex/a.png'), 'new a')
  const last = events.at(-1)
  assert.equal(last.completedFiles, last.totalFiles)
  assert.equal(last.skippedFiles, 2)
})

test('createCopy keeps existing files and writes name (1).ext, then name (2).ext', async () => {
  const { client, bucket, out } = await setUp()
  await client.download({ bucket, keyPrefix: 'j/', localDir: out, conflict: 'createCopy' })
  assert.equal(read(out, 'scene.blend'), 'old scene')
  assert.equal(read(out, 'scene (1).blend'), 'new scene')
  assert.equal(read(out, 'README (1)'), 'new readme')
  assert.equal(read(out, 'tex/a.png'), 'new a', 'no conflict, no copy')
  await client.download({ bucket, keyPrefix: 'j/', localDir: out, conflict: 'createCopy' })
  assert.equal(read(out, 'scene (2).blend'), 'new scene')
  assert.equal(read(out, 'tex/a (1).png'), 'new a')
  assert.deepEqual(allFiles(out).filter((f) => f.includes('s3ferry-part')), [])
})

test('error rejects with ERR_DESTINATION_EXISTS naming the path, and leaves the existing file unchanged', async () => {
  const { client, bucket, out } = await setUp()
  const dest = path.join(out, 'scene.blend')
  await assert.rejects(
    client.download({ bucket, objects: [{ key: 'j/scene.blend', path: dest }], conflict: 'error' }),
    (e) => e.code === 'ERR_DESTINATION_EXISTS' && e.path === dest,
  )
  assert.equal(read(out, 'scene.blend'), 'old scene')
  assert.deepEqual(allFiles(out).filter((f) => f.includes('s3ferry-part')), [])
  // An unknown policy is refused, and nothing on disk changes.
  const before = allFiles(out).sort()
  await assert.rejects(client.download({ bucket, keyPrefix: 'j/', localDir: out, conflict: 'sometimes' }), (e) => e.code === 'ERR_INVALID_ARG_TYPE')
  assert.deepEqual(allFiles(out).sort(), before)
  assert.equal(read(out, 'scene.blend'), 'old scene')
})

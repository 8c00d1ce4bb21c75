// Which files a tree transfer moves, against the real local server: include/exclude filters, skip-unchanged
// (size and time, or size only), dry runs (what would go, and which requests that costs), followed symlinks.
// Requests are counted by S3 operation through the fault proxy with no faults.
import assert from 'node:assert/strict'
import { existsSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { TransferClient } from '../index.js'
import { startFaultProxy } from '../scripts/fault-proxy.mjs'
import { allFiles, bytes, clientOptions, listKeys, makeBucket, server, tempDir, treeHashes, writeTree } from './helpers.mjs'

/** A client whose requests are counted by operation (`proxy.stats.operations`). */
async function countedClient() {
  const proxy = await startFaultProxy((await server()).endpoint, { faults: {} })
  const client = new TransferClient(await clientOptions({ endpoint: proxy.endpoint }))
  return { client, proxy }
}

const JOB = {
  'scene.blend': bytes(5000, 1),
  'tex/wood.png': bytes(700, 2),
  'tex/deep/stone.png': bytes(800, 3),
  'tex/notes.txt': 'notes',
  'cache.tmp': 'scratch',
  'renders/frame.tmp': 'scratch',
  '.git/HEAD': 'ref: refs/heads/main',
  '.git/objects/ab/cdef': 'blob',
}

test('filter: exclude globs leave out .git and temp files at any depth; the rest round-trips byte-exact', async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir()
  writeTree(path.join(dir, 'src'), JOB)
  const up = await client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: 'job', filter: { exclude: ['.git/*', '*.tmp'] } })
  assert.equal(up.files, 4)
  assert.equal(up.skippedFiles, 0, 'filtered files are not counted as skipped')
  assert.deepEqual((await listKeys(bucket)).sort(), ['job/scene.blend', 'job/tex/deep/stone.png', 'job/tex/notes.txt', 'job/tex/wood.png'])
  await client.download({ bucket, keyPrefix: 'job', localDir: path.join(dir, 'out') })
  const expected = treeHashes(path.join(dir, 'src'))
  for (const k of ['cache.tmp', 'renders/frame.tmp', '.git/HEAD', '.git/objects/ab/cdef']) delete expected[k]
  assert.deepEqual(treeHashes(path.join(dir, 'out')), expected)
})

test('filter: includes alone take only what they match; ordered rules apply as the AWS CLI applies them', async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir()
  writeTree(path.join(dir, 'src'), JOB)
  await client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: 'job/' })
  // Library sets: include given → only what matches it, minus the excludes.
  const png = await client.download({ bucket, keyPrefix: 'job/', localDir: path.join(dir, 'png'), filter: { include: ['*.png'], exclude: ['tex/deep/*'] } })
  assert.equal(png.files, 1)
  assert.deepEqual(allFiles(path.join(dir, 'png')), ['tex/wood.png'])
  // Ordered: exclude everything, take back tex/, then leave out .txt again (the last match decides).
  const rules = [{ exclude: '*' }, { include: 'tex/*' }, { exclude: '*.txt' }]
  const ordered = await client.download({ bucket, keyPrefix: 'job', localDir: path.join(dir, 'ordered'), filter: rules })
  assert.equal(ordered.files, 2)
  assert.deepEqual(allFiles(path.join(dir, 'ordered')), ['tex/deep/stone.png', 'tex/wood.png'])
  assert.deepEqual(treeHashes(path.join(dir, 'ordered'))['tex/deep/stone.png'], treeHashes(path.join(dir, 'src'))['tex/deep/stone.png'])
  // A bad pattern or rule is a coded error before any request.
  await assert.rejects(client.upload({ bucket, localDir: dir, filter: { exclude: ['[a-'] } }), (e) => e.code === 'ERR_INVALID_ARG_VALUE' && /'\[a-' is not a valid glob/.test(e.message))
  await assert.rejects(client.upload({ bucket, localDir: dir, filter: [{ include: 'a', exclude: 'b' }] }), /filter\[0\] must have exactly one of include and exclude/)
  await assert.rejects(client.upload({ bucket, localDir: dir, filter: { exlude: ['.git/*'] } }), (e) => e.code === 'ERR_INVALID_ARG_VALUE' && /filter has no option 'exlude'/.test(e.message))
  await assert.rejects(client.download({ bucket, objects: [{ key: 'k', path: path.join(dir, 'k') }], filter: { exclude: ['x'] } }), /filter applies to localDir/)
  // Shapes that would otherwise read as "no filter" (and upload what they meant to leave out).
  const type = (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE'
  await assert.rejects(client.upload({ bucket, localDir: dir, filter: ['*.tmp'] }), (e) => type(e) && e.message === 'filter[0] must be { include: glob } or { exclude: glob }, got "*.tmp"')
  await assert.rejects(client.upload({ bucket, localDir: dir, filter: [{ exclude: 5 }] }), (e) => type(e) && e.message === 'filter[0].exclude must be a glob string, got number')
  await assert.rejects(client.upload({ bucket, localDir: dir, filter: { exclude: '*.tmp' } }), (e) => type(e) && e.message === 'filter.exclude must be an array of glob strings')
  await assert.rejects(client.upload({ bucket, localDir: dir, filter: '*.tmp' }), type)
  await assert.rejects(client.upload({ bucket, localDir: dir, filter: { include: [] } }), (e) => e.code === 'ERR_INVALID_ARG_VALUE' && /filter\.include is empty/.test(e.message))
})

test('dryRun: an upload sends no request and resolves with the plan; with skipUnchanged, one listing', async () => {
  const bucket = await makeBucket()
  const dir = tempDir()
  writeTree(path.join(dir, 'src'), { 'a.txt': 'aaa', 'sub/b.bin': bytes(1000, 4), 'c.tmp': 'x' })
  const { client, proxy } = await countedClient()
  try {
    const plan = await client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: 'job', dryRun: true, filter: { exclude: ['*.tmp'] } })
    assert.equal(proxy.stats.requests, 0, 'a dry run sends nothing')
    assert.deepEqual(await listKeys(bucket), [])
    assert.equal(plan.files, 2)
    assert.equal(plan.bytes, 1003)
    assert.deepEqual(plan.plan, [
      { path: path.join(dir, 'src', 'a.txt'), key: 'job/a.txt', bytes: 3 },
      { path: path.join(dir, 'src', 'sub', 'b.bin'), key: 'job/sub/b.bin', bytes: 1000 },
    ])
    await client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: 'job', filter: { exclude: ['*.tmp'] } })
    writeFileSync(path.join(dir, 'src', 'a.txt'), 'changed') // another size
    const before = proxy.stats.requests
    const again = await client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: 'job', dryRun: true, skipUnchanged: true, filter: { exclude: ['*.tmp'] } })
    assert.equal(proxy.stats.requests - before, 1, 'one ListObjectsV2')
    assert.deepEqual(
      again.plan.map((f) => [f.key, f.skip]),
      [['job/a.txt', undefined], ['job/sub/b.bin', 'unchanged']],
    )
    assert.deepEqual([again.files, again.bytes, again.skippedFiles, again.skippedBytes], [1, 7, 1, 1000])
  } finally {
    await proxy.close()
  }
})

test('dryRun: a download lists once, writes nothing, and marks what skipUnchanged or conflict skip would skip', async () => {
  const bucket = await makeBucket()
  const dir = tempDir()
  writeTree(path.join(dir, 'src'), { 'a.txt': 'aaa', 'b.txt': 'bbbb', 'c.txt': 'cc' })
  const { client, proxy } = await countedClient()
  try {
    await client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: 'job' })
    const out = path.join(dir, 'out')
    let before = proxy.stats.requests
    const plan = await client.download({ bucket, keyPrefix: 'job', localDir: out, dryRun: true })
    assert.equal(proxy.stats.requests - before, 1, 'the listing only')
    assert.equal(existsSync(out), false, 'nothing written, not even the directory')
    assert.deepEqual(plan.plan.map((f) => [f.key, f.path, f.bytes]), [
      ['job/a.txt', path.join(out, 'a.txt'), 3],
      ['job/b.txt', path.join(out, 'b.txt'), 4],
      ['job/c.txt', path.join(out, 'c.txt'), 2],
    ])
    assert.deepEqual([plan.files, plan.bytes], [3, 9])
    writeTree(out, { 'a.txt': 'aaa', 'b.txt': 'other size' })
    before = proxy.stats.requests
    const skip = await client.download({ bucket, keyPrefix: 'job', localDir: out, dryRun: true, skipUnchanged: true, conflict: 'skip' })
    assert.equal(proxy.stats.requests - before, 1)
    assert.deepEqual(skip.plan.map((f) => [f.key, f.skip]), [['job/a.txt', 'unchanged'], ['job/b.txt', 'exists'], ['job/c.txt', undefined]])
    assert.deepEqual([skip.files, skip.skippedFiles], [1, 2])
    await assert.rejects(client.download({ bucket, keyPrefix: 'job', localDir: out, dryRun: true, conflict: 'error' }), (e) => e.code === 'ERR_DESTINATION_EXISTS')
  } finally {
    await proxy.close()
  }
})

test('skipUnchanged on upload: only files of another size or newer than their object go up', async () => {
  const bucket = await makeBucket()
  const dir = tempDir()
  const src = path.join(dir, 'src')
  writeTree(src, { 'same.txt': 'same', 'resized.txt': 'short', 'touched.bin': bytes(2000, 5), 'new.txt': 'new' })
  const { client, proxy } = await countedClient()
  try {
    await client.upload({ bucket, files: ['same.txt', 'resized.txt', 'touched.bin'].map((f) => ({ path: path.join(src, f), key: `job/${f}` })) })
    writeFileSync(path.join(src, 'resized.txt'), 'a longer text')
    const future = new Date(Date.now() + 3600_000)
    utimesSync(path.join(src, 'touched.bin'), future, future) // same size, edited after it was stored
    const ops = { ...proxy.stats.operations }
    const sync = await client.upload({ bucket, localDir: src, keyPrefix: 'job', skipUnchanged: true })
    assert.deepEqual([sync.files, sync.skippedFiles, sync.skippedBytes], [3, 1, 4])
    assert.equal(proxy.stats.operations.ListObjects - (ops.ListObjects ?? 0), 1)
    assert.equal(proxy.stats.operations.PutObject - ops.PutObject, 3, 'resized, touched and new')
    // Size only: the touched file (same size) is skipped too.
    writeFileSync(path.join(src, 'resized.txt'), 'another longer text')
    utimesSync(path.join(src, 'touched.bin'), new Date(Date.now() + 7200_000), new Date(Date.now() + 7200_000))
    const sized = await client.upload({ bucket, localDir: src, keyPrefix: 'job', skipUnchanged: 'size' })
    assert.deepEqual([sized.files, sized.skippedFiles], [1, 3])
    // An explicit list asks HeadObject per file.
    const heads = proxy.stats.operations.HeadObject ?? 0
    const listed = await client.upload({ bucket, files: [{ path: path.join(src, 'same.txt'), key: 'job/same.txt' }, { path: path.join(src, 'new.txt'), key: 'job/brand-new.txt' }], skipUnchanged: true })
    assert.deepEqual([listed.files, listed.skippedFiles], [1, 1])
    assert.equal(proxy.stats.operations.HeadObject - heads, 2)
    const down = path.join(dir, 'out')
    await client.download({ bucket, keyPrefix: 'job', localDir: down })
    assert.deepEqual(treeHashes(path.join(down)), { ...treeHashes(src), 'brand-new.txt': treeHashes(src)['new.txt'] })
  } finally {
    await proxy.close()
  }
})

test('skipUnchanged on download: a second run fetches nothing; changed or older local files are fetched again', async () => {
  const bucket = await makeBucket()
  const dir = tempDir()
  const src = path.join(dir, 'src')
  writeTree(src, { 'a.txt': 'aaaa', 'b.txt': 'bbbb', 'c.bin': bytes(3000, 6) })
  const { client, proxy } = await countedClient()
  try {
    await client.upload({ bucket, localDir: src, keyPrefix: 'job' })
    const out = path.join(dir, 'out')
    await client.download({ bucket, keyPrefix: 'job', localDir: out })
    let gets = proxy.stats.operations.GetObject
    const again = await client.download({ bucket, keyPrefix: 'job', localDir: out, skipUnchanged: true })
    assert.deepEqual([again.files, again.skippedFiles, again.skippedBytes], [0, 3, 3008])
    assert.equal(proxy.stats.operations.GetObject - gets, 0)
    writeFileSync(path.join(out, 'a.txt'), 'edited locally') // another size
    utimesSync(path.join(out, 'b.txt'), new Date('2000-01-01'), new Date('2000-01-01')) // same size, older than the object
    gets = proxy.stats.operations.GetObject
    const changed = await client.download({ bucket, keyPrefix: 'job', localDir: out, skipUnchanged: true })
    assert.deepEqual([changed.files, changed.skippedFiles], [2, 1])
    assert.equal(proxy.stats.operations.GetObject - gets, 2)
    assert.deepEqual(treeHashes(out), treeHashes(src))
    utimesSync(path.join(out, 'b.txt'), new Date('2000-01-01'), new Date('2000-01-01'))
    const sized = await client.download({ bucket, keyPrefix: 'job', localDir: out, skipUnchanged: 'size' })
    assert.deepEqual([sized.files, sized.skippedFiles], [0, 3], 'size only: the old mtime does not matter')
    // An explicit list: a HeadObject for each object whose destination exists, none for the missing one.
    const heads = proxy.stats.operations.HeadObject ?? 0
    const objects = [{ key: 'job/a.txt', path: path.join(out, 'a.txt') }, { key: 'job/c.bin', path: path.join(dir, 'fresh', 'c.bin') }]
    const listed = await client.download({ bucket, objects, skipUnchanged: true })
    assert.deepEqual([listed.files, listed.skippedFiles], [1, 1])
    assert.equal(proxy.stats.operations.HeadObject - heads, 1)
    assert.deepEqual(treeHashes(path.join(dir, 'fresh')), { 'c.bin': treeHashes(src)['c.bin'] })
  } finally {
    await proxy.close()
  }
})

test('followSymlinks uploads what links point to under their own paths; a loop and a dangling link are skipped', { skip: process.platform === 'win32' && 'creating symlinks on Windows needs a privilege' }, async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir()
  const job = path.join(dir, 'job')
  writeTree(job, { 'scene.blend': bytes(900, 7) })
  writeTree(path.join(dir, 'library'), { 'wood.png': bytes(600, 8), 'sub/stone.png': bytes(400, 9) })
  symlinkSync(path.join(dir, 'library'), path.join(job, 'textures'))
  symlinkSync(job, path.join(dir, 'library', 'sub', 'back-to-job')) // job/textures/sub/back-to-job → job: a loop
  symlinkSync(path.join(dir, 'missing'), path.join(job, 'dangling'))
  const plain = await client.upload({ bucket, localDir: job, keyPrefix: 'plain', dryRun: true })
  assert.deepEqual([plain.files, plain.skippedFiles], [1, 2], 'links are not followed by default')
  const up = await client.upload({ bucket, localDir: job, keyPrefix: 'followed', followSymlinks: true })
  assert.deepEqual([up.files, up.skippedFiles], [3, 2])
  assert.deepEqual((await listKeys(bucket)).sort(), ['followed/scene.blend', 'followed/textures/sub/stone.png', 'followed/textures/wood.png'])
  await client.download({ bucket, keyPrefix: 'followed', localDir: path.join(dir, 'out') })
  const library = treeHashes(path.join(dir, 'library'))
  assert.deepEqual(treeHashes(path.join(dir, 'out')), {
    'scene.blend': treeHashes(job)['scene.blend'],
    'textures/wood.png': library['wood.png'],
    'textures/sub/stone.png': library['sub/stone.png'],
  })
})

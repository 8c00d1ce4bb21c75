// submitJobAttachments held against Deadline Cloud's own client (PyPI `deadline`, installed into .cache/ by
// scripts/deadline.mjs): the same asset roots from the same paths and storage profile, byte-identical manifests
// named and hashed as Deadline names and hashes them, and Deadline's worker code (AssetSync.sync_inputs)
// downloading what s3-ferry submitted. Deadline's side runs in __test__/deadline_interop.py.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { TransferClient } from '../index.js'
import { HeadObjectCommand } from '@aws-sdk/client-s3'
import { allFiles, bytes, clientOptions, getObject, listKeys, makeBucket, s3, server, tempDir, writeTree } from './helpers.mjs'
import { startFaultProxy } from '../scripts/fault-proxy.mjs'
import { ensureDeadline } from '../scripts/deadline.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const FARM = 'farm-0123456789abcdef0123456789abcdef'
const QUEUE = 'queue-0123456789abcdef0123456789abcdef'
const ROOT_PREFIX = 'DeadlineCloud'

let python
before(() => {
  python = ensureDeadline()
})

/** Runs one command of deadline_interop.py against the local server. */
async function deadline(request) {
  const s = await server()
  const r = spawnSync(python, [path.join(HERE, 'deadline_interop.py')], {
    input: JSON.stringify(request),
    encoding: 'utf8',
    env: {
      ...process.env,
      AWS_ENDPOINT_URL_S3: s.endpoint,
      AWS_ACCESS_KEY_ID: s.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s.credentials.secretAccessKey,
      AWS_DEFAULT_REGION: s.region,
      AWS_CONFIG_FILE: path.join(HERE, 'no-such-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: path.join(HERE, 'no-such-aws-credentials'),
    },
  })
  assert.equal(r.status, 0, `deadline_interop.py ${request.cmd} failed:\n${r.stderr}`)
  return JSON.parse(r.stdout)
}

/**
 * A job of three asset roots: a LOCAL location `Projects` (a scene, a texture directory given as an input directory
 * with a `.tmp` file the filter leaves out, an output directory), a LOCAL location `Assets` (one file whose content
 * is also a texture's), files in no location (their root is the common path, with an output directory and the
 * references), and a SHARED location whose file is left out.
 */
function job() {
  const d = tempDir('job')
  writeTree(d, {
    'proj/scenes/shot 010.blend': bytes(300_000, 1),
    'proj/tex/a.png': bytes(5000, 2),
    'proj/tex/b.png': bytes(7000, 3),
    'proj/tex/sub/c.png': bytes(100, 4),
    'proj/tex/scratch.tmp': 'left out by the filter',
    'assets/lib/same-as-a.png': bytes(5000, 2),
    'shared/big.exr': bytes(1000, 5),
    'misc/notes.txt': 'notes',
    'misc/refs/x.json': '{"x":1}',
  })
  mkdirSync(path.join(d, 'empty'))
  const p = (rel) => path.join(d, rel)
  const locations = [
    { name: 'Projects', path: p('proj'), type: 'LOCAL' },
    { name: 'Assets', path: p('assets'), type: 'LOCAL' },
    { name: 'Shared', path: p('shared'), type: 'SHARED' },
  ]
  const request = {
    rootPrefix: ROOT_PREFIX,
    farmId: FARM,
    queueId: QUEUE,
    inputFiles: [p('proj/scenes/shot 010.blend'), p('assets/lib/same-as-a.png'), p('shared/big.exr'), p('misc/notes.txt'), p('misc/refs/x.json')],
    inputDirectories: [p('proj/tex'), p('empty'), p('no-such-dir')],
    outputDirectories: [p('proj/renders'), p('out/renders')],
    referencedPaths: [p('refonly/thing.abc')],
    storageProfile: { storageProfileId: 'sp-1', displayName: 'Workstation', osFamily: 'LINUX', fileSystemLocations: locations },
    filter: { exclude: ['*.tmp'] },
  }
  // What Deadline's submitter gives its asset manager for the same job: input directories walked (here with the
  // filter applied by hand), an empty or missing one made a reference.
  const deadlineRequest = {
    inputs: [...request.inputFiles, p('proj/tex/a.png'), p('proj/tex/b.png'), p('proj/tex/sub/c.png')],
    outputs: request.outputDirectories,
    references: [...request.referencedPaths, p('empty'), p('no-such-dir')],
    locations,
  }
  return { d, p, request, deadlineRequest }
}

test('a job submits as Deadline submits it: the same roots, byte-identical manifests, and Deadline\'s worker syncs it', async () => {
  const bucket = await makeBucket('job')
  const { d, p, request, deadlineRequest } = job()
  const client = new TransferClient(await clientOptions({ cacheDir: tempDir('cache') }))
  const events = []
  const out = await client.submitJobAttachments({ ...request, bucket, progressIntervalMs: 1, onProgress: (e) => events.push(e) })

  const theirs = await deadline({ cmd: 'prepare', bucket, rootPrefix: ROOT_PREFIX, farmId: FARM, queueId: QUEUE, hashCacheDir: tempDir('dl-cache'), ...deadlineRequest })
  assert.deepEqual(
    theirs.map((r) => [r.rootPath, r.fileSystemLocationName]),
    [[d, null], [p('assets/lib'), 'Assets'], [p('proj'), 'Projects']],
    "Deadline's own grouping of this job (the test's premise)",
  )
  assert.equal(out.attachments.fileSystem, 'COPIED')
  assert.equal(out.attachments.manifests.length, 3)
  for (const [i, mine] of out.attachments.manifests.entries()) {
    const dl = theirs[i]
    const expected = {
      rootPath: dl.rootPath,
      ...(dl.fileSystemLocationName ? { fileSystemLocationName: dl.fileSystemLocationName } : {}),
      rootPathFormat: 'posix',
      inputManifestPath: mine.inputManifestPath,
      inputManifestHash: dl.manifestHash,
      ...(dl.outputRelativeDirectories.length ? { outputRelativeDirectories: dl.outputRelativeDirectories } : {}),
    }
    // Field for field what Deadline's ManifestProperties.to_dict() gives CreateJob: absent fields absent.
    assert.deepEqual({ ...mine }, expected, `root ${dl.rootPath}`)
    const name = mine.inputManifestPath.split('/').pop()
    assert.equal(name, dl.manifestName, 'the manifest is named as Deadline names it')
    assert.match(mine.inputManifestPath, new RegExp(`^${FARM}/${QUEUE}/Inputs/[0-9a-f]{32}/[0-9a-f]{32}_input$`))
    const written = out.inputManifests.find((m) => m.rootPath === dl.rootPath)
    assert.equal(written.manifest, dl.manifest, 'byte-identical manifest')
    assert.equal(written.key, `${ROOT_PREFIX}/Manifests/${mine.inputManifestPath}`)
    assert.equal((await getObject(bucket, written.key)).toString('utf8'), dl.manifest, 'stored as written')
  }
  assert.deepEqual(out.attachments.manifests.map((m) => m.outputRelativeDirectories), [['out/renders'], undefined, ['renders']])
  const guids = out.attachments.manifests.map((m) => m.inputManifestPath.split('/')[3])
  assert.equal(new Set(guids).size, 3, 'a guid per root, as Deadline')

  // Seven files, six contents (same-as-a.png is a.png's): each stored once; the SHARED file and the filtered one
  // are not part of the job.
  assert.equal(out.summary.files, 6)
  assert.equal(out.summary.skippedFiles, 1)
  assert.equal(out.summary.bytes, 300_000 + 5000 + 7000 + 100 + 5 + 7)
  assert.equal(out.checkedKeys, 6)
  // Progress: the phases in their order (a short one may fall between two events), ending with every file hashed
  // and accounted for.
  const order = ['hashing', 'checking', 'uploading']
  const seen = events.map((e) => order.indexOf(e.phase))
  assert.deepEqual(seen, [...seen].sort(), 'phases in order')
  assert.equal(events.at(-1).phase, 'uploading')
  assert.deepEqual(
    [events.at(-1).hashedFiles, events.at(-1).totalFiles, events.at(-1).completedFiles, events.at(-1).skippedFiles],
    [7, 6, 6, 1],
    'seven files hashed; six to send (totalFiles leaves out the skipped one), all sent',
  )
  assert.equal(events.at(-1).hashedBytes, 300_000 + 2 * 5000 + 7000 + 100 + 5 + 7)
  assert.equal(events.at(-1).transferredBytes, out.summary.bytes)
  const data = (await listKeys(bucket, `${ROOT_PREFIX}/Data/`)).length
  assert.equal(data, 6)

  // Deadline's worker downloads the job from the attachments object alone.
  const sessionDir = tempDir('session')
  const synced = await deadline({ cmd: 'sync', bucket, rootPrefix: ROOT_PREFIX, farmId: FARM, queueId: QUEUE, attachments: out.attachments, sessionDir })
  assert.equal(synced.files, 7)
  const local = Object.fromEntries(synced.rules.map((r) => [r.source_path, r.destination_path]))
  const same = (root, rel) => assert.deepEqual(readFileSync(path.join(local[root], rel)), readFileSync(path.join(root, rel)), rel)
  for (const rel of ['scenes/shot 010.blend', 'tex/a.png', 'tex/b.png', 'tex/sub/c.png']) same(p('proj'), rel)
  same(p('assets/lib'), 'same-as-a.png')
  for (const rel of ['misc/notes.txt', 'misc/refs/x.json']) same(d, rel)
})

test('submitting the same job again hashes nothing and uploads nothing, under new manifest keys', async () => {
  const bucket = await makeBucket('job')
  const { request } = job()
  const client = new TransferClient(await clientOptions({ cacheDir: tempDir('cache') }))
  const first = await client.submitJobAttachments({ ...request, bucket })
  const again = await client.submitJobAttachments({ ...request, bucket })
  assert.equal(again.summary.files, 0)
  assert.equal(again.summary.skippedFiles, 7)
  assert.equal(again.cachedHashes, 7)
  assert.deepEqual(
    again.attachments.manifests.map((m) => m.inputManifestHash),
    first.attachments.manifests.map((m) => m.inputManifestHash),
  )
  for (const [i, m] of again.attachments.manifests.entries()) {
    assert.notEqual(m.inputManifestPath, first.attachments.manifests[i].inputManifestPath, 'a new guid each submission')
  }
})

test('missing inputs and directories given as files are refused together, as Deadline words it, before any request', async () => {
  const bucket = await makeBucket('job')
  const { p, request, deadlineRequest } = job()
  const proxy = await startFaultProxy((await server()).endpoint)
  const client = new TransferClient(await clientOptions({ endpoint: proxy.endpoint, cacheDir: tempDir('cache') }))
  const inputFiles = [...request.inputFiles, p('gone.png'), p('proj/tex'), p('also gone.exr')]
  const err = await client
    .submitJobAttachments({ ...request, bucket, inputFiles, inputDirectories: [p('proj/tex')], requirePathsExist: true })
    .then(() => null, (e) => e)
  assert.ok(err, 'rejected')
  assert.equal(err.code, 'ERR_MISCONFIGURED_INPUTS')
  assert.deepEqual(err.missing, [p('also gone.exr'), p('gone.png')])
  assert.deepEqual(err.missingDirectories, [])
  assert.deepEqual(err.directories, [p('proj/tex')])
  const theirs = await deadline({
    cmd: 'prepare', bucket, rootPrefix: ROOT_PREFIX, farmId: FARM, queueId: QUEUE, hashCacheDir: tempDir('dl-cache'),
    ...deadlineRequest, inputs: [...deadlineRequest.inputs, p('gone.png'), p('proj/tex'), p('also gone.exr')], requirePathsExist: true,
  })
  assert.equal(err.message, theirs.error, "Deadline's MisconfiguredInputsError message")

  // A missing input directory is listed too when paths must exist.
  const err2 = await client
    .submitJobAttachments({ ...request, bucket, inputDirectories: [p('proj/tex'), p('no-such-dir')], requirePathsExist: true })
    .then(() => null, (e) => e)
  assert.equal(err2.code, 'ERR_MISCONFIGURED_INPUTS')
  assert.deepEqual(err2.missingDirectories, [p('no-such-dir')])
  assert.match(err2.message, /Non-existent directories:\n\t.*no-such-dir/)
  assert.equal(proxy.stats.requests, 0, 'no request sent')
  await proxy.close()
})

test('bad submissions are refused with a code before any request', async () => {
  const proxy = await startFaultProxy((await server()).endpoint)
  const client = new TransferClient(await clientOptions({ endpoint: proxy.endpoint, cacheDir: false }))
  const base = { bucket: 'b', rootPrefix: ROOT_PREFIX, farmId: FARM, queueId: QUEUE, inputFiles: [tempDir('x')] }
  const cases = [
    [{ farmId: 'farm/x' }, 'ERR_INVALID_ARG_VALUE', /farmId 'farm\/x' must not contain '\/'/],
    [{ queueId: '' }, 'ERR_INVALID_ARG_VALUE', /queueId must be a non-empty string/],
    [{ rootPrefix: '' }, 'ERR_INVALID_ARG_VALUE', /rootPrefix must be a non-empty string/],
    [{ inputFiles: [] }, 'ERR_INVALID_ARG_VALUE', /needs at least one of inputFiles/],
    [{ inputFiles: [null] }, 'ERR_INVALID_ARG_TYPE', /inputFiles\[0\] must be a path string/],
    [{ outputDirectories: ['ok', 3] }, 'ERR_INVALID_ARG_TYPE', /outputDirectories\[1\] must be a path string/],
    [{ inputFile: ['x'] }, 'ERR_INVALID_ARG_VALUE', /has no option 'inputFile'/],
    [{ fileSystem: 'copied' }, 'ERR_INVALID_ARG_TYPE', /copied/],
    [{ storageProfile: { fileSystemLocations: [{ name: 'n', path: '/p', type: 'Local' }] } }, 'ERR_INVALID_ARG_TYPE', /Local/],
    [{ filter: { exclude: [''] } }, 'ERR_INVALID_ARG_VALUE', /must not be empty/],
  ]
  for (const [change, code, message] of cases) {
    const err = await client.submitJobAttachments({ ...base, ...change }).then(() => null, (e) => e)
    assert.ok(err, `${JSON.stringify(change)} rejected`)
    assert.equal(err.code, code, `${JSON.stringify(change)}: ${err.message}`)
    assert.match(err.message, message)
  }
  assert.equal(proxy.stats.requests, 0)
  await proxy.close()
})

/**
 * Outputs written by Deadline's worker for a job of two roots (one recorded with a non-ASCII path, so its metadata
 * is `asset-root-json`): task 1 ran twice (only its later session action counts), task 2 ran later and wrote
 * one of the same files again (it wins).
 */
async function jobWithOutputs(bucket) {
  const d = tempDir('outputs')
  const roots = [path.join(d, 'proj'), path.join(d, 'café')]
  const attachments = {
    manifests: [
      { rootPath: roots[0], rootPathFormat: 'posix', fileSystemLocationName: 'Projects', outputRelativeDirectories: ['renders'] },
      { rootPath: roots[1], rootPathFormat: 'posix', outputRelativeDirectories: ['out'] },
    ],
    fileSystem: 'COPIED',
  }
  const ids = { bucket, rootPrefix: ROOT_PREFIX, farmId: FARM, queueId: QUEUE, jobId: 'job-1', stepId: 'step-1', attachments }
  const action = async (taskId, sessionActionId, startTime, files) => {
    const out = await deadline({ cmd: 'outputs', ...ids, taskId, sessionActionId, startTime, sessionDir: tempDir('session'), files })
    assert.equal(out.files, Object.values(files).reduce((n, f) => n + Object.keys(f).length, 0), 'the worker stored every output')
    // S3 times are whole seconds: the next action's manifests must be later for "later wins" to mean anything.
    await new Promise((resolve) => setTimeout(resolve, 1100))
  }
  await action('task-1', 'sessionaction-1', 1_700_000_000, {
    [roots[0]]: { 'renders/f1.exr': 'task 1, first try', 'renders/f2.exr': 'only in the first try' },
  })
  await action('task-1', 'sessionaction-2', 1_700_000_100, {
    [roots[0]]: { 'renders/f1.exr': 'task 1, retry' },
    [roots[1]]: { 'out/log.txt': 'log of the retry' },
  })
  await action('task-2', 'sessionaction-3', 1_700_000_200, {
    [roots[0]]: { 'renders/f1.exr': 'task 2 wrote it last', 'renders/sub/f3.exr': 'task 2' },
  })
  return { d, roots, ids }
}

test("a job's outputs written by Deadline's worker come back merged as Deadline merges them, each root where it is mapped", async () => {
  const bucket = await makeBucket('out')
  const { roots, ids } = await jobWithOutputs(bucket)
  const client = new TransferClient(await clientOptions({ cacheDir: tempDir('cache') }))
  const [mine, theirs] = [tempDir('mine'), tempDir('theirs')]
  const map = (base) => ({ [roots[0]]: path.join(base, 'proj'), [roots[1]]: path.join(base, 'cafe') })
  const req = { bucket, rootPrefix: ROOT_PREFIX, farmId: FARM, queueId: QUEUE, jobId: 'job-1' }
  const out = await client.downloadJobOutputs({ ...req, rootMap: map(mine) })
  await deadline({ cmd: 'download_outputs', ...req, rootMap: map(theirs) })

  const tree = (base) => Object.fromEntries(allFiles(base).map((f) => [f, readFileSync(path.join(base, f), 'utf8')]))
  const expected = {
    'cafe/out/log.txt': 'log of the retry',
    'proj/renders/f1.exr': 'task 2 wrote it last',
    'proj/renders/sub/f3.exr': 'task 2',
  }
  assert.deepEqual(tree(theirs), expected, "Deadline's own download (the test's premise)")
  assert.deepEqual(tree(mine), expected)
  assert.deepEqual(
    out.roots.map((r) => [r.rootPath, r.fileSystemLocationName, r.localRoot, r.manifestKeys.length]),
    [[roots[1], undefined, map(mine)[roots[1]], 1], [roots[0], 'Projects', map(mine)[roots[0]], 2]],
  )
  for (const r of out.roots) {
    for (const key of r.manifestKeys) assert.match(key, new RegExp(`^${ROOT_PREFIX}/Manifests/${FARM}/${QUEUE}/job-1/step-1/task-[12]/[^/]+_sessionaction-[23]/[0-9a-f]{32}_output$`))
  }
  assert.equal(out.summary.files, 3)

  // Again: every file is there with its content, nothing is fetched. One changed locally is kept and the output
  // written beside it (createCopy, Deadline's default for outputs).
  writeFileSync(path.join(mine, 'proj/renders/f1.exr'), 'edited by the artist')
  const again = await client.downloadJobOutputs({ ...req, rootMap: map(mine) })
  assert.deepEqual([again.summary.files, again.summary.skippedFiles], [1, 2])
  assert.equal(readFileSync(path.join(mine, 'proj/renders/f1.exr'), 'utf8'), 'edited by the artist')
  assert.equal(readFileSync(path.join(mine, 'proj/renders/f1 (1).exr'), 'utf8'), 'task 2 wrote it last')

  // One step, one task: only theirs.
  const task1 = await client.downloadJobOutputs({ ...req, stepId: 'step-1', taskId: 'task-1', rootMap: map(tempDir('t1')) })
  assert.deepEqual(task1.roots.map((r) => JSON.parse(r.manifest).paths.map((p) => p.path)), [['out/log.txt'], ['renders/f1.exr']])
})

test('output roots map by the storage profile, else to their own path; a root of another OS with no mapping is refused before any file', async () => {
  const bucket = await makeBucket('out')
  const { roots } = await jobWithOutputs(bucket)
  const client = new TransferClient(await clientOptions({ cacheDir: false }))
  const req = { bucket, rootPrefix: ROOT_PREFIX, farmId: FARM, queueId: QUEUE, jobId: 'job-1' }
  // The location the root was recorded with, by name; the other root goes to its own (POSIX) path.
  const here = tempDir('profile')
  const storageProfile = { fileSystemLocations: [{ name: 'Projects', path: here, type: 'LOCAL' }] }
  const out = await client.downloadJobOutputs({ ...req, storageProfile })
  assert.deepEqual(out.roots.map((r) => r.localRoot), [roots[1], here])
  assert.equal(readFileSync(path.join(here, 'renders/f1.exr'), 'utf8'), 'task 2 wrote it last')
  assert.equal(readFileSync(path.join(roots[1], 'out/log.txt'), 'utf8'), 'log of the retry')

  // A root recorded on Windows: refused with its name unless mapped.
  const win = 'C:\\Users\\artist\\shot010'
  const winIds = {
    bucket, rootPrefix: ROOT_PREFIX, farmId: FARM, queueId: QUEUE, jobId: 'job-2', stepId: 'step-1', taskId: 'task-1',
    sessionActionId: 'sessionaction-9', startTime: 1_700_000_000,
    attachments: { manifests: [{ rootPath: win, rootPathFormat: 'windows', outputRelativeDirectories: ['renders'] }] },
  }
  await deadline({ cmd: 'outputs', ...winIds, sessionDir: tempDir('session'), files: { [win]: { 'renders/w.exr': 'from windows' } } })
  const err = await client.downloadJobOutputs({ ...req, jobId: 'job-2' }).then(() => null, (e) => e)
  assert.equal(err?.code, 'ERR_UNMAPPED_ROOTS')
  assert.deepEqual(err.roots, [win])
  const target = tempDir('win')
  const mapped = await client.downloadJobOutputs({ ...req, jobId: 'job-2', rootMap: { [win]: target } })
  assert.equal(mapped.summary.files, 1)
  assert.deepEqual(allFiles(target), ['renders/w.exr'])
})

test("outputs stored by uploadJobOutputs are read and downloaded by Deadline's own OutputDownloader", async () => {
  const bucket = await makeBucket('out')
  const client = new TransferClient(await clientOptions({ cacheDir: tempDir('cache') }))
  const root = path.join(tempDir('rec'), 'shot é')
  const ids = { bucket, rootPrefix: ROOT_PREFIX, farmId: FARM, queueId: QUEUE, jobId: 'job-3', stepId: 'step-1', rootPath: root, fileSystemLocationName: 'Projects' }
  const task1 = tempDir('task1')
  writeTree(task1, { 'renders/a.exr': 'a from task 1', 'renders/b.exr': 'b from task 1' })
  const first = await client.uploadJobOutputs({ ...ids, taskId: 'task-1', sessionActionId: 'sessionaction-1-0', startTime: Date.UTC(2026, 11, 3, 20, 15, 0, 123), localDir: task1 })
  const name = first.manifestKey.split('/').pop()
  assert.equal(
    first.manifestKey,
    `${ROOT_PREFIX}/Manifests/${FARM}/${QUEUE}/job-3/step-1/task-1/2026-12-03T20:15:00.123000Z_sessionaction-1-0/${name}`,
  )
  const head = await (await s3()).send(new HeadObjectCommand({ Bucket: bucket, Key: first.manifestKey }))
  const json = JSON.stringify(root).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  assert.deepEqual(head.Metadata, { 'asset-root': json, 'asset-root-json': json, 'file-system-location-name': 'Projects' })
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const task2 = tempDir('task2')
  writeTree(task2, { 'renders/a.exr': 'a from task 2' })
  await client.uploadJobOutputs({ ...ids, taskId: 'task-2', sessionActionId: 'sessionaction-2-0', localDir: task2 })

  const req = { bucket, rootPrefix: ROOT_PREFIX, farmId: FARM, queueId: QUEUE, jobId: 'job-3' }
  const [mine, theirs] = [tempDir('mine'), tempDir('theirs')]
  const got = await deadline({ cmd: 'download_outputs', ...req, rootMap: { [root]: theirs } })
  assert.deepEqual(got.roots, [theirs], 'Deadline found the root in the metadata')
  await client.downloadJobOutputs({ ...req, rootMap: { [root]: mine } })
  for (const dir of [theirs, mine]) {
    assert.deepEqual(allFiles(dir), ['renders/a.exr', 'renders/b.exr'])
    assert.equal(readFileSync(path.join(dir, 'renders/a.exr'), 'utf8'), 'a from task 2')
  }
})

test("deadlineCache: hashes Deadline's submitter cached are used, and what s3-ferry hashes and finds is cached for Deadline", async () => {
  // Deadline keys a hash by the file's mtime in local time: a zone that is not UTC (with daylight saving) makes the
  // conversion count. Python inherits it.
  const tz = process.env.TZ
  process.env.TZ = 'America/New_York'
  try {
    const bucket = await makeBucket('dlc')
    const d = tempDir('dlc')
    const files = { 'a.png': bytes(3000, 1), 'sub/b.png': bytes(4000, 2), 'c.txt': 'c' }
    writeTree(d, files)
    // Sub-second mtimes, one of them in summer time: both are in the key.
    utimesSync(path.join(d, 'a.png'), 1_751_000_000.123456, 1_751_000_000.123456)
    utimesSync(path.join(d, 'c.txt'), 1_733_000_000.5, 1_733_000_000.5)
    const inputs = Object.keys(files).map((f) => path.join(d, f))

    // Deadline hashes first: s3-ferry reads no file.
    const theirs = tempDir('deadline-cache')
    assert.deepEqual(await deadline({ cmd: 'hash', inputs, hashCacheDir: theirs }), { hashed: 3, unchanged: 0 })
    const client = new TransferClient(await clientOptions({ cacheDir: tempDir('cache'), deadlineCache: theirs }))
    const out = await client.submitJobAttachments({ bucket, rootPrefix: ROOT_PREFIX, farmId: FARM, queueId: QUEUE, inputFiles: inputs })
    assert.equal(out.cachedHashes, 3, "every hash from Deadline's cache")
    const keys = JSON.parse(out.inputManifests[0].manifest).paths.map((p) => `${ROOT_PREFIX}/Data/${p.hash}.xxh128`)
    assert.deepEqual(await deadline({ cmd: 'checked', bucket, keys, cacheDir: theirs }), [true, true, true], "uploaded: recorded in Deadline's S3 check cache")

    // s3-ferry hashes first: Deadline reads no file.
    const shared = tempDir('deadline-cache')
    const other = new TransferClient(await clientOptions({ cacheDir: tempDir('cache'), deadlineCache: shared }))
    const again = await other.submitJobAttachments({ bucket, rootPrefix: ROOT_PREFIX, farmId: FARM, queueId: QUEUE, inputFiles: inputs })
    assert.equal(again.cachedHashes, 0)
    assert.deepEqual(await deadline({ cmd: 'hash', inputs, hashCacheDir: shared }), { hashed: 0, unchanged: 3 })
  } finally {
    if (tz === undefined) delete process.env.TZ
    else process.env.TZ = tz
  }
})

test('a job with outputs and references only has roots without manifests, as Deadline gives them', async () => {
  const bucket = await makeBucket('job')
  const d = tempDir('outonly')
  const client = new TransferClient(await clientOptions({ cacheDir: false }))
  const request = { outputDirectories: [path.join(d, 'renders')], referencedPaths: [path.join(d, 'refs', 'plate.exr')] }
  const out = await client.submitJobAttachments({ bucket, rootPrefix: ROOT_PREFIX, farmId: FARM, queueId: QUEUE, ...request })
  const theirs = await deadline({
    cmd: 'prepare', bucket, rootPrefix: ROOT_PREFIX, farmId: FARM, queueId: QUEUE, hashCacheDir: tempDir('dl-cache'),
    inputs: [], outputs: request.outputDirectories, references: request.referencedPaths,
  })
  assert.deepEqual(out.attachments.manifests, [{ rootPath: d, rootPathFormat: 'posix', outputRelativeDirectories: ['renders'] }])
  assert.deepEqual(theirs.map((r) => [r.rootPath, r.outputRelativeDirectories, r.manifest]), [[d, ['renders'], null]])
  assert.deepEqual(out.inputManifests, [])
  assert.equal(out.summary.files, 0)
  assert.deepEqual(await listKeys(bucket), [], 'nothing stored')
})

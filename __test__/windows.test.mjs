// What Windows asks of a transfer library, checked on every platform with the answer each platform gives:
// Windows (the lane `npm run test:windows` runs this file with Windows' node.exe under Wine) refuses keys that
// cannot be the file they name there and keys that differ only in case; Linux writes them as they are. Also:
// deep trees past 260 characters, files held open by another program, the CLI, and the packed win32 package.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { PutObjectCommand } from '@aws-sdk/client-s3'
import { TransferClient } from '../index.js'
import { MiB, allFiles, bytes, clientOptions, listKeys, makeBucket, openUploads, s3, server, tempDir, treeHashes, writeTree } from './helpers.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const WINDOWS = process.platform === 'win32'
const CASE_INSENSITIVE = WINDOWS || process.platform === 'darwin'
// libuv's UV_FS_O_EXLOCK: open with share mode 0, as an editor or a renderer holding a file does. Windows only.
const UV_FS_O_EXLOCK = 0x10000000

async function put(bucket, key, body = key) {
  await (await s3()).send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }))
}

test('a nested tree with unicode names and a path past 260 characters round-trips; keys use / on every platform', async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir('win')
  const deep = path.join(...Array.from({ length: 12 }, (_, i) => `level-${String(i).padStart(2, '0')}-${'x'.repeat(16)}`), 'deep file.bin')
  const files = {
    'scenes/shot 001/scène.blend': bytes(9 * MiB, 1), // multipart
    'textures/日本語/テクスチャ.png': bytes(3000, 2),
    'textures/ü ñ/Ωmega.exr': bytes(1, 3),
    'empty.txt': Buffer.alloc(0),
    [deep]: bytes(4096, 4),
  }
  writeTree(path.join(dir, 'src'), files)
  assert.ok(path.join(dir, 'out', deep).length > 300, 'the deep destination is past MAX_PATH')

  const up = await client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: 'job/' })
  assert.equal(up.files, 5)
  const keys = await listKeys(bucket)
  const posix = Object.keys(files).map((f) => `job/${f.split(path.sep).join('/')}`)
  assert.deepEqual(keys.sort(), posix.sort())
  assert.ok(keys.every((k) => !k.includes('\\')), 'no backslash in any key')

  const down = await client.download({ bucket, keyPrefix: 'job/', localDir: path.join(dir, 'out') })
  assert.equal(down.files, 5)
  assert.deepEqual(treeHashes(path.join(dir, 'out')), treeHashes(path.join(dir, 'src')))
})

test('keys that cannot be their own file on Windows: refused there with ERR_PATH_OUTSIDE_DESTINATION, nothing written; ordinary files elsewhere', async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const cases = {
    device: 'CON',
    'device-ext': 'sub/aux.txt',
    'device-lpt': 'LPT1.log',
    stream: 'notes.txt:hidden',
    'trailing-dot': 'render.',
    'trailing-space': 'folder /f.txt',
    reserved: 'what?.txt',
    pipe: 'a|b.txt',
  }
  for (const [prefix, name] of Object.entries(cases)) await put(bucket, `${prefix}/${name}`)
  for (const [prefix, name] of Object.entries(cases)) {
    const out = tempDir('win-names')
    const call = client.download({ bucket, keyPrefix: `${prefix}/`, localDir: out })
    if (WINDOWS) {
      await assert.rejects(call, (e) => {
        assert.equal(e.code, 'ERR_PATH_OUTSIDE_DESTINATION', `${name}: ${e.message}`)
        assert.equal(e.key, `${prefix}/${name}`)
        assert.match(e.message, /Windows/)
        return true
      })
      assert.deepEqual(readdirSync(out), [], `${name}: nothing written`)
    } else {
      assert.equal((await call).files, 1, name)
      assert.equal(readFileSync(path.join(out, ...name.split('/')), 'utf8'), `${prefix}/${name}`)
    }
  }
  // A name that only looks like a device name is a file everywhere.
  await put(bucket, 'fine/console.log')
  await put(bucket, 'fine/COM10')
  const out = tempDir('win-names')
  assert.equal((await client.download({ bucket, keyPrefix: 'fine/', localDir: out })).files, 2)
  assert.deepEqual(allFiles(out), ['COM10', 'console.log'])
})

test('keys that differ only in case: ERR_DESTINATION_CONFLICT before any file where names fold case, two files elsewhere', async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  await put(bucket, 'job/Textures/Wood.png', 'upper')
  await put(bucket, 'job/textures/wood.png', 'lower')
  const out = tempDir('win-case')
  const call = client.download({ bucket, keyPrefix: 'job/', localDir: out })
  if (CASE_INSENSITIVE) {
    await assert.rejects(call, (e) => {
      assert.equal(e.code, 'ERR_DESTINATION_CONFLICT', e.message)
      assert.equal(e.key, 'job/textures/wood.png')
      return true
    })
    assert.deepEqual(readdirSync(out), [], 'nothing fetched or written')
  } else {
    assert.equal((await call).files, 2)
    assert.deepEqual(allFiles(out), ['Textures/Wood.png', 'textures/wood.png'])
  }
})

test('a file another program holds open without sharing: the upload fails with EBUSY naming it, nothing stored', { skip: !WINDOWS && 'share modes are Windows-only' }, async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir('win-lock')
  writeTree(dir, { 'a.bin': bytes(1000, 1), 'locked.bin': bytes(2000, 2) })
  const locked = path.join(dir, 'locked.bin')
  const fd = openSync(locked, constants.O_RDWR | UV_FS_O_EXLOCK)
  try {
    await assert.rejects(client.upload({ bucket, localDir: dir }), (e) => {
      assert.equal(e.code, 'EBUSY', e.message)
      assert.equal(e.path, locked)
      return true
    })
  } finally {
    closeSync(fd)
  }
  assert.deepEqual(await openUploads(bucket), [])
  assert.ok(!(await listKeys(bucket)).includes('locked.bin'), 'the locked file is not stored')
  // Once it is closed, the same upload works.
  assert.equal((await client.upload({ bucket, localDir: dir })).files, 2)
})

test('a destination file another program holds open: the download fails with a coded error, the file keeps its bytes, no temporary left', { skip: !WINDOWS && 'share modes are Windows-only' }, async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  // A small object (one GET, placed from memory) and a ranged one (written to a temporary file first).
  await put(bucket, 'small/scene.blend', 'new bytes')
  await put(bucket, 'large/big.bin', bytes(12 * MiB, 5))
  const out = tempDir('win-lock-dest')
  writeFileSync(path.join(out, 'scene.blend'), 'old bytes')
  writeFileSync(path.join(out, 'big.bin'), 'old big')
  for (const [prefix, name] of [['small/', 'scene.blend'], ['large/', 'big.bin']]) {
    const fd = openSync(path.join(out, name), constants.O_RDONLY | UV_FS_O_EXLOCK)
    try {
      await assert.rejects(client.download({ bucket, keyPrefix: prefix, localDir: out }), (e) => {
        assert.ok(['EBUSY', 'EPERM'].includes(e.code), `${name}: ${e.code} ${e.message}`)
        assert.equal(e.path, path.join(out, name))
        return true
      })
    } finally {
      closeSync(fd)
    }
    assert.deepEqual(allFiles(out), ['big.bin', 'scene.blend'], 'no temporary file left beside it')
  }
  assert.equal(readFileSync(path.join(out, 'scene.blend'), 'utf8'), 'old bytes')
  assert.equal(readFileSync(path.join(out, 'big.bin'), 'utf8'), 'old big')
})

test('the command line uploads and downloads a tree', async () => {
  const s = await server()
  const bucket = await makeBucket()
  const dir = tempDir('win-cli')
  writeTree(path.join(dir, 'src'), { 'scenes/a.blend': bytes(6 * MiB, 1), 'tex/ü.png': bytes(500, 2), 'tex/b.png': bytes(10, 3) })
  const env = {
    ...process.env,
    AWS_ACCESS_KEY_ID: s.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s.credentials.secretAccessKey,
    AWS_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
  }
  const cli = (...args) => spawnSync(process.execPath, [path.join(ROOT, 'bin', 's3-ferry.mjs'), ...args, '--endpoint', s.endpoint, '--path-style'], { encoding: 'utf8', env })
  const up = cli('upload', path.join(dir, 'src'), `s3://${bucket}/job/`)
  assert.equal(up.status, 0, up.stderr)
  assert.match(up.stdout, /Done: 3 files/)
  assert.deepEqual((await listKeys(bucket)).sort(), ['job/scenes/a.blend', 'job/tex/b.png', 'job/tex/ü.png'])
  const down = cli('download', `s3://${bucket}/job/`, path.join(dir, 'out'))
  assert.equal(down.status, 0, down.stderr)
  assert.deepEqual(treeHashes(path.join(dir, 'out')), treeHashes(path.join(dir, 'src')))
})

test('the packed win32 package, installed into an empty folder, loads in Windows Node and transfers', { skip: !process.env.S3_FERRY_TEST_PACKAGED_APP && 'set by npm run test:windows (package.test.mjs covers Linux)' }, async () => {
  const app = process.env.S3_FERRY_TEST_PACKAGED_APP
  assert.ok(existsSync(path.join(app, 'node_modules', 's3-ferry-win32-x64-msvc')), 'the platform package is installed')
  const s = await server()
  const bucket = await makeBucket()
  const data = tempDir('win-pkg')
  mkdirSync(path.join(data, 'sub'))
  writeFileSync(path.join(data, 'sub', 'x.txt'), 'installed on windows')
  const opts = JSON.stringify({ endpoint: s.endpoint, forcePathStyle: true, credentials: s.credentials })
  const script = `
    const { TransferClient } = require('s3-ferry')
    const where = require.resolve('s3-ferry-win32-x64-msvc')
    const c = new TransferClient(${opts})
    c.upload({ bucket: ${JSON.stringify(bucket)}, localDir: ${JSON.stringify(data)}, keyPrefix: 'p/' })
      .then(() => c.download({ bucket: ${JSON.stringify(bucket)}, keyPrefix: 'p/', localDir: 'out' }))
      .then((r) => console.log(JSON.stringify({ files: r.files, text: require('node:fs').readFileSync('out/sub/x.txt', 'utf8'), where })))`
  const r = spawnSync(process.execPath, ['-e', script], { cwd: app, encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  assert.equal(out.files, 1)
  assert.equal(out.text, 'installed on windows')
  assert.ok(out.where.startsWith(path.join(app, 'node_modules')), `loaded from the installed package: ${out.where}`)
})

test("job attachments use the OS's own paths: Windows roots, separators and case-blind storage-profile locations there, POSIX elsewhere", async () => {
  const client = new TransferClient(await clientOptions({ cacheDir: tempDir('cache') }))
  const bucket = await makeBucket('winjob')
  const proj = path.join(tempDir('winjob'), 'Proj')
  writeTree(proj, { 'scenes/shot.blend': bytes(2000, 1), 'tex/a b.png': bytes(300, 2) })
  const ids = { bucket, rootPrefix: 'DeadlineCloud', farmId: 'farm-1', queueId: 'queue-1' }
  // The location as a user types it, in other case: the same directory where names fold case.
  const location = { name: 'Projects', path: proj.toUpperCase(), type: 'LOCAL' }
  const out = await client.submitJobAttachments({
    ...ids,
    inputFiles: [path.join(proj, 'scenes', 'shot.blend'), path.join(proj, 'tex', 'a b.png')],
    outputDirectories: [path.join(proj, 'renders', 'beauty')],
    storageProfile: { fileSystemLocations: [location] },
  })
  const [root] = out.attachments.manifests
  assert.equal(root.rootPath, proj)
  assert.equal(root.rootPathFormat, WINDOWS ? 'windows' : 'posix')
  assert.equal(root.fileSystemLocationName, WINDOWS ? 'Projects' : undefined, 'case-blind only where the OS is')
  assert.deepEqual(root.outputRelativeDirectories, [['renders', 'beauty'].join(WINDOWS ? '\\' : '/')])
  assert.deepEqual(JSON.parse(out.inputManifests[0].manifest).paths.map((p) => p.path), ['scenes/shot.blend', 'tex/a b.png'])

  // Outputs recorded under this root come back to it by its own path; a root recorded on the other OS needs a map.
  const produced = tempDir('produced')
  writeTree(produced, { 'renders/beauty/f1.exr': 'frame 1' })
  const job = { ...ids, jobId: 'job-1', stepId: 'step-1' }
  await client.uploadJobOutputs({ ...job, taskId: 'task-1', sessionActionId: 'sessionaction-1', rootPath: proj, localDir: produced })
  const other = WINDOWS ? '/mnt/projects/shot' : 'C:\\Projects\\shot'
  await client.uploadJobOutputs({ ...job, taskId: 'task-2', sessionActionId: 'sessionaction-2', rootPath: other, localDir: produced })
  const req = { ...ids, jobId: 'job-1' }
  const err = await client.downloadJobOutputs(req).then(() => null, (e) => e)
  assert.equal(err?.code, 'ERR_UNMAPPED_ROOTS')
  assert.deepEqual(err.roots, [other])
  assert.equal(existsSync(path.join(proj, 'renders')), false, 'nothing written before the refusal')
  const mapped = tempDir('mapped')
  const back = await client.downloadJobOutputs({ ...req, rootMap: { [other]: mapped } })
  assert.equal(back.summary.files, 2)
  assert.equal(readFileSync(path.join(proj, 'renders', 'beauty', 'f1.exr'), 'utf8'), 'frame 1')
  assert.equal(readFileSync(path.join(mapped, 'renders', 'beauty', 'f1.exr'), 'utf8'), 'frame 1')
})

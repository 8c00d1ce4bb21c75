// `npm run s3-server`, the local S3 for your own experiments, as the README tells a new user to use it: started
// with --bucket, the README's commands run against it as written (their port and `npx` aside), Ctrl-C stops it,
// and its data is still there on the next start.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { freePorts } from '../scripts/s3-server.mjs'
import { tempDir } from './helpers.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** Starts `npm run s3-server` (the script it runs) and resolves with its --json settings line and the child. */
function startServer(args) {
  const child = spawn(process.execPath, [path.join(ROOT, 'scripts', 's3-server.mjs'), '--json', ...args], { cwd: ROOT })
  let out = ''
  let err = ''
  child.stderr.on('data', (d) => (err += d))
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  const settings = new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (line) resolve(JSON.parse(line))
    })
    child.on('exit', () => reject(new Error(`the server exited: ${err}`)))
  })
  return { child, settings, exited }
}

/** The README's shell block under "A local S3 for your own experiments" that uses the server. */
function readmeCommands() {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('### A local S3 for your own experiments'))
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1])
}

test('npm run s3-server -- --bucket jobs, then the README commands: upload, download, mb; data kept after Ctrl-C', { skip: process.platform === 'win32' && 'POSIX shell' }, async (t) => {
  const [port] = await freePorts(1)
  const data = tempDir('s3-server')
  const [start, commands] = readmeCommands()
  assert.match(start, /npm run s3-server -- --bucket jobs/)
  const first = startServer(['--port', String(port), '--data', data, '--bucket', 'jobs'])
  let second
  // Whatever fails, no server outlives the test (a running child would keep the test process alive).
  t.after(() => {
    first.child.kill('SIGKILL')
    second?.child.kill('SIGKILL')
  })
  const settings = await first.settings
  // The defaults the README prints.
  assert.equal(settings.endpoint, `http://127.0.0.1:${port}`)
  assert.deepEqual(settings.credentials, { accessKeyId: 's3ferry', secretAccessKey: 's3ferry-local-secret' })
  assert.deepEqual(settings.buckets, ['jobs'])

  const cwd = tempDir('experiment')
  mkdirSync(path.join(cwd, 'bundle', 'sub'), { recursive: true })
  writeFileSync(path.join(cwd, 'bundle', 'scene.blend'), 'a scene')
  writeFileSync(path.join(cwd, 'bundle', 'sub', 'tex.png'), 'a texture')
  // As written, but on this test's port, and the CLI of this checkout (`npx s3-ferry` in a project that installed it).
  const script = commands.replaceAll('127.0.0.1:9000', `127.0.0.1:${port}`).replaceAll('npx s3-ferry', `node ${JSON.stringify(path.join(ROOT, 'bin', 's3-ferry.mjs'))}`)
  const r = spawnSync('sh', ['-e', '-c', script], { cwd, encoding: 'utf8', env: { ...process.env, AWS_EC2_METADATA_DISABLED: 'true' } })
  assert.equal(r.status, 0, r.stdout + r.stderr)
  assert.equal(readFileSync(path.join(cwd, 'out', 'sub', 'tex.png'), 'utf8'), 'a texture')
  assert.match(r.stdout, /make_bucket: more-jobs/)
  // `mb` of a bucket that is already yours is fine (SeaweedFS says BucketAlreadyExists; a HeadBucket tells).
  const env = { ...process.env, AWS_ACCESS_KEY_ID: 's3ferry', AWS_SECRET_ACCESS_KEY: 's3ferry-local-secret', AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true' }
  const cli = path.join(ROOT, 'bin', 's3-ferry.mjs')
  const mb = spawnSync(process.execPath, [cli, 'mb', '--endpoint', `http://127.0.0.1:${port}`, '--path-style', 's3://jobs'], { encoding: 'utf8', env })
  assert.equal(mb.status, 0, mb.stderr)
  assert.equal(mb.stdout.trim(), 'make_bucket: jobs exists already (yours)')
  // A second server on the same port is refused, not silently answered by the first.
  const clash = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 's3-server.mjs'), '--port', String(port), '--data', tempDir('clash')], { encoding: 'utf8', timeout: 60_000 })
  assert.equal(clash.status, 1)
  assert.match(clash.stderr, new RegExp(`port ${port} is in use`))

  first.child.kill('SIGINT')
  assert.equal((await first.exited).code, 0, 'Ctrl-C stops it cleanly')

  // Started again on the same data: the objects are still there.
  second = startServer(['--port', String(port), '--data', data])
  await second.settings
  try {
    const again = spawnSync(process.execPath, [cli, 'download', '--no-progress', '--endpoint', `http://127.0.0.1:${port}`, '--path-style', 's3://jobs/job-42/', path.join(cwd, 'again')], { encoding: 'utf8', env })
    assert.equal(again.status, 0, again.stderr)
    assert.equal(readFileSync(path.join(cwd, 'again', 'scene.blend'), 'utf8'), 'a scene')
  } finally {
    second.child.kill('SIGINT')
    await second.exited
  }
})

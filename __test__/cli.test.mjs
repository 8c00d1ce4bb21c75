// The s3-ferry command line, for real: flags and errors, line-based and JSON output, Ctrl-C (exit 130, nothing
// left behind), and the live bar in a real terminal (tmux).
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { MiB, bytes, listKeys, makeBucket, openUploads, server, tempDir, treeHashes, writeTree } from './helpers.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const CLI = path.join(ROOT, 'bin', 's3-ferry.mjs')

async function cliEnv() {
  const s = await server()
  return {
    env: { ...process.env, AWS_ACCESS_KEY_ID: s.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s.credentials.secretAccessKey, AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true' },
    flags: ['--endpoint', s.endpoint, '--path-style'],
  }
}

const run = (args, env) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: env ?? process.env })

test('--help, and bad flags or values exit 2 with a clear message', () => {
  const help = run(['--help'])
  assert.equal(help.status, 0)
  assert.match(help.stdout, /upload/)
  assert.match(help.stdout, /download/)
  assert.equal(run(['upload', '--help']).status, 0)
  const unknown = run(['upload', '--bogus', 'x', 's3://b/'])
  assert.equal(unknown.status, 2)
  assert.match(unknown.stderr, /unknown option '--bogus'/)
  const size = run(['upload', '--part-size', 'lots', 'x', 's3://b/'])
  assert.equal(size.status, 2)
  assert.match(size.stderr, /'lots' is not a size/)
  const url = run(['download', 'http://b/x', '/tmp/x'])
  assert.equal(url.status, 2)
  assert.match(url.stderr, /is not an S3 URL/)
  assert.equal(run(['upload', 's3://only-a-destination/']).status, 2)
})

test('upload a directory and download it back, with plain progress lines when stdout is not a terminal', async () => {
  const { env, flags } = await cliEnv()
  const bucket = await makeBucket()
  const dir = tempDir()
  const files = { 'big.bin': bytes(12 * MiB, 1) }
  for (let i = 0; i < 300; i++) files[`t/${i % 7}/f${i}.bin`] = bytes(100 + i, i)
  writeTree(path.join(dir, 'src'), files)
  const up = run(['upload', ...flags, '--max-bandwidth', '8MB/s', path.join(dir, 'src'), `s3://${bucket}/job/`], env)
  assert.equal(up.status, 0, up.stderr)
  assert.match(up.stdout, /^upload +[\d.]+% .* files \d+\/301/m, 'periodic plain lines')
  assert.match(up.stdout, /Done: 301 files/)
  const down = run(['download', ...flags, `s3://${bucket}/job/`, path.join(dir, 'out')], env)
  assert.equal(down.status, 0, down.stderr)
  assert.deepEqual(treeHashes(path.join(dir, 'out')), treeHashes(path.join(dir, 'src')))
})

test('files upload to prefix + name; --json prints one JSON object per line; errors exit 1 with their code', async () => {
  const { env, flags } = await cliEnv()
  const bucket = await makeBucket()
  const dir = tempDir()
  writeFileSync(path.join(dir, 'a.txt'), 'a')
  writeFileSync(path.join(dir, 'b.txt'), 'b')
  const r = run(['upload', ...flags, '--json', path.join(dir, 'a.txt'), path.join(dir, 'b.txt'), `s3://${bucket}/x/`], env)
  assert.equal(r.status, 0, r.stderr)
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l))
  assert.ok(events.every((e) => e.type === 'progress' || e.type === 'summary'))
  assert.deepEqual(events.at(-1).type, 'summary')
  assert.equal(events.at(-1).files, 2)
  assert.deepEqual((await listKeys(bucket)).sort(), ['x/a.txt', 'x/b.txt'])
  // --conflict maps to the download's conflict policy.
  mkdirSync(path.join(dir, 'o1'))
  writeFileSync(path.join(dir, 'o1', 'a.txt'), 'local')
  const kept = run(['download', ...flags, '--conflict', 'skip', `s3://${bucket}/x/`, path.join(dir, 'o1')], env)
  assert.equal(kept.status, 0, kept.stderr)
  assert.match(kept.stdout, /Done: 1 files.*1 skipped/)
  const refused = run(['download', ...flags, '--conflict', 'error', `s3://${bucket}/x/`, path.join(dir, 'o1')], env)
  assert.equal(refused.status, 1)
  assert.match(refused.stderr, /ERR_DESTINATION_EXISTS/)
  assert.equal(run(['download', ...flags, '--conflict', 'sometimes', `s3://${bucket}/x/`, path.join(dir, 'o1')], env).status, 2)
  const missing = run(['download', ...flags, 's3://no-such-bucket-here/x/', path.join(dir, 'o')], env)
  assert.equal(missing.status, 1)
  assert.match(missing.stderr, /s3-ferry: NoSuchBucket/)
})

test('upload-attachments writes the manifest and skips what S3 has on a re-run; download-manifest recreates the tree', async () => {
  const { env, flags } = await cliEnv()
  const bucket = await makeBucket()
  const dir = tempDir()
  const files = { 'scenes/a.blend': bytes(9 * MiB, 4) }
  for (let i = 0; i < 50; i++) files[`tex/t${i}.png`] = bytes(500 + i, i)
  writeTree(path.join(dir, 'job'), files)
  const cache = ['--cache-dir', path.join(dir, 'cache')]
  const manifest = path.join(dir, 'job.manifest')
  const dest = `s3://${bucket}/farm`
  assert.equal(run(['upload-attachments', ...flags, path.join(dir, 'job'), dest], env).status, 2, 'no --manifest nor --manifest-key')
  const up = run(['upload-attachments', ...flags, ...cache, '--manifest', manifest, '--manifest-key', 'farm/Manifests/job', path.join(dir, 'job'), dest], env)
  assert.equal(up.status, 0, up.stderr)
  assert.match(up.stdout, /Done: 51 files.*; 51 files hashed/)
  const m = JSON.parse(readFileSync(manifest, 'utf8'))
  assert.equal(m.paths.length, 51)
  const again = run(['upload-attachments', ...flags, ...cache, '--json', '--manifest', manifest, path.join(dir, 'job'), dest], env)
  assert.equal(again.status, 0, again.stderr)
  const summary = JSON.parse(again.stdout.trim().split('\n').at(-1))
  assert.equal(summary.type, 'summary')
  assert.equal(summary.files, 0)
  assert.equal(summary.skippedFiles, 51)
  assert.equal(summary.cachedHashes, 51)
  for (const source of [manifest, `s3://${bucket}/farm/Manifests/job`]) {
    const out = path.join(dir, `out-${source.length}`)
    const down = run(['download-manifest', ...flags, ...cache, source, dest, out], env)
    assert.equal(down.status, 0, down.stderr)
    assert.deepEqual(treeHashes(out), treeHashes(path.join(dir, 'job')))
  }
})

test('Ctrl-C (SIGINT) cancels through the AbortSignal path: exit 130, what completed is printed, nothing left behind', async () => {
  const { env, flags } = await cliEnv()
  const bucket = await makeBucket()
  const dir = tempDir()
  writeFileSync(path.join(dir, 'big.bin'), bytes(40 * MiB, 2))
  const child = spawn(process.execPath, [CLI, 'upload', ...flags, '--part-size', '5MiB', '--max-bandwidth', '4MB/s', path.join(dir, 'big.bin'), `s3://${bucket}/c/`], { env })
  let out = ''
  child.stdout.on('data', (d) => {
    out += d
    if (/upload/.test(out) && !child.killed) child.kill('SIGINT')
  })
  const code = await new Promise((resolve) => child.on('exit', (c) => resolve(c)))
  assert.equal(code, 130)
  assert.match(out, /Aborted; completed before the abort: 0 files/)
  assert.deepEqual(await openUploads(bucket), [])
  assert.deepEqual(await listKeys(bucket), [])
})

test('in a terminal (tmux): a live bar on one line, narrow terminals included, and Ctrl-C exits 130', async (t) => {
  if (spawnSync('tmux', ['-V']).status !== 0) return t.skip('tmux is not installed (npm test installs it)')
  const { env, flags } = await cliEnv()
  const bucket = await makeBucket()
  const dir = tempDir()
  writeFileSync(path.join(dir, 'big.bin'), bytes(40 * MiB, 3))
  const socket = `s3ferry-${process.pid}`
  const tmux = (...args) => spawnSync('tmux', ['-L', socket, ...args], { encoding: 'utf8', env })
  const pane = () => tmux('capture-pane', '-p', '-t', 'cli').stdout
  const waitFor = async (re) => {
    for (let i = 0; i < 300; i++) {
      const text = pane()
      if (re.test(text)) return text
      await new Promise((r) => setTimeout(r, 100))
    }
    throw new Error(`pane never matched ${re}:\n${pane()}`)
  }
  try {
    for (const width of [120, 50]) {
      const cmd = [process.execPath, CLI, 'upload', ...flags, '--part-size', '5MiB', '--max-bandwidth', '4MB/s', path.join(dir, 'big.bin'), `s3://${bucket}/w${width}/`]
      tmux('new-session', '-d', '-s', 'cli', '-x', String(width), '-y', '15', `${cmd.map((a) => `'${a}'`).join(' ')}; echo EXIT=$?; sleep 60`)
      const drawing = await waitFor(/[█░].*%/)
      await new Promise((r) => setTimeout(r, 600)) // several redraws later
      const later = pane()
      const barLines = later.split('\n').filter((l) => /[█░]/.test(l))
      assert.equal(barLines.length, 1, `the bar redraws in place on one line:\n${later}`)
      assert.ok(later.split('\n').every((l) => l.length <= width), 'no line wider than the terminal')
      if (width === 120) assert.match(drawing, /files 0\/1/)
      tmux('send-keys', '-t', 'cli', 'C-c')
      const end = await waitFor(/EXIT=\d+/)
      assert.match(end, /EXIT=130/)
      assert.match(end, /Aborted; completed before the abort/)
      tmux('kill-session', '-t', 'cli')
    }
    assert.deepEqual(await openUploads(bucket), [])
  } finally {
    tmux('kill-server')
  }
})

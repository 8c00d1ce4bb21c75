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

/** `run` without blocking this process, for a CLI that talks to a proxy running here. */
function runAsync(args, env) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (status) => resolve({ status, stdout, stderr }))
  })
}

test('the helpers are importable (the program runs only when invoked): sizes and S3 URLs as documented', async () => {
  // Importing runs nothing: had it parsed the test runner's argv, this process would have exited.
  const { parseSize, parseS3Url } = await import('../bin/s3-ferry.mjs')
  const sizes = ['8MiB', '10MB/s', '1048576', '1.5 GiB', '64k', '2kb', '3b', '1g'].map(parseSize)
  assert.deepEqual(sizes, [8 * 1024 ** 2, 10e6, 1048576, 1.5 * 1024 ** 3, 64e3, 2e3, 3, 1e9])
  for (const bad of ['', 'MiB', '-1MB', '0', '8 TB', '8MiBs', 'eight']) {
    assert.throws(() => parseSize(bad), (e) => e.code === 'commander.invalidArgument' && e.message.includes(`'${bad}'`), bad)
  }
  assert.deepEqual(parseS3Url('s3://jobs/job-42/'), { bucket: 'jobs', prefix: 'job-42/' })
  assert.deepEqual(parseS3Url('S3://jobs'), { bucket: 'jobs', prefix: '' })
  assert.deepEqual(parseS3Url('s3://jobs/a b/ñ.exr'), { bucket: 'jobs', prefix: 'a b/ñ.exr' })
  for (const bad of ['jobs/x', 's3:/jobs', 's3://', 'https://jobs/x']) assert.throws(() => parseS3Url(bad), /is not an S3 URL/, bad)
})

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
  const alone = run(['upload', 's3://only-a-destination/'])
  assert.equal(alone.status, 2)
  assert.match(alone.stderr, /s3-ferry: give the source and then the destination s3:\/\/bucket\/prefix\/\nRun 's3-ferry upload --help' for usage\./)
})

test('usage errors inside a command say why on stderr with a hint; --version prints the version', async () => {
  const dir = tempDir()
  writeFileSync(path.join(dir, 'a.txt'), 'a')
  for (const dest of ['s3:/jobs/x/', 'jobs/x/', 'http://jobs/x/']) {
    const r = run(['upload', dir, dest])
    assert.equal(r.status, 2, dest)
    assert.match(r.stderr, new RegExp(`s3-ferry: the destination '${dest}' is not an S3 URL: write s3://bucket/prefix/`), dest)
    assert.match(r.stderr, /Run 's3-ferry upload --help' for usage\./)
  }
  const noManifest = run(['upload-attachments', dir, 's3://b/farm'])
  assert.equal(noManifest.status, 2)
  assert.match(noManifest.stderr, /s3-ferry: give --manifest <file> and\/or --manifest-key <key>/)
  assert.match(noManifest.stderr, /Run 's3-ferry upload-attachments --help'/)
  const otherBucket = run(['download-manifest', 's3://other/m', 's3://b/farm', dir])
  assert.equal(otherBucket.status, 2)
  assert.match(otherBucket.stderr, /the manifest \(bucket 'other'\) must be in the same bucket as the contents \('b'\)/)
  const { version } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  for (const flag of ['--version', '-V']) {
    const v = run([flag])
    assert.equal(v.status, 0, v.stderr)
    assert.equal(v.stdout.trim(), version)
  }
})

test('--no-progress prints only the summary, --quiet nothing but errors; --help shows examples', async () => {
  const { env, flags } = await cliEnv()
  const bucket = await makeBucket()
  const dir = tempDir()
  writeTree(path.join(dir, 'src'), { 'big.bin': bytes(9 * MiB, 7), 'a/b.txt': 'b' })
  // 4 MB/s makes the upload last over two seconds, so the plain display would print progress lines.
  const slow = ['--max-bandwidth', '4MB/s']
  const summaryOnly = run(['upload', ...flags, ...slow, '--no-progress', path.join(dir, 'src'), `s3://${bucket}/n/`], env)
  assert.equal(summaryOnly.status, 0, summaryOnly.stderr)
  assert.deepEqual(summaryOnly.stdout.trim().split('\n').length, 1, summaryOnly.stdout)
  assert.match(summaryOnly.stdout, /^Done: 2 files, /)
  const json = run(['download', ...flags, '--json', '--no-progress', `s3://${bucket}/n/`, path.join(dir, 'o1')], env)
  assert.deepEqual(json.stdout.trim().split('\n').map((l) => JSON.parse(l).type), ['summary'])
  const quiet = run(['download', ...flags, ...slow, '-q', `s3://${bucket}/n/`, path.join(dir, 'o2')], env)
  assert.equal(quiet.status, 0, quiet.stderr)
  assert.equal(quiet.stdout + quiet.stderr, '')
  assert.deepEqual(treeHashes(path.join(dir, 'o2')), treeHashes(path.join(dir, 'src')))
  const quietEmpty = run(['download', ...flags, '--quiet', `s3://${bucket}/none/`, path.join(dir, 'o3')], env)
  assert.equal(quietEmpty.stdout + quietEmpty.stderr, '', 'not even the note')
  const quietError = run(['download', ...flags, '--quiet', 's3://no-such-bucket-here/x/', path.join(dir, 'o4')], env)
  assert.equal(quietError.status, 1)
  assert.match(quietError.stderr, /^s3-ferry: NoSuchBucket/)
  for (const command of ['upload', 'download']) {
    const help = run([command, '--help'])
    assert.match(help.stdout, new RegExp(`Examples:\n  \\$ s3-ferry ${command} `))
    assert.match(help.stdout, /--no-progress/)
    assert.match(help.stdout, /-q, --quiet/)
  }
})

test('prefixes are folders: a key downloads by its URL, names are never cut mid-component, uploads go under prefix/', async () => {
  const { env, flags } = await cliEnv()
  const bucket = await makeBucket()
  const dir = tempDir()
  writeTree(path.join(dir, 'src'), { 'deep/hello.txt': 'hello' })
  writeTree(path.join(dir, 'objs'), { 'scene.blend': 'scene', 'f1.dat': 'f1.dat', 'f10.dat': 'f10', 'x.dat': 'inside f1/', f1: 'object f1' })
  const upload = (...args) => {
    const r = run(['upload', ...flags, ...args], env)
    assert.equal(r.status, 0, r.stderr)
    return r
  }
  // The scheme in capitals is an S3 URL too; a destination without / is a folder for a directory.
  upload(path.join(dir, 'src', 'deep'), `S3://${bucket}/noslash`)
  upload(path.join(dir, 'objs', 'scene.blend'), `s3://${bucket}/job-42/scene.blend`) // one file: that key
  upload(path.join(dir, 'objs', 'f1'), `s3://${bucket}/job-42/sub/f1`)
  upload(path.join(dir, 'objs', 'f1.dat'), path.join(dir, 'objs', 'f10.dat'), `s3://${bucket}/job-42/sub`) // files: under sub/
  upload(path.join(dir, 'objs', 'x.dat'), `s3://${bucket}/job-42/sub/f1/`)
  assert.deepEqual((await listKeys(bucket)).sort(), ['job-42/scene.blend', 'job-42/sub/f1', 'job-42/sub/f1.dat', 'job-42/sub/f1/x.dat', 'job-42/sub/f10.dat', 'noslash/hello.txt'])

  const download = (url, out) => {
    const r = run(['download', ...flags, url, path.join(dir, out)], env)
    assert.equal(r.status, 0, r.stderr)
    return r
  }
  const one = download(`s3://${bucket}/job-42/scene.blend`, 'o9')
  assert.match(one.stdout, /Done: 1 file, /)
  assert.deepEqual(treeHashes(path.join(dir, 'o9')), { 'scene.blend': treeHashes(path.join(dir, 'objs'))['scene.blend'] })
  download(`s3://${bucket}/job-42/sub/f1`, 'o10')
  assert.deepEqual(Object.keys(treeHashes(path.join(dir, 'o10'))).sort(), ['f1', 'x.dat'], 'the object sub/f1 and the folder sub/f1/, not f1.dat or f10.dat')
  assert.equal(readFileSync(path.join(dir, 'o10', 'x.dat'), 'utf8'), 'inside f1/')
  // The folder sub/ holds both the object f1 and the folder f1/: no tree can hold both, refused before any GET.
  const both = run(['download', ...flags, `s3://${bucket}/job-42/sub`, path.join(dir, 'o11')], env)
  assert.equal(both.status, 1)
  assert.match(both.stderr, /s3-ferry: ERR_DESTINATION_CONFLICT: keys 'job-42\/sub\/f1' and 'job-42\/sub\/f1\/x.dat'/)

  // Nothing matched: a note and exit 0, or exit 1 with --fail-on-empty.
  const empty = download(`s3://${bucket}/job-4`, 'o12')
  assert.match(empty.stdout, /Done: 0 files/)
  assert.match(empty.stderr, new RegExp(`s3-ferry: note: no object under s3://${bucket}/job-4; nothing was downloaded`))
  const failed = run(['download', ...flags, '--fail-on-empty', `s3://${bucket}/nothing/`, path.join(dir, 'o13')], env)
  assert.equal(failed.status, 1)
  assert.match(failed.stderr, new RegExp(`s3-ferry: ERR_NOTHING_MATCHED: no object under s3://${bucket}/nothing/`))
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
  assert.match(kept.stdout, /Done: 1 file, .*1 skipped/)
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
  // Bytes of the cut-short upload are sent, not completed.
  assert.match(out, /Aborted after [\d.]+ s: 0 files completed \([\d.]+ [KM]iB sent, parts of unfinished files discarded\)/)
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
  const waitUntil = async (ok, what) => {
    for (let i = 0; i < 300; i++) {
      const text = pane()
      if (ok(text)) return text
      await new Promise((r) => setTimeout(r, 100))
    }
    throw new Error(`the pane never showed ${what}:\n${pane()}`)
  }
  const waitFor = (re) => waitUntil((text) => re.test(text), re)
  const barLine = (text) => text.split('\n').find((l) => /[█░]/.test(l))
  try {
    for (const width of [120, 50]) {
      const cmd = [process.execPath, CLI, 'upload', ...flags, '--part-size', '5MiB', '--max-bandwidth', '4MB/s', path.join(dir, 'big.bin'), `s3://${bucket}/w${width}/`]
      tmux('new-session', '-d', '-s', 'cli', '-x', String(width), '-y', '15', `${cmd.map((a) => `'${a}'`).join(' ')}; echo EXIT=$?; sleep 60`)
      const drawing = await waitFor(/[█░].*%/)
      // Redrawn: the bar line has changed (the transfer moved on at 4 MB/s).
      const later = await waitUntil((text) => barLine(text) !== undefined && barLine(text) !== barLine(drawing), 'a redraw')
      const barLines = later.split('\n').filter((l) => /[█░]/.test(l))
      assert.equal(barLines.length, 1, `the bar redraws in place on one line:\n${later}`)
      assert.ok(later.split('\n').every((l) => l.length <= width), 'no line wider than the terminal')
      if (width === 120) {
        assert.match(drawing, /files 0\/1/)
        // Both sides of the byte count formatted (not cli-progress's raw {total}).
        assert.match(drawing, /\| [\d.]+ [KMG]iB \/ 40\.0 MiB \|/)
      }
      tmux('send-keys', '-t', 'cli', 'C-c')
      const end = await waitFor(/EXIT=\d+/)
      assert.match(end, /EXIT=130/)
      assert.match(end, /Aborted after [\d.]+ s: 0 files completed/)
      tmux('kill-session', '-t', 'cli')
    }
    assert.deepEqual(await openUploads(bucket), [])
  } finally {
    tmux('kill-server')
  }
})

test('--exclude/--include in order, --dryrun, --skip-unchanged and --size-only, --follow-symlinks: round trips byte-exact', async () => {
  const { env, flags } = await cliEnv()
  const bucket = await makeBucket()
  const dir = tempDir()
  const src = path.join(dir, 'job')
  writeTree(src, { 'scene.blend': bytes(3000, 1), 'tex/a.png': bytes(500, 2), 'tex/b.tmp': 'x', '.git/HEAD': 'ref' })
  const filters = ['--exclude', '.git/*', '--exclude', '*.tmp']

  const dry = run(['upload', ...flags, ...filters, '--dryrun', src, `s3://${bucket}/job`], env)
  assert.equal(dry.status, 0, dry.stderr)
  assert.deepEqual(dry.stdout.trim().split('\n'), [
    `(dryrun) upload: ${path.join(src, 'scene.blend')} to s3://${bucket}/job/scene.blend`,
    `(dryrun) upload: ${path.join(src, 'tex', 'a.png')} to s3://${bucket}/job/tex/a.png`,
    'Dry run: would upload 2 files, 3.4 KiB; nothing was sent',
  ])
  assert.deepEqual(await listKeys(bucket), [])

  const up = run(['upload', ...flags, ...filters, '--no-progress', src, `s3://${bucket}/job`], env)
  assert.equal(up.status, 0, up.stderr)
  assert.match(up.stdout, /^Done: 2 files, 3\.4 KiB in /)
  assert.deepEqual((await listKeys(bucket)).sort(), ['job/scene.blend', 'job/tex/a.png'])

  // Order matters: exclude everything, then take back the PNGs.
  const out = path.join(dir, 'out')
  const down = run(['download', ...flags, '--exclude', '*', '--include', '*.png', '--no-progress', `s3://${bucket}/job`, out], env)
  assert.equal(down.status, 0, down.stderr)
  assert.match(down.stdout, /^Done: 1 file, /)
  assert.deepEqual(treeHashes(out), { 'tex/a.png': treeHashes(src)['tex/a.png'] })

  // A second sync sends nothing; after an edit of another size, that file alone; --size-only ignores a touch.
  const again = run(['upload', ...flags, ...filters, '--skip-unchanged', '--no-progress', src, `s3://${bucket}/job`], env)
  assert.equal(again.status, 0, again.stderr)
  assert.match(again.stdout, /^Done: 0 files, 0\.0 KiB in .*, 2 skipped \(3\.4 KiB\)/)
  writeFileSync(path.join(src, 'tex', 'a.png'), bytes(600, 3))
  const plan = run(['upload', ...flags, ...filters, '--skip-unchanged', '--dryrun', src, `s3://${bucket}/job`], env)
  assert.deepEqual(plan.stdout.trim().split('\n'), [
    `(dryrun) skip (unchanged): ${path.join(src, 'scene.blend')}`,
    `(dryrun) upload: ${path.join(src, 'tex', 'a.png')} to s3://${bucket}/job/tex/a.png`,
    'Dry run: would upload 1 file, 0.6 KiB; 1 skipped (2.9 KiB); nothing was sent',
  ])
  const sized = run(['download', ...flags, '--size-only', '--no-progress', `s3://${bucket}/job`, out], env)
  assert.equal(sized.status, 0, sized.stderr)
  assert.match(sized.stdout, /^Done: 1 file, .*, 1 skipped/, 'scene.blend fetched, a.png (same size) skipped')

  // --json dry run: one plan line per file, then the summary.
  const json = run(['download', ...flags, '--json', '--dryrun', `s3://${bucket}/job`, path.join(dir, 'j')], env)
  const lines = json.stdout.trim().split('\n').map((l) => JSON.parse(l))
  assert.deepEqual(lines.map((l) => [l.type, l.action, l.key]), [['plan', 'download', 'job/scene.blend'], ['plan', 'download', 'job/tex/a.png'], ['summary', undefined, undefined]])
  assert.equal(lines[2].dryRun, true)

  const filesWithFilter = run(['upload', ...flags, '--exclude', '*.tmp', path.join(src, 'scene.blend'), `s3://${bucket}/x/`], env)
  assert.equal(filesWithFilter.status, 2)
  assert.match(filesWithFilter.stderr, /--include and --exclude apply to a directory upload/)

  if (process.platform !== 'win32') {
    const { symlinkSync } = await import('node:fs')
    writeTree(path.join(dir, 'shared'), { 'lib.png': bytes(100, 4) })
    symlinkSync(path.join(dir, 'shared'), path.join(src, 'shared'))
    const linked = run(['upload', ...flags, '--follow-symlinks', '--dryrun', src, `s3://${bucket}/l`], env)
    assert.match(linked.stdout, new RegExp(`\\(dryrun\\) upload: ${path.join(src, 'shared', 'lib.png')} to s3://${bucket}/l/shared/lib.png`))
    const unlinked = run(['upload', ...flags, '--dryrun', src, `s3://${bucket}/l`], env)
    assert.doesNotMatch(unlinked.stdout, /lib\.png/)
    assert.match(unlinked.stdout, /1 skipped/)
  }
})

test('files that fail are each listed with their code, the rest transferred, exit 1; --fail-fast stops at the first', async () => {
  const { env } = await cliEnv()
  const { startFaultProxy } = await import('../scripts/fault-proxy.mjs')
  const bucket = await makeBucket()
  const dir = tempDir()
  const src = path.join(dir, 'src')
  writeTree(src, { 'ok-1.txt': 'one', 'ok-2.txt': 'two', 'bad-1.txt': 'x', 'bad-2.txt': 'y' })
  const proxy = await startFaultProxy((await server()).endpoint, { faults: { error500: 1 }, maxFaultsPerRequest: Infinity, applies: (req) => req.url.includes('bad-') })
  try {
    const flags = ['--endpoint', proxy.endpoint, '--path-style', '--no-progress']
    const r = await runAsync(['upload', ...flags, src, `s3://${bucket}/job/`], { ...env, S3_FERRY_CONFIG: writeConfig(dir, 'max_attempts = 1') })
    assert.equal(r.status, 1)
    const lines = r.stderr.trim().split('\n').filter((l) => !/Warning|node/.test(l))
    assert.equal(lines[0], 's3-ferry: 2 files failed (2 completed):')
    assert.match(lines[1], new RegExp(`^  InternalError: PutObject s3://${bucket}/job/bad-\\d\\.txt: InternalError`))
    assert.match(lines[2], new RegExp(`^  InternalError: PutObject s3://${bucket}/job/bad-\\d\\.txt: InternalError`))
    assert.deepEqual((await listKeys(bucket, 'job/')).sort(), ['job/ok-1.txt', 'job/ok-2.txt'])
    const json = await runAsync(['upload', ...flags, '--json', src, `s3://${bucket}/j2/`], { ...env, S3_FERRY_CONFIG: writeConfig(dir, 'max_attempts = 1') })
    const error = JSON.parse(json.stdout.trim().split('\n').at(-1))
    assert.deepEqual([error.type, error.code, error.failures.map((f) => f.key).sort(), error.summary.files], ['error', 'InternalError', ['j2/bad-1.txt', 'j2/bad-2.txt'], 2])
    // --fail-fast: the failing file sorts first, and one request at a time; the call stops there, so of 40 good
    // files behind it at most the few already under way (one budget of 10 files) go up.
    const many = path.join(dir, 'many')
    writeTree(many, { 'a-bad-1.txt': 'x', ...Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`ok-${String(i).padStart(2, '0')}.txt`, `${i}`])) })
    const fast = await runAsync(['upload', ...flags, '--fail-fast', '--workers', '1', '--pool', '1', many, `s3://${bucket}/j3/`], { ...env, S3_FERRY_CONFIG: writeConfig(dir, 'max_attempts = 1') })
    assert.equal(fast.status, 1)
    assert.match(fast.stderr, new RegExp(`s3-ferry: InternalError: PutObject s3://${bucket}/j3/a-bad-1\\.txt: InternalError`))
    assert.ok((await listKeys(bucket, 'j3/')).length < 10, 'the call stopped at the failure')
    const all = await runAsync(['upload', ...flags, '--workers', '1', '--pool', '1', many, `s3://${bucket}/j4/`], { ...env, S3_FERRY_CONFIG: writeConfig(dir, 'max_attempts = 1') })
    assert.equal(all.status, 1)
    assert.equal((await listKeys(bucket, 'j4/')).length, 40, 'without --fail-fast every other file goes up')
  } finally {
    await proxy.close()
  }
})

function writeConfig(dir, line) {
  const file = path.join(dir, 'ferry.ini')
  writeFileSync(file, `[settings]\n${line}\n`)
  return file
}

test('object settings, SSE-C, the expected owner and unsigned requests from the command line', async () => {
  const { env, flags } = await cliEnv()
  const { HeadObjectCommand, GetObjectTaggingCommand } = await import('@aws-sdk/client-s3')
  const { s3 } = await import('./helpers.mjs')
  const sdk = await s3()
  const bucket = await makeBucket('cli-settings')
  const dir = tempDir()
  writeTree(path.join(dir, 'src'), { 'a.png': 'png', 'secret/b.bin': bytes(1000, 3) })
  const settings = ['--cache-control', 'max-age=60', '--metadata', 'job=42,node=ws7', '--metadata', 'frame=1',
    '--tagging', 'project=alpha&team=fx', '--storage-class', 'STANDARD_IA', '--sse', 'AES256', '--expected-bucket-owner', '111122223333']
  const up = run(['upload', ...flags, ...settings, '--exclude', 'secret/*', path.join(dir, 'src'), `s3://${bucket}/job/`], env)
  assert.equal(up.status, 0, up.stderr)
  const h = await sdk.send(new HeadObjectCommand({ Bucket: bucket, Key: 'job/a.png' }))
  assert.equal(h.ContentType, 'image/png')
  assert.equal(h.CacheControl, 'max-age=60')
  assert.deepEqual(h.Metadata, { job: '42', node: 'ws7', frame: '1' })
  assert.equal(h.StorageClass, 'STANDARD_IA')
  assert.equal(h.ServerSideEncryption, 'AES256')
  const tagSet = (await sdk.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'job/a.png' }))).TagSet
  assert.deepEqual(Object.fromEntries(tagSet.map((t) => [t.Key, t.Value])), { project: 'alpha', team: 'fx' })

  // SSE-C from a key file: up, and down only with the key.
  const keyFile = path.join(dir, 'key.bin')
  writeFileSync(keyFile, bytes(32, 5))
  const enc = run(['upload', ...flags, '--sse-c-key-file', keyFile, path.join(dir, 'src', 'secret'), `s3://${bucket}/enc/`], env)
  assert.equal(enc.status, 0, enc.stderr)
  const denied = run(['download', ...flags, `s3://${bucket}/enc/`, path.join(dir, 'nokey')], env)
  assert.equal(denied.status, 1)
  const dec = run(['download', ...flags, '--sse-c-key', bytes(32, 5).toString('base64'), `s3://${bucket}/enc/`, path.join(dir, 'out')], env)
  assert.equal(dec.status, 0, dec.stderr)
  assert.deepEqual(treeHashes(path.join(dir, 'out')), treeHashes(path.join(dir, 'src', 'secret')))

  // Bad values are refused before any request: the library's coded error (exit 1), or a usage error (exit 2).
  const bad = run(['upload', ...flags, '--storage-class', 'CHEAP', path.join(dir, 'src'), `s3://${bucket}/x/`], env)
  assert.equal(bad.status, 1)
  assert.match(bad.stderr, /ERR_INVALID_ARG_VALUE: storageClass 'CHEAP' is not one of/)
  const pairs = run(['upload', ...flags, '--metadata', 'novalue', path.join(dir, 'src'), `s3://${bucket}/x/`], env)
  assert.equal(pairs.status, 2)
  assert.match(pairs.stderr, /expected name=value, got 'novalue'/)

  // --no-sign-request: unsigned, so a private bucket refuses it (AccessDenied, exit 1).
  const unsigned = run(['download', ...flags, '--no-sign-request', `s3://${bucket}/job/`, path.join(dir, 'anon')], env)
  assert.equal(unsigned.status, 1)
  assert.match(unsigned.stderr, /AccessDenied/)
})

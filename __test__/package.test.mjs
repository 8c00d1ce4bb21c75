// Installs like any napi-rs package, without Rust: `npm run pack` (scripts/pack.mjs) makes the root package and
// this platform's package with its binary, installed into an empty folder with no cargo on PATH; the README's
// "Using it" example runs there as written, through both module formats and the CLI. Also: what the root tarball
// ships, and the loader's message in each of its four failures.
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { s3, server, tempDir } from './helpers.mjs'
import { packTarballs } from '../scripts/pack.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
// This machine's platform package, as the loader names it (the release workflow runs this on macOS and Windows).
const ABI = { linux: process.report?.getReport?.().header?.glibcVersionRuntime ? '-gnu' : '-musl', win32: '-msvc' }[process.platform] ?? ''
const PLATFORM = `${process.platform}-${process.arch}${ABI}`
const BINARY = `s3-ferry.${PLATFORM}.node`
// npm and the installed bin are .cmd scripts on Windows, which only a shell starts.
const NPM = { shell: process.platform === 'win32' }
// No cargo, rustc or rustup anywhere on the PATH the installed package runs with.
const NO_RUST_PATH = process.env.PATH.split(path.delimiter).filter((p) => !/cargo|rustup/.test(p)).join(path.delimiter)

function pack(dir, dest) {
  mkdirSync(dest, { recursive: true })
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dest], { cwd: dir, encoding: 'utf8', ...NPM })
  return path.join(dest, JSON.parse(out)[0].filename)
}

function install(appDir, tarballs) {
  mkdirSync(appDir, { recursive: true })
  writeFileSync(path.join(appDir, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', ...tarballs], {
    ...NPM,
    cwd: appDir,
    env: { ...process.env, PATH: NO_RUST_PATH },
    stdio: 'pipe',
  })
}

test('the root tarball ships the entry points, the CLI, types, loader, README and licence, nothing else', () => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json'], { cwd: ROOT, encoding: 'utf8', ...NPM })
  const files = JSON.parse(out)[0].files.map((f) => f.path).sort()
  assert.deepEqual(files, ['LICENSE', 'README.md', 'bin/s3-ferry.mjs', 'index.d.ts', 'index.js', 'index.mjs', 'native.js', 'package.json'])
})

/** Runs `code` with Node in `cwd`, with no Rust on PATH and nothing pointing at this checkout's build. */
function node(cwd, args, env = {}) {
  const clean = { ...process.env, PATH: NO_RUST_PATH, ...env }
  delete clean.NAPI_RS_NATIVE_LIBRARY_PATH
  return spawnSync(process.execPath, args, { cwd, encoding: 'utf8', env: clean })
}

/** What `require('s3-ferry')` throws in `app` (null when it loads). */
function loadError(app, prelude = '') {
  const probe = `${prelude}; try { require('s3-ferry'); console.log('null') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`
  const r = node(app, ['-e', probe])
  assert.equal(r.status, 0, r.stderr)
  return JSON.parse(r.stdout)
}

/** The README's "Using it" example, exactly as the README has it. */
function readmeExample() {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('\n## Using it'))
  return /```js\n([\s\S]*?)```/.exec(section)[1]
}

test('npm run pack + install into an empty folder without cargo: the README example runs as written, require and import, the CLI', { timeout: 300_000 }, async () => {
  const work = tempDir('pkg')
  // What a user runs (`npm run pack`), with the debug build the tests already have, stripped.
  const [rootTgz, platformTgz] = packTarballs({ debug: true, skipBuild: true, out: work })
  assert.match(path.basename(platformTgz), new RegExp(`^s3-ferry-${PLATFORM}-\\d`))
  const app = path.join(work, 'app')
  install(app, [rootTgz, platformTgz])

  // The README's "Using it" block, run as written: its endpoint is this server's, and it gets what it assumes
  // (a bucket `jobs`, a ./bundle with scene.blend, the credentials and `endpoint` it names).
  const s = await server()
  const { CreateBucketCommand } = await import('@aws-sdk/client-s3')
  await (await s3()).send(new CreateBucketCommand({ Bucket: 'jobs' })).catch((e) => {
    if (e.name !== 'BucketAlreadyOwnedByYou' && e.name !== 'BucketAlreadyExists') throw e
  })
  mkdirSync(path.join(app, 'bundle', 'textures'), { recursive: true })
  writeFileSync(path.join(app, 'bundle', 'scene.blend'), 'a scene')
  writeFileSync(path.join(app, 'bundle', 'textures', 'wood.png'), 'a texture')
  const example = readmeExample().replaceAll('http://127.0.0.1:9000', s.endpoint)
  const prelude = `const accessKeyId = ${JSON.stringify(s.credentials.accessKeyId)}, secretAccessKey = ${JSON.stringify(s.credentials.secretAccessKey)}, endpoint = ${JSON.stringify(s.endpoint)};`
  writeFileSync(path.join(app, 'example.cjs'), `${prelude}\n(async () => {\n${example}\nconsole.log('example done')\n})().catch((e) => { console.error(e); process.exit(1) })\n`)
  const credentialsEnv = { AWS_ACCESS_KEY_ID: s.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s.credentials.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' }
  const ran = node(app, ['example.cjs'], credentialsEnv)
  assert.equal(ran.status, 0, ran.stderr)
  assert.match(ran.stdout, /example done/)
  assert.equal(readFileSync(path.join(app, 'out', 'scene.blend'), 'utf8'), 'a scene')
  assert.equal(readFileSync(path.join(app, 'scene.blend'), 'utf8'), 'a scene')

  const esm = `import { TransferClient } from 's3-ferry'; console.log(typeof new TransferClient().upload)`
  const r2 = node(app, ['--input-type=module', '-e', esm])
  assert.equal(r2.stdout.trim(), 'function', r2.stderr)

  // The command line comes with it.
  const cli = spawnSync(path.join(app, 'node_modules', '.bin', 's3-ferry'), ['--help'], { cwd: app, encoding: 'utf8', env: { ...process.env, PATH: NO_RUST_PATH, NAPI_RS_NATIVE_LIBRARY_PATH: '' }, ...NPM })
  assert.equal(cli.status, 0, cli.stderr)
  assert.match(cli.stdout, /Usage: s3-ferry/)
})

test('the loader says which of its four failures it is, and the CLI prints it in one line, exit 1', { timeout: 300_000 }, () => {
  const work = tempDir('pkg-errors')
  const [rootTgz, platformTgz] = packTarballs({ debug: true, skipBuild: true, out: work })

  // 1. The platform package is not installed (optional dependencies omitted).
  const bare = path.join(work, 'bare')
  install(bare, [rootTgz])
  let e = loadError(bare)
  assert.equal(e.code, 'ERR_S3_FERRY_BINDING')
  assert.match(e.message, new RegExp(`^s3-ferry: the platform package s3-ferry-${PLATFORM} is not installed\\. .*without --omit=optional.*npm run pack`))
  const cli = spawnSync(path.join(bare, 'node_modules', '.bin', 's3-ferry'), ['--help'], { cwd: bare, encoding: 'utf8', env: { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: '' }, ...NPM })
  assert.equal(cli.status, 1)
  assert.equal(cli.stdout, '')
  assert.equal(cli.stderr.trim().split('\n').length, 1, `one line, no stack trace:\n${cli.stderr}`)
  assert.match(cli.stderr, /^s3-ferry: the platform package .* is not installed/)

  // 2. Installed without its binary (packed without one).
  const emptyDir = path.join(work, 'empty-platform')
  cpSync(path.join(ROOT, 'npm', PLATFORM), emptyDir, { recursive: true })
  const empty = path.join(work, 'empty')
  install(empty, [rootTgz, pack(emptyDir, path.join(work, 'empty-tgz'))])
  e = loadError(empty)
  assert.match(e.message, new RegExp(`^s3-ferry: the platform package s3-ferry-${PLATFORM} is installed \\(.*\\) but has no binary in it`))

  // 3. The binary is there, and the OS loader refuses it: its own message is in ours.
  const broken = path.join(work, 'broken')
  install(broken, [rootTgz, platformTgz])
  writeFileSync(path.join(broken, 'node_modules', `s3-ferry-${PLATFORM}`, BINARY), 'not a shared library')
  e = loadError(broken)
  assert.match(e.message, new RegExp(`^s3-ferry: the native binary for ${process.platform}-${process.arch} is installed but did not load: .*${BINARY}`))
  if (process.platform === 'linux') assert.match(e.message, /invalid ELF header|file too short/)

  // 4. A platform with no prebuilt binary.
  e = loadError(bare, "Object.defineProperty(process, 'arch', { value: 'mips' })")
  assert.match(e.message, new RegExp(`^s3-ferry: there is no prebuilt binary for ${process.platform}-mips .*; prebuilt: linux-x64-gnu, `))
})

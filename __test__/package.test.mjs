// Installs like any napi-rs package, without Rust: `npm pack` of the root package and of the linux-x64-gnu
// platform package, installed into an empty folder with no cargo on PATH, then a real upload and download
// through both module formats. Also: what the root tarball ships, and the loader's message when the platform
// package is missing.
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { makeBucket, server, tempDir } from './helpers.mjs'

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

test('npm pack + install into an empty folder without cargo: upload and download work, require and import', { timeout: 300_000 }, async () => {
  assert.ok(existsSync(path.join(ROOT, BINARY)), `build the addon first (${BINARY})`)
  const work = tempDir('pkg')
  // The platform package, with the built binary (debug info stripped: the debug build is ~200 MB of it).
  const platformDir = path.join(work, PLATFORM)
  cpSync(path.join(ROOT, 'npm', PLATFORM), platformDir, { recursive: true })
  copyFileSync(path.join(ROOT, BINARY), path.join(platformDir, BINARY))
  // GNU strip on Linux; elsewhere the debug binary is packed as built (larger, the same code).
  if (process.platform === 'linux') execFileSync('strip', ['--strip-debug', path.join(platformDir, BINARY)])
  const platformTgz = pack(platformDir, work)
  const rootTgz = pack(ROOT, work)

  const app = path.join(work, 'app')
  install(app, [rootTgz, platformTgz])
  const s = await server()
  const bucket = await makeBucket()
  const data = path.join(work, 'data')
  mkdirSync(path.join(data, 'sub'), { recursive: true })
  writeFileSync(path.join(data, 'sub', 'x.txt'), 'installed without rust')
  const opts = JSON.stringify({ endpoint: s.endpoint, forcePathStyle: true, credentials: s.credentials })
  const cjs = `
    const { TransferClient } = require('s3-ferry')
    const c = new TransferClient(${opts})
    c.upload({ bucket: ${JSON.stringify(bucket)}, localDir: ${JSON.stringify(data)}, keyPrefix: 'p/' })
      .then(() => c.download({ bucket: ${JSON.stringify(bucket)}, keyPrefix: 'p/', localDir: 'out' }))
      .then((r) => console.log('files', r.files, require('node:fs').readFileSync('out/sub/x.txt', 'utf8')))`
  const r1 = spawnSync(process.execPath, ['-e', cjs], { cwd: app, encoding: 'utf8', env: { ...process.env, PATH: NO_RUST_PATH } })
  assert.equal(r1.status, 0, r1.stderr)
  assert.match(r1.stdout, /files 1 installed without rust/)
  const esm = `import { TransferClient } from 's3-ferry'; console.log(typeof new TransferClient().upload)`
  const r2 = spawnSync(process.execPath, ['--input-type=module', '-e', esm], { cwd: app, encoding: 'utf8', env: { ...process.env, PATH: NO_RUST_PATH } })
  assert.equal(r2.stdout.trim(), 'function', r2.stderr)

  // The command line comes with it.
  const cli = spawnSync(path.join(app, 'node_modules', '.bin', 's3-ferry'), ['--help'], { cwd: app, encoding: 'utf8', env: { ...process.env, PATH: NO_RUST_PATH }, ...NPM })
  assert.equal(cli.status, 0, cli.stderr)
  assert.match(cli.stdout, /Usage: s3-ferry/)

  // Without the platform package, loading fails with a message that names it.
  const bare = path.join(work, 'bare')
  install(bare, [rootTgz])
  const probe = "try { require('s3-ferry') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }"
  const r3 = spawnSync(process.execPath, ['-e', probe], { cwd: bare, encoding: 'utf8' })
  const e = JSON.parse(r3.stdout)
  assert.equal(e.code, 'ERR_S3_FERRY_BINDING')
  assert.match(e.message, new RegExp(`npm install s3-ferry-${PLATFORM}@`), 'the message names the missing package')
})

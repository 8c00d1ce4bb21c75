// Set-up steps shared by `npm test`, `npm run demo` and `npm run bench`, so each does all of it on a fresh clone.
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, renameSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** Runs a command in the repository, inheriting output; exits the process if it fails. */
export function sh(cmd, argv, opts = {}) {
  // On Windows npm and npx are .cmd scripts, which only a shell can start (the arguments here have no spaces).
  const shell = process.platform === 'win32' && (cmd === 'npm' || cmd === 'npx')
  const r = spawnSync(cmd, argv, { stdio: 'inherit', cwd: ROOT, shell, ...opts })
  if (r.status !== 0) {
    console.error(`${cmd} ${argv.join(' ')} failed (${r.status ?? r.signal})`)
    process.exit(r.status || 1)
  }
}

/**
 * The AWS SDK for JavaScript, a test and demo helper here (setting up buckets, reading objects back), warns once per
 * process that it will need Node 22 from 2027. That is about the helper, not about s3-ferry on Node 20: kept out of
 * the test and demo output.
 */
export const QUIET_SDK = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' }

/** `npm ci` when node_modules is missing or older than the lock file. */
export function ensureNpmDeps() {
  const lock = path.join(ROOT, 'package-lock.json')
  const installed = path.join(ROOT, 'node_modules', '.package-lock.json')
  if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(lock).mtimeMs) {
    console.log('== npm ci')
    sh('npm', ['ci', '--no-audit', '--no-fund'])
  }
}

/** This machine's platform name as napi-rs writes it: `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`. */
export function platformName() {
  const abi = {
    linux: process.report?.getReport?.().header?.glibcVersionRuntime ? '-gnu' : '-musl',
    win32: '-msvc',
  }[process.platform] ?? ''
  return `${process.platform}-${process.arch}${abi}`
}

/** Where the debug build's binary goes: out of the way of the release one, which the package root keeps. */
export const DEBUG_DIR = path.join(ROOT, 'target', 'addon-debug')
export const debugBinary = () => path.join(DEBUG_DIR, `s3-ferry.${platformName()}.node`)
export const releaseBinary = () => path.join(ROOT, `s3-ferry.${platformName()}.node`)

/**
 * Builds the addon. Tests use the debug build (a cold release build of aws-sdk-s3 takes minutes on 2 cores),
 * kept in `target/addon-debug/` and loaded through `NAPI_RS_NATIVE_LIBRARY_PATH` (see `debugEnv`); the demo,
 * the benchmark and `npm run pack` use the release build, at the package root where the loader finds it. So a
 * debug build never leaves itself where the release one belongs. Both regenerate native.js and index.d.ts (the
 * same for both); cargo keeps both profiles' artifacts, so switching back and forth only relinks.
 */
export function buildAddon({ release }) {
  console.log(`== build the addon (${release ? 'release' : 'debug'})`)
  sh('npx', ['napi', 'build', '--platform', '--js', 'native.js', '--dts', 'index.d.ts', '--no-const-enum', ...(release ? ['--release'] : [])])
  if (release) return
  // napi build put the debug binary at the root: it goes to target/addon-debug/, and the root gets back the
  // release binary cargo keeps (stripped, as napi copied it), if one was ever built.
  mkdirSync(DEBUG_DIR, { recursive: true })
  renameSync(releaseBinary(), debugBinary())
  const built = path.join(ROOT, 'target', hostTriple(), 'release', LIBRARY[process.platform] ?? 'libs3_ferry.so')
  if (existsSync(built)) copyFileSync(built, releaseBinary())
}

/** The file cargo builds the addon as, per OS. */
const LIBRARY = { linux: 'libs3_ferry.so', darwin: 'libs3_ferry.dylib', win32: 's3_ferry.dll' }

/** The host's target triple (`napi build --platform` builds into target/<triple>/). */
export function hostTriple() {
  return spawnSync('rustc', ['-vV'], { encoding: 'utf8' }).stdout.match(/^host: (\S+)/m)[1]
}

/** The environment that makes `require('s3-ferry')` (this checkout) load the debug build. */
export const debugEnv = () => ({ NAPI_RS_NATIVE_LIBRARY_PATH: debugBinary() })

/**
 * Installs Debian packages the tests need (the CLI's terminal test runs under tmux) when their command (or, given
 * as an absolute path, a file they install) is missing. CI machines start with nothing installed by hand; we run as root there, so apt-get works.
 */
export function ensureDebianPackages(packages) {
  // Debian only: macOS and Windows have no apt-get (nor, on Windows, `sh`); the tests that need these skip there.
  if (process.platform !== 'linux') return
  // A command name is looked up on PATH; an absolute path (a file the package installs) must exist.
  const present = (what) => (path.isAbsolute(what) ? existsSync(what) : spawnSync('sh', ['-c', `command -v ${what}`]).status === 0)
  const missing = Object.entries(packages).filter(([, what]) => !present(what))
  if (missing.length === 0) return
  const names = missing.map(([name]) => name)
  if (process.getuid?.() !== 0) {
    console.warn(`== missing ${names.join(', ')}; not root, so not installing them (the tests that need them will skip)`)
    return
  }
  console.log(`== apt-get install ${names.join(' ')}`)
  sh('apt-get', ['update', '-qq'])
  sh('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...names], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
}

// `node scripts/setup.mjs build [--debug]`: what `npm run build` / `npm run build:debug` run.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url) && process.argv[2] === 'build') {
  buildAddon({ release: !process.argv.includes('--debug') })
}

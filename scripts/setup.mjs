// Set-up steps shared by `npm test`, `npm run demo` and `npm run bench`, so each does all of it on a fresh clone.
import { spawnSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
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

/** `npm ci` when node_modules is missing or older than the lock file. */
export function ensureNpmDeps() {
  const lock = path.join(ROOT, 'package-lock.json')
  const installed = path.join(ROOT, 'node_modules', '.package-lock.json')
  if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(lock).mtimeMs) {
    console.log('== npm ci')
    sh('npm', ['ci', '--no-audit', '--no-fund'])
  }
}

/**
 * Builds the addon. Tests use the debug build (a cold release build of aws-sdk-s3 takes minutes on 2 cores);
 * the demo and the benchmark use the release build. Both write the same .node file; cargo keeps both profiles'
 * artifacts, so switching back and forth only relinks.
 */
export function buildAddon({ release }) {
  console.log(`== build the addon (${release ? 'release' : 'debug'})`)
  const args = ['napi', 'build', '--platform', '--js', 'native.js', '--dts', 'index.d.ts', '--no-const-enum']
  if (release) args.push('--release')
  sh('npx', args)
}

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

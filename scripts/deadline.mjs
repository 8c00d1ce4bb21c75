// Deadline Cloud's own Python client (PyPI `deadline`, which brings `deadline.job_attachments`), installed into a
// venv in .cache/ on first use, for the interop tests: s3-ferry's job attachments held against the real thing.
//
//   import { ensureDeadline } from './deadline.mjs'
//   const python = ensureDeadline()   // the venv's python, with `deadline` importable
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, rmSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
/** The version the interop tests were written against (its module layout is private API, so it is pinned). */
export const DEADLINE_VERSION = '0.60.10'
const VENV = path.join(ROOT, '.cache', `deadline-${DEADLINE_VERSION}`)
const python = process.platform === 'win32' ? path.join(VENV, 'Scripts', 'python.exe') : path.join(VENV, 'bin', 'python')
// Written last: a venv without it is a half-finished install, made again.
const DONE = path.join(VENV, '.installed')

/** Installs `deadline` into .cache/ unless it is there (about 20 s); returns the venv's python. */
export function ensureDeadline() {
  if (existsSync(DONE)) return python
  rmSync(VENV, { recursive: true, force: true })
  mkdirSync(path.dirname(VENV), { recursive: true })
  console.error(`[deadline] installing deadline==${DEADLINE_VERSION} from PyPI into ${path.relative(ROOT, VENV)}`)
  const system = process.env.PYTHON || (process.platform === 'win32' ? 'python' : 'python3')
  execFileSync(system, ['-m', 'venv', VENV], { stdio: 'inherit' })
  execFileSync(python, ['-m', 'pip', 'install', '-q', '--disable-pip-version-check', `deadline==${DEADLINE_VERSION}`], {
    stdio: 'inherit',
  })
  execFileSync(python, ['-c', 'import deadline.job_attachments.upload, deadline.job_attachments.asset_sync'], { stdio: 'inherit' })
  execFileSync(python, ['-c', `open(${JSON.stringify(DONE)}, "w").close()`])
  return python
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(ensureDeadline())

// s3s-fs (a small S3 server over a directory, in Rust), built with `cargo install` into .cache/ the first time.
// - 0.14.1 serves the upload half of the benchmark: it costs ~8 CPU-s per GiB received here, against SeaweedFS's
//   ~13, so on 2 cores it leaves the client more room. It lacks AbortMultipartUpload, ListMultipartUploads and
//   If-Match, which the benchmark's uploads do not need; the downloads stay on SeaweedFS. About 4 minutes.
// - 0.17.0 verifies `x-amz-checksum-xxhash128` (a wrong one is 400 BadDigest), which SeaweedFS ignores: the tests
//   of content-addressed uploads run against it. It needs Rust 1.96, which Debian's `rustc-web` / `cargo-web`
//   provide (installed with apt-get when missing). About 7 minutes.
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { freePorts } from './s3-server.mjs'
import { ROOT, ensureDebianPackages } from './setup.mjs'

/** The version the benchmark uploads to. */
export const BENCH_VERSION = '0.14.1'
/** The version that verifies XXHASH128 checksums. */
export const VERIFYING_VERSION = '0.17.0'

const RUST_FOR_VERIFYING = [1, 96]

/** Where the s3s-fs binary of `version` is (or goes) in .cache/. */
export function s3sFsBinary(version = BENCH_VERSION) {
  return path.join(ROOT, '.cache', `s3s-fs-${version}`, 'bin', process.platform === 'win32' ? 's3s-fs.exe' : 's3s-fs')
}

/** Debian's Rust (`rustc-web`): its version as [major, minor], or null where there is none. */
function debianRust() {
  const r = spawnSync('/usr/bin/rustc', ['--version'], { encoding: 'utf8' })
  const m = r.status === 0 && r.stdout.match(/^rustc (\d+)\.(\d+)/)
  return m ? [Number(m[1]), Number(m[2])] : null
}

/**
 * The s3s-fs binary of `version`, built into .cache/ if it is not there yet. 0.17 needs Rust 1.96, which rustup's
 * toolchain here is not: it is built with Debian's `rustc-web` / `cargo-web` (bookworm-security), installed with
 * apt-get when missing. Throws, saying why, where that cannot be done (not Linux, not root, an older Debian Rust).
 */
export function ensureS3sFs(version = BENCH_VERSION) {
  const bin = s3sFsBinary(version)
  if (existsSync(bin)) return bin
  const debian = version !== BENCH_VERSION
  if (debian) {
    if (process.platform !== 'linux') throw new Error(`s3s-fs ${version} is built on Linux only (with Debian's Rust 1.96)`)
    ensureDebianPackages({ 'rustc-web': '/usr/bin/rustc', 'cargo-web': '/usr/bin/cargo' })
    const rust = debianRust()
    const [major, minor] = RUST_FOR_VERIFYING
    if (!rust || rust[0] < major || (rust[0] === major && rust[1] < minor)) {
      throw new Error(
        `s3s-fs ${version} needs Rust ${major}.${minor}: /usr/bin/rustc is ${rust ? rust.join('.') : 'missing'} (Debian's rustc-web from bookworm-security provides it)`,
      )
    }
  }
  console.error(`== building s3s-fs ${version} into .cache/ (cargo install, ${debian ? 'about 7' : 'about 4'} minutes, once)`)
  const build = path.join(ROOT, '.cache', `s3s-fs-build-${version}`)
  const prefix = path.dirname(path.dirname(bin))
  const r = spawnSync(debian ? '/usr/bin/cargo' : 'cargo', ['install', `s3s-fs@${version}`, '--features', 'binary', '--locked', '--root', prefix], {
    stdio: 'inherit',
    env: { ...process.env, CARGO_TARGET_DIR: build, ...(debian ? { RUSTC: '/usr/bin/rustc' } : {}) },
  })
  if (r.status !== 0 || !existsSync(bin)) throw new Error(`cargo install s3s-fs@${version} failed`)
  rmSync(build, { recursive: true, force: true })
  return bin
}

/** Starts s3s-fs `version` on loopback with bucket `bucket`, storing under `parent`; returns { endpoint, region,
 * credentials, pid, root, clear(prefix), stop() }. */
export async function startS3sFs(bucket, parent = os.tmpdir(), version = BENCH_VERSION) {
  const bin = ensureS3sFs(version)
  const root = mkdtempSync(path.join(parent, 's3-ferry-s3sfs-'))
  mkdirSync(path.join(root, bucket))
  const credentials = { accessKeyId: 'bench' + randomBytes(4).toString('hex'), secretAccessKey: randomBytes(16).toString('hex') }
  const [port] = await freePorts(1)
  // Its own errors go to our stderr; its request log (stdout) is not wanted.
  const child = spawn(bin, ['--host', '127.0.0.1', '--port', String(port), '--access-key', credentials.accessKeyId, '--secret-key', credentials.secretAccessKey, root], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const exited = new Promise((r) => child.once('exit', r).once('error', r))
  let up = false
  for (let i = 0; i < 100 && !up && child.exitCode === null; i++) {
    up = await new Promise((r) => net.connect(port, '127.0.0.1').on('connect', function () { this.destroy(); r(true) }).on('error', () => r(false)))
    if (!up) await new Promise((r) => setTimeout(r, 100))
  }
  if (!up) {
    child.kill()
    rmSync(root, { recursive: true, force: true })
    throw new Error(`s3s-fs ${version} did not start on port ${port}`)
  }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    credentials,
    pid: child.pid,
    root,
    /** Removes what the uploads under `prefix` stored (plain files under the root), to bound disk use. */
    clear(prefix) {
      rmSync(path.join(root, bucket, prefix), { recursive: true, force: true })
    },
    async stop() {
      child.kill()
      await exited
      rmSync(root, { recursive: true, force: true })
    },
  }
}

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
import { ROOT, ensureDebianPackages } from './setup.mjs'

/** The version the benchmark uploads to. */
export const BENCH_VERSION = '0.14.1'
/** The version that verifies XXHASH128 checksums. */
export const VERIFYING_VERSION = '0.17.0'

/** The s3s-fs binary of `version`, built into .cache/ if it is not there yet. */
export function ensureS3sFs(version = BENCH_VERSION) {
  const prefix = path.join(ROOT, '.cache', `s3s-fs-${version}`)
  const bin = path.join(prefix, 'bin', 's3s-fs')
  if (existsSync(bin)) return bin
  // 0.17 needs Rust 1.96: Debian's toolchain (rustup's cargo would run rustup's older rustc).
  const debian = version !== BENCH_VERSION
  if (debian) ensureDebianPackages({ 'rustc-web': '/usr/bin/rustc', 'cargo-web': '/usr/bin/cargo' })
  console.error(`== building s3s-fs ${version} into .cache/ (cargo install, ${debian ? 'about 7' : 'about 4'} minutes, once)`)
  const build = path.join(ROOT, '.cache', `s3s-fs-build-${version}`)
  const r = spawnSync(debian ? '/usr/bin/cargo' : 'cargo', ['install', `s3s-fs@${version}`, '--features', 'binary', '--locked', '--root', prefix], {
    stdio: 'inherit',
    env: { ...process.env, CARGO_TARGET_DIR: build, ...(debian ? { RUSTC: '/usr/bin/rustc' } : {}) },
  })
  if (r.status !== 0 || !existsSync(bin)) throw new Error(`cargo install s3s-fs@${version} failed`)
  rmSync(build, { recursive: true, force: true })
  return bin
}

async function freePort() {
  const srv = net.createServer()
  await new Promise((r) => srv.listen(0, '127.0.0.1', r))
  const { port } = srv.address()
  await new Promise((r) => srv.close(r))
  return port
}

/** Starts s3s-fs `version` on loopback with bucket `bucket`, storing under `parent`; returns { endpoint, region,
 * credentials, pid, root, clear(prefix), stop() }. */
export async function startS3sFs(bucket, parent = os.tmpdir(), version = BENCH_VERSION) {
  const bin = ensureS3sFs(version)
  const root = mkdtempSync(path.join(parent, 's3-ferry-s3sfs-'))
  mkdirSync(path.join(root, bucket))
  const credentials = { accessKeyId: 'bench' + randomBytes(4).toString('hex'), secretAccessKey: randomBytes(16).toString('hex') }
  const port = await freePort()
  const child = spawn(bin, ['--host', '127.0.0.1', '--port', String(port), '--access-key', credentials.accessKeyId, '--secret-key', credentials.secretAccessKey, root], {
    stdio: 'ignore',
  })
  for (let i = 0; i < 100; i++) {
    const up = await new Promise((r) => net.connect(port, '127.0.0.1').on('connect', function () { this.destroy(); r(true) }).on('error', () => r(false)))
    if (up) break
    await new Promise((r) => setTimeout(r, 100))
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
      await new Promise((r) => child.once('exit', r))
      rmSync(root, { recursive: true, force: true })
    },
  }
}

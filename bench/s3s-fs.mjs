// s3s-fs 0.14.1 (a small S3 server over a directory, in Rust) for the upload half of the benchmark: it costs
// ~8 CPU-s per GiB received here, against SeaweedFS's ~13, so on 2 cores it leaves the client more room. It
// lacks AbortMultipartUpload, ListMultipartUploads and If-Match, which the benchmark's uploads do not need; the
// downloads stay on SeaweedFS. Built with `cargo install` into .cache/ the first time (about 4 minutes).
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { ROOT } from '../scripts/setup.mjs'

const VERSION = '0.14.1'
const PREFIX = path.join(ROOT, '.cache', `s3s-fs-${VERSION}`)
const BIN = path.join(PREFIX, 'bin', 's3s-fs')

export function ensureS3sFs() {
  if (existsSync(BIN)) return BIN
  console.error(`[bench] building s3s-fs ${VERSION} into .cache/ (cargo install, about 4 minutes)`)
  const r = spawnSync('cargo', ['install', `s3s-fs@${VERSION}`, '--features', 'binary', '--locked', '--root', PREFIX], {
    stdio: 'inherit',
    env: { ...process.env, CARGO_TARGET_DIR: path.join(ROOT, '.cache', 's3s-fs-build') },
  })
  if (r.status !== 0 || !existsSync(BIN)) throw new Error('cargo install s3s-fs failed')
  rmSync(path.join(ROOT, '.cache', 's3s-fs-build'), { recursive: true, force: true })
  return BIN
}

async function freePort() {
  const srv = net.createServer()
  await new Promise((r) => srv.listen(0, '127.0.0.1', r))
  const { port } = srv.address()
  await new Promise((r) => srv.close(r))
  return port
}

/** Starts s3s-fs on loopback with bucket `bucket`, storing under `parent`; returns { endpoint, region,
 * credentials, pid, clear(prefix), stop() }. */
export async function startS3sFs(bucket, parent = os.tmpdir()) {
  const bin = ensureS3sFs()
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

// `npm run demo`: the main job, end to end, on a fresh machine. Starts the embedded local S3 server (SeaweedFS on
// loopback), makes a sample render-job bundle (a few large scene files and a thousand small textures), uploads it
// with live progress, downloads it to a new folder, verifies every byte and prints a summary.
//
//   npm run demo                      # defaults: 3 × 64 MiB + 1000 small files
//   npm run demo -- --small 5000 --large 2 --large-mib 256 --keep
import { randomFillSync } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { buildAddon, ensureNpmDeps } from './setup.mjs'
import { hashTree } from './tree.mjs'

const { values: opts } = parseArgs({
  options: {
    small: { type: 'string', default: '1000' },
    large: { type: 'string', default: '3' },
    'large-mib': { type: 'string', default: '64' },
    keep: { type: 'boolean', default: false },
    'skip-build': { type: 'boolean', default: false },
  },
})

ensureNpmDeps()
if (!opts['skip-build']) buildAddon({ release: true })
const { TransferClient } = await import('../index.js')
const { startS3Server } = await import('./s3-server.mjs')
const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3')

const MiB = 1024 * 1024
const fmtBytes = (n) => (n >= 1024 * MiB ? `${(n / 1024 / MiB).toFixed(2)} GiB` : n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`)

/** One progress line: rewritten in place on a terminal, a plain line every second otherwise. */
function progressPrinter(label) {
  const tty = process.stdout.isTTY
  let lastPlain = 0
  return {
    update(p) {
      const pct = p.totalBytes ? ((100 * p.transferredBytes) / p.totalBytes).toFixed(1) : '100.0'
      const line = `${label} ${pct.padStart(5)}%  ${fmtBytes(p.transferredBytes)} / ${fmtBytes(p.totalBytes)}  files ${p.completedFiles}/${p.totalFiles}  ${fmtBytes(p.bytesPerSecond)}/s`
      if (tty) {
        process.stdout.write('\r' + line.slice(0, (process.stdout.columns || 100) - 1).padEnd(Math.min(line.length, (process.stdout.columns || 100) - 1)))
      } else if (Date.now() - lastPlain >= 1000) {
        lastPlain = Date.now()
        console.log(line)
      }
    },
    done() {
      if (tty) process.stdout.write('\n')
    },
  }
}

function makeBundle(dir) {
  const buf = Buffer.alloc(MiB)
  for (let i = 0; i < Number(opts.large); i++) {
    const p = path.join(dir, 'scenes', `shot_${String(i).padStart(3, '0')}.blend`)
    mkdirSync(path.dirname(p), { recursive: true })
    const chunks = []
    for (let m = 0; m < Number(opts['large-mib']); m++) chunks.push(Buffer.from(randomFillSync(buf)))
    writeFileSync(p, Buffer.concat(chunks))
  }
  for (let i = 0; i < Number(opts.small); i++) {
    const p = path.join(dir, 'textures', `set_${i % 20}`, `tex_${i}.png`)
    mkdirSync(path.dirname(p), { recursive: true })
    writeFileSync(p, randomFillSync(Buffer.alloc(1024 + ((i * 7919) % (100 * 1024)))))
  }
}

const work = mkdtempSync(path.join(os.tmpdir(), 's3-ferry-demo-'))
const server = await startS3Server()
let failed = false
try {
  console.log(`\nLocal S3 server (SeaweedFS) at ${server.endpoint}`)
  const bucket = 'render-jobs'
  await new S3Client({ endpoint: server.endpoint, region: server.region, forcePathStyle: true, credentials: server.credentials }).send(
    new CreateBucketCommand({ Bucket: bucket }),
  )
  const bundle = path.join(work, 'bundle')
  makeBundle(bundle)
  console.log(`Sample job bundle: ${opts.large} × ${opts['large-mib']} MiB scenes + ${opts.small} textures in ${bundle}\n`)

  const client = new TransferClient({ endpoint: server.endpoint, region: server.region, forcePathStyle: true, credentials: server.credentials })
  const s = client.settings
  console.log(`pool ${s.maxPoolConnections} connections, ${s.uploadWorkers} upload / ${s.downloadWorkers} download workers, ${fmtBytes(s.partSize)} parts`)

  const upBar = progressPrinter('upload  ')
  const up = await client.upload({ bucket, localDir: bundle, keyPrefix: 'job-42/', onProgress: (p) => upBar.update(p) })
  upBar.done()
  const out = path.join(work, 'downloaded')
  const downBar = progressPrinter('download')
  const down = await client.download({ bucket, keyPrefix: 'job-42/', localDir: out, onProgress: (p) => downBar.update(p) })
  downBar.done()

  const a = hashTree(bundle)
  const b = hashTree(out)
  const mismatched = [...a].filter(([k, h]) => b.get(k) !== h).map(([k]) => k)
  const ok = mismatched.length === 0 && a.size === b.size
  console.log('\n| direction | files | bytes | seconds | MiB/s | files/s |')
  console.log('|---|---:|---:|---:|---:|---:|')
  for (const [name, r] of [['upload', up], ['download', down]]) {
    console.log(`| ${name} | ${r.files} | ${fmtBytes(r.bytes)} | ${r.seconds.toFixed(2)} | ${(r.bytesPerSecond / MiB).toFixed(1)} | ${(r.files / r.seconds).toFixed(0)} |`)
  }
  console.log(ok ? `\nVerified: all ${a.size} files byte-exact.` : `\nMISMATCH in ${mismatched.length} files, e.g. ${mismatched.slice(0, 5).join(', ')}`)
  failed = !ok
} catch (e) {
  failed = true
  console.error(`\ndemo failed: ${e.code ?? ''} ${e.message}`)
} finally {
  await server.stop()
  if (opts.keep) console.log(`kept ${work}`)
  else rmSync(work, { recursive: true, force: true })
}
process.exit(failed ? 1 : 0)

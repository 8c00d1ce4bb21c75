// `npm run bench:cancel`: how fast a cancel really stops. 5000 × 64 KiB files queued with the default pool
// (upload and download), and one 4 GiB multipart upload; abort after 1 s; the time from abort() to the promise settling, and what is left behind (multipart uploads
// still open on the server, temporary or partial files at the destination). Upload and download, several runs.
//
//   npm run bench:cancel -- --runs 5 --files 5000 --after-ms 1000
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync, existsSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { ROOT, buildAddon, ensureNpmDeps } from '../scripts/setup.mjs'

const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    files: { type: 'string', default: '5000' },
    'after-ms': { type: 'string', default: '1000' },
    'skip-build': { type: 'boolean', default: false },
  },
})
ensureNpmDeps()
if (!opts['skip-build']) buildAddon({ release: true })
const { TransferClient } = await import('../index.js')
const { startS3Server } = await import('../scripts/s3-server.mjs')
const { S3Client, CreateBucketCommand, ListMultipartUploadsCommand } = await import('@aws-sdk/client-s3')

const N = Number(opts.files)
const src = path.join(ROOT, '.cache', 'bench-data', `cancel-${N}`)
if (!existsSync(`${src}.complete`)) {
  for (let i = 0; i < N; i++) {
    const p = path.join(src, `d${i % 50}`, `f${i}.bin`)
    mkdirSync(path.dirname(p), { recursive: true })
    const block = createHash('sha512').update(String(i)).digest()
    writeFileSync(p, Buffer.alloc(64 * 1024, block))
  }
  writeFileSync(`${src}.complete`, '')
}

function leftovers(dir) {
  const out = { temp: 0, files: 0 }
  const walk = (d) => {
    if (!existsSync(d)) return
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith('.s3ferry-part')) out.temp++
      else {
        out.files++
        if (readFileSync(p).length !== 64 * 1024) out.partial = (out.partial ?? 0) + 1
      }
    }
  }
  walk(dir)
  return out
}

// A 4 GiB sparse file: a multipart upload that is still sending when the abort comes.
const big = path.join(ROOT, '.cache', 'bench-data', 'cancel-sparse-4g.bin')
writeFileSync(big, '')
truncateSync(big, 4 * 1024 * 1024 * 1024)
const DIRECTIONS = ['upload', 'download', 'multipart upload']

const server = await startS3Server()
const rows = []
try {
  const sdk = new S3Client({ endpoint: server.endpoint, region: server.region, forcePathStyle: true, credentials: server.credentials })
  await sdk.send(new CreateBucketCommand({ Bucket: 'cancel' }))
  const client = new TransferClient({ endpoint: server.endpoint, region: server.region, forcePathStyle: true, credentials: server.credentials })
  // A complete copy to download from.
  await client.upload({ bucket: 'cancel', localDir: src, keyPrefix: 'full/' })
  for (let run = 0; run < Number(opts.runs); run++) {
    for (const direction of DIRECTIONS) {
      const out = path.join(os.tmpdir(), `s3-ferry-cancel-${process.pid}-${run}`)
      const controller = new AbortController()
      const signal = controller.signal
      const p =
        direction === 'upload'
          ? client.upload({ bucket: 'cancel', localDir: src, keyPrefix: `up${run}/`, signal })
          : direction === 'download'
            ? client.download({ bucket: 'cancel', keyPrefix: 'full/', localDir: out, signal })
            : client.upload({ bucket: 'cancel', files: [{ path: big, key: `big${run}` }], signal })
      let settledAt = 0
      let outcome = 'resolved'
      const done = p.then(
        () => (settledAt = performance.now()),
        (e) => {
          settledAt = performance.now()
          outcome = e.name === 'AbortError' ? `aborted after ${e.summary.files} files` : `failed: ${e.code}`
        },
      )
      await new Promise((r) => setTimeout(r, Number(opts['after-ms'])))
      const t0 = performance.now()
      controller.abort()
      await done
      const ms = Math.max(0, settledAt - t0)
      const open = (await sdk.send(new ListMultipartUploadsCommand({ Bucket: 'cancel' }))).Uploads?.length ?? 0
      const left = direction === 'download' ? leftovers(out) : { temp: 0 }
      rows.push({ direction, ms, open, temp: left.temp, partial: left.partial ?? 0, outcome })
      console.error(`[cancel] ${direction} run ${run + 1}: settled ${ms.toFixed(2)} ms after abort (${outcome}); open uploads ${open}, temp files ${left.temp}, partial ${left.partial ?? 0}`)
      rmSync(out, { recursive: true, force: true })
    }
  }
} finally {
  await server.stop()
}
const lines = [
  `Cancel benchmark ${new Date().toISOString().slice(0, 10)}: ${N} × 64 KiB (and one 4 GiB file for the multipart row), default pool (50), abort after ${opts['after-ms']} ms, ${opts.runs} runs, SeaweedFS on loopback.`,
  '',
  '| direction | abort → settle median ms | max ms | open multipart uploads | temp files left | partial files |',
  '|---|---:|---:|---:|---:|---:|',
]
for (const d of DIRECTIONS) {
  const r = rows.filter((x) => x.direction === d)
  const ms = r.map((x) => x.ms).sort((a, b) => a - b)
  const med = ms.length % 2 ? ms[(ms.length - 1) / 2] : (ms[ms.length / 2 - 1] + ms[ms.length / 2]) / 2
  lines.push(`| ${d} | ${med.toFixed(2)} | ${Math.max(...ms).toFixed(2)} | ${Math.max(...r.map((x) => x.open))} | ${r.reduce((a, x) => a + x.temp, 0)} | ${r.reduce((a, x) => a + x.partial, 0)} |`)
}
console.log(lines.join('\n'))
mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true })
writeFileSync(path.join(ROOT, 'bench', 'results', 'cancel.md'), lines.join('\n') + '\n')

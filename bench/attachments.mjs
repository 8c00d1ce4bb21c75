// `npm run bench:attachments`: what job attachments save. A job bundle of N small files (1-100 KiB, a tenth of
// them sharing content) plus a few big ones, uploaded by content to a local SeaweedFS (release build):
//   first upload       nothing in S3, empty cache
//   re-upload          unchanged bundle, same cache: no file read, no request
//   re-upload, no cache  unchanged bundle, another machine: every file hashed, one HeadObject per content
//   one file changed   same cache: one file hashed, one HeadObject, one PutObject
//   first upload, checksums on   as the first, with `checksum: 'whenSupported'` (AWS's default): each small
//                      content's PUT carries its xxh128 as XXHASH128 (already computed), the big ones CRC64NVME
//   3-root job         the same bundle submitted by submitJobAttachments as a job of three asset roots (storage
//                      profile locations for scenes/, tex/ and tex/d1/), empty bucket and cache: one manifest each
//   outputs download   downloadJobOutputs of two tasks' output manifests (tex/d0-d49, tex/d50-d99, stored by
//                      uploadJobOutputs) into an empty directory: one listing, two manifests, every file fetched
// Requests are counted per S3 operation at a pass-through proxy (scripts/fault-proxy.mjs, no faults); times
// include that proxy (a Node process on the same 2 cores), so they are upper bounds.
//
//   npm run bench:attachments -- --files 10000 --runs 3
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { createHash } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { QUIET_SDK, ROOT, buildAddon, ensureNpmDeps } from '../scripts/setup.mjs'

const { values: opts } = parseArgs({
  options: {
    files: { type: 'string', default: '10000' },
    runs: { type: 'string', default: '3' },
    'skip-build': { type: 'boolean', default: false },
  },
})
ensureNpmDeps()
// The AWS SDK for JavaScript only sets up buckets here; its Node 22 notice is noise.
Object.assign(process.env, QUIET_SDK)
if (!opts['skip-build']) buildAddon({ release: true })
const { TransferClient } = await import('../index.js')
const { startS3Server } = await import('../scripts/s3-server.mjs')
const { startFaultProxy } = await import('../scripts/fault-proxy.mjs')
const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3')

const N = Number(opts.files)
const src = path.join(ROOT, '.cache', 'bench-data', `attachments-v2-${N}`)
if (!existsSync(`${src}.complete`)) {
  for (let i = 0; i < N; i++) {
    const p = path.join(src, 'tex', `d${i % 100}`, `t${i}.png`)
    mkdirSync(path.dirname(p), { recursive: true })
    const shared = i % 10 === 9 // the same few textures in several places
    const size = shared ? 4096 * (1 + (Math.floor(i / 10) % 5)) : 1024 + ((i * 7919) % (99 * 1024))
    const seed = shared ? `shared${Math.floor(i / 10) % 5}` : String(i)
    writeFileSync(p, Buffer.alloc(size, createHash('sha512').update(seed).digest()))
  }
  for (let i = 0; i < 3; i++) {
    const p = path.join(src, 'scenes', `shot${i}.blend`)
    mkdirSync(path.dirname(p), { recursive: true })
    writeFileSync(p, Buffer.alloc(200 * 1000 * 1000, createHash('sha512').update(`scene${i}`).digest()))
  }
  writeFileSync(`${src}.complete`, '')
}

const server = await startS3Server()
const proxy = await startFaultProxy(server.endpoint)
const sdk = new S3Client({ endpoint: server.endpoint, region: server.region, forcePathStyle: true, credentials: server.credentials })
const clientFor = (cacheDir, extra = {}) =>
  new TransferClient({ endpoint: proxy.endpoint, region: server.region, forcePathStyle: true, credentials: server.credentials, cacheDir, ...extra })

const scratch = mkdtempSync(path.join(os.tmpdir(), 's3-ferry-bench-attach-'))
const rows = []
const counts = {}
try {
  for (let run = 0; run < Number(opts.runs); run++) {
    const bucket = `attach-${run}-${Date.now().toString(36)}`
    await sdk.send(new CreateBucketCommand({ Bucket: bucket }))
    const cache = path.join(scratch, `cache-${run}`)
    const client = clientFor(cache)
    const request = { bucket, rootPrefix: 'farm/queue', localDir: src }
    const step = async (name, c, prepare, req = request, call = (cl, r) => cl.uploadContentAddressed(r)) => {
      if (prepare) prepare()
      const before = { ...proxy.stats.operations }
      const cpu = process.cpuUsage()
      const t = performance.now()
      const out = await call(c, req)
      const seconds = (performance.now() - t) / 1000
      const used = process.cpuUsage(cpu)
      const ops = Object.fromEntries(Object.entries(proxy.stats.operations).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => v > 0))
      rows.push({ name, seconds, cpu: (used.user + used.system) / 1e6 })
      counts[name] = { ops, hashed: out.summary.hashedFiles - (out.cachedHashes ?? 0), uploaded: out.summary.files, skipped: out.summary.skippedFiles }
    }
    await step('first upload', client)
    await step('re-upload (same cache)', client)
    await step('re-upload (no cache)', clientFor(path.join(scratch, `other-${run}`)))
    const changed = path.join(src, 'tex', 'd5', 't5.png')
    await step('one file changed', client, () => writeFileSync(changed, `changed ${run} ${Date.now()}`))
    const checked = `attach-sum-${run}-${Date.now().toString(36)}`
    await sdk.send(new CreateBucketCommand({ Bucket: checked }))
    const on = clientFor(path.join(scratch, `sums-${run}`), { checksum: 'whenSupported' })
    await step('first upload, checksums on', on, null, { ...request, bucket: checked })

    const job = `attach-job-${run}-${Date.now().toString(36)}`
    await sdk.send(new CreateBucketCommand({ Bucket: job }))
    const local = (name, dir) => ({ name, path: path.join(src, dir), type: 'LOCAL' })
    const ids = { bucket: job, rootPrefix: 'DeadlineCloud', farmId: 'farm-1', queueId: 'queue-1' }
    const submission = {
      ...ids,
      inputDirectories: [src],
      storageProfile: { fileSystemLocations: [local('Scenes', 'scenes'), local('Textures', 'tex'), local('Set', path.join('tex', 'd1'))] },
    }
    const submitter = clientFor(path.join(scratch, `job-${run}`))
    await step('3-root job', submitter, null, submission, (c, r) => c.submitJobAttachments(r))
    const texRoot = path.join(src, 'tex')
    const half = (from, to) => Array.from({ length: to - from }, (_, i) => `d${from + i}`)
    for (const [task, dirs] of [['task-1', half(0, 50)], ['task-2', half(50, 100)]]) {
      const files = dirs.flatMap((d) => readdirSync(path.join(texRoot, d)).map((f) => path.join(d, f)))
      await submitter.uploadJobOutputs({ ...ids, jobId: 'job-1', stepId: 'step-1', taskId: task, sessionActionId: `sessionaction-${task}`, rootPath: texRoot, localDir: texRoot, files })
    }
    const into = path.join(scratch, `outputs-${run}`)
    await step('outputs download', submitter, null, { ...ids, jobId: 'job-1', rootMap: { [texRoot]: into } }, (c, r) => c.downloadJobOutputs(r))
    rmSync(into, { recursive: true, force: true })
  }
} finally {
  await proxy.close()
  await server.stop()
  rmSync(scratch, { recursive: true, force: true })
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const names = [...new Set(rows.map((r) => r.name))]
const lines = [
  `Job attachments, ${N} files of 1-100 KiB (a tenth sharing content) + 3 × 200 MB, SeaweedFS on loopback, release build, median of ${opts.runs} runs (${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores):`,
  '',
  '| step | time | CPU (client + proxy) | files hashed | contents moved | files skipped | requests |',
  '|---|---|---|---|---|---|---|',
  ...names.map((n) => {
    const c = counts[n]
    const ops = Object.entries(c.ops).map(([k, v]) => `${v} ${k}`).join(', ') || 'none'
    const of = rows.filter((r) => r.name === n)
    return `| ${n} | ${median(of.map((r) => r.seconds)).toFixed(2)} s | ${median(of.map((r) => r.cpu)).toFixed(2)} s | ${c.hashed} | ${c.uploaded} | ${c.skipped} | ${ops} |`
  }),
]
console.log(lines.join('\n'))
mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true })
writeFileSync(path.join(ROOT, 'bench', 'results', 'attachments.md'), lines.join('\n') + '\n')

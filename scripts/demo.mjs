// `npm run demo`: the main job, end to end, on a fresh machine. Starts the embedded local S3 server (SeaweedFS on
// loopback), makes a sample render-job bundle (a few large scene files and a thousand small textures), uploads it
// with the `s3-ferry` command line and its live progress bar, downloads it to a new folder, verifies every byte
// and prints a summary.
//
//   npm run demo                      # defaults: 3 × 64 MiB + 1000 small files
//   npm run demo -- --small 5000 --large 2 --large-mib 256 --keep
//   node scripts/windows.mjs demo     # the same under Windows Node and Wine (server started on the Linux side)
import { randomFillSync } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { spawnSync } from 'node:child_process'
import { QUIET_SDK, ROOT, buildAddon, ensureNpmDeps } from './setup.mjs'
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
Object.assign(process.env, QUIET_SDK)
if (!opts['skip-build']) buildAddon({ release: true })
const { TransferClient } = await import('../index.js')
const { serverFromEnv, startS3Server } = await import('./s3-server.mjs')
const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3')

const MiB = 1024 * 1024
const fmtBytes = (n) => (n >= 1024 * MiB ? `${(n / 1024 / MiB).toFixed(2)} GiB` : n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`)

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
// A server the caller started (the Windows lane's `demo`, since Windows Node under Wine cannot start one), else ours.
const server = serverFromEnv() ?? (await startS3Server())
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
  console.log(`pool ${s.maxPoolConnections} connections, ${s.uploadWorkers} upload / ${s.downloadWorkers} download workers, ${fmtBytes(s.partSize)} parts\n`)

  // The transfers go through the s3-ferry command line, so the demo shows what a user sees: the live bar on a
  // terminal (plain lines otherwise), and Ctrl-C cancels cleanly.
  const env = { ...process.env, AWS_ACCESS_KEY_ID: server.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: server.credentials.secretAccessKey, AWS_REGION: server.region }
  const cli = (...args) => {
    const cmd = ['s3-ferry', ...args].map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ')
    console.log(`$ ${cmd.replace(server.endpoint, '$ENDPOINT')}`)
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 's3-ferry.mjs'), ...args], { stdio: 'inherit', env })
    if (r.status !== 0) throw Object.assign(new Error(`s3-ferry exited with ${r.status ?? r.signal}`), { code: 'ERR_CLI' })
  }
  const out = path.join(work, 'downloaded')
  cli('upload', '--endpoint', server.endpoint, '--path-style', bundle, `s3://${bucket}/job-42/`)
  cli('download', '--endpoint', server.endpoint, '--path-style', `s3://${bucket}/job-42/`, out)

  const a = hashTree(bundle)
  const b = hashTree(out)
  const mismatched = [...a].filter(([k, h]) => b.get(k) !== h).map(([k]) => k)
  const ok = mismatched.length === 0 && a.size === b.size
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

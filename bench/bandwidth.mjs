// `npm run bench:bandwidth`: the bandwidth cap's accuracy and the pool's peak connections.
// For caps of 1, 10 and 50 MB/s, uploads and downloads one file sized for >= 11 s at the cap and reports the
// achieved rate and its error. Then, with the default pool (50) behind a connection-counting proxy, uploads and
// downloads 5000 small files (one call, then three concurrent calls) and reports the peak connections.
import { mkdirSync, rmSync, writeFileSync, openSync, writeSync, closeSync, existsSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { ROOT, buildAddon, ensureNpmDeps } from '../scripts/setup.mjs'

const { values: opts } = parseArgs({
  options: { caps: { type: 'string', default: '1,10,50' }, seconds: { type: 'string', default: '11' }, 'skip-build': { type: 'boolean', default: false } },
})
ensureNpmDeps()
if (!opts['skip-build']) buildAddon({ release: true })
const { TransferClient } = await import('../index.js')
const { startS3Server } = await import('../scripts/s3-server.mjs')
const { startCountingProxy } = await import('../scripts/tcp-proxy.mjs')
const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3')

const work = path.join(os.tmpdir(), `s3-ferry-bw-${process.pid}`)
mkdirSync(work, { recursive: true })
const server = await startS3Server()
const lines = []
try {
  await new S3Client({ endpoint: server.endpoint, region: server.region, forcePathStyle: true, credentials: server.credentials }).send(
    new CreateBucketCommand({ Bucket: 'bandwidth' }),
  )
  const base = { endpoint: server.endpoint, region: server.region, forcePathStyle: true, credentials: server.credentials }
  lines.push(`Bandwidth cap ${new Date().toISOString().slice(0, 10)}, SeaweedFS on loopback, one file per cap sized for ${opts.seconds} s at the cap.`, '')
  lines.push('| cap MB/s | direction | bytes | seconds | achieved MB/s | error |', '|---:|---|---:|---:|---:|---:|')
  for (const capMB of opts.caps.split(',').map(Number)) {
    const cap = capMB * 1e6
    const size = Math.round(cap * Number(opts.seconds))
    const src = path.join(work, `f${capMB}.bin`)
    const fd = openSync(src, 'w')
    const block = Buffer.alloc(1 << 20, capMB)
    for (let off = 0; off < size; off += block.length) writeSync(fd, block, 0, Math.min(block.length, size - off))
    closeSync(fd)
    const client = new TransferClient({ ...base, maxBandwidth: cap })
    const up = await client.upload({ bucket: 'bandwidth', files: [{ path: src, key: `f${capMB}` }] })
    const down = await client.download({ bucket: 'bandwidth', objects: [{ key: `f${capMB}`, path: path.join(work, `back${capMB}.bin`) }] })
    for (const [dir, r] of [['upload', up], ['download', down]]) {
      const err = ((r.bytesPerSecond - cap) / cap) * 100
      lines.push(`| ${capMB} | ${dir} | ${r.bytes} | ${r.seconds.toFixed(2)} | ${(r.bytesPerSecond / 1e6).toFixed(3)} | ${err >= 0 ? '+' : ''}${err.toFixed(2)}% |`)
      console.error(lines.at(-1))
    }
    rmSync(src)
    rmSync(path.join(work, `back${capMB}.bin`))
  }

  // Peak connections with the default pool.
  const small = path.join(work, 'small')
  for (let i = 0; i < 5000; i++) {
    const p = path.join(small, `d${i % 50}`, `f${i}`)
    if (i % 100 === 0) mkdirSync(path.dirname(p), { recursive: true })
    mkdirSync(path.dirname(p), { recursive: true })
    writeFileSync(p, Buffer.alloc(1024 + (i % 2048), i & 0xff))
  }
  const proxy = await startCountingProxy(server.endpoint)
  const client = new TransferClient({ ...base, endpoint: proxy.endpoint })
  lines.push('', '| pool | workload | peak connections | connections opened |', '|---:|---|---:|---:|')
  const measure = async (label, fn) => {
    proxy.resetPeak()
    const before = proxy.stats.total
    await fn()
    lines.push(`| ${client.settings.maxPoolConnections} | ${label} | ${proxy.stats.peak} | ${proxy.stats.total - before} |`)
    console.error(lines.at(-1))
  }
  await measure('upload 5000 files', () => client.upload({ bucket: 'bandwidth', localDir: small, keyPrefix: 's/' }))
  await measure('download 5000 files', () => client.download({ bucket: 'bandwidth', keyPrefix: 's/', localDir: path.join(work, 'd1') }))
  await measure('3 concurrent calls × 5000 files', () =>
    Promise.all([
      client.upload({ bucket: 'bandwidth', localDir: small, keyPrefix: 't/' }),
      client.download({ bucket: 'bandwidth', keyPrefix: 's/', localDir: path.join(work, 'd2') }),
      client.download({ bucket: 'bandwidth', keyPrefix: 's/', localDir: path.join(work, 'd3') }),
    ]),
  )
  await proxy.close()
} finally {
  await server.stop()
  rmSync(work, { recursive: true, force: true })
}
console.log(lines.join('\n'))
mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true })
writeFileSync(path.join(ROOT, 'bench', 'results', 'bandwidth.md'), lines.join('\n') + '\n')

// `npm run bench`: s3-ferry side by side with its peers, one run, same local server, same data.
//
//   npm run bench                                   # W1 + W2, 3 runs each, s3-ferry vs lib-storage, OpenDAL, CRT
//   npm run bench -- --workloads W2 --runs 5 --tools s3-ferry   (W1-W4; --upload-server seaweedfs)
//   npm run bench -- --link 40,100,500 --workloads W4   # over a shaped line: 40 ms RTT, 100 Mbit/s up, 500 down
//
// Each transfer runs in its own process (bench/transfer.mjs) so its CPU seconds and peak RSS are its own; the
// server's CPU seconds are read from /proc, since on 2 cores client and server share the machine. Tools
// alternate within each run; the table reports medians and ratios to s3-ferry. Downloads are verified
// byte-exact against the source. Results also go to bench/results/latest.md. Memory is warmed before every
// download (--no-warm to skip); see warmMemory().
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, closeSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { QUIET_SDK, ROOT, buildAddon, ensureNpmDeps } from '../scripts/setup.mjs'
import { hashTree } from '../scripts/tree.mjs'

const { values: opts } = parseArgs({
  options: {
    workloads: { type: 'string', default: 'W1,W2' },
    runs: { type: 'string', default: '3' },
    tools: { type: 'string', default: 's3-ferry,lib-storage,opendal,crt' },
    'skip-build': { type: 'boolean', default: false },
    'no-warm': { type: 'boolean', default: false },
    'upload-server': { type: 'string', default: 's3s-fs' },
    // A real uplink between the tools and the servers (scripts/link-proxy.mjs): "rtt ms,up Mbit/s,down Mbit/s".
    link: { type: 'string' },
  },
})
const LINK = opts.link ? (([rttMs, upMbit, downMbit]) => ({ rttMs, upMbit, downMbit }))(opts.link.split(',').map(Number)) : null
if (LINK && Object.values(LINK).some((v) => !(v > 0))) throw new Error(`--link wants "rtt,up,down" (ms, Mbit/s, Mbit/s), got ${opts.link}`)
const MiB = 1024 * 1024
const RUNS = Number(opts.runs)
const TOOLS = opts.tools.split(',')

ensureNpmDeps()
// The lib-storage peer's SDK notice about Node 22 is not a result.
Object.assign(process.env, QUIET_SDK)
if (!opts['skip-build']) buildAddon({ release: true })

// The AWS CRT's S3 client is the speed reference of the AWS SDKs; its Python binding (PyPI `awscrt`) goes into
// a venv under .cache/ the first time (a wheel, no build).
const CRT_VERSION = '0.38.0'
const CRT_PYTHON = path.join(ROOT, '.cache', `awscrt-${CRT_VERSION}`, 'bin', 'python')
if (TOOLS.includes('crt') && !existsSync(CRT_PYTHON)) {
  console.error(`[bench] installing awscrt ${CRT_VERSION} into .cache/`)
  const venv = path.dirname(path.dirname(CRT_PYTHON))
  for (const [cmd, args] of [['python3', ['-m', 'venv', venv]], [path.join(venv, 'bin', 'pip'), ['install', '-q', '--disable-pip-version-check', `awscrt==${CRT_VERSION}`]]]) {
    const r = spawnSync(cmd, args, { stdio: 'inherit' })
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed`)
  }
}
// OpenDAL's Node binding goes into .cache/bench-peers/, not devDependencies: its lock entries name platform
// packages the registry does not serve for every platform, which `npm ci` refuses. Pinned to 0.49.2: newer
// builds need glibc 2.38, which this Debian lacks.
const OPENDAL_VERSION = '0.49.2'
const PEERS = path.join(ROOT, '.cache', 'bench-peers')
if (TOOLS.includes('opendal') && !existsSync(path.join(PEERS, 'node_modules', 'opendal', 'package.json'))) {
  console.error(`[bench] installing opendal ${OPENDAL_VERSION} into .cache/bench-peers/`)
  mkdirSync(PEERS, { recursive: true })
  writeFileSync(path.join(PEERS, 'package.json'), JSON.stringify({ private: true }))
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', `opendal@${OPENDAL_VERSION}`], { cwd: PEERS, stdio: 'inherit' })
  if (r.status !== 0) throw new Error('npm install opendal failed')
}

/** The command that runs one transfer of `tool` in its own process. */
const transferCommand = (tool, cfg) =>
  tool === 'crt'
    ? [CRT_PYTHON, [path.join(ROOT, 'bench', 'crt_transfer.py'), JSON.stringify(cfg)]]
    : [process.execPath, [path.join(ROOT, 'bench', 'transfer.mjs'), JSON.stringify(cfg)]]
const { startS3Server } = await import('../scripts/s3-server.mjs')
const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3')

// Deterministic data: a SHA-256 chain, so every run and every machine benchmarks the same bytes.
function fill(size, seed) {
  const out = Buffer.alloc(size)
  let h = createHash('sha256').update(String(seed)).digest()
  const block = Buffer.alloc(Math.min(size, MiB))
  for (let i = 0; i < block.length; i += 32) {
    h = createHash('sha256').update(h).digest()
    h.copy(block, i)
  }
  for (let i = 0; i < size; i += block.length) {
    block.copy(out, i, 0, Math.min(block.length, size - i))
    out.writeUInt32LE((i / block.length) >>> 0, i)
  }
  return out
}

const WORKLOADS = {
  W1: { title: 'W1 one 1 GiB file', files: () => [['scene.bin', 1024 * MiB]] },
  W2: { title: 'W2 2000 × 64 KiB', files: () => Array.from({ length: 2000 }, (_, i) => [`t/${i % 40}/f${i}.bin`, 64 * 1024]) },
  W3: { title: 'W3 200 × 4 MiB', files: () => Array.from({ length: 200 }, (_, i) => [`m/f${i}.bin`, 4 * MiB]) },
  // A render job's bundle: a few big scenes and thousands of small textures (1-100 KiB, spread evenly).
  W4: {
    title: 'W4 3 × 200 MB + 5000 × 1-100 KiB',
    files: () => [
      ...Array.from({ length: 3 }, (_, i) => [`scenes/s${i}.bin`, 200_000_000]),
      ...Array.from({ length: 5000 }, (_, i) => [`tex/${i % 50}/t${i}.bin`, 1024 * (1 + ((i * 7919) % 100))]),
    ],
  },
}

function ensureData(name) {
  const dir = path.join(ROOT, '.cache', 'bench-data', name)
  // The marker sits beside the data, not in it, so it is not part of the workload.
  const marker = `${dir}.complete`
  if (existsSync(marker)) return dir
  rmSync(dir, { recursive: true, force: true })
  console.error(`[bench] generating ${name} in ${path.relative(ROOT, dir)}`)
  WORKLOADS[name].files().forEach(([rel, size], i) => {
    const p = path.join(dir, rel)
    mkdirSync(path.dirname(p), { recursive: true })
    const fd = openSync(p, 'w')
    for (let off = 0; off < size; off += 64 * MiB) writeSync(fd, fill(Math.min(64 * MiB, size - off), `${name}/${i}/${off}`))
    closeSync(fd)
  })
  writeFileSync(marker, '')
  return dir
}

/** utime + stime of a process, in seconds. */
function cpuOf(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

// In a VM, the first touch of a guest page costs a host-side fault, and freed pages go cold again after a while.
// Measured here, one 1 GiB download: 1.4 s into warm pages, 4.6 s into cold ones (all of the difference kernel
// time copying into the page cache), for every tool alike. Left alone, whichever tool writes into the pages the
// previous tool just freed wins. So right before every download, a child process touches and frees as much
// memory as the download will fill, and every tool starts from the same warm state.
function warmMemory(bytes) {
  const mib = Math.ceil(bytes / MiB) + 256
  spawnSync(process.execPath, ['-e', `const keep = []; for (let i = 0; i < ${mib}; i += 256) keep.push(Buffer.alloc(256 * 2 ** 20, 1))`])
}

// This VM hands freed guest pages back to the host at once (free page reporting, `min_free_ms = 0`), so the
// next allocation faults them in again from the host: a download's page cache then costs twice the CPU, and
// whichever tool runs after a big `rm` pays it. Where the knob exists and is writable, freed pages are kept for
// ten minutes during the run (restored after), so warmMemory() works and every tool writes into warm pages.
const PAGE_REPORTING = '/sys/module/page_reporting/parameters/min_free_ms'
let pageReportingWas = null
try {
  pageReportingWas = readFileSync(PAGE_REPORTING, 'utf8').trim()
  writeFileSync(PAGE_REPORTING, '600000')
} catch {
  pageReportingWas = null
}
const restorePageReporting = () => pageReportingWas !== null && writeFileSync(PAGE_REPORTING, pageReportingWas)
process.on('exit', restorePageReporting)

// The server per direction, so that it is not what the figure measures: SeaweedFS spends ~13 CPU-s per GiB
// received and ~1.3 per GiB sent; s3s-fs ~8 per GiB received. Uploads go to s3s-fs (unless --upload-server
// seaweedfs), downloads come from SeaweedFS: every tool downloads the same objects, stored once per workload by
// s3-ferry with full-object CRC64NVME checksums, so the tools that verify them (s3-ferry, the CRT) pay for it.
const bucket = 'bench'
// Downloads (and s3s-fs's uploads) land on a tmpfs where there is one: on this VM's ext4, creating files
// shortly after thousands were deleted sends the inode allocator scanning past "recently deleted" inodes, and
// the cost grew run after run for every tool (W2 downloads: 0.9 s of CPU in the first run, 2.4 s in the third).
// The disk is not what the benchmark compares.
const SCRATCH_ROOT = existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir()
const server = await startS3Server()
const { BENCH_VERSION, startS3sFs } = await import('../scripts/s3s-fs.mjs')
const uploadServer = opts['upload-server'] === 's3s-fs' ? await startS3sFs(bucket, SCRATCH_ROOT) : server
const SERVER_NAMES = { upload: uploadServer === server ? 'SeaweedFS 4.48' : `s3s-fs ${BENCH_VERSION}`, download: 'SeaweedFS 4.48' }
// Over a shaped line, each server is reached through its own link proxy (the tools' only way to it), each in a
// process of its own: this one blocks in spawnSync while a transfer runs.
const { spawnLinkProxy } = await import('../scripts/link-proxy.mjs')
const links = LINK ? { upload: await spawnLinkProxy(uploadServer.endpoint, LINK), download: await spawnLinkProxy(server.endpoint, LINK) } : null
const results = [] // { workload, direction, tool, seconds, cpuSeconds, maxRssMiB, serverCpu, files, bytes }
try {
  await new S3Client({ endpoint: server.endpoint, region: server.region, forcePathStyle: true, credentials: server.credentials }).send(
    new CreateBucketCommand({ Bucket: bucket }),
  )
  const { TransferClient } = await import('../index.js')
  const seeder = new TransferClient({ endpoint: server.endpoint, region: server.region, forcePathStyle: true, credentials: server.credentials, checksum: 'whenSupported' })
  const scratch = path.join(SCRATCH_ROOT, `s3-ferry-bench-${process.pid}`)
  for (const w of opts.workloads.split(',')) {
    const src = ensureData(w)
    const srcHashes = hashTree(src)
    const workloadBytes = WORKLOADS[w].files().reduce((a, [, size]) => a + size, 0)
    const seeded = `seed/${w}/`
    await seeder.upload({ bucket, localDir: src, keyPrefix: seeded })
    // One unmeasured upload first: the first upload into a freshly started server ran ~40% slower, whichever
    // tool made it.
    if (uploadServer !== server) {
      const warm = new TransferClient({ endpoint: uploadServer.endpoint, region: uploadServer.region, forcePathStyle: true, credentials: uploadServer.credentials })
      await warm.upload({ bucket, localDir: src, keyPrefix: `warmup/${w}/` })
      uploadServer.clear(`warmup/${w}/`)
    }
    for (let run = 0; run < RUNS; run++) {
      // Rotate who goes first, so no tool always follows the same one.
      const order = TOOLS.map((_, i) => TOOLS[(i + run) % TOOLS.length])
      for (const tool of order) {
        for (const direction of ['upload', 'download']) {
          const target = direction === 'upload' ? uploadServer : server
          const prefix = direction === 'upload' ? `${tool}/${w}/r${run}/` : seeded
          const localDir = direction === 'upload' ? src : path.join(scratch, `${tool}-${w}-${run}`)
          const endpoint = links ? links[direction].endpoint : target.endpoint
          const cfg = { tool, direction, endpoint, region: target.region, credentials: target.credentials, bucket, prefix, localDir }
          if (direction === 'download' && !opts['no-warm']) warmMemory(workloadBytes)
          const s0 = cpuOf(target.pid)
          const r = spawnSync(...transferCommand(tool, cfg), {
            encoding: 'utf8',
            env: { ...process.env, AWS_EC2_METADATA_DISABLED: 'true' },
          })
          const serverCpu = cpuOf(target.pid) - s0
          if (direction === 'upload' && target.clear) target.clear(prefix)
          const line = r.stdout.trim().split('\n').pop()
          if (r.status !== 0 || !line?.startsWith('{')) throw new Error(`${tool} ${direction} ${w} failed:\n${r.stderr}`)
          const m = JSON.parse(line)
          if (direction === 'download') {
            const got = hashTree(localDir)
            const bad = [...srcHashes].filter(([k, h]) => got.get(k) !== h).length
            if (bad || got.size !== srcHashes.size) throw new Error(`${tool} download of ${w} is not byte-exact (${bad} files differ)`)
            rmSync(localDir, { recursive: true, force: true })
          }
          results.push({ workload: w, direction, tool, serverCpu, ...m })
          console.error(`[bench] ${w} ${direction} ${tool} run ${run + 1}: ${m.seconds.toFixed(2)} s, cpu ${m.cpuSeconds.toFixed(2)} s, rss ${m.maxRssMiB.toFixed(0)} MiB, server cpu ${serverCpu.toFixed(2)} s`)
        }
      }
    }
  }
} finally {
  rmSync(path.join(SCRATCH_ROOT, `s3-ferry-bench-${process.pid}`), { recursive: true, force: true })
  if (links) await Promise.all(Object.values(links).map((l) => l.close()))
  await server.stop()
  if (uploadServer !== server) await uploadServer.stop()
  restorePageReporting()
}

const cpuModel = (readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) || [])[1] || 'unknown CPU'
const lines = [
  `Benchmark ${new Date().toISOString().slice(0, 10)} on ${os.cpus().length} cores (${cpuModel}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; servers on loopback: uploads to ${SERVER_NAMES.upload}, downloads from ${SERVER_NAMES.download}${SCRATCH_ROOT === '/dev/shm' ? ', into tmpfs' : ''}${LINK ? `; every tool through a shaped line (scripts/link-proxy.mjs): ${LINK.rttMs} ms RTT, ${LINK.upMbit} Mbit/s up, ${LINK.downMbit} Mbit/s down, shared by all its connections` : ''}; median of ${RUNS} runs${pageReportingWas !== null ? '; free page reporting held off during the run' : ''}.`,
  '',
  `| workload | direction | tool | seconds | MB/s | files/s | ratio (s3-ferry ÷ tool, throughput) | client CPU s | server CPU s | peak RSS MiB |${LINK ? ' of the line |' : ''}`,
  `|---|---|---|---:|---:|---:|---:|---:|---:|---:|${LINK ? '---:|' : ''}`,
]
for (const w of opts.workloads.split(',')) {
  for (const direction of ['upload', 'download']) {
    const rows = TOOLS.map((tool) => {
      const rs = results.filter((r) => r.workload === w && r.direction === direction && r.tool === tool)
      return { tool, seconds: median(rs.map((r) => r.seconds)), cpu: median(rs.map((r) => r.cpuSeconds)), server: median(rs.map((r) => r.serverCpu)), rss: Math.max(...rs.map((r) => r.maxRssMiB)), files: rs[0].files, bytes: rs[0].bytes }
    })
    const ours = rows.find((r) => r.tool === 's3-ferry')
    for (const r of rows) {
      const ratio = ours ? (r.seconds / ours.seconds).toFixed(2) + '×' : '—'
      // The share of the line's capacity the payload used (headers and requests not counted as payload).
      const line = LINK ? ` ${((100 * r.bytes) / r.seconds / ((direction === 'upload' ? LINK.upMbit : LINK.downMbit) * 1e6 / 8)).toFixed(0)}% |` : ''
      lines.push(`| ${WORKLOADS[w].title} | ${direction} | ${r.tool} | ${r.seconds.toFixed(2)} | ${(r.bytes / 1e6 / r.seconds).toFixed(1)} | ${(r.files / r.seconds).toFixed(0)} | ${r.tool === 's3-ferry' ? '1.00×' : ratio} | ${r.cpu.toFixed(2)} | ${r.server.toFixed(2)} | ${r.rss.toFixed(0)} |${line}`)
    }
  }
}
const table = lines.join('\n')
console.log(table)
mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true })
writeFileSync(path.join(ROOT, 'bench', 'results', LINK ? 'link.md' : 'latest.md'), table + '\n')

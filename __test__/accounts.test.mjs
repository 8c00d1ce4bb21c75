// What real AWS accounts need, against the real local server: object settings stored as given (read back with the
// AWS SDK), SSE-C enforced by the server, expected bucket owner and KMS checked at the test proxy (the local server
// ignores the owner header and has no KMS: the proxy refuses as S3 would, and the test asserts every request that
// was sent), credentials from a function that expire and are refreshed mid-transfer (the proxy refuses a key past
// its expiry), a provider from @aws-sdk/credential-providers unchanged, anonymous reads of a public bucket, and
// ERR_CREDENTIALS naming what was tried.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes, createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { CreateBucketCommand, GetObjectTaggingCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { fromEnv } from '@aws-sdk/credential-providers'
import { TransferClient } from '../index.js'
import { MiB, allFiles, buildEnv, bytes, clientOptions, listKeys, makeBucket, openUploads, s3, server, tempDir, treeHashes, writeTree } from './helpers.mjs'
import { startFaultProxy } from '../scripts/fault-proxy.mjs'
import { PUBLIC_BUCKET, rotatingCredentials } from '../scripts/s3-server.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const OWNER = '111122223333'
// Small parts, so a 12 MiB file is a multipart upload of 3 parts.
const SMALL_PARTS = { partSize: 5 * MiB, multipartThreshold: 5 * MiB }

async function proxy(options) {
  return startFaultProxy((await server()).endpoint, { log: true, ...options })
}

const head = async (bucket, key, extra = {}) => (await s3()).send(new HeadObjectCommand({ Bucket: bucket, Key: key, ...extra }))
const tags = async (bucket, key) =>
  Object.fromEntries((await (await s3()).send(new GetObjectTaggingCommand({ Bucket: bucket, Key: key }))).TagSet.map((t) => [t.Key, t.Value]))
const sent = (p, op) => p.stats.requestLog.filter((r) => r.op === op)

test('object settings are stored as given, on single and multipart uploads, a file replacing the request', async () => {
  const bucket = await makeBucket('settings')
  const dir = tempDir()
  writeTree(dir, { 'a.png': bytes(1000, 1), 'b.json': bytes(10, 2), 'c.unknownext': bytes(10, 3), 'big.exr': bytes(12 * MiB, 4) })
  const p = await proxy()
  try {
    const client = new TransferClient(await clientOptions({ endpoint: p.endpoint, ...SMALL_PARTS }))
    const file = (name, extra = {}) => ({ path: path.join(dir, name), key: `job/${name}`, ...extra })
    const summary = await client.upload({
      bucket,
      files: [
        file('a.png'),
        file('b.json', { contentType: 'application/x-scene', metadata: { owner: 'file' }, tagging: { kind: 'file' } }),
        file('c.unknownext'),
        file('big.exr'),
      ],
      cacheControl: 'max-age=3600',
      contentDisposition: 'attachment; filename="scene.bin"',
      contentEncoding: 'identity',
      contentLanguage: 'en',
      metadata: { job: '42', 'render-node': 'ws 7' },
      tagging: { project: 'alpha beta', 'cost&center': 'r/d=1' },
      storageClass: 'STANDARD_IA',
      sse: 'AES256',
    })
    assert.equal(summary.files, 4)
    assert.equal(sent(p, 'CreateMultipartUpload').length, 1)
    assert.equal(sent(p, 'PutObject').length, 3)

    const png = await head(bucket, 'job/a.png')
    assert.equal(png.ContentType, 'image/png', 'guessed from the extension')
    assert.equal(png.CacheControl, 'max-age=3600')
    assert.equal(png.ContentDisposition, 'attachment; filename="scene.bin"')
    assert.equal(png.ContentEncoding, 'identity')
    assert.equal(png.ContentLanguage, 'en')
    assert.deepEqual(png.Metadata, { job: '42', 'render-node': 'ws 7' })
    assert.equal(png.StorageClass, 'STANDARD_IA')
    assert.equal(png.ServerSideEncryption, 'AES256')
    assert.deepEqual(await tags(bucket, 'job/a.png'), { project: 'alpha beta', 'cost&center': 'r/d=1' })

    const json = await head(bucket, 'job/b.json')
    assert.equal(json.ContentType, 'application/x-scene', "the file's own content type")
    assert.deepEqual(json.Metadata, { owner: 'file' }, "the file's metadata replaces the request's")
    assert.deepEqual(await tags(bucket, 'job/b.json'), { kind: 'file' })
    assert.equal(json.CacheControl, 'max-age=3600', 'fields the file does not set come from the request')

    // An unknown extension: application/octet-stream, as the SDK sends by default.
    assert.equal((await head(bucket, 'job/c.unknownext')).ContentType, 'application/octet-stream')

    const big = await head(bucket, 'job/big.exr')
    assert.equal(big.ContentLength, 12 * MiB)
    assert.equal(big.ContentType, 'image/x-exr')
    assert.deepEqual(big.Metadata, { job: '42', 'render-node': 'ws 7' })
    assert.equal(big.StorageClass, 'STANDARD_IA')
    assert.deepEqual(await tags(bucket, 'job/big.exr'), { project: 'alpha beta', 'cost&center': 'r/d=1' })
    // The settings went with CreateMultipartUpload, not with the parts.
    const create = sent(p, 'CreateMultipartUpload')[0].headers
    assert.equal(create['x-amz-storage-class'], 'STANDARD_IA')
    assert.equal(create['x-amz-meta-job'], '42')
    assert.ok(sent(p, 'UploadPart').every((r) => r.headers['x-amz-meta-job'] === undefined))
  } finally {
    await p.close()
  }
})

test('a directory upload guesses the type per file; guessContentType: false sends application/octet-stream', async () => {
  const bucket = await makeBucket('settings')
  const dir = tempDir()
  writeTree(dir, { 'x.png': 'p', 'y.txt': 't' })
  const p = await proxy()
  try {
    const client = new TransferClient(await clientOptions({ endpoint: p.endpoint }))
    await client.upload({ bucket, localDir: dir, keyPrefix: 'guess' })
    await client.upload({ bucket, localDir: dir, keyPrefix: 'plain', guessContentType: false })
    const types = Object.fromEntries(sent(p, 'PutObject').map((r) => [new URL(r.url, 'http://x').pathname.split('/').slice(2).join('/'), r.headers['content-type']]))
    assert.deepEqual(types, { 'guess/x.png': 'image/png', 'guess/y.txt': 'text/plain', 'plain/x.png': 'application/octet-stream', 'plain/y.txt': 'application/octet-stream' })
  } finally {
    await p.close()
  }
})

test('acl, KMS encryption and the bucket key are sent with PutObject and CreateMultipartUpload', async () => {
  const bucket = await makeBucket('kms')
  const dir = tempDir()
  writeTree(dir, { 'small.bin': bytes(100, 1), 'big.bin': bytes(12 * MiB, 2) })
  // The local server has no KMS: the proxy answers KMS requests as S3 does for a key the caller cannot use.
  const refuse = (req) =>
    req.headers['x-amz-server-side-encryption'] === 'aws:kms'
      ? { status: 400, code: 'KMS.NotFoundException', message: 'Invalid keyId alias/render-jobs' }
      : null
  const p = await proxy({ refuse })
  try {
    const client = new TransferClient(await clientOptions({ endpoint: p.endpoint, ...SMALL_PARTS }))
    const files = ['small.bin', 'big.bin'].map((n) => ({ path: path.join(dir, n), key: n }))
    await client.upload({ bucket, files, acl: 'bucket-owner-full-control' })
    for (const op of ['PutObject', 'CreateMultipartUpload']) {
      assert.equal(sent(p, op)[0].headers['x-amz-acl'], 'bucket-owner-full-control', op)
    }

    p.stats.requestLog.length = 0
    // continueOnError, so the first refusal does not stop the other file before its request goes out.
    await assert.rejects(
      client.upload({ bucket, files, continueOnError: true, sse: 'aws:kms', sseKmsKeyId: 'alias/render-jobs', bucketKeyEnabled: true }),
      (e) => {
        assert.deepEqual(e.failures.map((f) => [f.key, f.code, f.statusCode]).sort(), [['big.bin', 'KMS.NotFoundException', 400], ['small.bin', 'KMS.NotFoundException', 400]])
        return true
      },
    )
    for (const op of ['PutObject', 'CreateMultipartUpload']) {
      const h = sent(p, op)[0]?.headers
      assert.ok(h, `${op} was sent`)
      assert.equal(h['x-amz-server-side-encryption'], 'aws:kms', op)
      assert.equal(h['x-amz-server-side-encryption-aws-kms-key-id'], 'alias/render-jobs', op)
      assert.equal(h['x-amz-server-side-encryption-bucket-key-enabled'], 'true', op)
    }
    // Refused before anything was created: no upload to abort, nothing new stored.
    assert.equal(sent(p, 'UploadPart').length, 0)
    assert.deepEqual(await openUploads(bucket), [])
  } finally {
    await p.close()
  }
})

test('expectedBucketOwner goes with every request of a call; a bucket of another account refuses before data is sent', async () => {
  const bucket = await makeBucket('owner')
  const dir = tempDir()
  writeTree(path.join(dir, 'src'), { 'a.bin': bytes(100, 1), 'b/c.bin': bytes(12 * MiB, 2) })
  // S3's check, done by the proxy: a request naming another owner is refused with 403 AccessDenied.
  const refuse = (req) => {
    const owner = req.headers['x-amz-expected-bucket-owner']
    return owner !== undefined && owner !== OWNER ? { status: 403, code: 'AccessDenied', message: 'Access Denied' } : null
  }
  const p = await proxy({ refuse })
  try {
    const client = new TransferClient(await clientOptions({ endpoint: p.endpoint, ...SMALL_PARTS }))
    const owned = { bucket, expectedBucketOwner: OWNER }
    await client.upload({ ...owned, localDir: path.join(dir, 'src'), keyPrefix: 'job', skipUnchanged: true })
    await client.download({ ...owned, keyPrefix: 'job', localDir: path.join(dir, 'out') })
    await client.uploadContentAddressed({ ...owned, rootPrefix: 'ja', localDir: path.join(dir, 'src'), manifestKey: 'ja/m.json' })
    await client.downloadManifest({ ...owned, rootPrefix: 'ja', manifestKey: 'ja/m.json', localDir: path.join(dir, 'out2') })
    assert.deepEqual(treeHashes(path.join(dir, 'out')), treeHashes(path.join(dir, 'src')))
    const ops = new Set(p.stats.requestLog.map((r) => r.op))
    for (const op of ['ListObjects', 'PutObject', 'CreateMultipartUpload', 'UploadPart', 'CompleteMultipartUpload', 'GetObject', 'HeadObject']) {
      assert.ok(ops.has(op), `${op} was among the requests`)
    }
    const without = p.stats.requestLog.filter((r) => r.headers['x-amz-expected-bucket-owner'] !== OWNER)
    assert.deepEqual(without.map((r) => r.op), [], 'every request carried the expected owner')

    p.stats.requestLog.length = 0
    const stored = (await listKeys(bucket)).length
    await assert.rejects(
      client.upload({ bucket, expectedBucketOwner: '444455556666', localDir: path.join(dir, 'src'), keyPrefix: 'other' }),
      (e) => e.code === 'AccessDenied' && e.statusCode === 403,
    )
    assert.equal(p.stats.refused, p.stats.requestLog.length, 'every request of that call was refused')
    assert.equal((await listKeys(bucket)).length, stored, 'nothing stored')
    assert.deepEqual(await openUploads(bucket), [])
  } finally {
    await p.close()
  }
})

test('SSE-C: stored encrypted with the key, unreadable without it, downloaded with it byte-exact', async () => {
  const bucket = await makeBucket('ssec')
  const dir = tempDir()
  writeTree(path.join(dir, 'src'), { 'small.bin': bytes(1000, 1), 'big.bin': bytes(12 * MiB, 2) })
  const key = randomBytes(32)
  const md5 = createHash('md5').update(key).digest('base64')
  const client = new TransferClient(await clientOptions(SMALL_PARTS))
  await client.upload({ bucket, localDir: path.join(dir, 'src'), keyPrefix: 'enc', sseCustomerKey: key })

  // The server holds them encrypted: without the key, no HEAD; with it, the key's MD5 is what it recorded.
  await assert.rejects(head(bucket, 'enc/small.bin'))
  const withKey = { SSECustomerAlgorithm: 'AES256', SSECustomerKey: key.toString('base64'), SSECustomerKeyMD5: md5 }
  for (const k of ['enc/small.bin', 'enc/big.bin']) {
    assert.match((await head(bucket, k, withKey)).SSECustomerKeyMD5, new RegExp(md5.replace(/[+/]/g, '\\$&')))
  }

  // Downloads with the key as base64 text (ranged parts of the big one included), and a re-upload that skips
  // unchanged files by HEAD with the key.
  const out = path.join(dir, 'out')
  const down = await client.download({ bucket, keyPrefix: 'enc', localDir: out, sseCustomerKey: key.toString('base64') })
  assert.equal(down.files, 2)
  assert.deepEqual(treeHashes(out), treeHashes(path.join(dir, 'src')))
  const files = ['small.bin', 'big.bin'].map((n) => ({ path: path.join(dir, 'src', n), key: `enc/${n}` }))
  const again = await client.upload({ bucket, files, skipUnchanged: true, sseCustomerKey: key })
  assert.equal(again.skippedFiles, 2)

  // Without the key the download fails, and leaves no file.
  const none = path.join(dir, 'none')
  await assert.rejects(client.download({ bucket, keyPrefix: 'enc', localDir: none }), (e) => e.statusCode === 400)
  assert.deepEqual(allFiles(none).filter((f) => !f.endsWith('/')), [])
  assert.deepEqual(await openUploads(bucket), [])
})

test('bad object settings are ERR_INVALID_ARG_VALUE naming the field, before any request', async () => {
  const p = await proxy()
  try {
    const client = new TransferClient(await clientOptions({ endpoint: p.endpoint }))
    const dir = tempDir()
    writeTree(dir, { 'a.bin': 'x' })
    const files = [{ path: path.join(dir, 'a.bin'), key: 'a' }]
    const cases = [
      [{ storageClass: 'CHEAP' }, /^storageClass 'CHEAP' is not one of/],
      [{ acl: 'public' }, /^acl 'public' is not one of/],
      [{ sse: 'aes256' }, /^sse 'aes256' is not one of AES256, aws:kms, aws:kms:dsse/],
      [{ sseKmsKeyId: 'alias/k' }, /^sseKmsKeyId needs sse 'aws:kms'/],
      [{ metadata: { big: 'x'.repeat(2046) } }, /^metadata is 2049 bytes/],
      [{ metadata: { 'bad name': 'x' } }, /^metadata name 'bad name' is not a valid header name/],
      [{ metadata: { note: 'café' } }, /^metadata\['note'\] must be printable ASCII/],
      [{ metadata: { Job: '1', job: '2' } }, /^metadata has 'job' twice/],
      [{ sse: 'AES256', sseCustomerKey: randomBytes(32) }, /^give either sse or sseCustomerKey/],
      [{ sse: 'aws:kms:dsse', bucketKeyEnabled: true }, /^bucketKeyEnabled needs sse 'aws:kms'/],
      [{ tagging: Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, 'v'])) }, /^tagging has 11 tags/],
      [{ cacheControl: 'a\nb' }, /^cacheControl must be printable ASCII/],
      [{ sseCustomerKey: randomBytes(16) }, /^sseCustomerKey must be a 256-bit AES key \(32 bytes\), got 16 bytes/],
      [{ sseCustomerKey: 'not-a-key' }, /^sseCustomerKey is not base64/],
      [{ expectedBucketOwner: '12345' }, /^expectedBucketOwner must be a 12-digit AWS account id, got '12345'/],
      [{ files: [{ ...files[0], storageClass: 'NOPE' }] }, /^files\[0\]\.storageClass 'NOPE'/],
    ]
    for (const [extra, message] of cases) {
      await assert.rejects(client.upload({ bucket: 'b', files, ...extra }), (e) => {
        assert.equal(e.code, 'ERR_INVALID_ARG_VALUE', JSON.stringify(Object.keys(extra)))
        assert.match(e.message, message)
        return true
      })
    }
    await assert.rejects(client.upload({ bucket: 'b', files: [{ ...files[0], sse: 'AES256' }] }), /files\[0\] has no option 'sse'/)
    await assert.rejects(client.download({ bucket: 'b', localDir: dir, expectedBucketOwner: 'x' }), { code: 'ERR_INVALID_ARG_VALUE' })
    assert.equal(p.stats.requests, 0)
  } finally {
    await p.close()
  }
})

test('credentials from a function are refreshed before they expire, during one long upload', async (t) => {
  const s = await server()
  const keys = rotatingCredentials(s.credentials)
  const expiry = new Map() // access key id → when the proxy stops taking it
  let calls = 0
  const LIFETIME = 2000
  const provider = async () => {
    const c = keys[calls++ % keys.length]
    const expiration = new Date(Date.now() + LIFETIME)
    expiry.set(c.accessKeyId, expiration.getTime())
    return { ...c, expiration }
  }
  // S3 refuses a temporary key past its expiry; so does the proxy (and any key it did not hand out).
  const keyOf = (req) => /Credential=([^/]+)\//.exec(req.headers.authorization ?? '')?.[1]
  const refuse = (req) => {
    const until = expiry.get(keyOf(req))
    return until === undefined || Date.now() > until ? { status: 400, code: 'ExpiredToken', message: 'The provided token has expired.' } : null
  }
  const p = await proxy({ refuse })
  try {
    const bucket = await makeBucket('refresh')
    const dir = tempDir()
    writeTree(path.join(dir, 'src'), Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`tex${i}.bin`, bytes(MiB, i)])))
    // 40 MiB at 8 MiB/s, two requests at a time (each signed when it is sent): about 5 s, past two lifetimes of
    // the credentials.
    const options = await clientOptions({ endpoint: p.endpoint, maxPoolConnections: 2, maxBandwidth: 8 * MiB })
    const client = new TransferClient({ ...options, credentials: provider })
    const started = Date.now()
    const up = await client.upload({ bucket, localDir: path.join(dir, 'src') })
    const seconds = (Date.now() - started) / 1000
    assert.equal(up.files, 40)
    assert.equal(p.stats.refused, 0, 'no request was signed with an expired key')
    const used = new Set(p.stats.requestLog.map(keyOf))
    assert.ok(used.size >= 3, `the upload (${seconds} s) was signed with ${used.size} keys, one per refresh`)
    // Cached between refreshes (about every LIFETIME / 2), not asked for per request.
    assert.ok(calls <= Math.ceil((seconds * 1000) / (LIFETIME / 2)) + 1, `${calls} calls in ${seconds} s`)
    assert.ok(p.stats.requests > calls * 2, `${p.stats.requests} requests, ${calls} calls`)
    t.diagnostic(`${seconds} s, ${p.stats.requests} requests, ${calls} calls of the function, ${used.size} keys used, ${p.stats.refused} refused`)
    assert.ok(calls < keys.length, `${calls} calls: more than the ${keys.length} keys the server knows`)
    assert.equal(used.size, calls)

    // The check is real: the first key, long expired, is refused.
    const stale = new TransferClient(await clientOptions({ endpoint: p.endpoint, credentials: keys[0], maxAttempts: 1 }))
    await assert.rejects(stale.download({ bucket, localDir: path.join(dir, 'x') }), { code: 'ExpiredToken' })
  } finally {
    await p.close()
  }
})

test('a credentials function that throws or resolves to a bad shape fails with ERR_CREDENTIALS, its error as cause', async () => {
  const p = await proxy()
  try {
    const dir = tempDir()
    writeTree(dir, { 'a.bin': 'x' })
    const files = [{ path: path.join(dir, 'a.bin'), key: 'a' }]
    const thrown = new Error('the SSO session has expired')
    const failing = new TransferClient(await clientOptions({ endpoint: p.endpoint, credentials: async () => { throw thrown } }))
    await assert.rejects(failing.upload({ bucket: 'b', files }), (e) => {
      assert.equal(e.code, 'ERR_CREDENTIALS')
      assert.match(e.message, /the credentials function failed: the SSO session has expired/)
      assert.equal(e.cause, thrown)
      return true
    })
    const shapes = [
      [async () => null, /must resolve to \{ accessKeyId, secretAccessKey/],
      [async () => ({ accessKeyId: 'a' }), /secretAccessKey is not a string/],
      [async () => ({ accessKeyId: 'a', secretAccessKey: 'b', expiration: 'soon' }), /expiration that is not a date/],
      [async () => ({ accessKeyId: 'a', secretAccessKey: 'b', expiration: new Date(Date.now() - 1000) }), /already expired/],
    ]
    for (const [fn, message] of shapes) {
      const client = new TransferClient(await clientOptions({ endpoint: p.endpoint, credentials: fn }))
      await assert.rejects(client.upload({ bucket: 'b', files }), (e) => {
        assert.equal(e.code, 'ERR_CREDENTIALS')
        assert.match(e.message, message)
        return true
      })
    }
    assert.equal(p.stats.requests, 0, 'no request went out unsigned or badly signed')
  } finally {
    await p.close()
  }
})

test('a provider from @aws-sdk/credential-providers works unchanged (fromEnv)', async () => {
  const s = await server()
  const bucket = await makeBucket('fromenv')
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY }
  process.env.AWS_ACCESS_KEY_ID = s.credentials.accessKeyId
  process.env.AWS_SECRET_ACCESS_KEY = s.credentials.secretAccessKey
  try {
    // Counted, so the test fails if the function were ignored (the default chain reads the same variables).
    const provider = fromEnv()
    let calls = 0
    const { credentials, ...options } = await clientOptions()
    const client = new TransferClient({ ...options, credentials: (props) => (calls++, provider(props)) })
    const dir = tempDir()
    writeTree(dir, { 'a.txt': 'hello' })
    assert.equal((await client.upload({ bucket, localDir: dir })).files, 1)
    assert.deepEqual(await listKeys(bucket), ['a.txt'])
    assert.equal(calls, 1, 'fromEnv credentials do not expire: asked for once')
  } finally {
    for (const [name, value] of [['AWS_ACCESS_KEY_ID', saved.id], ['AWS_SECRET_ACCESS_KEY', saved.secret]]) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  }
})

test('anonymous: unsigned requests read a public bucket; a private one refuses them', async () => {
  const sdk = await s3()
  await sdk.send(new CreateBucketCommand({ Bucket: PUBLIC_BUCKET })).catch((e) => {
    if (e.name !== 'BucketAlreadyOwnedByYou' && e.name !== 'BucketAlreadyExists') throw e
  })
  await sdk.send(new PutObjectCommand({ Bucket: PUBLIC_BUCKET, Key: 'open/readme.txt', Body: 'public' }))
  const privateBucket = await makeBucket('private')
  await sdk.send(new PutObjectCommand({ Bucket: privateBucket, Key: 'secret.txt', Body: 'no' }))
  const p = await proxy()
  try {
    const { credentials, ...options } = await clientOptions({ endpoint: p.endpoint })
    const client = new TransferClient({ ...options, anonymous: true })
    const dir = tempDir()
    assert.equal((await client.download({ bucket: PUBLIC_BUCKET, keyPrefix: 'open', localDir: dir })).files, 1)
    assert.equal(readFileSync(path.join(dir, 'readme.txt'), 'utf8'), 'public')
    assert.ok(p.stats.requestLog.length > 0)
    assert.ok(p.stats.requestLog.every((r) => r.headers.authorization === undefined), 'no request was signed')
    await assert.rejects(client.download({ bucket: privateBucket, localDir: tempDir() }), { code: 'AccessDenied' })
    assert.throws(() => new TransferClient({ ...options, anonymous: true, credentials }), {
      code: 'ERR_INVALID_ARG_VALUE',
      message: /anonymous sends unsigned requests; it cannot be used with credentials/,
    })
  } finally {
    await p.close()
  }
})

test('ERR_CREDENTIALS names every provider of the default chain it tried, and a profile that does not exist', () => {
  const home = tempDir()
  const config = path.join(home, 'config')
  writeFileSync(config, '[profile other]\nregion = eu-west-1\n')
  const script = `
    const { TransferClient } = require(${JSON.stringify(ROOT)})
    const fail = (options) => new TransferClient({ endpoint: 'http://127.0.0.1:9', maxAttempts: 1, ...options })
      .upload({ bucket: 'b', localDir: ${JSON.stringify(home)} }).then(() => 'resolved', (e) => e.code + ' ' + e.message)
    Promise.all([fail({}), fail({ profile: 'nosuch' })]).then((r) => console.log(JSON.stringify(r)))
  `
  const env = { ...buildEnv(), PATH: process.env.PATH, HOME: home, AWS_CONFIG_FILE: config, AWS_SHARED_CREDENTIALS_FILE: path.join(home, 'none'), AWS_EC2_METADATA_DISABLED: 'true' }
  const r = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8', timeout: 60_000 })
  assert.equal(r.status, 0, r.stderr)
  const [chain, profile] = JSON.parse(r.stdout)
  assert.match(chain, /^ERR_CREDENTIALS .*no credentials found; tried environment \(AWS_ACCESS_KEY_ID\): environment variable not set; profile 'default' /)
  for (const name of ['web identity token: ', 'container (ECS/EKS): ', 'instance metadata (EC2): ']) assert.ok(chain.includes(name), `${name} in ${chain}`)
  assert.match(profile, new RegExp(`^ERR_CREDENTIALS .*the profile 'nosuch' does not exist in the shared AWS files \\(${config.replace(/[\\/.]/g, '\\$&')} and`))
})

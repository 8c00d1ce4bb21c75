// Logs on demand: S3_FERRY_LOG=debug prints one line per request to stderr, with method, path, part, status,
// attempt and duration, and never a credential or a signature; without it, nothing.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { MiB, bytes, makeBucket, server, tempDir } from './helpers.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** Uploads two files in a child process whose environment is ours with `env` over it and `unset` removed. */
async function runLogged(env, unset = []) {
  const s = await server()
  const bucket = await makeBucket()
  const dir = tempDir()
  writeFileSync(path.join(dir, 'small.txt'), 'hello')
  writeFileSync(path.join(dir, 'big.bin'), bytes(11 * MiB, 3))
  const options = { endpoint: s.endpoint, forcePathStyle: true, credentials: s.credentials, partSize: 5 * MiB, multipartThreshold: 5 * MiB }
  const script = `
    const { TransferClient } = require(${JSON.stringify(path.join(ROOT, 'index.js'))})
    const c = new TransferClient(${JSON.stringify(options)})
    c.upload({ bucket: ${JSON.stringify(bucket)}, localDir: ${JSON.stringify(dir)}, keyPrefix: 'p/' })
      .then((r) => console.log('uploaded', r.files), (e) => console.log('failed', e.code))`
  const childEnv = { ...process.env, ...env }
  for (const name of unset) delete childEnv[name]
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: childEnv })
  return { ...r, secrets: [s.credentials.secretAccessKey], bucket }
}

test('S3_FERRY_LOG=debug: one line per request, no secrets', async () => {
  const r = await runLogged({ S3_FERRY_LOG: 'debug' })
  assert.match(r.stdout, /uploaded 2/)
  const lines = r.stderr.split('\n').filter((l) => l.includes('s3_ferry::request'))
  // CreateMultipartUpload, 3 parts, CompleteMultipartUpload, one PutObject.
  assert.equal(lines.length, 6, r.stderr)
  assert.ok(lines.some((l) => /method=PUT .*path=\/[^ ]+\/p\/big\.bin part="3" status=200 attempt=1 ms=[\d.]+/.test(l)), r.stderr)
  assert.ok(lines.some((l) => /method=PUT .*path=\/[^ ]+\/p\/small\.txt status=200 attempt=1/.test(l)), r.stderr)
  assert.ok(lines.filter((l) => l.includes('method=POST')).length === 2, 'create and complete')
  assert.match(r.stderr, /s3_ferry::transfer: done files=2/)
  for (const secret of r.secrets) assert.ok(!r.stderr.includes(secret), 'a secret was logged')
  assert.ok(!/authorization|signature|x-amz-security-token|credential=/i.test(r.stderr), 'auth material was logged')
})

test('without S3_FERRY_LOG nothing is logged', async () => {
  const r = await runLogged({}, ['S3_FERRY_LOG'])
  assert.match(r.stdout, /uploaded 2/)
  assert.ok(!r.stderr.includes('s3_ferry'), r.stderr)
})

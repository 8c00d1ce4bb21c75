// Module formats and types: require() and import give the same objects, by the package's own name, and the
// declarations type-check a strict TypeScript consumer (and reject wrong option names and types).
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)

test("require('s3-ferry') and import 's3-ferry' give the same API", async () => {
  const cjs = require('s3-ferry')
  const esm = await import('s3-ferry')
  for (const name of ['TransferClient', 'upload', 'download']) {
    assert.equal(typeof cjs[name], 'function', name)
    assert.equal(esm[name], cjs[name], `${name} is the same object in both formats`)
  }
  assert.equal(esm.default, cjs)
  assert.ok(new esm.TransferClient() instanceof cjs.TransferClient)
})

function tsc(file) {
  const bin = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  const args = [bin, '--strict', '--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', file]
  return spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8' })
}

test('index.d.ts type-checks a strict TypeScript consumer', () => {
  const r = tsc('__test__/types/good.ts')
  assert.equal(r.status, 0, r.stdout + r.stderr)
})

test('wrong option names and types fail to compile', () => {
  const r = tsc('__test__/types/bad.ts')
  assert.notEqual(r.status, 0)
  const errors = [...r.stdout.matchAll(/bad\.ts\((\d+),\d+\): error (TS\d+)/g)].map((m) => `${m[1]} ${m[2]}`)
  // Each line of bad.ts says which error it must give (`// TS2322: ...`); those and no others.
  const expected = readFileSync(path.join(ROOT, '__test__', 'types', 'bad.ts'), 'utf8')
    .split('\n')
    .flatMap((text, i) => [...text.matchAll(/\/\/ (TS\d+):/g)].map((m) => `${i + 1} ${m[1]}`))
  assert.ok(expected.length >= 8, 'bad.ts annotates its lines')
  assert.deepEqual([...new Set(errors)].sort(), expected.sort(), r.stdout)
})

test('the option names the JS entry accepts are exactly those index.d.ts declares', () => {
  const dts = readFileSync(path.join(ROOT, 'index.d.ts'), 'utf8')
  const { __fields } = require('s3-ferry')
  for (const [name, fields] of Object.entries(__fields)) {
    const body = new RegExp(`export interface ${name} \\{([\\s\\S]*?)\\n\\}`).exec(dts)?.[1]
    assert.ok(body, `index.d.ts declares ${name}`)
    const declared = [...body.matchAll(/^ {2}(\w+)\??:/gm)].map((m) => m[1])
    assert.deepEqual([...fields].sort(), declared.sort(), name)
  }
})

test('a misspelt option name is ERR_INVALID_ARG_VALUE naming it, before anything is sent', async () => {
  const { TransferClient, upload } = require('s3-ferry')
  // Port 9 (discard) on loopback: had a request been attempted, the error would be ERR_NETWORK.
  const client = new TransferClient({ endpoint: 'http://127.0.0.1:9', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } })
  const misspelt = async (call, name, near) =>
    assert.rejects(call, (e) => {
      assert.equal(e.code, 'ERR_INVALID_ARG_VALUE')
      assert.ok(e instanceof TypeError)
      assert.match(e.message, new RegExp(`no option '${name}'`))
      if (near) assert.match(e.message, new RegExp(`did you mean '${near}'`))
      return true
    })
  await misspelt(client.upload({ bucket: 'b', localDir: ROOT, keyprefix: 'x/' }), 'keyprefix', 'keyPrefix')
  await misspelt(client.download({ bucket: 'b', localDir: ROOT, prefix: 'x/' }), 'prefix')
  await misspelt(client.uploadContentAddressed({ bucket: 'b', rootPrefix: 'r', localDir: ROOT, conflict: 'skip' }), 'conflict')
  await misspelt(upload({ bucket: 'b', localDir: ROOT, endPoint: 'http://x' }), 'endPoint', 'endpoint')
  assert.throws(() => new TransferClient({ maxPoolconnections: 4 }), /no option 'maxPoolconnections' \(did you mean 'maxPoolConnections'\?\)/)
  // An option set to undefined is the same as leaving it out.
  assert.doesNotThrow(() => new TransferClient({ region: undefined }))
})

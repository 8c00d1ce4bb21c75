// Module formats and types: require() and import give the same objects, by the package's own name, and the
// declarations type-check a strict TypeScript consumer (and reject wrong option names and types).
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
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
  const errors = [...r.stdout.matchAll(/bad\.ts\((\d+),\d+\): error (TS\d+)/g)].map((m) => [Number(m[1]), m[2]])
  const lines = new Set(errors.map(([line]) => line))
  for (const line of [4, 5, 6, 8, 9]) assert.ok(lines.has(line), `line ${line} of bad.ts should not compile:\n${r.stdout}`)
})

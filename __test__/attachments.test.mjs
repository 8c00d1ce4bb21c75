// Job attachments against the real local server: content-addressed uploads that skip what S3 has, the
// 2023-03-03 manifest, and manifest downloads that verify, restore mtimes and skip what is already there.
// Requests are counted by S3 operation at a pass-through proxy (scripts/fault-proxy.mjs with no faults).
import assert from 'node:assert/strict'
import { existsSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { TransferClient } from '../index.js'
import { MiB, allFiles, bytes, clientOptions, getObject, listKeys, makeBucket, openUploads, s3, server, tempDir, treeHashes, writeTree } from './helpers.mjs'
import { startFaultProxy } from '../scripts/fault-proxy.mjs'

async function countingClient(extra = {}) {
  const proxy = await startFaultProxy((await server()).endpoint)
  const client = new TransferClient(await clientOptions({ endpoint: proxy.endpoint, cacheDir: tempDir('cache'), ...extra }))
  return { proxy, client, ops: () => ({ ...proxy.stats.operations }) }
}

function diff(after, before) {
  const out = {}
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0)
  return out
}

/** A job bundle: `n` small files (a tenth of them duplicates of others), plus what `extra` adds. */
function bundle(dir, n, extra = {}) {
  const files = {}
  for (let i = 0; i < n; i++) {
    const content = i % 10 === 9 ? `same content ${i % 3}` : bytes(1 + ((i * 977) % 8192), i)
    files[`tex/${String(i % 20).padStart(2, '0')}/t${i}.png`] = content
  }
  writeTree(dir, { ...files, ...extra })
  return dir
}

/** The manifest format, checked independently: sorted keys, no spaces, ASCII only, paths in UTF-16 order. */
function checkManifestFormat(text) {
  assert.ok(/^[\x20-\x7e]*$/.test(text), 'ASCII only')
  const m = JSON.parse(text)
  assert.deepEqual(Object.keys(m), ['hashAlg', 'manifestVersion', 'paths', 'totalSize'])
  assert.equal(m.hashAlg, 'xxh128')
  assert.equal(m.manifestVersion, '2023-03-03')
  const sorted = (v) =>
    Array.isArray(v) ? v.map(sorted) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])])) : v
  const ascii = (s) => s.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  assert.equal(text, ascii(JSON.stringify(sorted(m))), 'canonical JSON (sorted keys, no spaces, \\u escapes)')
  const paths = m.paths.map((p) => p.path)
  // JavaScript compares strings by UTF-16 code units: the format's order.
  assert.deepEqual(paths, [...paths].sort(), 'paths sorted by UTF-16 code units')
  assert.equal(m.totalSize, m.paths.reduce((n, p) => n + p.size, 0))
  for (const p of m.paths) {
    assert.match(p.hash, /^[0-9a-f]{32}$/)
    assert.ok(Number.isInteger(p.mtime))
  }
  return m
}

test('a bundle is stored by content, its manifest is canonical, and each content is stored once', async () => {
  const bucket = await makeBucket('ca')
  const dir = bundle(tempDir('job'), 40, {
    'scenes/shot 010.blend': bytes(12 * MiB + 5, 99), // multipart
    'scenes/empty.txt': '',
    'tex/café.png': 'accented',
    'tex/\u{1F600}.exr': 'emoji',
    'tex/\uff5ewave.exr': 'fullwidth tilde',
  })
  const { client, proxy } = await countingClient()
  try {
    const events = []
    const out = await client.uploadContentAddressed({
      bucket,
      rootPrefix: 'farm/queue',
      localDir: dir,
      manifestKey: 'farm/queue/Manifests/job-1_input',
      onProgress: (p) => events.push(p),
      progressIntervalMs: 0,
    })
    const m = checkManifestFormat(out.manifest)
    const local = treeHashes(dir)
    assert.deepEqual(m.paths.map((p) => p.path).sort(), Object.keys(local).sort(), 'every file, by relative POSIX path')
    // The UTF-16 order differs from UTF-8's here: the emoji (surrogates 0xD83D...) comes before U+FF5E.
    const tex = m.paths.map((p) => p.path).filter((p) => p.startsWith('tex/') && !p.startsWith('tex/0') && !p.startsWith('tex/1'))
    assert.deepEqual(tex, ['tex/café.png', 'tex/\u{1F600}.exr', 'tex/\uff5ewave.exr'])
    for (const p of m.paths) {
      const st = statSync(path.join(dir, p.path), { bigint: true })
      assert.equal(BigInt(p.size), st.size)
      assert.equal(BigInt(p.mtime), st.mtimeNs / 1000n, 'mtime in microseconds')
    }
    // Stored contents: one object per distinct hash, each byte-exact with a file that has that hash.
    const keys = await listKeys(bucket, 'farm/queue/Data/')
    const hashes = new Set(m.paths.map((p) => p.hash))
    assert.deepEqual(keys.sort(), [...hashes].map((h) => `farm/queue/Data/${h}.xxh128`).sort())
    for (const p of m.paths.filter((_, i) => i % 7 === 0)) {
      const body = await getObject(bucket, `farm/queue/Data/${p.hash}.xxh128`)
      assert.ok(body.equals(readFileSync(path.join(dir, p.path))), p.path)
    }
    assert.equal(out.summary.files, hashes.size, 'each content uploaded once')
    assert.equal(out.summary.skippedFiles, m.paths.length - hashes.size, 'files sharing a content count as skipped')
    assert.equal(out.checkedKeys, hashes.size)
    assert.equal(out.cachedHashes, 0)
    assert.equal(proxy.stats.operations.PutObject, hashes.size, 'every content but the big one (multipart), and the manifest')
    assert.equal(proxy.stats.operations.UploadPart, 2)
    // The manifest was stored as returned.
    assert.equal((await getObject(bucket, 'farm/queue/Manifests/job-1_input')).toString(), out.manifest)
    assert.match(out.manifestHash, /^[0-9a-f]{32}$/)
    // Progress: hashing first (hashedBytes reaching the total), then checking, then uploading.
    const phases = events.map((e) => e.phase).filter((p, i, a) => p !== a[i - 1])
    assert.deepEqual(phases.filter((p) => p !== 'checking'), ['hashing', 'uploading'])
    const last = events.at(-1)
    assert.equal(last.hashedFiles, m.paths.length)
    assert.equal(last.hashedBytes, m.totalSize)
    assert.ok(events.every((e, i) => i === 0 || e.hashedBytes >= events[i - 1].hashedBytes))
    assert.equal(await openUploads(bucket).then((u) => u.length), 0)
  } finally {
    await proxy.close()
  }
})

test('re-uploading an unchanged 2000-file bundle sends no PutObject; one changed file sends one', async () => {
  const bucket = await makeBucket('ca')
  const dir = bundle(tempDir('job'), 2000)
  const { client, proxy, ops } = await countingClient()
  const cold = await countingClient() // its own, empty cache: what S3 has is learned by HeadObject
  try {
    const request = { bucket, rootPrefix: 'root', localDir: dir }
    let t = performance.now()
    const first = await client.uploadContentAddressed(request)
    const firstMs = performance.now() - t
    const firstOps = ops()
    const contents = new Set(JSON.parse(first.manifest).paths.map((p) => p.hash)).size
    assert.equal(firstOps.PutObject, contents)

    // Same client, same cache: nothing read, nothing sent; only a sample of what the cache vouches for is asked
    // about (16, or 1% of the contents when that is more).
    const sample = Math.max(16, Math.floor(contents / 100))
    t = performance.now()
    const again = await client.uploadContentAddressed(request)
    const againMs = performance.now() - t
    assert.deepEqual(diff(ops(), firstOps), { HeadObject: sample }, 'the sample, nothing else')
    assert.equal(again.manifest, first.manifest)
    assert.equal(again.cachedHashes, 2000)
    assert.equal(again.checkedKeys, sample)
    assert.equal(again.cachedKeys, contents - sample)
    assert.equal(again.summary.files, 0)
    assert.equal(again.summary.skippedFiles, 2000)

    // Another machine (no cache): hashes every file, asks S3 once per content, sends nothing.
    t = performance.now()
    const other = await cold.client.uploadContentAddressed(request)
    const coldMs = performance.now() - t
    assert.deepEqual(cold.ops(), { HeadObject: contents })
    assert.equal(other.manifest, first.manifest)

    // One file changes: one content is asked about and sent.
    const changed = path.join(dir, 'tex/05/t5.png')
    writeFileSync(changed, 'a new version of this texture')
    const before = ops()
    const third = await client.uploadContentAddressed(request)
    assert.deepEqual(diff(ops(), before), { HeadObject: 1 + sample, PutObject: 1 })
    assert.equal(third.cachedHashes, 1999)
    assert.equal(third.summary.files, 1)
    console.log(
      `# 2000 files, ${contents} contents: first upload ${firstOps.HeadObject} HEAD + ${firstOps.PutObject} PUT in ${firstMs.toFixed(0)} ms; ` +
        `re-upload ${sample} HEAD (the cache's sample) in ${againMs.toFixed(0)} ms; no cache ${contents} HEAD in ${coldMs.toFixed(0)} ms`,
    )
  } finally {
    await proxy.close()
    await cold.proxy.close()
  }
})

test('a content deleted from the bucket behind the cache is found by the sample and sent again', async () => {
  const bucket = await makeBucket('ca')
  const dir = bundle(tempDir('job'), 12)
  const { client, proxy, ops } = await countingClient()
  try {
    const request = { bucket, rootPrefix: 'root', localDir: dir }
    const first = await client.uploadContentAddressed(request)
    const contents = [...new Set(JSON.parse(first.manifest).paths.map((p) => p.hash))]
    // Someone deletes one content (a lifecycle rule, a cleanup script); the cache still says it is there.
    await (await s3()).send(new DeleteObjectCommand({ Bucket: bucket, Key: `root/Data/${contents[3]}.xxh128` }))
    const before = ops()
    const again = await client.uploadContentAddressed(request)
    // Fewer than 16 contents: the sample is all of them, so the missing one is found, and only it is sent.
    assert.deepEqual(diff(ops(), before), { HeadObject: contents.length, PutObject: 1 })
    assert.deepEqual([again.checkedKeys, again.cachedKeys, again.summary.files], [contents.length, 0, 1])
    const keys = await listKeys(bucket, 'root/Data/')
    assert.equal(keys.length, contents.length, 'every content is in the bucket again')
    // The cache's record of the bucket was dropped and rebuilt: the next call trusts it again (its sample passes).
    const third = await client.uploadContentAddressed(request)
    assert.deepEqual([third.checkedKeys, third.summary.files], [contents.length, 0])
  } finally {
    await proxy.close()
  }
})

test('a manifest downloads byte-exact with its mtimes, verifies, skips what is there, and falls back', async () => {
  const bucket = await makeBucket('ca')
  const dir = bundle(tempDir('job'), 30, { 'scenes/big.blend': bytes(10 * MiB, 5), 'a/empty': '' })
  // An mtime with microseconds, and one before 1970.
  utimesSync(path.join(dir, 'a/empty'), new Date(-86_400_000), new Date(-86_400_000))
  utimesSync(path.join(dir, 'scenes/big.blend'), 1_700_000_000.123456, 1_700_000_000.123456)
  const { client, proxy, ops } = await countingClient()
  try {
    const { manifest } = await client.uploadContentAddressed({ bucket, rootPrefix: 'r', localDir: dir })
    const m = JSON.parse(manifest)
    const dest = tempDir('dest')
    const events = []
    const down = await client.downloadManifest({ bucket, rootPrefix: 'r', manifest, localDir: dest, onProgress: (p) => events.push(p) })
    assert.deepEqual(treeHashes(dest), treeHashes(dir))
    assert.equal(down.files, m.paths.length)
    for (const p of m.paths) {
      // Wine 8 stores a time set through SetFileTime as unsigned 32-bit Unix seconds, so a pre-1970 mtime wraps
      // there (real Windows keeps FILETIMEs back to 1601); under the Windows lane only that entry is not checked.
      if (process.env.S3_FERRY_TEST_WINE && p.mtime < 0) continue
      const st = statSync(path.join(dest, p.path), { bigint: true })
      assert.equal(st.mtimeNs / 1000n, BigInt(p.mtime), `${p.path}: mtime restored to the microsecond`)
    }
    assert.equal(events.at(-1).phase, 'downloading')

    // Everything there already: hashed, skipped, no GET.
    let before = ops()
    const again = await client.downloadManifest({ bucket, rootPrefix: 'r', manifest, localDir: dest })
    assert.deepEqual(diff(ops(), before), {})
    assert.equal(again.skippedFiles, m.paths.length)
    assert.equal(again.hashedFiles, m.paths.length)

    // A local file with the right size but other bytes is fetched again; the rest are skipped.
    const victim = m.paths.find((p) => p.size > 100 && p.size < MiB)
    const victimPath = path.join(dest, victim.path)
    const buf = readFileSync(victimPath)
    buf[0] ^= 1
    writeFileSync(victimPath, buf)
    before = ops()
    const repaired = await client.downloadManifest({ bucket, rootPrefix: 'r', manifest, localDir: dest })
    assert.deepEqual(diff(ops(), before), { GetObject: 1 })
    assert.equal(repaired.files, 1)
    assert.equal(repaired.skippedFiles, m.paths.length - 1)
    assert.deepEqual(treeHashes(dest), treeHashes(dir))

    // Contents stored without the .xxh128 suffix (older uploads): found under the fallback key.
    const s = await s3()
    const legacy = { hashAlg: 'xxh128', manifestVersion: '2023-03-03', paths: [{ hash: victim.hash, mtime: victim.mtime, path: 'legacy.bin', size: victim.size }], totalSize: victim.size }
    await s.send(new PutObjectCommand({ Bucket: bucket, Key: `old/Data/${victim.hash}`, Body: readFileSync(path.join(dir, victim.path)) }))
    const dest2 = tempDir('dest')
    await client.downloadManifest({ bucket, rootPrefix: 'old', manifest: JSON.stringify(legacy), localDir: dest2 })
    assert.ok(readFileSync(path.join(dest2, 'legacy.bin')).equals(readFileSync(path.join(dir, victim.path))))

    // The manifest read from the bucket.
    await s.send(new PutObjectCommand({ Bucket: bucket, Key: 'm/job', Body: manifest }))
    const dest3 = tempDir('dest')
    await client.downloadManifest({ bucket, rootPrefix: 'r', manifestKey: 'm/job', localDir: dest3 })
    assert.deepEqual(treeHashes(dest3), treeHashes(dir))
  } finally {
    await proxy.close()
  }
})

test('content that does not match its hash is refused and nothing is written', async () => {
  const bucket = await makeBucket('ca')
  const client = new TransferClient(await clientOptions({ cacheDir: false }))
  const s = await s3()
  const hash = '0123456789abcdef0123456789abcdef'
  const big = bytes(9 * MiB, 3)
  const bigHash = 'fedcba9876543210fedcba9876543210'
  await s.send(new PutObjectCommand({ Bucket: bucket, Key: `r/Data/${hash}.xxh128`, Body: 'not what the hash says' }))
  await s.send(new PutObjectCommand({ Bucket: bucket, Key: `r/Data/${bigHash}.xxh128`, Body: big }))
  for (const [h, size] of [[hash, 22], [bigHash, big.length]]) {
    const manifest = JSON.stringify({ hashAlg: 'xxh128', manifestVersion: '2023-03-03', paths: [{ hash: h, mtime: 1, path: 'x/file', size }], totalSize: size })
    const dest = tempDir('dest')
    await assert.rejects(client.downloadManifest({ bucket, rootPrefix: 'r', manifest, localDir: dest }), (e) => {
      assert.equal(e.code, 'ERR_CHECKSUM_MISMATCH')
      assert.match(e.message, /xxh128/)
      return true
    })
    assert.deepEqual(allFiles(dest), [], 'no file, no temporary')
  }
})

test('bad manifests and paths are refused before any request', async () => {
  const { client, proxy } = await countingClient()
  try {
    const dest = tempDir('dest')
    const one = (p, extra = {}) =>
      JSON.stringify({ hashAlg: 'xxh128', manifestVersion: '2023-03-03', paths: [{ hash: '0'.repeat(32), mtime: 0, path: p, size: 1 }], totalSize: 1, ...extra })
    const cases = [
      [one('../escape'), /outside/],
      [one('/etc/passwd'), /relative/],
      [one('a', { manifestVersion: '2099-01-01' }), /2099-01-01/],
      ['{not json', /not a manifest/],
    ]
    for (const [manifest, message] of cases) {
      await assert.rejects(client.downloadManifest({ bucket: 'b', rootPrefix: 'r', manifest, localDir: dest }), (e) => {
        assert.match(e.code, /^ERR_/)
        assert.match(e.message, message)
        return true
      })
    }
    await assert.rejects(client.downloadManifest({ bucket: 'b', rootPrefix: 'r', localDir: dest }), { code: 'ERR_INVALID_ARG_VALUE' })
    await assert.rejects(
      client.uploadContentAddressed({ bucket: 'b', rootPrefix: 'r', localDir: dest, files: ['../outside'] }),
      { code: 'ERR_INVALID_ARG_VALUE', message: /not inside localDir/ },
    )
    await assert.rejects(client.uploadContentAddressed({ bucket: 'b', rootPrefix: 'r', localDir: path.join(dest, 'missing') }), { code: 'ENOENT' })
    // No files: Deadline Cloud cannot decode a manifest with "paths":[], so none is made.
    const empty = tempDir('empty')
    await assert.rejects(client.uploadContentAddressed({ bucket: 'b', rootPrefix: 'r', localDir: empty }), {
      code: 'ERR_INVALID_ARG_VALUE',
      message: `'${empty}' has no files to upload: a job attachments manifest must list at least one file`,
    })
    assert.equal(proxy.stats.requests, 0)
    assert.ok(!existsSync(path.join(dest, 'escape')))
  } finally {
    await proxy.close()
  }
})

test('cancelling during hashing stops at once and sends nothing', async () => {
  const { client, proxy } = await countingClient()
  try {
    const dir = tempDir('job')
    writeTree(dir, { 'a.bin': bytes(64 * MiB, 1), 'b.bin': bytes(64 * MiB, 2) })
    const ac = new AbortController()
    const p = client.uploadContentAddressed({
      bucket: 'b',
      rootPrefix: 'r',
      localDir: dir,
      signal: ac.signal,
      progressIntervalMs: 0,
      onProgress: (e) => e.hashedBytes > 0 && ac.abort(),
    })
    await assert.rejects(p, { name: 'AbortError' })
    assert.equal(proxy.stats.requests, 0)
  } finally {
    await proxy.close()
  }
})

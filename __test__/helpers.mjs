// Shared by the Node tests: the real local S3 server that `npm test` started (or one started here when a test
// file is run on its own), fresh buckets, temporary trees and byte-exact comparison.
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after } from 'node:test'
import { serverFromEnv, startS3Server } from '../scripts/s3-server.mjs'
import { hashTree } from '../scripts/tree.mjs'
import {
  S3Client,
  CreateBucketCommand,
  ListMultipartUploadsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
} from '@aws-sdk/client-s3'

// The SDK here is a test helper: its notice that it will need Node 22 is not about what is tested.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

// Each test process gets its own cache (file hashes, seen keys, multipart records), never the user's.
let ownCacheDir
if (!process.env.S3_FERRY_CACHE_DIR) {
  ownCacheDir = mkdtempSync(path.join(os.tmpdir(), 's3-ferry-cache-'))
  process.env.S3_FERRY_CACHE_DIR = ownCacheDir
}

let serverPromise
// Registered at import, so it belongs to the whole file: registered inside the first test that needs the server
// (as it was), it stopped the server as soon as that test ended, failing every later test of a file run on its
// own, and leaving the server running when a run was interrupted.
after(async () => {
  if (serverPromise) await (await serverPromise).stop()
  if (ownCacheDir) removeDir(ownCacheDir)
})

/** The server's settings: from `npm test`'s environment, else a server started for this process. */
export async function server() {
  const passed = serverFromEnv()
  if (passed) return passed
  if (!serverPromise) {
    serverPromise = startS3Server()
  }
  return serverPromise
}

/** Client options for the local server. */
export async function clientOptions(extra = {}) {
  const s = await server()
  return { endpoint: s.endpoint, region: s.region, forcePathStyle: true, credentials: s.credentials, ...extra }
}

let sdk
/** The AWS SDK, to set up and inspect the server independently of the code under test. */
export async function s3() {
  if (!sdk) {
    const s = await server()
    sdk = new S3Client({ endpoint: s.endpoint, region: s.region, forcePathStyle: true, credentials: s.credentials })
  }
  return sdk
}

let bucketCounter = 0
/** A new, empty bucket. */
export async function makeBucket(prefix = 't') {
  const name = `${prefix}-${process.pid}-${Date.now().toString(36)}-${bucketCounter++}`
  await (await s3()).send(new CreateBucketCommand({ Bucket: name }))
  return name
}

/** Multipart uploads still open in `bucket`. */
export async function openUploads(bucket) {
  const out = await (await s3()).send(new ListMultipartUploadsCommand({ Bucket: bucket }))
  return out.Uploads ?? []
}

/** Every key in `bucket` (paging through). */
export async function listKeys(bucket, prefix = '') {
  const keys = []
  let token
  do {
    const out = await (await s3()).send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }))
    for (const o of out.Contents ?? []) keys.push(o.Key)
    token = out.NextContinuationToken
  } while (token)
  return keys
}

/** An object's bytes, read with the SDK. */
export async function getObject(bucket, key) {
  const out = await (await s3()).send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  return Buffer.from(await out.Body.transformToByteArray())
}

/**
 * Removes a test's directory. On Windows a cache inside it may still be open (the process's clients hold their
 * SQLite file, which SQLite opens without delete sharing, until they are collected): what cannot be removed
 * stays in the temporary folder.
 */
function removeDir(dir) {
  try {
    rmSync(dir, { recursive: true, force: true })
  } catch (e) {
    if (process.platform !== 'win32' || !['EBUSY', 'EPERM'].includes(e.code)) throw e
  }
}

/** A temporary directory removed after the test file. */
export function tempDir(label = 'd') {
  const dir = mkdtempSync(path.join(os.tmpdir(), `s3-ferry-${label}-`))
  after(() => removeDir(dir))
  return dir
}

/** Deterministic pseudo-random bytes (fast for large sizes). */
export function bytes(size, seed = 1) {
  const block = createHash('sha256').update(String(seed)).digest()
  const chunk = Buffer.alloc(Math.min(size, 1 << 20))
  let h = block
  for (let i = 0; i < chunk.length; i += 32) {
    h = createHash('sha256').update(h).digest()
    h.copy(chunk, i)
  }
  const out = Buffer.alloc(size)
  for (let i = 0; i < size; i += chunk.length) {
    chunk.copy(out, i, 0, Math.min(chunk.length, size - i))
    out[i] ^= (i / chunk.length) & 0xff
  }
  return out
}

/** Writes `files` ({ relPath: Buffer|string }) under `dir`. */
export function writeTree(dir, files) {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(dir, rel)
    mkdirSync(path.dirname(p), { recursive: true })
    writeFileSync(p, content)
  }
}

/** { relPath (with /): sha256 } of every file under `dir`. */
export function treeHashes(dir) {
  return Object.fromEntries(hashTree(dir))
}

/** Every file under `dir` (relative paths), for checks that nothing stray was left. */
export function allFiles(dir) {
  return Object.keys(treeHashes(dir)).sort()
}

export const MiB = 1024 * 1024

/** The part of the environment that picks the build under test (the debug build, under `npm test`), for child
 * processes started with an environment of their own. */
export const buildEnv = () =>
  process.env.NAPI_RS_NATIVE_LIBRARY_PATH ? { NAPI_RS_NATIVE_LIBRARY_PATH: process.env.NAPI_RS_NATIVE_LIBRARY_PATH } : {}

/** A connection-counting TCP proxy in front of the S3 server (see scripts/tcp-proxy.mjs). */
export async function countingProxy(options) {
  const { startCountingProxy } = await import('../scripts/tcp-proxy.mjs')
  return startCountingProxy((await server()).endpoint, options)
}

'use strict'
// The public entry point. The native binding (native.js, generated) does the work; this file adds what is
// JavaScript's business, with the exact types the generated index.d.ts declares:
// - an already-aborted `signal` rejects at once, without sending any request;
// - an abort rejects with an AbortError whose `cause` is `signal.reason` (as Node's own APIs do) and whose
//   `summary` says what completed before the abort; the caller's signal gets one listener, removed when the
//   call settles, and its `onabort` property is never touched;
// - a throwing `onProgress` callback cancels the transfer and the promise rejects with what it threw (it can
//   never become an uncaught exception);
// - bad argument types reject with a TypeError coded ERR_INVALID_ARG_TYPE; an option name the call does not
//   take (a misspelling) with one coded ERR_INVALID_ARG_VALUE.
const native = loadNative()

/** The prebuilt binary's platform package for this process, e.g. `s3-ferry-linux-x64-gnu`. */
function platformPackage() {
  let abi = ''
  if (process.platform === 'linux') {
    const glibc = process.report?.getReport?.().header?.glibcVersionRuntime
    abi = glibc ? '-gnu' : '-musl'
  } else if (process.platform === 'win32') {
    abi = '-msvc'
  }
  return `s3-ferry-${process.platform}-${process.arch}${abi}`
}

function loadNative() {
  try {
    return require('./native.js')
  } catch (cause) {
    const err = new Error(`s3-ferry: ${whyNotLoaded(cause)}`, { cause })
    err.code = 'ERR_S3_FERRY_BINDING'
    throw err
  }
}

/** The platform packages there are, from the build targets: `x86_64-unknown-linux-gnu` → `s3-ferry-linux-x64-gnu`. */
function supportedPackages() {
  const { napi } = require('./package.json')
  return napi.targets.map((triple) => {
    const [cpu, , os, abi] = triple.split('-')
    const arch = { x86_64: 'x64', aarch64: 'arm64' }[cpu] ?? cpu
    const platform = { linux: 'linux', apple: 'darwin', darwin: 'darwin', windows: 'win32', pc: 'win32' }[triple.includes('apple') ? 'apple' : triple.includes('windows') ? 'windows' : os] ?? os
    const suffix = platform === 'linux' ? `-${abi}` : platform === 'win32' ? '-msvc' : ''
    return `s3-ferry-${platform}-${arch}${suffix}`
  })
}

/** Every error in the loader's chain of causes. */
function causes(err) {
  const out = []
  for (let e = err; e && out.length < 20; e = e.cause) out.push(e)
  return out
}

/** The first line of an error's message (the OS loader's reason, without Node's require stack). */
function firstLine(e) {
  return String(e?.message ?? e).split(/\r?\n/)[0]
}

/** Why the binary at `file` does not load, as the OS loader says it; null if it does. */
function refusal(file) {
  try {
    process.dlopen({ exports: {} }, file)
    return null
  } catch (e) {
    return firstLine(e)
  }
}

/** What went wrong, in one sentence a user can act on: which case of four it is, and what to do. */
function whyNotLoaded(cause) {
  const fs = require('node:fs')
  const path = require('node:path')
  const pkg = platformPackage()
  const here = `${process.platform}-${process.arch}`
  const override = process.env.NAPI_RS_NATIVE_LIBRARY_PATH
  if (override) {
    if (!fs.existsSync(override)) return `NAPI_RS_NATIVE_LIBRARY_PATH names ${override}, which does not exist`
    return `the binary NAPI_RS_NATIVE_LIBRARY_PATH names (${override}) did not load: ${refusal(override) ?? firstLine(cause)}`
  }
  if (!supportedPackages().includes(pkg)) {
    return `there is no prebuilt binary for ${here} (${pkg.replace('s3-ferry-', '')}); prebuilt: ${supportedPackages().map((p) => p.replace('s3-ferry-', '')).join(', ')}`
  }
  // A binary that is there but refused by the OS loader (another architecture, a truncated file, a missing system
  // library): the loader's own words. First one beside this file (a build in a clone), then the package's.
  const local = path.join(__dirname, `s3-ferry.${pkg.replace('s3-ferry-', '')}.node`)
  let manifest = null
  try {
    manifest = require.resolve(`${pkg}/package.json`)
  } catch {}
  const packaged = manifest && path.join(path.dirname(manifest), require(manifest).main ?? '')
  for (const file of [local, packaged]) {
    if (!file || !fs.existsSync(file)) continue
    const why = refusal(file)
    if (why) return `the native binary for ${here} is installed but did not load: ${why.includes(file) ? why : `${file}: ${why}`}`
  }
  if (!manifest) {
    return (
      `the platform package ${pkg} is not installed. npm installs it with s3-ferry as an optional dependency: ` +
      `install again without --omit=optional (or remove node_modules and the lock file first); from a clone of ` +
      `s3-ferry, \`npm run pack\` makes both packages (README: Installing from a clone)` +
      (fs.existsSync(path.join(__dirname, 'Cargo.toml')) ? `, and \`npm run build\` builds the binary in place` : '')
    )
  }
  if (!fs.existsSync(packaged)) {
    return `the platform package ${pkg} is installed (${path.dirname(manifest)}) but has no binary in it; it was packed without one: from a clone, \`npm run pack\` packs it with the binary`
  }
  return `the native binary for ${here} did not load: ${firstLine(causes(cause).find((e) => !/^Cannot find module/.test(e.message)) ?? cause)}`
}

const EMPTY_SUMMARY = Object.freeze({ files: 0, bytes: 0, skippedFiles: 0, skippedBytes: 0, seconds: 0, bytesPerSecond: 0 })

function abortError(signal, summary) {
  const err = new Error('the transfer was aborted', { cause: signal.reason })
  err.name = 'AbortError'
  err.code = 'ABORT_ERR'
  err.summary = summary
  return err
}

function argTypeError(message) {
  const err = new TypeError(message)
  err.code = 'ERR_INVALID_ARG_TYPE'
  return err
}

// napi-rs reports a value it cannot convert (a string where a number belongs, a missing field) with its own
// status codes; give such errors Node's code and class.
const CONVERSION_STATUSES = new Set([
  'InvalidArg', 'ObjectExpected', 'StringExpected', 'NameExpected', 'FunctionExpected', 'NumberExpected',
  'BooleanExpected', 'ArrayExpected', 'BigintExpected', 'DateExpected', 'ArrayBufferExpected',
])

function normalize(err) {
  return err && CONVERSION_STATUSES.has(err.code) ? argTypeError(err.message) : err
}

// The names each object takes, as index.d.ts declares them (module.test.mjs checks the two agree). A misspelt
// name (`keyprefix`) would otherwise be dropped by the conversion and the call would do something else: upload
// to the bucket's root, say. So an unknown name is an ERR_INVALID_ARG_VALUE before anything is sent.
const CLIENT_OPTIONS = ['region', 'endpoint', 'forcePathStyle', 'credentials', 'anonymous', 'profile', 'maxPoolConnections', 'uploadWorkers',
  'downloadWorkers', 'partSize', 'multipartThreshold', 'smallFileThresholdMultiplier', 'maxAttempts', 'connectTimeoutMs',
  'readTimeoutMs', 'checksum', 'checksumAlgorithm', 'maxBandwidth', 'configFile', 'cacheDir', 'deadlineCache']
const CALL = ['bucket', 'signal', 'onProgress', 'progressIntervalMs', 'maxBandwidth', 'expectedBucketOwner']
// Object settings a `files` entry may set for itself; the request may also set the encryption ones.
const OBJECT = ['contentType', 'cacheControl', 'contentDisposition', 'contentEncoding', 'contentLanguage', 'metadata', 'tagging',
  'storageClass', 'acl']
const FIELDS = {
  ClientOptions: CLIENT_OPTIONS,
  UploadRequest: [...CALL, 'files', 'localDir', 'keyPrefix', 'resumable', 'filter', 'followSymlinks', 'skipUnchanged', 'dryRun', 'continueOnError',
    ...OBJECT, 'guessContentType', 'sse', 'sseKmsKeyId', 'bucketKeyEnabled', 'sseCustomerKey'],
  UploadFileEntry: ['path', 'key', ...OBJECT],
  DownloadRequest: [...CALL, 'objects', 'localDir', 'keyPrefix', 'conflict', 'filter', 'skipUnchanged', 'dryRun', 'continueOnError', 'sseCustomerKey'],
  ContentAddressedUploadRequest: [...CALL, 'rootPrefix', 'localDir', 'files', 'manifestKey', 'resumable'],
  ManifestDownloadRequest: [...CALL, 'rootPrefix', 'manifest', 'manifestKey', 'localDir', 'conflict'],
  JobAttachmentsRequest: [...CALL, 'rootPrefix', 'farmId', 'queueId', 'inputFiles', 'inputDirectories', 'outputDirectories',
    'referencedPaths', 'storageProfile', 'requirePathsExist', 'filter', 'fileSystem', 'resumable'],
  JobOutputUploadRequest: [...CALL, 'rootPrefix', 'farmId', 'queueId', 'jobId', 'stepId', 'taskId', 'sessionActionId', 'startTime',
    'rootPath', 'fileSystemLocationName', 'localDir', 'files', 'resumable'],
  JobOutputsRequest: [...CALL, 'rootPrefix', 'farmId', 'queueId', 'jobId', 'stepId', 'taskId', 'rootMap', 'storageProfile', 'conflict'],
  CreateBucketRequest: ['bucket', 'signal'],
  FilterSets: ['include', 'exclude'],
  FilterRule: ['include', 'exclude'],
}
const KNOWN = Object.fromEntries(Object.entries(FIELDS).map(([k, v]) => [k, new Set(v)]))

/** ERR_INVALID_ARG_VALUE for the first name of `object` that none of `kinds` declares, suggesting the right case. */
function unknownName(object, kinds, what) {
  for (const name of Object.keys(object)) {
    if (object[name] === undefined || kinds.some((k) => KNOWN[k].has(name))) continue
    const near = kinds.flatMap((k) => FIELDS[k]).find((n) => n.toLowerCase() === name.toLowerCase())
    const err = new TypeError(`${what} has no option '${name}'${near ? ` (did you mean '${near}'?)` : ''}`)
    err.code = 'ERR_INVALID_ARG_VALUE'
    return err
  }
  return null
}

/**
 * `filter`'s shape, checked here: a misspelt `exlude`, a list of bare globs (`['*.tmp']`) or a glob that is not a
 * string would otherwise reach the binding as "no filter" and upload what it was meant to leave out.
 */
function badFilter(filter) {
  if (filter === undefined || filter === null) return null
  const strings = (list) => Array.isArray(list) && list.every((g) => typeof g === 'string')
  if (Array.isArray(filter)) {
    for (let i = 0; i < filter.length; i++) {
      const rule = filter[i]
      if (rule === null || typeof rule !== 'object' || Array.isArray(rule)) {
        return argTypeError(`filter[${i}] must be { include: glob } or { exclude: glob }, got ${JSON.stringify(rule) ?? typeof rule}`)
      }
      const unknown = unknownName(rule, ['FilterRule'], `filter[${i}]`)
      if (unknown) return unknown
      const given = ['include', 'exclude'].filter((k) => rule[k] !== undefined)
      if (given.length === 1 && typeof rule[given[0]] !== 'string') {
        return argTypeError(`filter[${i}].${given[0]} must be a glob string, got ${typeof rule[given[0]]}`)
      }
    }
    return null
  }
  if (typeof filter !== 'object') return argTypeError(`filter must be { include, exclude } or an array of rules, got ${typeof filter}`)
  const unknown = unknownName(filter, ['FilterSets'], 'filter')
  if (unknown) return unknown
  for (const k of ['include', 'exclude']) {
    if (filter[k] !== undefined && !strings(filter[k])) return argTypeError(`filter.${k} must be an array of glob strings`)
  }
  return null
}

// Lists of path strings, by request kind.
const PATH_LISTS = {
  ContentAddressedUploadRequest: ['files'],
  JobOutputUploadRequest: ['files'],
  JobAttachmentsRequest: ['inputFiles', 'inputDirectories', 'outputDirectories', 'referencedPaths'],
}

/** ERR_INVALID_ARG_TYPE for a list entry of the wrong type (null, a hole in a sparse array). */
function badEntry(request, kinds) {
  const pathLists = kinds.flatMap((k) => PATH_LISTS[k] ?? [])
  for (const field of pathLists.length > 0 ? pathLists : ['files', 'objects']) {
    const strings = pathLists.includes(field)
    const list = request[field]
    if (!Array.isArray(list)) continue
    for (let i = 0; i < list.length; i++) {
      const entry = list[i]
      const ok = strings ? typeof entry === 'string' : entry !== null && typeof entry === 'object'
      if (!ok) {
        const want = strings ? 'a path string' : field === 'files' ? 'an object { path, key }' : 'an object { key, path }'
        return argTypeError(`${field}[${i}] must be ${want}, got ${entry === null ? 'null' : typeof entry}`)
      }
      if (field === 'files' && !strings) {
        const unknown = unknownName(entry, ['UploadFileEntry'], `files[${i}]`)
        if (unknown) return unknown
      }
    }
  }
  return null
}

/**
 * A credentials function (an AWS SDK v3 provider such as `fromIni()`) as the binding calls it: always a promise of
 * `{ accessKeyId, secretAccessKey, sessionToken?, expiration? }` with `expiration` in milliseconds. A provider that
 * throws, or resolves to a bad shape, fails the call with ERR_CREDENTIALS; `state.error` keeps what it threw, which
 * becomes that error's `cause`.
 */
function credentialsFunction(provider) {
  const state = { error: undefined }
  const failed = (e) => {
    state.error = e
    throw e
  }
  const wrapped = async () => {
    state.error = undefined
    let c
    try {
      c = await provider()
    } catch (e) {
      failed(e)
    }
    if (c === null || typeof c !== 'object') {
      failed(argTypeError(`the credentials function must resolve to { accessKeyId, secretAccessKey, sessionToken?, expiration? }, got ${c === null ? 'null' : typeof c}`))
    }
    for (const name of ['accessKeyId', 'secretAccessKey']) {
      if (typeof c[name] !== 'string') failed(argTypeError(`the credentials function resolved to an object whose ${name} is not a string`))
    }
    if (c.sessionToken != null && typeof c.sessionToken !== 'string') {
      failed(argTypeError('the credentials function resolved to an object whose sessionToken is not a string'))
    }
    let expiration
    if (c.expiration != null) {
      expiration = new Date(c.expiration).getTime()
      if (Number.isNaN(expiration)) failed(argTypeError('the credentials function resolved to an expiration that is not a date'))
    }
    state.error = undefined
    return { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken ?? undefined, expiration }
  }
  return { wrapped, state }
}

/** The options with a credentials function wrapped (see `credentialsFunction`), and that function's state. */
function withCredentials(options) {
  if (options == null || typeof options.credentials !== 'function') return { options, credentials: undefined }
  const { wrapped, state } = credentialsFunction(options.credentials)
  return { options: { ...options, credentials: wrapped }, credentials: state }
}

function run(call, request, kinds, credentials) {
  if (request === null || typeof request !== 'object') {
    return Promise.reject(argTypeError(`the request must be an object, got ${request === null ? 'null' : typeof request}`))
  }
  const unknown = unknownName(request, kinds, 'the request') || badFilter(request.filter) || badEntry(request, kinds)
  if (unknown) return Promise.reject(unknown)
  const { signal, onProgress } = request
  if (signal != null && !(signal instanceof AbortSignal)) {
    return Promise.reject(argTypeError('signal must be an AbortSignal'))
  }
  if (onProgress != null && typeof onProgress !== 'function') {
    return Promise.reject(argTypeError('onProgress must be a function'))
  }
  if (signal?.aborted) return Promise.reject(abortError(signal, { ...EMPTY_SUMMARY }))

  // The native side listens on a signal of our own, so the caller's signal is left as it was.
  const inner = new AbortController()
  const forwarded = { ...request, signal: inner.signal }
  const onAbort = () => inner.abort(signal.reason)
  signal?.addEventListener('abort', onAbort, { once: true })
  let callbackError
  let callbackThrew = false
  const callbackFailed = (e) => {
    if (callbackThrew) return
    callbackThrew = true
    callbackError = e
    inner.abort(e)
  }
  if (onProgress) {
    forwarded.onProgress = (progress) => {
      if (callbackThrew) return
      try {
        // An async callback that rejects counts as one that throws (never an unhandled rejection).
        const returned = onProgress(progress)
        if (returned && typeof returned.then === 'function') returned.then(undefined, callbackFailed)
      } catch (e) {
        callbackFailed(e)
      }
    }
  }
  const settle = () => signal?.removeEventListener('abort', onAbort)
  let promise
  try {
    promise = call(forwarded)
  } catch (e) {
    settle()
    return Promise.reject(normalize(e))
  }
  return promise.then(
    (summary) => {
      settle()
      if (callbackThrew) throw callbackError
      return summary
    },
    (err) => {
      settle()
      if (callbackThrew) throw callbackError
      if (err && err.code === 'ABORT_ERR' && signal?.aborted) err.cause = signal.reason
      if (err && err.code === 'ERR_CREDENTIALS' && credentials?.error !== undefined) err.cause = credentials.error
      throw normalize(err)
    },
  )
}

const CREDENTIALS = new WeakMap()

class TransferClient extends native.TransferClient {
  constructor(options) {
    if (options != null && typeof options !== 'object') {
      throw argTypeError(`options must be an object, got ${typeof options}`)
    }
    const unknown = options && unknownName(options, ['ClientOptions'], 'ClientOptions')
    if (unknown) throw unknown
    const given = withCredentials(options)
    try {
      super(given.options)
    } catch (e) {
      throw normalize(e)
    }
    CREDENTIALS.set(this, given.credentials)
  }

  upload(request) {
    return run((r) => super.upload(r), request, ['UploadRequest'], CREDENTIALS.get(this))
  }

  download(request) {
    return run((r) => super.download(r), request, ['DownloadRequest'], CREDENTIALS.get(this))
  }

  uploadContentAddressed(request) {
    return run((r) => super.uploadContentAddressed(r), request, ['ContentAddressedUploadRequest'], CREDENTIALS.get(this))
  }

  downloadManifest(request) {
    return run((r) => super.downloadManifest(r), request, ['ManifestDownloadRequest'], CREDENTIALS.get(this))
  }

  submitJobAttachments(request) {
    return run((r) => super.submitJobAttachments(r), request, ['JobAttachmentsRequest'], CREDENTIALS.get(this))
  }

  uploadJobOutputs(request) {
    return run((r) => super.uploadJobOutputs(r), request, ['JobOutputUploadRequest'], CREDENTIALS.get(this))
  }

  downloadJobOutputs(request) {
    return run((r) => super.downloadJobOutputs(r), request, ['JobOutputsRequest'], CREDENTIALS.get(this))
  }

  createBucket(request) {
    return run((r) => super.createBucket(r), request, ['CreateBucketRequest'], CREDENTIALS.get(this))
  }
}

/** A one-shot call: the request's client options with a credentials function wrapped. */
function once(call, request, kind) {
  const given = request !== null && typeof request === 'object' ? withCredentials(request) : { options: request }
  return run(call, given.options, ['ClientOptions', kind], given.credentials)
}

function upload(request) {
  return once(native.upload, request, 'UploadRequest')
}

function download(request) {
  return once(native.download, request, 'DownloadRequest')
}

module.exports = { TransferClient, upload, download }
// For module.test.mjs, which checks these names against index.d.ts; not part of the API.
Object.defineProperty(module.exports, '__fields', { value: FIELDS })

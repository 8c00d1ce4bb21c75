#!/usr/bin/env node
// The s3-ferry command line: the library's main job from a shell, built on its public API only.
//
//   s3-ferry upload ./bundle s3://jobs/job-42/
//   s3-ferry upload scene.blend tex1.png s3://jobs/job-42/
//   s3-ferry download s3://jobs/job-42/ ./out
//   s3-ferry upload-attachments ./job s3://jobs/farm --manifest job.manifest   (by content, skipping what S3 has)
//   s3-ferry download-manifest job.manifest s3://jobs/farm ./out
//
// Progress: a live bar on a terminal, a plain line a second otherwise, JSON lines with --json. Ctrl-C cancels
// through the AbortSignal path (nothing half-written is left) and exits with 130.
import { readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Command, InvalidArgumentError, Option } from 'commander'
import cliProgress from 'cli-progress'
// Loaded here so a missing or broken binary is one line on stderr and exit 1, not a stack trace.
let TransferClient
try {
  ;({ TransferClient } = await import('s3-ferry'))
} catch (e) {
  console.error(e.code === 'ERR_S3_FERRY_BINDING' ? e.message : `s3-ferry: ${e.code ?? 'ERROR'}: ${e.message}`)
  process.exit(1)
}

const { version } = createRequire(import.meta.url)('s3-ferry/package.json')

/** Bad usage found inside a command (commander reports what it parses itself): exit 2 with the reason and a hint. */
class UsageError extends Error {
  constructor(message, command) {
    super(message)
    this.command = command
  }
}

const UNITS = { b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3 }

/** "8MiB", "10MB/s", "1048576" → bytes (or bytes per second). */
export function parseSize(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*(\/s)?\s*$/i.exec(String(text))
  if (!m) throw new InvalidArgumentError(`'${text}' is not a size (examples: 8MiB, 10MB/s, 1048576)`)
  const bytes = Math.round(Number(m[1]) * (m[2] ? UNITS[m[2].toLowerCase()] : 1))
  if (!(bytes > 0)) throw new InvalidArgumentError(`'${text}' must be more than 0`)
  return bytes
}

function positiveInt(text) {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`'${text}' is not a positive integer`)
  return n
}

/** "s3://bucket/prefix/" → { bucket, prefix } (the scheme in any case, as the AWS CLI takes it). */
export function parseS3Url(text) {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(text)
  if (!m) throw new InvalidArgumentError(`'${text}' is not an S3 URL: write s3://bucket/prefix/`)
  return { bucket: m[1], prefix: m[2] }
}

/** parseS3Url inside a command's action, where commander does not report the error itself. */
function s3Url(text, command, role) {
  try {
    return parseS3Url(text)
  } catch (e) {
    throw new UsageError(`the ${role} ${e.message}`, command)
  }
}

/** Failed files listed one per line on a terminal; --json lists them all. */
const MAX_FAILURES_SHOWN = 50

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`

const fmt = (n) => (n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(2)} GiB` : n >= 1024 ** 2 ? `${(n / 1024 ** 2).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`)

/** Where a progress event stands: hashed bytes while hashing, transferred bytes after. */
function position(p) {
  return p.phase === 'hashing' ? { done: p.hashedBytes, files: p.hashedFiles } : { done: p.transferredBytes, files: p.completedFiles }
}

/** The progress display: a bar on a terminal, a line a second otherwise, JSON lines with --json. */
function display(mode, label) {
  if (mode === 'json') {
    return {
      update: (p) => process.stdout.write(JSON.stringify({ type: 'progress', ...p }) + '\n'),
      done() {},
    }
  }
  if (mode === 'tty') {
    const bar = new cliProgress.SingleBar(
      {
        // Our own names: cli-progress fills {value} and {total} with raw numbers, and they win over a payload's.
        format: `${label} {bar} {percentage}% | {doneText} / {totalText} | files {files} | {rate}/s | ETA {eta_formatted}`,
        hideCursor: true,
        barsize: 24,
        fps: 10,
        etaBuffer: 50,
        clearOnComplete: false,
        stream: process.stdout,
      },
      cliProgress.Presets.shades_classic,
    )
    let started = false
    return {
      update(p) {
        const { done, files } = position(p)
        const payload = { doneText: fmt(done), totalText: fmt(p.totalBytes), files: `${files}/${p.totalFiles}`, rate: fmt(p.bytesPerSecond) }
        if (!started) {
          bar.start(Math.max(1, p.totalBytes), done, payload)
          started = true
        }
        bar.setTotal(Math.max(1, p.totalBytes))
        bar.update(done, payload)
      },
      done() {
        if (started) bar.stop()
      },
    }
  }
  let last = 0
  return {
    update(p) {
      if (Date.now() - last < 1000) return
      last = Date.now()
      const { done, files } = position(p)
      const pct = p.totalBytes ? ((100 * done) / p.totalBytes).toFixed(1) : '100.0'
      const what = p.phase === 'hashing' || p.phase === 'checking' ? p.phase.padEnd(8) : label
      console.log(`${what} ${pct}% ${fmt(done)} / ${fmt(p.totalBytes)} files ${files}/${p.totalFiles} ${fmt(p.bytesPerSecond)}/s`)
    },
    done() {},
  }
}

function clientFrom(opts) {
  const options = {}
  if (opts.endpoint) options.endpoint = opts.endpoint
  if (opts.region) options.region = opts.region
  if (opts.profile) options.profile = opts.profile
  if (opts.signRequest === false) options.anonymous = true
  if (opts.pathStyle) options.forcePathStyle = true
  if (opts.pool) options.maxPoolConnections = opts.pool
  if (opts.workers) Object.assign(options, { uploadWorkers: opts.workers, downloadWorkers: opts.workers })
  if (opts.partSize) Object.assign(options, { partSize: opts.partSize, multipartThreshold: opts.partSize })
  if (opts.maxBandwidth) options.maxBandwidth = opts.maxBandwidth
  if (opts.config) options.configFile = opts.config
  if (opts.cacheDir) options.cacheDir = opts.cacheDir
  if (opts.cache === false) options.cacheDir = false
  return new TransferClient(options)
}

/** Runs one transfer with the display, Ctrl-C and the exit code. `method`: the client's; `finish(result)`
 * handles what it resolves to and returns the summary to print. */
async function transfer(method, opts, request, finish = (summary) => summary) {
  const direction = /^upload/i.test(method) ? 'upload' : 'download'
  const mode = opts.json ? 'json' : process.stdout.isTTY ? 'tty' : 'lines'
  const client = clientFrom(opts)
  const controller = new AbortController()
  const onSigint = () => controller.abort(new Error('interrupted (Ctrl-C)'))
  process.on('SIGINT', onSigint)
  // --quiet: errors only; --no-progress: the summary without progress (both for cron and CI logs); a dry run
  // prints its plan instead.
  const view = opts.quiet || opts.progress === false || request.dryRun ? { update() {}, done() {} } : display(mode, direction === 'upload' ? 'upload  ' : 'download')
  try {
    // Like the AWS CLI, a file that fails does not stop the others (unless --fail-fast); all are listed at the end.
    const keepGoing = ['upload', 'download'].includes(method) && !opts.failFast ? { continueOnError: true } : {}
    const result = await client[method]({ ...request, ...keepGoing, signal: controller.signal, onProgress: (p) => view.update(p) })
    view.done()
    const summary = finish(result)
    if (summary.plan) {
      if (!opts.quiet) reportPlan(mode, direction, request.bucket, summary)
      return 0
    }
    if (!opts.quiet) report(mode, 'summary', summary)
    if (direction === 'download' && request.keyPrefix !== undefined && summary.files + summary.skippedFiles === 0) {
      const where = `s3://${request.bucket}/${request.keyPrefix}`
      if (opts.failOnEmpty) {
        console.error(`s3-ferry: ERR_NOTHING_MATCHED: no object under ${where}`)
        return 1
      }
      if (mode !== 'json' && !opts.quiet) console.error(`s3-ferry: note: no object under ${where}; nothing was downloaded`)
    }
    return 0
  } catch (e) {
    view.done()
    if (e.name === 'AbortError') {
      if (!opts.quiet) report(mode, 'aborted', e.summary)
      return 130
    }
    if (mode === 'json') {
      const detail = e.failures ? { failures: e.failures, summary: e.summary } : {}
      process.stdout.write(JSON.stringify({ type: 'error', code: e.code, message: e.message, ...detail }) + '\n')
      return 1
    }
    if (e.failures?.length > 1) {
      // Every file that failed, each on its own line, and what completed.
      const shown = e.failures.slice(0, MAX_FAILURES_SHOWN)
      console.error(`s3-ferry: ${plural(e.failures.length, 'file')} failed (${e.summary?.files ?? 0} completed):`)
      for (const f of shown) console.error(`  ${f.code}: ${f.message}`)
      if (e.failures.length > shown.length) console.error(`  ... and ${e.failures.length - shown.length} more (--json lists them all)`)
    } else {
      console.error(`s3-ferry: ${e.code ?? 'ERROR'}: ${e.message}`)
    }
    return 1
  } finally {
    process.off('SIGINT', onSigint)
  }
}

function report(mode, type, s) {
  if (mode === 'json') {
    process.stdout.write(JSON.stringify({ type, ...s }) + '\n')
    return
  }
  // An abort's byte count includes parts of the files it cut short, which are discarded: only the files count
  // as completed.
  const head =
    type === 'aborted'
      ? `Aborted after ${s.seconds.toFixed(2)} s: ${plural(s.files, 'file')} completed (${fmt(s.bytes)} sent, parts of unfinished files discarded)`
      : `Done: ${plural(s.files, 'file')}, ${fmt(s.bytes)} in ${s.seconds.toFixed(2)} s (${fmt(s.bytesPerSecond)}/s)`
  console.log(
    head +
      (s.skippedFiles ? `, ${s.skippedFiles} skipped (${fmt(s.skippedBytes)})` : '') +
      (s.resumedBytes ? `, ${fmt(s.resumedBytes)} resumed` : '') +
      (s.hashedFiles ? `; ${plural(s.hashedFiles, 'file')} hashed` + (s.cachedHashes ? ` (${s.cachedHashes} from the cache)` : '') : ''),
  )
}

/** A dry run: one line per file, as `aws s3 cp --dryrun` prints them, then what it would do in all. */
function reportPlan(mode, direction, bucket, { plan, ...summary }) {
  for (const f of plan) {
    if (mode === 'json') {
      process.stdout.write(JSON.stringify({ type: 'plan', action: f.skip ? 'skip' : direction, ...f }) + '\n')
      continue
    }
    const url = `s3://${bucket}/${f.key}`
    const [from, to] = direction === 'upload' ? [f.path, url] : [url, f.path]
    console.log(f.skip ? `(dryrun) skip (${f.skip}): ${from}` : `(dryrun) ${direction}: ${from} to ${to}`)
  }
  if (mode === 'json') {
    process.stdout.write(JSON.stringify({ type: 'summary', dryRun: true, ...summary }) + '\n')
    return
  }
  const size = plan.some((f) => !f.skip && f.bytes === undefined) ? '' : `, ${fmt(summary.bytes)}`
  console.log(
    `Dry run: would ${direction} ${plural(summary.files, 'file')}${size}` +
      (summary.skippedFiles ? `; ${summary.skippedFiles} skipped (${fmt(summary.skippedBytes)})` : '') +
      '; nothing was sent',
  )
}

/** The options that choose which files of a tree go, and which are skipped, for upload and download. */
function selection(cmd) {
  // --include and --exclude apply in the order given (the last that matches decides), so both go into one list.
  const rules = []
  const rule = (kind) => (glob) => {
    rules.push({ [kind]: glob })
    return rules
  }
  return cmd
    .option('--exclude <glob>', 'leave out files whose relative path matches (repeatable; * also matches /)', rule('exclude'))
    .option('--include <glob>', 'take back files an earlier --exclude left out (repeatable, in order)', rule('include'))
    .option('--skip-unchanged', 'skip files whose destination has the same size and is not older than the source')
    .option('--size-only', 'with --skip-unchanged semantics, compare sizes only')
    .option('--dryrun', 'print what would be transferred (and skipped); send nothing')
    .option('--fail-fast', 'stop at the first file that fails (default: go on, then list every failure and exit 1)')
    .addOption(new Option('--dry-run').hideHelp())
}

/** The request fields `selection` gives. */
function selected(opts) {
  const rules = opts.include ?? opts.exclude
  return {
    ...(rules ? { filter: rules } : {}),
    ...(opts.sizeOnly ? { skipUnchanged: 'size' } : opts.skipUnchanged ? { skipUnchanged: true } : {}),
    ...(opts.dryrun || opts.dryRun ? { dryRun: true } : {}),
  }
}

/**
 * `name=value` pairs, repeatable, also several in one argument (`a=1,b=2`, or `a=1&b=2` as S3 writes tags, whose
 * names and values are then URL-decoded: `project=alpha%20beta`).
 */
function pairs(separator) {
  const decode = (s) => {
    if (separator !== '&') return s
    try {
      return decodeURIComponent(s.replace(/\+/g, ' '))
    } catch {
      throw new InvalidArgumentError(`'${s}' is not URL-encoded`)
    }
  }
  return (text, previous = {}) => {
    const out = { ...previous }
    for (const item of text.split(separator)) {
      if (!item) continue
      const eq = item.indexOf('=')
      if (eq <= 0) throw new InvalidArgumentError(`expected name=value, got '${item}'`)
      out[decode(item.slice(0, eq))] = decode(item.slice(eq + 1))
    }
    return out
  }
}

/** How uploaded objects are stored (the AWS CLI's flag names). */
function objectSettings(cmd) {
  return cmd
    .option('--content-type <type>', 'Content-Type of every object (default: guessed from the file extension)')
    .option('--no-guess-mime-type', 'do not guess: application/octet-stream unless --content-type is given')
    .option('--cache-control <value>', 'Cache-Control of every object, e.g. max-age=3600')
    .option('--content-disposition <value>', 'Content-Disposition of every object')
    .option('--content-encoding <value>', 'Content-Encoding of every object, e.g. gzip')
    .option('--content-language <value>', 'Content-Language of every object')
    .option('--metadata <name=value>', 'user metadata x-amz-meta-<name> (repeatable, or a=1,b=2)', pairs(','))
    .option('--tagging <name=value>', 'object tags (repeatable, or a=1&b=2)', pairs('&'))
    .option('--storage-class <class>', 'STANDARD, STANDARD_IA, INTELLIGENT_TIERING, GLACIER_IR, ...')
    .option('--acl <acl>', 'canned ACL: private, public-read, bucket-owner-full-control, ...')
    .option('--sse <algorithm>', 'server-side encryption: AES256, aws:kms or aws:kms:dsse')
    .option('--sse-kms-key-id <id>', 'the KMS key for --sse aws:kms (id, ARN or alias)')
    .option('--bucket-key-enabled', 'use an S3 Bucket Key with --sse aws:kms')
}

/** The request fields `objectSettings` gives. */
function objectFields(opts) {
  const fields = {
    contentType: opts.contentType,
    cacheControl: opts.cacheControl,
    contentDisposition: opts.contentDisposition,
    contentEncoding: opts.contentEncoding,
    contentLanguage: opts.contentLanguage,
    metadata: opts.metadata,
    tagging: opts.tagging,
    storageClass: opts.storageClass,
    acl: opts.acl,
    sse: opts.sse,
    sseKmsKeyId: opts.sseKmsKeyId,
    bucketKeyEnabled: opts.bucketKeyEnabled,
    ...(opts.guessMimeType === false ? { guessContentType: false } : {}),
  }
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined))
}

/** SSE-C, for uploads and downloads alike. */
function customerKey(cmd) {
  return cmd
    .option('--sse-c-key <key>', 'SSE-C: encrypt/decrypt with this 256-bit key (base64, or 32 characters)')
    .option('--sse-c-key-file <file>', 'SSE-C: the key is the 32 bytes of this file')
}

function customerKeyField(opts, command) {
  if (opts.sseCKey && opts.sseCKeyFile) throw new UsageError('give --sse-c-key or --sse-c-key-file, not both', command)
  if (opts.sseCKeyFile) return { sseCustomerKey: readFileSync(opts.sseCKeyFile) }
  return opts.sseCKey ? { sseCustomerKey: opts.sseCKey } : {}
}

function common(cmd) {
  return cmd
    .option('--endpoint <url>', 'endpoint of an S3-compatible store, e.g. http://127.0.0.1:9000')
    .option('--region <region>', 'AWS region (default: AWS_REGION, the profile, else us-east-1)')
    .option('--profile <name>', 'named profile of the shared AWS config files')
    .option('--no-sign-request', 'send unsigned requests (public buckets); no credentials are looked for')
    .option('--expected-bucket-owner <account>', 'the AWS account id that must own the bucket (else AccessDenied)')
    .option('--path-style', 'path-style addressing (most S3-compatible stores need it)')
    .option('--pool <n>', 'max connections and requests in flight (default 50)', positiveInt)
    .option('--workers <n>', 'big files in flight (default derived from the pool)', positiveInt)
    .option('--part-size <size>', 'multipart part size and threshold, e.g. 16MiB (default 8MiB)', parseSize)
    .option('--max-bandwidth <rate>', 'bandwidth cap, e.g. 10MB/s', parseSize)
    .option('--config <file>', 'INI config file with a [settings] section (default: $S3_FERRY_CONFIG)')
    .addOption(new Option('--json', 'machine-readable progress: one JSON object per line'))
    .option('--no-progress', 'no progress display: only the summary (and errors)')
    .option('-q, --quiet', 'errors only: no progress, no summary')
}

const owner = (opts) => (opts.expectedBucketOwner ? { expectedBucketOwner: opts.expectedBucketOwner } : {})

function attachments(cmd) {
  return cmd
    .option('--cache-dir <dir>', 'cache of file hashes and contents seen in S3 (default: $S3_FERRY_CACHE_DIR, else ~/.cache/s3-ferry)')
    .option('--no-cache', 'no cache: hash every file, ask S3 about every content')
}

/** `--help`'s closing lines for a command: examples users can copy. */
const examples = (...lines) => `\nExamples:\n${lines.map((l) => `  $ s3-ferry ${l}`).join('\n')}\n`

export function program() {
  const prog = new Command('s3-ferry')
    .description('Fast S3 uploads and downloads. Credentials come from the standard AWS chain (environment, profile, SSO, ...).')
    .version(version, '-V, --version', 'print the version')
    .showHelpAfterError()
    .exitOverride()
  customerKey(objectSettings(selection(common(prog.command('upload')))))
    .option('--follow-symlinks', 'follow symlinks in a directory upload (a link back up the tree is skipped); default: links are skipped')
    .description('upload a directory (to prefix/relative path) or files (to prefix/file name; one file to a key without /)')
    .addHelpText(
      'after',
      examples(
        'upload ./bundle s3://jobs/job-42/                 # keys job-42/<relative path>',
        'upload scene.blend tex1.png s3://jobs/job-42/     # keys job-42/scene.blend, job-42/tex1.png',
        'upload scene.blend s3://jobs/job-42/main.blend    # that key',
        'upload --max-bandwidth 10MB/s --no-progress ./bundle s3://jobs/job-42/',
        'upload --exclude ".git/*" --exclude "*.tmp" ./bundle s3://jobs/job-42/',
        'upload --skip-unchanged --dryrun ./bundle s3://jobs/job-42/   # what a sync would send',
        'upload --storage-class INTELLIGENT_TIERING --sse aws:kms --metadata job=42 ./bundle s3://jobs/job-42/',
      ),
    )
    .argument('<source...>', 'a directory, or one or more files, then the destination s3://bucket/prefix/')
    .action(async (args, opts) => {
      if (args.length < 2) throw new UsageError('give the source and then the destination s3://bucket/prefix/', 'upload')
      const { bucket, prefix } = s3Url(args.at(-1), 'upload', 'destination')
      const sources = args.slice(0, -1)
      const selection = selected(opts)
      let request
      if (sources.length === 1 && statSync(sources[0], { throwIfNoEntry: false })?.isDirectory()) {
        // The library reads the prefix as a folder: s3://b/job and s3://b/job/ both give job/<relative path>.
        request = { bucket, localDir: sources[0], keyPrefix: prefix, ...selection, followSymlinks: !!opts.followSymlinks }
      } else if (selection.filter) {
        throw new UsageError('--include and --exclude apply to a directory upload; name the files instead', 'upload')
      } else if (sources.length === 1 && prefix && !prefix.endsWith('/')) {
        // One file to a key that is not a folder: that key (as `aws s3 cp file s3://b/key`).
        request = { bucket, files: [{ path: path.resolve(sources[0]), key: prefix }], ...selection }
      } else {
        const folder = prefix && !prefix.endsWith('/') ? `${prefix}/` : prefix
        request = { bucket, files: sources.map((p) => ({ path: path.resolve(p), key: folder + path.basename(p) })), ...selection }
      }
      Object.assign(request, objectFields(opts), customerKeyField(opts, 'upload'), owner(opts))
      process.exitCode = await transfer('upload', opts, request)
    })
  customerKey(selection(common(prog.command('download'))))
    .description('download every key under s3://bucket/prefix/ into a directory (s3://bucket/key: that object, into it)')
    .addHelpText(
      'after',
      examples(
        'download s3://jobs/job-42/ ./out                  # the tree under job-42/',
        'download s3://jobs/job-42/scene.blend ./out       # ./out/scene.blend',
        'download --conflict skip --fail-on-empty s3://jobs/job-42/ ./out',
        'download --include "*.exr" --exclude "tmp/*" s3://jobs/job-42/ ./out',
        'download --skip-unchanged s3://jobs/job-42/ ./out    # fetch only what changed',
      ),
    )
    .argument('<source>', 's3://bucket/prefix/ (a folder), or s3://bucket/key', parseS3Url)
    .argument('<localDir>', 'destination directory (created if missing)')
    .option('--fail-on-empty', 'exit 1 when no object matches (default: a note on stderr, exit 0)')
    .addOption(
      new Option('--conflict <policy>', 'when a destination file exists: replace it, skip the object, write "name (1).ext", or fail')
        .choices(['overwrite', 'skip', 'createCopy', 'error'])
        .default('overwrite'),
    )
    .action(async ({ bucket, prefix }, localDir, opts) => {
      const request = { bucket, keyPrefix: prefix, localDir, conflict: opts.conflict, ...selected(opts), ...customerKeyField(opts, 'download'), ...owner(opts) }
      process.exitCode = await transfer('download', opts, request)
    })
  attachments(common(prog.command('upload-attachments')))
    .description('job attachments: upload every file under a directory by content (xxh128) to s3://bucket/root/Data/, skipping contents S3 already has, and write the manifest')
    .argument('<localDir>', "the job's root directory (manifest paths are relative to it)")
    .argument('<destination>', 's3://bucket/rootPrefix', parseS3Url)
    .option('--manifest <file>', 'write the manifest to this file (with --json and no file: in the summary line)')
    .option('--manifest-key <key>', 'also store the manifest in the bucket at this key')
    .option('--resumable', 'on failure, keep unfinished multipart uploads for the next run to resume')
    .action(async (localDir, { bucket, prefix }, opts) => {
      if (!opts.manifest && !opts.manifestKey && !opts.json) {
        throw new UsageError('give --manifest <file> and/or --manifest-key <key>: the manifest is what a download needs', 'upload-attachments')
      }
      const request = { bucket, rootPrefix: prefix, localDir, manifestKey: opts.manifestKey, resumable: !!opts.resumable, ...owner(opts) }
      process.exitCode = await transfer('uploadContentAddressed', opts, request, (out) => {
        if (opts.manifest) writeFileSync(opts.manifest, out.manifest)
        const { manifest, summary, ...rest } = out
        return { ...summary, ...rest, ...(opts.json && !opts.manifest ? { manifest } : {}) }
      })
    })
  common(prog.command('mb'))
    .description('make a bucket (in --region; one that exists and is yours is fine)')
    .addHelpText('after', examples('mb s3://jobs', 'mb --endpoint http://127.0.0.1:9000 --path-style s3://jobs'))
    .argument('<bucket>', 's3://bucket', parseS3Url)
    .action(async ({ bucket, prefix }, opts) => {
      if (prefix) throw new UsageError(`mb takes a bucket, not a key: s3://${bucket}`, 'mb')
      try {
        const { created } = await clientFrom(opts).createBucket({ bucket })
        if (opts.json) process.stdout.write(JSON.stringify({ type: 'summary', bucket, created }) + '\n')
        else if (!opts.quiet) console.log(created ? `make_bucket: ${bucket}` : `make_bucket: ${bucket} exists already (yours)`)
      } catch (e) {
        if (opts.json) process.stdout.write(JSON.stringify({ type: 'error', code: e.code, message: e.message }) + '\n')
        else console.error(`s3-ferry: ${e.code ?? 'ERROR'}: ${e.message}`)
        process.exitCode = 1
      }
    })
  attachments(common(prog.command('download-manifest')))
    .description('job attachments: download the files of a manifest from s3://bucket/root/Data/, verifying each, skipping those already present')
    .argument('<manifest>', 'a manifest file, or s3://bucket/key of a stored one')
    .argument('<source>', 's3://bucket/rootPrefix', parseS3Url)
    .argument('<localDir>', 'destination directory (created if missing)')
    .addOption(
      new Option('--conflict <policy>', 'when a destination exists with other content').choices(['overwrite', 'skip', 'createCopy', 'error']).default('overwrite'),
    )
    .action(async (manifest, { bucket, prefix }, localDir, opts) => {
      const request = { bucket, rootPrefix: prefix, localDir, conflict: opts.conflict, ...owner(opts) }
      if (manifest.startsWith('s3://')) {
        const stored = parseS3Url(manifest)
        if (stored.bucket !== bucket) {
          throw new UsageError(`the manifest (bucket '${stored.bucket}') must be in the same bucket as the contents ('${bucket}')`, 'download-manifest')
        }
        request.manifestKey = stored.prefix
      } else {
        request.manifest = readFileSync(manifest, 'utf8')
      }
      process.exitCode = await transfer('downloadManifest', opts, request)
    })
  return prog
}

/** Whether this file is the program being run (through npm's bin link or shim too), not a module imported for
 * its helpers (`parseSize`, `parseS3Url`, `program`). */
function invoked() {
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (invoked()) {
  try {
    await program().parseAsync(process.argv)
  } catch (e) {
    // commander's own exits (--help, --version) carry code commander.*; bad usage exits 2 like most CLIs.
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version') process.exit(0)
    if (e instanceof UsageError) {
      console.error(`s3-ferry: ${e.message}\nRun 's3-ferry ${e.command} --help' for usage.`)
      process.exit(2)
    }
    if (String(e.code).startsWith('commander.')) process.exit(2)
    console.error(`s3-ferry: ${e.code ?? 'ERROR'}: ${e.message}`)
    process.exit(2)
  }
}

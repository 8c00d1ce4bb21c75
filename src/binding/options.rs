//! JavaScript → engine: option and request objects, converted at the boundary and validated before any request.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::HashMap;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use napi::bindgen_prelude::{AbortSignal, Buffer, Either, Promise};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;
use napi_derive::napi;

use crate::engine::{
  self, settings, ChecksumAlgorithm, ChecksumMode, ClientConfig, Error, Settings, StaticCredentials,
};

/// Explicit credentials. Never printed in errors or logs.
#[napi(object, object_to_js = false)]
pub struct Credentials {
  pub access_key_id: String,
  pub secret_access_key: String,
  /// For temporary credentials (STS, SSO).
  pub session_token: Option<String>,
}

/// What a credentials function resolves to: the shape of the AWS SDK for JavaScript v3's providers
/// (`fromIni()`, `fromSSO()`, `fromTemporaryCredentials()`, `fromNodeProviderChain()`, ...).
#[napi(object, object_to_js = false)]
pub struct ProvidedCredentials {
  pub access_key_id: String,
  pub secret_access_key: String,
  pub session_token: Option<String>,
  /// When they stop working; they are asked for again 5 minutes before (half their lifetime when shorter
  /// than 10 minutes). Without one they are asked for once.
  #[napi(ts_type = "Date")]
  pub expiration: Option<f64>,
}

/// A credentials function, called on the JavaScript thread (index.js wraps the caller's to settle a Promise of
/// `ProvidedCredentials` with `expiration` in milliseconds). Weak: a client does not keep Node running.
pub type CredentialsFunction = ThreadsafeFunction<(), Promise<ProvidedCredentials>, (), Status, false, true>;

/// The engine's view of a credentials function.
struct JsCredentials(CredentialsFunction);

impl engine::FetchCredentials for Arc<JsCredentials> {
  fn fetch(&self) -> BoxFuture<'static, Result<engine::Provided, String>> {
    let f = self.clone();
    Box::pin(async move {
      let failed = |e: napi::Error| match e.reason.starts_with("the credentials function") {
        true => e.reason.clone(),
        false => format!("the credentials function failed: {}", e.reason),
      };
      let promise = f.0.call_async_catch(()).await.map_err(failed)?;
      let c = promise.await.map_err(failed)?;
      let expiration = match c.expiration {
        None => None,
        // Checked: a far-future date (JavaScript's go to the year 275760) is past what a SystemTime holds on some
        // platforms; such credentials never expire in practice.
        Some(ms) if ms.is_finite() && ms >= 0.0 => std::time::UNIX_EPOCH.checked_add(Duration::from_millis(ms as u64)),
        Some(_) => return Err("the credentials function returned an expiration that is not a date".to_owned()),
      };
      Ok(engine::Provided {
        credentials: StaticCredentials {
          access_key_id: c.access_key_id,
          secret_access_key: c.secret_access_key,
          session_token: c.session_token,
        },
        expiration,
      })
    })
  }
}

/// When uploads send a request checksum.
#[napi(string_enum = "camelCase")]
pub enum ChecksumPolicy {
  /// A `checksumAlgorithm` checksum with every upload, stored for the whole object (AWS S3 verifies it). Default
  /// for AWS.
  WhenSupported,
  /// Only when the operation requires one. Default for a custom `endpoint`, since some S3-compatible stores
  /// reject the streaming checksum trailer.
  WhenRequired,
}

/// The checksum uploads send and S3 stores with the object (whole-object, also for multipart uploads).
#[napi(string_enum = "lowercase")]
pub enum ChecksumAlgorithmName {
  /// CRC64/NVME (the default): what S3 computes itself for objects stored without a checksum.
  Crc64nvme,
  /// CRC32C (Castagnoli).
  Crc32c,
  /// CRC32.
  Crc32,
}

/// What a download does when a destination file already exists.
#[napi(string_enum = "camelCase")]
pub enum ConflictPolicy {
  /// Replace it, atomically (the default).
  Overwrite,
  /// Leave it and skip the object (counted in `skippedFiles`); nothing is fetched for it.
  Skip,
  /// Keep it and write `name (1).ext`, `name (2).ext`, ... (the first free name).
  CreateCopy,
  /// Reject with `ERR_DESTINATION_EXISTS` (with `path`), before fetching that object.
  Error,
}

/// Which files of a tree transfer (`localDir`) go: globs matched against each file's `/`-separated path
/// relative to `localDir` (uploads) or to `keyPrefix` (downloads), where `*` and `?` also match `/` (`*.tmp`
/// matches at any depth, `.git/*` everything under `.git`); `[a-z]`, `{a,b}` and `**` work as usual;
/// case-sensitive. A file is taken when it matches no `exclude` pattern and, if `include` is given, matches one
/// of its patterns. Files left out are not counted anywhere.
#[napi(object, object_to_js = false)]
pub struct FilterSets {
  /// Only files matching one of these (default: every file).
  pub include: Option<Vec<String>>,
  /// Never files matching one of these.
  pub exclude: Option<Vec<String>>,
}

/// One rule of an ordered filter, as the AWS CLI's `--include` / `--exclude` in command-line order: exactly one
/// of the two. The last rule that matches a path decides; a path no rule matches is taken.
#[napi(object, object_to_js = false)]
pub struct FilterRule {
  /// Take the paths this glob matches.
  pub include: Option<String>,
  /// Leave out the paths this glob matches.
  pub exclude: Option<String>,
}

/// The `filter` option: sets (`{ include, exclude }`) or ordered rules.
pub type FilterOption = Either<Vec<FilterRule>, FilterSets>;

pub(super) fn filter(option: Option<FilterOption>) -> Result<Option<engine::Filter>, Error> {
  match option {
    None => Ok(None),
    Some(Either::B(sets)) => {
      if sets.include.as_ref().is_some_and(Vec::is_empty) {
        return Err(Error::invalid_value(
          "filter.include is empty, which would take no file: leave it out to take every file",
        ));
      }
      engine::Filter::sets(sets.include.unwrap_or_default(), sets.exclude.unwrap_or_default()).map(Some)
    }
    Some(Either::A(rules)) => {
      let rules = rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| match (r.include, r.exclude) {
          (Some(pattern), None) => Ok(engine::FilterRule { include: true, pattern }),
          (None, Some(pattern)) => Ok(engine::FilterRule {
            include: false,
            pattern,
          }),
          _ => Err(Error::invalid_value(format!(
            "filter[{i}] must have exactly one of include and exclude"
          ))),
        })
        .collect::<Result<Vec<_>, Error>>()?;
      engine::Filter::ordered(rules).map(Some)
    }
  }
}

/// The `skipUnchanged` option: `true` (size and time) or `'size'`.
fn skip_unchanged(option: Option<Either<bool, String>>) -> Result<Option<engine::SkipUnchanged>, Error> {
  match option {
    None | Some(Either::A(false)) => Ok(None),
    Some(Either::A(true)) => Ok(Some(engine::SkipUnchanged::SizeAndTime)),
    Some(Either::B(s)) if s == "size" => Ok(Some(engine::SkipUnchanged::Size)),
    Some(Either::B(s)) => Err(Error::invalid_value(format!(
      "skipUnchanged must be true, false or 'size', got '{s}'"
    ))),
  }
}

/// Whether a `files` entry sets any object setting of its own.
macro_rules! object_fields {
  ($f:expr) => {
    $f.content_type.is_some()
      || $f.cache_control.is_some()
      || $f.content_disposition.is_some()
      || $f.content_encoding.is_some()
      || $f.content_language.is_some()
      || $f.metadata.is_some()
      || $f.tagging.is_some()
      || $f.storage_class.is_some()
      || $f.acl.is_some()
  };
}

fn tree_only(what: &str, given: bool, tree: bool, list: &str) -> Result<(), Error> {
  match given && !tree {
    true => Err(Error::invalid_value(format!(
      "{what} applies to localDir; it cannot be used with {list}"
    ))),
    false => Ok(()),
  }
}

/// Options of a `TransferClient` (and of the one-shot `upload` / `download`).
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct ClientOptions {
  /// AWS region. Default: `AWS_REGION` / `AWS_DEFAULT_REGION`, the profile's region, else `us-east-1`.
  pub region: Option<String>,
  /// Endpoint URL of an S3-compatible store, e.g. `http://127.0.0.1:9000`.
  pub endpoint: Option<String>,
  /// Address buckets as `endpoint/bucket/key` (most S3-compatible stores need this). Default `false`.
  pub force_path_style: Option<bool>,
  /// Explicit credentials, or an async function returning them (an AWS SDK v3 credential provider such as
  /// `fromIni()` or `fromNodeProviderChain()`), called again before they expire. Default: the standard AWS chain
  /// (environment, shared config and credentials files with SSO and processes, web identity, container and
  /// instance metadata; the metadata lookup gives up after 250 ms off EC2).
  #[napi(ts_type = "Credentials | (() => Promise<ProvidedCredentials>)")]
  pub credentials: Option<Either<Credentials, CredentialsFunction>>,
  /// Send requests unsigned, for public buckets: no credentials are looked for. Default `false`.
  pub anonymous: Option<bool>,
  /// Named profile of the shared AWS config files.
  pub profile: Option<String>,
  /// Hard cap on open connections and requests in flight, across every call on the client. Default 50.
  pub max_pool_connections: Option<f64>,
  /// Big files uploaded at once (each keeps up to 10 requests in flight); small files share the same budget of
  /// `uploadWorkers × 10` requests. Default `floor(maxPoolConnections / min(smallFileThresholdMultiplier, 10))`.
  pub upload_workers: Option<f64>,
  /// Big files downloaded at once; default `floor(maxPoolConnections / 10)`.
  pub download_workers: Option<f64>,
  /// Multipart part size in bytes, 5 MiB to 5 GiB. Default 8 MiB (grown for files that would need more than
  /// 10,000 parts).
  pub part_size: Option<f64>,
  /// Files larger than this (bytes) use multipart upload and ranged parallel download. Default 8 MiB.
  pub multipart_threshold: Option<f64>,
  /// The original system's "small file" multiplier, used to derive `uploadWorkers`. Default 20.
  pub small_file_threshold_multiplier: Option<f64>,
  /// Attempts per request, the first included (standard retry mode, exponential backoff with jitter). Default 5.
  pub max_attempts: Option<f64>,
  /// Milliseconds a connection may take to open before the attempt fails (and is retried). Default 10000.
  pub connect_timeout_ms: Option<f64>,
  /// Milliseconds the network may be silent during an attempt (no request bytes taken, no response bytes
  /// arriving) before it fails and is retried; waiting on `maxBandwidth` or the disk does not count. Default 30000.
  pub read_timeout_ms: Option<f64>,
  /// Upload checksum policy; default `whenRequired` with a custom `endpoint`, else `whenSupported`. Downloads
  /// verify the stored checksum whatever this says.
  pub checksum: Option<ChecksumPolicy>,
  /// The checksum uploads send under `whenSupported`. Default `crc64nvme`.
  pub checksum_algorithm: Option<ChecksumAlgorithmName>,
  /// Bandwidth cap in bytes per second, shared by every upload and download of the client (a token bucket;
  /// no burst above a tenth of a second's worth). Default: no cap. A request's own `maxBandwidth` replaces it for
  /// that request.
  pub max_bandwidth: Option<f64>,
  /// An INI file whose `[settings]` section provides defaults for the numeric options
  /// (`s3_max_pool_connections`, `small_file_threshold_multiplier`, `s3_max_bandwidth`, `upload_workers`,
  /// `download_workers`, `part_size`, `multipart_threshold`, `max_attempts`, `connect_timeout_ms`, `read_timeout_ms`). Options given here override the
  /// file; the file overrides the built-in defaults. Default: `$S3_FERRY_CONFIG`, else none.
  pub config_file: Option<String>,
  /// The local cache's directory: file hashes (by path, size and mtime), content keys seen in S3 (30 days),
  /// and multipart uploads in progress, so an upload cut short by a crash or an outage resumes. `false`: no
  /// cache. Default: `$S3_FERRY_CACHE_DIR`, else `$XDG_CACHE_HOME/s3-ferry`, else `~/.cache/s3-ferry`.
  #[napi(ts_type = "string | false")]
  pub cache_dir: Option<Either<String, bool>>,
  /// Share Deadline Cloud's own caches (its client's and DCC submitters' `hash_cache.db`, table `hashesV4`, and
  /// `s3_check_cache.db`, table `s3checkV1`): hashes and seen contents are read from them where s3-ferry's cache
  /// has none, and what s3-ferry learns is written to both, so a file hashed by one tool is not hashed by the
  /// other. `true`: Deadline's directory (`~/.deadline/job_attachments`); a string: that directory. Tied to those
  /// schema versions (deadline 0.60): a table with other columns is left alone and not shared. Needs the cache
  /// (`cacheDir` not `false`). Default: not shared.
  #[napi(ts_type = "boolean | string")]
  pub deadline_cache: Option<Either<String, bool>>,
}

/// A local file and the key it is uploaded to.
#[napi(object, object_to_js = false)]
pub struct UploadFileEntry {
  /// Local path (absolute, or relative to the working directory).
  pub path: String,
  /// Destination key.
  pub key: String,
  /// Object settings of this file alone: each one given replaces the request's.
  /// `Content-Type`. Default: guessed from the file's extension (`.png` → `image/png`, as the AWS CLI does),
  /// else `application/octet-stream`.
  pub content_type: Option<String>,
  /// `Cache-Control`, e.g. `max-age=3600`.
  pub cache_control: Option<String>,
  /// `Content-Disposition`, e.g. `attachment; filename="scene.blend"` (printable ASCII; use `filename*=UTF-8''...`
  /// for other characters).
  pub content_disposition: Option<String>,
  /// `Content-Encoding`, e.g. `gzip` for a file stored compressed.
  pub content_encoding: Option<String>,
  /// `Content-Language`, e.g. `en`.
  pub content_language: Option<String>,
  /// User-defined metadata, stored as `x-amz-meta-<name>` headers (names are stored lowercase); at most 2 KB of
  /// names and values, printable ASCII.
  pub metadata: Option<HashMap<String, String>>,
  /// Object tags (at most 10; keys up to 128 characters, values up to 256).
  pub tagging: Option<HashMap<String, String>>,
  /// Storage class. Default: the bucket's (`STANDARD`).
  #[napi(
    ts_type = "'STANDARD' | 'STANDARD_IA' | 'ONEZONE_IA' | 'INTELLIGENT_TIERING' | 'GLACIER_IR' | 'GLACIER' | 'DEEP_ARCHIVE' | 'REDUCED_REDUNDANCY' | 'EXPRESS_ONEZONE' | 'OUTPOSTS' | 'SNOW' | 'FSX_OPENZFS' | 'FSX_ONTAP' | 'AWS_BACKUP_WARM' | 'AWS_BACKUP_LOW_COST_WARM'"
  )]
  pub storage_class: Option<String>,
  /// A canned ACL. Default: none sent (buckets with ACLs disabled refuse any other than `bucket-owner-full-control`).
  #[napi(
    ts_type = "'private' | 'public-read' | 'public-read-write' | 'authenticated-read' | 'aws-exec-read' | 'bucket-owner-read' | 'bucket-owner-full-control'"
  )]
  pub acl: Option<String>,
}

/// An object and the local path it is downloaded to.
#[napi(object, object_to_js = false)]
pub struct DownloadObjectEntry {
  /// Source key.
  pub key: String,
  /// Local destination path; its directory is created if missing.
  pub path: String,
}

/// The progress callback: called on the JavaScript thread, at most once per `progressIntervalMs`, and once
/// more with the final totals before the promise resolves.
pub type ProgressCallback = ThreadsafeFunction<super::TransferProgress, (), super::TransferProgress, Status, false>;

/// What to upload: `files`, or `localDir` (+ `keyPrefix`).
#[napi(object, object_to_js = false)]
pub struct UploadRequest {
  /// Destination bucket.
  pub bucket: String,
  /// Explicit files. Give either this or `localDir`.
  pub files: Option<Vec<UploadFileEntry>>,
  /// Upload every regular file under this directory, to `keyPrefix` + its `/`-separated relative path.
  /// Symlinks (unless `followSymlinks`) and special files are not followed; they count as skipped.
  pub local_dir: Option<String>,
  /// The folder the relative paths of `localDir` go under: `job-42` and `job-42/` both give
  /// `job-42/<relative path>`. Default "" (the bucket's root).
  pub key_prefix: Option<String>,
  /// Cancels the upload: the promise rejects with an `AbortError`, multipart uploads are aborted on the server.
  pub signal: Option<AbortSignal>,
  /// Progress events.
  #[napi(ts_type = "(progress: TransferProgress) => void")]
  pub on_progress: Option<ProgressCallback>,
  /// At most one progress event per this many milliseconds. Default 100.
  pub progress_interval_ms: Option<f64>,
  /// This request's own bandwidth cap in bytes per second, instead of the client's.
  pub max_bandwidth: Option<f64>,
  /// When the upload fails (not when it is cancelled), leave its unfinished multipart uploads on the server,
  /// recorded in the cache, so the next upload of the same unchanged file to the same key sends only the
  /// missing parts. Default `false`: a failure aborts them. An upload cut short by a crash is resumed either way.
  pub resumable: Option<bool>,
  /// Only some of `localDir`'s files: `{ include, exclude }` globs, or ordered `[{ exclude: '*' }, { include:
  /// '*.png' }]` rules as the AWS CLI applies them (see `FilterSets`, `FilterRule`).
  #[napi(ts_type = "FilterSets | Array<FilterRule>")]
  pub filter: Option<FilterOption>,
  /// Follow symlinks under `localDir` to files and directories, uploading what they point to under the link's
  /// own path. A link back to a directory above it (a loop) and a dangling link are skipped. Default `false`.
  pub follow_symlinks: Option<bool>,
  /// Skip files already stored: `true` when an object with the same size exists at the key and was stored at
  /// or after the file's mtime (to the second, by the server's clock and this machine's); `'size'` when the
  /// size alone matches. One ListObjectsV2 of `keyPrefix` per 1000 keys for `localDir`, a HeadObject per file
  /// for `files`. Skipped files count in `skippedFiles`. Default `false`.
  #[napi(ts_type = "boolean | 'size'")]
  pub skip_unchanged: Option<Either<bool, String>>,
  /// Send nothing: resolve with `plan`, what would be uploaded (and skipped as unchanged), with `files` and
  /// `bytes` what would be sent. Only the requests `skipUnchanged` needs are made.
  pub dry_run: Option<bool>,
  /// Go on when a file fails: every other file is still uploaded, then the call rejects with all the failures
  /// (`err.failures`). Default `false`: the first failure stops the call.
  pub continue_on_error: Option<bool>,
  /// How the objects are stored (a `files` entry's own settings replace these, field by field). Multipart
  /// uploads send them with CreateMultipartUpload, single uploads with PutObject.
  /// `Content-Type`. Default: guessed from the file's extension (`.png` → `image/png`, as the AWS CLI does),
  /// else `application/octet-stream`.
  pub content_type: Option<String>,
  /// `Cache-Control`, e.g. `max-age=3600`.
  pub cache_control: Option<String>,
  /// `Content-Disposition`, e.g. `attachment; filename="scene.blend"` (printable ASCII; use `filename*=UTF-8''...`
  /// for other characters).
  pub content_disposition: Option<String>,
  /// `Content-Encoding`, e.g. `gzip` for a file stored compressed.
  pub content_encoding: Option<String>,
  /// `Content-Language`, e.g. `en`.
  pub content_language: Option<String>,
  /// User-defined metadata, stored as `x-amz-meta-<name>` headers (names are stored lowercase); at most 2 KB of
  /// names and values, printable ASCII.
  pub metadata: Option<HashMap<String, String>>,
  /// Object tags (at most 10; keys up to 128 characters, values up to 256).
  pub tagging: Option<HashMap<String, String>>,
  /// Storage class. Default: the bucket's (`STANDARD`).
  #[napi(
    ts_type = "'STANDARD' | 'STANDARD_IA' | 'ONEZONE_IA' | 'INTELLIGENT_TIERING' | 'GLACIER_IR' | 'GLACIER' | 'DEEP_ARCHIVE' | 'REDUCED_REDUNDANCY' | 'EXPRESS_ONEZONE' | 'OUTPOSTS' | 'SNOW' | 'FSX_OPENZFS' | 'FSX_ONTAP' | 'AWS_BACKUP_WARM' | 'AWS_BACKUP_LOW_COST_WARM'"
  )]
  pub storage_class: Option<String>,
  /// A canned ACL. Default: none sent (buckets with ACLs disabled refuse any other than `bucket-owner-full-control`).
  #[napi(
    ts_type = "'private' | 'public-read' | 'public-read-write' | 'authenticated-read' | 'aws-exec-read' | 'bucket-owner-read' | 'bucket-owner-full-control'"
  )]
  pub acl: Option<String>,
  /// Guess `contentType` from the extension when it is not given (`false`: `application/octet-stream`).
  /// Default `true`.
  pub guess_content_type: Option<bool>,
  /// Server-side encryption: `AES256` (S3-managed keys), `aws:kms` or `aws:kms:dsse`. Default: the bucket's.
  #[napi(ts_type = "'AES256' | 'aws:kms' | 'aws:kms:dsse'")]
  pub sse: Option<String>,
  /// The KMS key (id, ARN or alias) for `sse: 'aws:kms'` / `'aws:kms:dsse'`. Default: the AWS managed key.
  pub sse_kms_key_id: Option<String>,
  /// Use an S3 Bucket Key with `sse: 'aws:kms'` (fewer KMS requests, lower cost).
  pub bucket_key_enabled: Option<bool>,
  /// SSE-C: encrypt with (upload) or decrypt with (download) this 256-bit customer key: its 32 bytes, or their
  /// base64 (44 characters). Sent with every request that reads or writes object data, never logged; S3 keeps
  /// only its MD5. An object stored with one cannot be read without it.
  #[napi(ts_type = "string | Uint8Array")]
  pub sse_customer_key: Option<Either<String, Buffer>>,
  /// The AWS account id (12 digits) that must own the bucket: sent with every request of the call
  /// (`x-amz-expected-bucket-owner`), so a bucket that changed hands refuses with `AccessDenied` instead of
  /// receiving the data.
  pub expected_bucket_owner: Option<String>,
}

/// What to download: `objects`, or `keyPrefix` + `localDir`.
#[napi(object, object_to_js = false)]
pub struct DownloadRequest {
  /// Source bucket.
  pub bucket: String,
  /// Explicit objects. Give either this or `localDir`.
  pub objects: Option<Vec<DownloadObjectEntry>>,
  /// Download every key under `keyPrefix` into this directory, recreating the tree.
  pub local_dir: Option<String>,
  /// A folder: `job-42/` and `job-42` both name the keys under `job-42/`, written at their paths below it;
  /// `job-42` also names an object `job-42` itself, written as `localDir/job-42`. Never keys that only start
  /// with the same characters (`job-420/x`). Default "" (the whole bucket).
  pub key_prefix: Option<String>,
  /// What to do when a destination file already exists. Default `overwrite`. Whatever the policy, a destination
  /// is only ever created or replaced whole.
  pub conflict: Option<ConflictPolicy>,
  /// Cancels the download: the promise rejects with an `AbortError`, temporary files are removed.
  pub signal: Option<AbortSignal>,
  /// Progress events.
  #[napi(ts_type = "(progress: TransferProgress) => void")]
  pub on_progress: Option<ProgressCallback>,
  /// At most one progress event per this many milliseconds. Default 100.
  pub progress_interval_ms: Option<f64>,
  /// This request's own bandwidth cap in bytes per second, instead of the client's.
  pub max_bandwidth: Option<f64>,
  /// Only some of the keys under `keyPrefix`, matched on their paths relative to it (see `FilterSets`,
  /// `FilterRule`).
  #[napi(ts_type = "FilterSets | Array<FilterRule>")]
  pub filter: Option<FilterOption>,
  /// Skip objects whose destination file exists with the same size and an mtime at or after the object's
  /// `LastModified` (to the second), so a download run again fetches only what changed; `'size'` when the size
  /// alone matches. Other existing destinations follow `conflict`. For `objects`, a HeadObject per object whose
  /// destination exists. Skipped files count in `skippedFiles`. Default `false`.
  #[napi(ts_type = "boolean | 'size'")]
  pub skip_unchanged: Option<Either<bool, String>>,
  /// Fetch nothing: resolve with `plan`, what would be downloaded (and skipped), with `files` and `bytes` what
  /// would be fetched. Under `conflict: 'error'` an existing destination rejects as the download would.
  pub dry_run: Option<bool>,
  /// Go on when an object fails: every other one is still downloaded, then the call rejects with all the
  /// failures (`err.failures`). Default `false`: the first failure stops the call.
  pub continue_on_error: Option<bool>,
  /// SSE-C: encrypt with (upload) or decrypt with (download) this 256-bit customer key: its 32 bytes, or their
  /// base64 (44 characters). Sent with every request that reads or writes object data, never logged; S3 keeps
  /// only its MD5. An object stored with one cannot be read without it.
  #[napi(ts_type = "string | Uint8Array")]
  pub sse_customer_key: Option<Either<String, Buffer>>,
  /// The AWS account id (12 digits) that must own the bucket: sent with every request of the call
  /// (`x-amz-expected-bucket-owner`), so a bucket that changed hands refuses with `AccessDenied` instead of
  /// receiving the data.
  pub expected_bucket_owner: Option<String>,
}

/// What `uploadContentAddressed` uploads: every file under `localDir` (or the `files` given, inside it).
#[napi(object, object_to_js = false)]
pub struct ContentAddressedUploadRequest {
  /// Destination bucket.
  pub bucket: String,
  /// Contents go to `{rootPrefix}/Data/{xxh128}.xxh128`.
  pub root_prefix: String,
  /// The job's root directory: manifest paths are relative to it. Without `files`, every regular file under it
  /// is uploaded (symlinks and special files are skipped).
  pub local_dir: String,
  /// Only these files: absolute, or relative to `localDir`; each must be inside it.
  pub files: Option<Vec<String>>,
  /// Also store the manifest at this key (`application/json`).
  pub manifest_key: Option<String>,
  /// As for `upload`: a failed (not cancelled) multipart upload stays on the server for the next call to
  /// resume. Default `false`.
  pub resumable: Option<bool>,
  /// Cancels the call (hashing included): the promise rejects with an `AbortError`, multipart uploads are
  /// aborted.
  pub signal: Option<AbortSignal>,
  /// Progress events, with `phase` `hashing`, `checking`, then `uploading`.
  #[napi(ts_type = "(progress: TransferProgress) => void")]
  pub on_progress: Option<ProgressCallback>,
  /// At most one progress event per this many milliseconds. Default 100.
  pub progress_interval_ms: Option<f64>,
  /// This request's own bandwidth cap in bytes per second, instead of the client's.
  pub max_bandwidth: Option<f64>,
  /// The AWS account id (12 digits) that must own the bucket: sent with every request of the call
  /// (`x-amz-expected-bucket-owner`), so a bucket that changed hands refuses with `AccessDenied` instead of
  /// receiving the data.
  pub expected_bucket_owner: Option<String>,
}

/// What `downloadManifest` downloads: the files of a manifest, into `localDir`.
#[napi(object, object_to_js = false)]
pub struct ManifestDownloadRequest {
  /// Source bucket.
  pub bucket: String,
  /// Contents are read from `{rootPrefix}/Data/{xxh128}.xxh128`.
  pub root_prefix: String,
  /// The manifest's JSON (what `uploadContentAddressed` returned). Give this or `manifestKey`.
  pub manifest: Option<String>,
  /// The key of a manifest stored in the bucket.
  pub manifest_key: Option<String>,
  /// Where the manifest's paths are recreated (created if missing).
  pub local_dir: String,
  /// What to do with a destination that exists with other content. Default `overwrite`. One with the
  /// manifest's content is always skipped.
  pub conflict: Option<ConflictPolicy>,
  /// Cancels the call: the promise rejects with an `AbortError`, temporary files are removed.
  pub signal: Option<AbortSignal>,
  /// Progress events, with `phase` `hashing` (existing files), then `downloading`.
  #[napi(ts_type = "(progress: TransferProgress) => void")]
  pub on_progress: Option<ProgressCallback>,
  /// At most one progress event per this many milliseconds. Default 100.
  pub progress_interval_ms: Option<f64>,
  /// This request's own bandwidth cap in bytes per second, instead of the client's.
  pub max_bandwidth: Option<f64>,
  /// The AWS account id (12 digits) that must own the bucket: sent with every request of the call
  /// (`x-amz-expected-bucket-owner`), so a bucket that changed hands refuses with `AccessDenied` instead of
  /// receiving the data.
  pub expected_bucket_owner: Option<String>,
}

/// What `createBucket` creates.
#[napi(object, object_to_js = false)]
pub struct CreateBucketRequest {
  /// The bucket's name.
  pub bucket: String,
  /// Cancels the call.
  pub signal: Option<AbortSignal>,
}

impl CallRequest for CreateBucketRequest {
  type Engine = String;

  fn to_engine(&mut self) -> Result<String, Error> {
    Ok(std::mem::take(&mut self.bucket))
  }

  fn call_parts(&mut self) -> CallParts<'_> {
    CallParts {
      signal: self.signal.as_ref(),
      on_progress: None,
      progress_interval_ms: None,
      max_bandwidth: None,
    }
  }
}

/// A number option that must be a positive integer.
pub fn positive(name: &str, value: Option<f64>, max: f64) -> Result<Option<u64>, Error> {
  match value {
    None => Ok(None),
    Some(v) if v.is_finite() && v.fract() == 0.0 && v >= 1.0 && v <= max => Ok(Some(v as u64)),
    Some(v) => Err(Error::invalid_value(format!(
      "{name} must be a positive integer up to {max}, got {v}"
    ))),
  }
}

/// Largest integer a JavaScript number holds exactly.
pub const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

impl ClientOptions {
  /// The numeric options given explicitly, each checked to be a positive integer.
  fn explicit_settings(&self) -> Result<Settings, Error> {
    let count = |name, v| positive(name, v, 10_000.0);
    Ok(Settings {
      max_pool_connections: count("maxPoolConnections", self.max_pool_connections)?,
      upload_workers: count("uploadWorkers", self.upload_workers)?,
      download_workers: count("downloadWorkers", self.download_workers)?,
      part_size: positive("partSize", self.part_size, MAX_SAFE)?,
      multipart_threshold: positive("multipartThreshold", self.multipart_threshold, MAX_SAFE)?,
      small_file_threshold_multiplier: count("smallFileThresholdMultiplier", self.small_file_threshold_multiplier)?,
      max_attempts: positive("maxAttempts", self.max_attempts, 100.0)?,
      max_bandwidth: positive("maxBandwidth", self.max_bandwidth, MAX_SAFE)?,
      connect_timeout_ms: positive("connectTimeoutMs", self.connect_timeout_ms, 3_600_000.0)?,
      read_timeout_ms: positive("readTimeoutMs", self.read_timeout_ms, 3_600_000.0)?,
      threads: None,
    })
  }

  /// The engine configuration: explicit options, else the config file, else the defaults; validated.
  pub fn into_config(mut self) -> Result<ClientConfig, Error> {
    let explicit = self.explicit_settings()?;
    let file = match settings::config_file_path(self.config_file.as_deref().map(Path::new)) {
      Some(path) => settings::read_config_file(&path)?,
      None => Settings::default(),
    };
    let mut config = ClientConfig {
      region: self.region.filter(|r| !r.is_empty()),
      endpoint: self.endpoint.filter(|e| !e.is_empty()),
      force_path_style: self.force_path_style.unwrap_or(false),
      credentials: match &mut self.credentials {
        Some(Either::A(c)) => Some(StaticCredentials {
          access_key_id: std::mem::take(&mut c.access_key_id),
          secret_access_key: std::mem::take(&mut c.secret_access_key),
          session_token: c.session_token.take(),
        }),
        _ => None,
      },
      credential_source: match self.credentials.take() {
        Some(Either::B(f)) => Some(engine::CredentialSource(Arc::new(Arc::new(JsCredentials(f))))),
        _ => None,
      },
      anonymous: self.anonymous.unwrap_or(false),
      profile: self.profile,
      checksum: self.checksum.map(|c| match c {
        ChecksumPolicy::WhenSupported => ChecksumMode::WhenSupported,
        ChecksumPolicy::WhenRequired => ChecksumMode::WhenRequired,
      }),
      checksum_algorithm: match self.checksum_algorithm {
        None | Some(ChecksumAlgorithmName::Crc64nvme) => ChecksumAlgorithm::Crc64Nvme,
        Some(ChecksumAlgorithmName::Crc32c) => ChecksumAlgorithm::Crc32c,
        Some(ChecksumAlgorithmName::Crc32) => ChecksumAlgorithm::Crc32,
      },
      cache_dir: match self.cache_dir {
        None | Some(Either::B(true)) => engine::cache::default_dir(),
        Some(Either::B(false)) => None,
        Some(Either::A(dir)) if dir.is_empty() => {
          return Err(Error::invalid_value(
            "cacheDir must be a non-empty path, or false for no cache",
          ))
        }
        Some(Either::A(dir)) => Some(PathBuf::from(dir)),
      },
      deadline_cache_dir: match self.deadline_cache.take() {
        None | Some(Either::B(false)) => None,
        Some(Either::B(true)) => Some(engine::deadline_cache::default_dir().ok_or_else(|| {
          Error::invalid_value("deadlineCache: no home directory to find Deadline's cache in; give its path")
        })?),
        Some(Either::A(dir)) if dir.is_empty() => {
          return Err(Error::invalid_value(
            "deadlineCache must be true, false, or a non-empty path",
          ))
        }
        Some(Either::A(dir)) => Some(PathBuf::from(dir)),
      },
      ..ClientConfig::default()
    };
    if config.deadline_cache_dir.is_some() && config.cache_dir.is_none() {
      return Err(Error::invalid_value(
        "deadlineCache shares Deadline's caches through s3-ferry's own: it needs the cache (cacheDir is false)",
      ));
    }
    explicit.or(file).apply(&mut config);
    config.validate()?;
    Ok(config)
  }
}

pub fn progress_interval(ms: Option<f64>) -> Result<Duration, Error> {
  match ms {
    None => Ok(engine::DEFAULT_PROGRESS_INTERVAL),
    Some(v) if v.is_finite() && (0.0..=3_600_000.0).contains(&v) => Ok(Duration::from_secs_f64(v / 1000.0)),
    Some(v) => Err(Error::invalid_value(format!(
      "progressIntervalMs must be a number of milliseconds >= 0, got {v}"
    ))),
  }
}

fn exactly_one(bucket_field: &str, list: bool, dir: bool, list_name: &str) -> Result<(), Error> {
  match (list, dir) {
    (true, true) => Err(Error::invalid_value(format!(
      "give either {list_name} or localDir, not both ({bucket_field})"
    ))),
    (false, false) => Err(Error::invalid_value(format!(
      "give {list_name} or localDir ({bucket_field})"
    ))),
    _ => Ok(()),
  }
}

/// The parts of a request that steer the call rather than say what to transfer.
pub struct CallParts<'a> {
  pub signal: Option<&'a AbortSignal>,
  pub on_progress: Option<ProgressCallback>,
  pub progress_interval_ms: Option<f64>,
  pub max_bandwidth: Option<f64>,
}

/// What the binding needs of any transfer request: the engine request, and the parts that stay on the
/// JavaScript side.
pub trait CallRequest {
  /// The engine's request type.
  type Engine: Send + 'static;
  /// The engine request, validated.
  fn to_engine(&mut self) -> Result<Self::Engine, Error>;
  /// The signal, the progress callback (taken), its interval and the bandwidth override.
  fn call_parts(&mut self) -> CallParts<'_>;
}

/// `CallRequest::call_parts` for a request struct with the four common fields (`signal`, `on_progress`,
/// `progress_interval_ms`, `max_bandwidth`).
macro_rules! call_parts {
  () => {
    fn call_parts(&mut self) -> CallParts<'_> {
      CallParts {
        on_progress: self.on_progress.take(),
        signal: self.signal.as_ref(),
        progress_interval_ms: self.progress_interval_ms,
        max_bandwidth: self.max_bandwidth,
      }
    }
  };
}
pub(super) use call_parts;

impl CallRequest for UploadRequest {
  type Engine = engine::UploadRequest;

  call_parts!();

  fn to_engine(&mut self) -> Result<engine::UploadRequest, Error> {
    exactly_one("upload", self.files.is_some(), self.local_dir.is_some(), "files")?;
    let mut source = match (self.files.take(), self.local_dir.take()) {
      (Some(files), _) => engine::UploadSource::Files(
        files
          .into_iter()
          .map(|mut f| engine::UploadFile {
            object: object_fields!(f).then(|| engine::ObjectSettings {
              content_type: f.content_type.take(),
              cache_control: f.cache_control.take(),
              content_disposition: f.content_disposition.take(),
              content_encoding: f.content_encoding.take(),
              content_language: f.content_language.take(),
              metadata: f.metadata.take().map(|m| m.into_iter().collect()),
              tagging: f.tagging.take().map(|m| m.into_iter().collect()),
              storage_class: f.storage_class.take(),
              acl: f.acl.take(),
              ..Default::default()
            }),
            path: PathBuf::from(f.path),
            key: f.key,
          })
          .collect(),
      ),
      (None, Some(dir)) => engine::UploadSource::Directory {
        local_dir: PathBuf::from(dir),
        key_prefix: self.key_prefix.take().unwrap_or_default(),
        filter: None,
        follow_symlinks: self.follow_symlinks.unwrap_or(false),
      },
      (None, None) => unreachable!("checked above"),
    };
    let tree = matches!(source, engine::UploadSource::Directory { .. });
    tree_only("filter", self.filter.is_some(), tree, "files")?;
    tree_only("followSymlinks", self.follow_symlinks == Some(true), tree, "files")?;
    if let engine::UploadSource::Directory { filter: f, .. } = &mut source {
      *f = filter(self.filter.take())?;
    }
    let request = engine::UploadRequest {
      bucket: bucket(
        &self.bucket,
        self.expected_bucket_owner.take(),
        self.sse_customer_key.take(),
      )?,
      object: engine::ObjectSettings {
        content_type: self.content_type.take(),
        guess_content_type: self.guess_content_type.unwrap_or(true),
        cache_control: self.cache_control.take(),
        content_disposition: self.content_disposition.take(),
        content_encoding: self.content_encoding.take(),
        content_language: self.content_language.take(),
        metadata: self.metadata.take().map(|m| m.into_iter().collect()),
        tagging: self.tagging.take().map(|m| m.into_iter().collect()),
        storage_class: self.storage_class.take(),
        acl: self.acl.take(),
        encryption: engine::Encryption {
          algorithm: self.sse.take(),
          kms_key_id: self.sse_kms_key_id.take(),
          bucket_key_enabled: self.bucket_key_enabled,
        },
      },
      source,
      resumable: self.resumable.unwrap_or(false),
      skip_unchanged: skip_unchanged(self.skip_unchanged.take())?,
      continue_on_error: self.continue_on_error.unwrap_or(false),
    };
    request.validate()?;
    Ok(request)
  }
}

impl CallRequest for DownloadRequest {
  type Engine = engine::DownloadRequest;

  call_parts!();

  fn to_engine(&mut self) -> Result<engine::DownloadRequest, Error> {
    exactly_one("download", self.objects.is_some(), self.local_dir.is_some(), "objects")?;
    let mut source = match (self.objects.take(), self.local_dir.take()) {
      (Some(objects), _) => engine::DownloadSource::Objects(
        objects
          .into_iter()
          .map(|o| engine::DownloadObject {
            key: o.key,
            path: PathBuf::from(o.path),
          })
          .collect(),
      ),
      (None, Some(dir)) => engine::DownloadSource::Prefix {
        key_prefix: self.key_prefix.take().unwrap_or_default(),
        local_dir: PathBuf::from(dir),
        filter: None,
      },
      (None, None) => unreachable!("checked above"),
    };
    match &mut source {
      engine::DownloadSource::Prefix { filter: f, .. } => *f = filter(self.filter.take())?,
      engine::DownloadSource::Objects(_) => tree_only("filter", self.filter.is_some(), false, "objects")?,
    }
    let request = engine::DownloadRequest {
      bucket: bucket(
        &self.bucket,
        self.expected_bucket_owner.take(),
        self.sse_customer_key.take(),
      )?,
      source,
      conflict: conflict(self.conflict.take()),
      skip_unchanged: skip_unchanged(self.skip_unchanged.take())?,
      continue_on_error: self.continue_on_error.unwrap_or(false),
    };
    request.validate()?;
    Ok(request)
  }
}

impl CallRequest for ContentAddressedUploadRequest {
  type Engine = engine::AttachmentUpload;

  call_parts!();

  fn to_engine(&mut self) -> Result<engine::AttachmentUpload, Error> {
    let request = engine::AttachmentUpload {
      bucket: bucket(&self.bucket, self.expected_bucket_owner.take(), None)?,
      root_prefix: std::mem::take(&mut self.root_prefix),
      local_dir: PathBuf::from(std::mem::take(&mut self.local_dir)),
      files: self.files.take().map(|f| f.into_iter().map(PathBuf::from).collect()),
      manifest_key: self.manifest_key.take(),
      manifest_metadata: Vec::new(),
      resumable: self.resumable.unwrap_or(false),
    };
    request.validate()?;
    Ok(request)
  }
}

impl CallRequest for ManifestDownloadRequest {
  type Engine = engine::AttachmentDownload;

  call_parts!();

  fn to_engine(&mut self) -> Result<engine::AttachmentDownload, Error> {
    let manifest = match (self.manifest.take(), self.manifest_key.take()) {
      (Some(text), None) => engine::ManifestSource::Text(text),
      (None, Some(key)) => engine::ManifestSource::Key(key),
      (Some(_), Some(_)) => return Err(Error::invalid_value("give either manifest or manifestKey, not both")),
      (None, None) => return Err(Error::invalid_value("give manifest or manifestKey (downloadManifest)")),
    };
    let request = engine::AttachmentDownload {
      bucket: bucket(&self.bucket, self.expected_bucket_owner.take(), None)?,
      root_prefix: std::mem::take(&mut self.root_prefix),
      manifest,
      local_dir: PathBuf::from(std::mem::take(&mut self.local_dir)),
      conflict: conflict(self.conflict.take()),
    };
    request.validate()?;
    Ok(request)
  }
}

/// The call's bucket with its expected owner and customer key, both checked.
pub(super) fn bucket(
  name: &str,
  owner: Option<String>,
  key: Option<Either<String, Buffer>>,
) -> Result<engine::Bucket, Error> {
  const WHAT: &str = "sseCustomerKey";
  let key = match key {
    None => None,
    Some(Either::B(bytes)) => Some(engine::CustomerKey::new(&bytes, WHAT)?),
    // The key's 32 bytes as text (as the AWS CLI's --sse-c-key takes it), else its base64 (44 characters).
    Some(Either::A(text)) if text.len() == 32 => Some(engine::CustomerKey::new(text.as_bytes(), WHAT)?),
    Some(Either::A(text)) => Some(engine::CustomerKey::from_base64(&text, WHAT)?),
  };
  engine::Bucket::new(name, owner.as_deref(), key)
}

pub(super) fn conflict(policy: Option<ConflictPolicy>) -> engine::Conflict {
  match policy {
    None | Some(ConflictPolicy::Overwrite) => engine::Conflict::Overwrite,
    Some(ConflictPolicy::Skip) => engine::Conflict::Skip,
    Some(ConflictPolicy::CreateCopy) => engine::Conflict::CreateCopy,
    Some(ConflictPolicy::Error) => engine::Conflict::Error,
  }
}

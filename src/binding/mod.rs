//! The napi layer: the only code that knows about Node. It converts options, signals and callbacks into engine
//! requests, runs them on napi's tokio runtime, and turns engine results into JavaScript values and errors.

// napi-derive registers exports only outside `cfg(test)`, so under `cargo test` the exported fns look unused.
#![cfg_attr(test, allow(dead_code))]

mod errors;
mod job;
mod options;
mod runtime;

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;

use crate::engine::{self, CancellationToken, Control, Engine, ProgressSink};
use errors::to_js_error;
pub use options::{
  ClientOptions, ContentAddressedUploadRequest, CreateBucketRequest, DownloadRequest, ManifestDownloadRequest,
  UploadRequest,
};

/// What a finished upload or download resolves to.
#[napi(object, object_from_js = false)]
pub struct TransferSummary {
  /// Files transferred (for `uploadContentAddressed`: contents uploaded, each once).
  pub files: f64,
  /// Bytes transferred.
  pub bytes: f64,
  /// Files skipped: symlinks and special files in an upload's `localDir`; destinations kept under
  /// `conflict: 'skip'`; for `uploadContentAddressed`, files whose content S3 already had (or another file of the
  /// job sent); for `downloadManifest`, files already present with the manifest's hash.
  pub skipped_files: f64,
  /// Bytes of the skipped files.
  pub skipped_bytes: f64,
  /// Files hashed (`uploadContentAddressed`; `downloadManifest`'s existing files), hashes from the cache
  /// included.
  pub hashed_files: f64,
  /// Bytes of the hashed files.
  pub hashed_bytes: f64,
  /// Bytes of resumed multipart uploads that were already on the server and were not sent again.
  pub resumed_bytes: f64,
  /// Wall time of the call, in seconds.
  pub seconds: f64,
  /// `bytes / seconds`.
  pub bytes_per_second: f64,
  /// Only for `dryRun`: every file the call would transfer or skip, sorted by key (`files` and `bytes` are then
  /// what it would transfer).
  pub plan: Option<Vec<PlannedTransfer>>,
}

/// One file of a dry run.
#[napi(object, object_from_js = false)]
pub struct PlannedTransfer {
  /// The local file: an upload's source, a download's destination.
  pub path: String,
  /// The key: an upload's destination, a download's source.
  pub key: String,
  /// Its size; unknown (absent) for a download's `objects` until fetched.
  pub bytes: Option<f64>,
  /// Why it would be skipped: `unchanged` (`skipUnchanged`), `exists` (`conflict: 'skip'`); absent when it
  /// would be transferred.
  #[napi(ts_type = "'unchanged' | 'exists'")]
  pub skip: Option<String>,
}

/// A progress event.
#[napi(object, object_from_js = false)]
pub struct TransferProgress {
  /// What the call is doing: `hashing` local files (`hashedBytes` moves toward `totalBytes`), `checking` which
  /// contents S3 has, then `uploading` or `downloading` (`transferredBytes` moves). Plain uploads and downloads
  /// are in one phase throughout.
  #[napi(ts_type = "'hashing' | 'checking' | 'uploading' | 'downloading'")]
  pub phase: String,
  /// Files hashed so far (or whose hash came from the cache).
  pub hashed_files: f64,
  /// Bytes hashed so far.
  pub hashed_bytes: f64,
  /// Bytes moved so far; never decreases, never exceeds `totalBytes`.
  pub transferred_bytes: f64,
  /// Bytes to move in all. Known before the first event for uploads and prefix downloads; for an explicit
  /// `objects` list it grows as each object's size is learned from its first response.
  pub total_bytes: f64,
  /// Files finished (zero-byte files included).
  pub completed_files: f64,
  /// Files in the call.
  pub total_files: f64,
  /// Files skipped.
  pub skipped_files: f64,
  /// Bytes of the skipped files.
  pub skipped_bytes: f64,
  /// Throughput over about the last two seconds; the final event carries the call's average.
  pub bytes_per_second: f64,
}

/// The settings a client runs with, defaults and derived values resolved.
#[napi(object, object_from_js = false)]
pub struct ResolvedSettings {
  pub max_pool_connections: u32,
  pub upload_workers: u32,
  pub download_workers: u32,
  pub part_size: f64,
  pub multipart_threshold: f64,
  pub small_file_threshold_multiplier: u32,
  pub max_attempts: u32,
  pub connect_timeout_ms: f64,
  pub read_timeout_ms: f64,
  /// `whenSupported` or `whenRequired`.
  pub checksum: String,
  /// `crc64nvme`, `crc32c` or `crc32`.
  pub checksum_algorithm: String,
  /// The client's bandwidth cap in bytes per second, if any.
  pub max_bandwidth: Option<f64>,
  /// Worker threads of the engine's runtime (process-wide: `S3_FERRY_THREADS`, else `threads` in the config
  /// file, else half the cores, 2 to 8).
  pub threads: u32,
}

impl From<engine::Progress> for TransferProgress {
  fn from(p: engine::Progress) -> Self {
    TransferProgress {
      phase: p.phase.name().to_owned(),
      hashed_files: p.hashed_files as f64,
      hashed_bytes: p.hashed_bytes as f64,
      transferred_bytes: p.transferred_bytes as f64,
      total_bytes: p.total_bytes as f64,
      completed_files: p.completed_files as f64,
      total_files: p.total_files as f64,
      skipped_files: p.skipped_files as f64,
      skipped_bytes: p.skipped_bytes as f64,
      bytes_per_second: p.bytes_per_second,
    }
  }
}

impl From<engine::Summary> for TransferSummary {
  fn from(s: engine::Summary) -> Self {
    TransferSummary {
      files: s.files as f64,
      bytes: s.bytes as f64,
      skipped_files: s.skipped_files as f64,
      skipped_bytes: s.skipped_bytes as f64,
      hashed_files: s.hashed_files as f64,
      hashed_bytes: s.hashed_bytes as f64,
      resumed_bytes: s.resumed_bytes as f64,
      seconds: s.seconds,
      bytes_per_second: s.bytes_per_second,
      plan: None,
    }
  }
}

/// Moves files between local disk and S3. One client owns one connection pool (at most `maxPoolConnections`
/// connections and requests in flight), shared by every call made on it; create one and reuse it.
///
/// ```js
/// const client = new TransferClient({ endpoint: 'http://127.0.0.1:9000', forcePathStyle: true })
/// const summary = await client.upload({ bucket: 'jobs', localDir: './bundle', keyPrefix: 'job-42/' })
/// ```
#[napi]
pub struct TransferClient {
  engine: Arc<Engine>,
}

#[napi]
impl TransferClient {
  /// Validates the options (throwing `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE`). Sends nothing: the
  /// credentials are resolved on the first transfer.
  #[napi(constructor)]
  pub fn new(env: Env, options: Option<ClientOptions>) -> Result<Self> {
    let config = options
      .unwrap_or_default()
      .into_config()
      .map_err(|e| to_js_error(&env, &e))?;
    let engine = Engine::new(config).map_err(|e| to_js_error(&env, &e))?;
    Ok(TransferClient { engine })
  }

  /// The settings in force, with defaults and derived worker counts resolved.
  #[napi(getter)]
  pub fn settings(&self) -> ResolvedSettings {
    let c = self.engine.config();
    ResolvedSettings {
      max_pool_connections: c.max_pool_connections as u32,
      upload_workers: c.effective_upload_workers() as u32,
      download_workers: c.effective_download_workers() as u32,
      part_size: c.part_size as f64,
      multipart_threshold: c.multipart_threshold as f64,
      small_file_threshold_multiplier: c.small_file_threshold_multiplier as u32,
      max_attempts: c.max_attempts,
      connect_timeout_ms: c.connect_timeout_ms as f64,
      read_timeout_ms: c.read_timeout_ms as f64,
      checksum: match c.effective_checksum() {
        engine::ChecksumMode::WhenSupported => "whenSupported".to_owned(),
        engine::ChecksumMode::WhenRequired => "whenRequired".to_owned(),
      },
      checksum_algorithm: c.checksum_algorithm.name().to_ascii_lowercase(),
      max_bandwidth: c.max_bandwidth.map(|b| b as f64),
      threads: runtime::threads_in_use() as u32,
    }
  }

  /// Uploads `files`, or every file under `localDir` to `keyPrefix` + its relative path.
  ///
  /// Rejects with an `Error` whose `code` is the S3 error code (`NoSuchBucket`, `AccessDenied`, ...), a
  /// Node-style code for local files (`ENOENT`, `EISDIR`, `EACCES`, with `path`), `ERR_INVALID_ARG_*` for bad
  /// input (before any request), or `ABORT_ERR` (`name: 'AbortError'`) when `signal` aborts. When files fail,
  /// the error is the first failure's (code, message, key, path) and also carries `failures` (every file that
  /// failed: `FileFailure`) and `summary` (what completed).
  #[napi]
  pub fn upload<'env>(&self, env: &'env Env, request: UploadRequest) -> Result<PromiseRaw<'env, TransferSummary>> {
    upload_on(env, self.engine.clone(), request)
  }

  /// Downloads `objects`, or every key under `keyPrefix` into `localDir`. Each file is written to a temporary
  /// file beside its destination and renamed into place only when complete. Errors as for `upload`.
  #[napi]
  pub fn download<'env>(&self, env: &'env Env, request: DownloadRequest) -> Result<PromiseRaw<'env, TransferSummary>> {
    download_on(env, self.engine.clone(), request)
  }

  /// Job attachments: uploads a job's files by content. Hashes every file with xxh128 (in parallel; unchanged
  /// files' hashes come from the cache), asks S3 which contents it lacks (HeadObject; contents seen in the last
  /// 30 days come from the cache, a sample of them checked every call), uploads each missing content once to `{rootPrefix}/Data/{hash}.xxh128`, and
  /// resolves with the job's manifest (format `2023-03-03`), stored at `manifestKey` if given. Progress goes
  /// through the phases `hashing`, `checking`, `uploading`. Errors as for `upload`.
  #[napi]
  pub fn upload_content_addressed<'env>(
    &self,
    env: &'env Env,
    request: ContentAddressedUploadRequest,
  ) -> Result<PromiseRaw<'env, ContentAddressedUploadResult>> {
    let engine = self.engine.clone();
    start(env, request, move |r, control| async move {
      engine.upload_attachments(r, control).await
    })
  }

  /// Job attachments: submits a job's files as Deadline Cloud's client does. Groups the inputs, outputs and
  /// referenced paths into asset roots (the storage profile's SHARED locations left out, its LOCAL ones roots of
  /// their own), stores every content once as `uploadContentAddressed` does, writes one input manifest per root
  /// under `{rootPrefix}/Manifests/{farmId}/{queueId}/Inputs/{guid}/`, and resolves with the `attachments` object
  /// for CreateJob. Missing inputs and directories given as files reject together (`ERR_MISCONFIGURED_INPUTS`,
  /// with `missing`, `missingDirectories` and `directories`) before anything is hashed or sent.
  #[napi]
  pub fn submit_job_attachments<'env>(
    &self,
    env: &'env Env,
    request: job::JobAttachmentsRequest,
  ) -> Result<PromiseRaw<'env, job::JobAttachmentsResult>> {
    let engine = self.engine.clone();
    start(env, request, move |r, control| async move {
      engine.submit_job_attachments(r, control).await
    })
  }

  /// Job attachments: brings a job's outputs back (or a step's, a task's), as Deadline Cloud's client does. Lists
  /// the output manifests under `{rootPrefix}/Manifests/{farmId}/{queueId}/{jobId}/`, takes every session action's
  /// of a step without tasks and each task's latest, reads the asset root each was written for from its metadata,
  /// merges each root's manifests oldest first (later outputs win), maps each root to a local directory and
  /// downloads its files there as `downloadManifest` does (checked, never outside it; `conflict` `createCopy` by
  /// default).
  #[napi]
  pub fn download_job_outputs<'env>(
    &self,
    env: &'env Env,
    request: job::JobOutputsRequest,
  ) -> Result<PromiseRaw<'env, job::JobOutputsResult>> {
    let engine = self.engine.clone();
    start(env, request, move |r, control| async move {
      engine.download_job_outputs(r, control).await
    })
  }

  /// Job attachments: stores one asset root's outputs of a session action as Deadline Cloud's worker stores them:
  /// contents by hash (as `uploadContentAddressed`), and the output manifest under the job's step, task and
  /// session action (`{startTime}_{sessionActionId}/{xxh128(location + rootPath)}_output`) with the root path as
  /// its `asset-root` metadata, so Deadline's tools and `downloadJobOutputs` find it.
  #[napi]
  pub fn upload_job_outputs<'env>(
    &self,
    env: &'env Env,
    request: job::JobOutputUploadRequest,
  ) -> Result<PromiseRaw<'env, ContentAddressedUploadResult>> {
    let engine = self.engine.clone();
    start(env, request, move |r, control| async move {
      engine.upload_job_outputs(r, control).await
    })
  }

  /// Creates a bucket in the client's region (the location constraint S3 needs outside `us-east-1` is sent for
  /// AWS). One that exists and is yours resolves with `created: false`; one that is another account's rejects
  /// with `BucketAlreadyExists`.
  #[napi]
  pub fn create_bucket<'env>(
    &self,
    env: &'env Env,
    request: CreateBucketRequest,
  ) -> Result<PromiseRaw<'env, CreateBucketResult>> {
    let engine = self.engine.clone();
    start(env, request, move |bucket, control| async move {
      engine.create_bucket(bucket, control).await
    })
  }

  /// Job attachments: downloads the files of a manifest into `localDir` from `{rootPrefix}/Data/{hash}.xxh128`
  /// (else the key without `.xxh128`). Files already there with the manifest's hash are skipped; every file
  /// fetched is checked against its hash (`ERR_CHECKSUM_MISMATCH`, nothing written) and given the manifest's
  /// mtime before it is put in place. Progress: `hashing` (existing files), then `downloading`.
  #[napi]
  pub fn download_manifest<'env>(
    &self,
    env: &'env Env,
    request: ManifestDownloadRequest,
  ) -> Result<PromiseRaw<'env, TransferSummary>> {
    let engine = self.engine.clone();
    start(env, request, move |r, control| async move {
      engine.download_attachments(r, control).await
    })
  }
}

/// What `createBucket` resolves to.
#[napi(object, object_from_js = false)]
pub struct CreateBucketResult {
  /// `false` when the bucket existed already and is yours (nothing was changed).
  pub created: bool,
}

impl CallOutput for engine::BucketCreated {
  type Js = CreateBucketResult;
  fn summary(&self) -> &engine::Summary {
    &self.summary
  }
  fn into_js(self) -> CreateBucketResult {
    CreateBucketResult { created: self.created }
  }
}

/// What `uploadContentAddressed` resolves to: the summary, and the manifest.
#[napi(object, object_from_js = false)]
pub struct ContentAddressedUploadResult {
  /// Contents uploaded (`files`, `bytes`), files skipped because S3 had their content (`skippedFiles`,
  /// `skippedBytes`), files hashed, time.
  pub summary: TransferSummary,
  /// The manifest's JSON, byte-exact format `2023-03-03` (sorted keys, no spaces, ASCII-escaped; paths sorted by
  /// their UTF-16 code units).
  pub manifest: String,
  /// xxh128 of the manifest's bytes.
  pub manifest_hash: String,
  /// Where the manifest was stored (`manifestKey`, or the output manifest's key).
  pub manifest_key: Option<String>,
  /// Files whose hash came from the cache (not read).
  pub cached_hashes: f64,
  /// Contents known to be in S3 from the cache (no request sent).
  pub cached_keys: f64,
  /// HeadObject requests sent to learn which contents S3 has: the contents the cache does not vouch for, and a
  /// sample of those it does (16, or 1% when more; one found missing and every content is checked).
  pub checked_keys: f64,
}

/// A call's result, and what its final progress event says.
pub trait CallOutput: Send + 'static {
  /// What JavaScript receives.
  type Js: ToNapiValue;
  /// The call's summary.
  fn summary(&self) -> &engine::Summary;
  /// Converts for JavaScript.
  fn into_js(self) -> Self::Js;
}

impl CallOutput for engine::Summary {
  type Js = TransferSummary;
  fn summary(&self) -> &engine::Summary {
    self
  }
  fn into_js(self) -> TransferSummary {
    self.into()
  }
}

impl CallOutput for engine::Plan {
  type Js = TransferSummary;
  fn summary(&self) -> &engine::Summary {
    &self.summary
  }
  fn into_js(self) -> TransferSummary {
    let (files, bytes) = self.would_transfer();
    let plan = self
      .files
      .into_iter()
      .map(|f| PlannedTransfer {
        path: f.path.to_string_lossy().into_owned(),
        key: f.key,
        bytes: f.bytes.map(|b| b as f64),
        skip: f.skip.map(|why| {
          match why {
            engine::SkipReason::Unchanged => "unchanged",
            engine::SkipReason::Exists => "exists",
          }
          .to_owned()
        }),
      })
      .collect();
    TransferSummary {
      files: files as f64,
      bytes: bytes as f64,
      bytes_per_second: 0.0,
      plan: Some(plan),
      ..self.summary.into()
    }
  }
}

impl CallOutput for engine::AttachmentUploadOutput {
  type Js = ContentAddressedUploadResult;
  fn summary(&self) -> &engine::Summary {
    &self.summary
  }
  fn into_js(self) -> ContentAddressedUploadResult {
    ContentAddressedUploadResult {
      summary: self.summary.into(),
      manifest: self.manifest,
      manifest_hash: self.manifest_hash,
      manifest_key: self.manifest_key,
      cached_hashes: self.cached_hashes as f64,
      cached_keys: self.cached_keys as f64,
      checked_keys: self.checked_keys as f64,
    }
  }
}

/// One-shot upload: client options and the request in one object. Calls with identical client options share
/// one client (and so one connection pool).
#[napi(js_name = "upload", ts_args_type = "request: ClientOptions & UploadRequest")]
pub fn upload_once<'env>(env: &'env Env, request: Object<'env>) -> Result<PromiseRaw<'env, TransferSummary>> {
  let engine = shared_client(env, &request)?;
  // SAFETY: `request` is a live JS object of this call's `env`, read on its JS thread; `from_napi_value` only reads
  // its properties (unknown ones are ignored: the JS entry has checked the names).
  let request = unsafe { UploadRequest::from_napi_value(env.raw(), request.raw())? };
  upload_on(env, engine, request)
}

/// An upload, or its dry run.
fn upload_on(env: &Env, engine: Arc<Engine>, request: UploadRequest) -> Result<PromiseRaw<'_, TransferSummary>> {
  match request.dry_run == Some(true) {
    true => start(env, request, move |r, control| async move {
      engine.plan_upload(r, control).await
    }),
    false => start(env, request, move |r, control| async move {
      engine.upload(r, control).await
    }),
  }
}

/// A download, or its dry run.
fn download_on(env: &Env, engine: Arc<Engine>, request: DownloadRequest) -> Result<PromiseRaw<'_, TransferSummary>> {
  match request.dry_run == Some(true) {
    true => start(env, request, move |r, control| async move {
      engine.plan_download(r, control).await
    }),
    false => start(env, request, move |r, control| async move {
      engine.download(r, control).await
    }),
  }
}

/// One-shot download: client options and the request in one object. Calls with identical client options share
/// one client.
#[napi(js_name = "download", ts_args_type = "request: ClientOptions & DownloadRequest")]
pub fn download_once<'env>(env: &'env Env, request: Object<'env>) -> Result<PromiseRaw<'env, TransferSummary>> {
  let engine = shared_client(env, &request)?;
  // SAFETY: `request` is a live JS object of this call's `env`, read on its JS thread; `from_napi_value` only reads
  // its properties (unknown ones are ignored: the JS entry has checked the names).
  let request = unsafe { DownloadRequest::from_napi_value(env.raw(), request.raw())? };
  download_on(env, engine, request)
}

/// Converts a request (throwing a coded error before anything starts), wires its signal and progress callback,
/// and runs `go` with the engine request.
fn start<'env, R, F, Fut, O>(env: &'env Env, mut request: R, go: F) -> Result<PromiseRaw<'env, O::Js>>
where
  R: options::CallRequest,
  F: FnOnce(R::Engine, Control) -> Fut + Send + 'static,
  Fut: Future<Output = engine::Result<O>> + Send + 'static,
  O: CallOutput,
{
  let engine_request = request.to_engine().map_err(|e| to_js_error(env, &e))?;
  let setup = control(env, request.call_parts())?;
  run(env, setup, move |control| go(engine_request, control))
}

/// Clients of the one-shot functions, by their configuration. A handful of distinct option sets is normal;
/// past `MAX_SHARED_CLIENTS` the cache starts over rather than grow without bound.
static SHARED_CLIENTS: Mutex<Option<HashMap<engine::ClientConfig, Arc<Engine>>>> = Mutex::new(None);
const MAX_SHARED_CLIENTS: usize = 16;

fn shared_client(env: &Env, request: &Object) -> Result<Arc<Engine>> {
  // SAFETY: as above: a live object of this call's `env`, on its JS thread, only read.
  let options = unsafe { ClientOptions::from_napi_value(env.raw(), request.raw())? };
  let config = options.into_config().map_err(|e| to_js_error(env, &e))?;
  if config.credential_source.is_some() {
    // A credentials function is new on every call: such a client is the call's own, never shared (it would
    // only fill the cache and evict the clients that are).
    return Engine::new(config).map_err(|e| to_js_error(env, &e));
  }
  let mut guard = SHARED_CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
  let cache = guard.get_or_insert_with(HashMap::new);
  if let Some(engine) = cache.get(&config) {
    return Ok(engine.clone());
  }
  if cache.len() >= MAX_SHARED_CLIENTS {
    cache.clear();
  }
  let engine = Engine::new(config.clone()).map_err(|e| to_js_error(env, &e))?;
  cache.insert(config, engine.clone());
  Ok(engine)
}

/// What one call needs besides its engine request.
struct CallSetup {
  control: Control,
  /// Kept to send the final event before the promise resolves.
  callback: Option<Arc<options::ProgressCallback>>,
  /// Cancels the call if its JavaScript environment is torn down first (a worker thread that exits
  /// mid-transfer), and waits for the engine to finish its clean-up: its multipart uploads aborted, its
  /// temporary files removed.
  teardown: napi::CleanupEnvHook<(usize, Arc<Finished>)>,
  finished: Arc<Finished>,
}

/// How long an environment's teardown waits, in all, for its cancelled calls to clean up (abort their multipart
/// uploads) before letting the environment go.
const TEARDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Every call in flight: its environment, its token, its end. The first teardown hook of an environment
/// cancels them all at once.
type LiveCall = (usize, CancellationToken, Arc<Finished>);
static LIVE_CALLS: Mutex<Vec<LiveCall>> = Mutex::new(Vec::new());
/// Environments being torn down, and when their teardown stops waiting.
static TEARDOWNS: Mutex<Vec<(usize, std::time::Instant)>> = Mutex::new(Vec::new());

/// Cancels every call of `env_id` (the first time it is asked) and returns the environment's deadline.
fn teardown_deadline(env_id: usize) -> std::time::Instant {
  let deadline = {
    // Released before LIVE_CALLS is taken: `forget_call` takes the two the other way round.
    let mut teardowns = TEARDOWNS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, deadline)) = teardowns.iter().find(|(id, _)| *id == env_id) {
      return *deadline;
    }
    let deadline = std::time::Instant::now() + TEARDOWN_WAIT;
    teardowns.push((env_id, deadline));
    deadline
  };
  for (_, token, _) in LIVE_CALLS
    .lock()
    .unwrap_or_else(|p| p.into_inner())
    .iter()
    .filter(|(id, _, _)| *id == env_id)
  {
    token.cancel();
  }
  deadline
}

/// A call is over (settled, or its environment gone): it leaves the registry, and so does a torn-down
/// environment's deadline once none of its calls is left.
fn forget_call(finished: &Arc<Finished>) {
  let mut calls = LIVE_CALLS.lock().unwrap_or_else(|p| p.into_inner());
  calls.retain(|(_, _, f)| !Arc::ptr_eq(f, finished));
  TEARDOWNS
    .lock()
    .unwrap_or_else(|p| p.into_inner())
    .retain(|(id, _)| calls.iter().any(|(c, _, _)| c == id));
}

/// Set when a call's work is over (whatever its outcome), for a teardown waiting on it.
#[derive(Default)]
struct Finished {
  done: Mutex<bool>,
  changed: std::sync::Condvar,
  /// The environment's teardown ran this call's cleanup hook: it is gone, and must not be removed again.
  hook_ran: std::sync::atomic::AtomicBool,
}

impl Finished {
  fn set(&self) {
    *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
    self.changed.notify_all();
  }

  fn wait(&self, limit: std::time::Duration) {
    let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
    let _ = self.changed.wait_timeout_while(done, limit, |done| !*done);
  }
}

/// Sets `Finished` when dropped: when the call's work ends, or is dropped unfinished.
struct SetOnDrop(Arc<Finished>);

impl Drop for SetOnDrop {
  fn drop(&mut self) {
    self.0.set();
  }
}

/// The engine control for a call: a token cancelled by `signal` (or by the environment's teardown), and a
/// progress sink that queues events to the JavaScript callback without ever blocking the transfer.
fn control(env: &Env, parts: options::CallParts) -> Result<CallSetup> {
  let progress_interval = options::progress_interval(parts.progress_interval_ms).map_err(|e| to_js_error(env, &e))?;
  let max_bandwidth =
    options::positive("maxBandwidth", parts.max_bandwidth, options::MAX_SAFE).map_err(|e| to_js_error(env, &e))?;
  let cancel = CancellationToken::new();
  if let Some(signal) = parts.signal {
    let token = cancel.clone();
    signal.on_abort(move || token.cancel());
  }
  let finished = Arc::new(Finished::default());
  let env_id = env.raw() as usize;
  LIVE_CALLS
    .lock()
    .unwrap_or_else(|p| p.into_inner())
    .push((env_id, cancel.clone(), finished.clone()));
  let teardown = env.add_env_cleanup_hook((env_id, finished.clone()), |(env_id, finished)| {
    // The first of an environment's hooks cancels all its calls and starts one shared deadline; each hook then
    // waits for its own call within it, so a teardown waits at most TEARDOWN_WAIT in all.
    finished.hook_ran.store(true, std::sync::atomic::Ordering::SeqCst);
    let deadline = teardown_deadline(env_id);
    finished.wait(deadline.saturating_duration_since(std::time::Instant::now()));
    forget_call(&finished);
  })?;
  let callback = parts.on_progress.map(Arc::new);
  let progress = callback.clone().map(|f| {
    Arc::new(move |p: engine::Progress| {
      f.call(p.into(), ThreadsafeFunctionCallMode::NonBlocking);
    }) as ProgressSink
  });
  Ok(CallSetup {
    control: Control {
      cancel,
      progress,
      progress_interval,
      max_bandwidth,
    },
    callback,
    teardown,
    finished,
  })
}

/// Runs an engine call on napi's tokio runtime. On success the final progress event is delivered (awaited, so
/// it reaches JavaScript before the promise resolves); then the callback is released so nothing keeps the
/// event loop alive.
fn run<'env, F, Fut, O>(env: &'env Env, setup: CallSetup, call: F) -> Result<PromiseRaw<'env, O::Js>>
where
  F: FnOnce(Control) -> Fut + Send + 'static,
  Fut: Future<Output = engine::Result<O>> + Send + 'static,
  O: CallOutput,
{
  let CallSetup {
    control,
    callback,
    teardown,
    finished,
  } = setup;
  let (cancel, settled, settled_hook) = (control.cancel.clone(), finished.clone(), finished.clone());
  // The work runs on the engine's own runtime (see `runtime::engine_runtime`); napi's only awaits it.
  let work = runtime::engine_runtime().spawn(async move {
    let _finished = SetOnDrop(finished);
    // A panic in the engine or the SDK (a bug) rejects this call with ERR_INTERNAL; the process goes on.
    let result = match AssertUnwindSafe(call(control)).catch_unwind().await {
      Ok(result) => result,
      Err(payload) => Err(engine::Error::from_panic(&*payload)),
    };
    (result, callback)
  });
  let promise = env.spawn_future_with_callback(
    async move {
      let (result, callback) = match work.await {
        Ok(done) => done,
        Err(e) => (Err(engine::Error::Internal { message: e.to_string() }), None),
      };
      if settled_hook.hook_ran.load(std::sync::atomic::Ordering::SeqCst) {
        // The environment is being torn down (its promise machinery closed before the hook ran): settling now
        // would reach into a dying environment. Nothing is waiting for this promise; never settle it.
        drop(callback);
        return std::future::pending().await;
      }
      if let (Ok(out), Some(callback)) = (&result, &callback) {
        let summary = out.summary();
        let last = TransferProgress {
          phase: summary.phase.name().to_owned(),
          hashed_files: summary.hashed_files as f64,
          hashed_bytes: summary.hashed_bytes as f64,
          transferred_bytes: summary.bytes as f64,
          total_bytes: summary.bytes as f64,
          completed_files: summary.files as f64,
          total_files: summary.files as f64,
          skipped_files: summary.skipped_files as f64,
          skipped_bytes: summary.skipped_bytes as f64,
          bytes_per_second: summary.bytes_per_second,
        };
        // A throwing callback is the JavaScript wrapper's business; here it must not fail the transfer.
        let _ = callback.call_async(last).await;
      }
      drop(callback);
      Ok(result)
    },
    move |env, result| {
      // The call is over; its environment's teardown no longer concerns it. When the teardown has begun (the
      // work finished while the hook waited, and the queue still delivered this), the hook is spent already.
      if !settled.hook_ran.load(std::sync::atomic::Ordering::SeqCst) {
        let _ = env.remove_env_cleanup_hook(teardown);
      }
      forget_call(&settled);
      match result {
        Ok(out) => Ok(out.into_js()),
        Err(e) => Err(to_js_error(env, &e)),
      }
    },
  );
  if promise.is_err() {
    // No promise to settle: the work must not run on unobserved.
    cancel.cancel();
  }
  promise
}

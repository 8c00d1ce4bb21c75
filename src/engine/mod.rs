//! The transfer engine: plain tokio + aws-sdk-s3, no napi. Driven by the binding layer, tested by `cargo test`.
//!
//! Concurrency model (see also the README):
//! - a client owns one connection pool and a cap of `max_pool_connections` requests in flight, shared by every
//!   call on it;
//! - each call has a budget of `workers × MAX_REQUESTS_PER_FILE` request slots; a file takes as many slots as
//!   requests it keeps in flight (1 for a small file, up to 10 for a multipart one);
//! - a call's cancellation is one token that every task observes.

pub mod asset_roots;
mod attachments;
mod body;
mod bucket;
pub mod cache;
mod checksum;
mod client;
pub mod config;
mod credentials;
pub mod deadline_cache;
mod download;
mod error;
mod filter;
mod job;
pub mod log;
pub mod manifest;
mod object;
mod outputs;
pub mod paths;
mod positional;
mod progress;
mod scheduler;
pub mod settings;
mod throttle;
mod timeout;
mod unchanged;
mod upload;

use std::time::Duration;

pub use attachments::{data_key, AttachmentDownload, AttachmentUpload, AttachmentUploadOutput, ManifestSource};
pub use bucket::BucketCreated;
pub use client::Engine;
pub use config::{ChecksumAlgorithm, ChecksumMode, ClientConfig, StaticCredentials};
pub use credentials::{CredentialSource, FetchCredentials, Provided};
pub use download::{Conflict, DownloadObject, DownloadRequest, DownloadSource};
pub use error::{Error, FileFailure, Result};
pub use filter::{Filter, FilterRule};
pub use job::{manifest_key, FileSystem, JobSubmission, SubmittedJob, SubmittedRoot};
pub use object::{validate_account_id, Bucket, CustomerKey, Encryption, ObjectSettings};
pub use outputs::{select_output_manifests, DownloadedOutputs, OutputRequest, OutputRoot, OutputUpload};
pub use progress::{Phase, Progress, ProgressSink, ProgressState, Summary};
pub use settings::Settings;
pub use throttle::Bandwidth;
pub use tokio_util::sync::CancellationToken;
pub use unchanged::SkipUnchanged;
pub use upload::{UploadFile, UploadRequest, UploadSource};

/// Coalesced progress events go out at most this often unless the request says otherwise.
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// How a caller steers one call: its cancellation token and where its progress goes.
#[derive(Clone)]
pub struct Control {
  /// Cancelling it stops the call: in-flight requests are dropped, queued work never starts, multipart uploads
  /// are aborted and temporary files removed before the call returns `Error::Cancelled`.
  pub cancel: CancellationToken,
  /// Receives coalesced progress events while the call runs.
  pub progress: Option<ProgressSink>,
  /// At most one event per interval.
  pub progress_interval: Duration,
  /// This call's own bandwidth cap (bytes per second), instead of the client's.
  pub max_bandwidth: Option<u64>,
}

impl Default for Control {
  fn default() -> Self {
    Control {
      cancel: CancellationToken::new(),
      progress: None,
      progress_interval: DEFAULT_PROGRESS_INTERVAL,
      max_bandwidth: None,
    }
  }
}

impl Control {
  /// Runs one call: fresh counters in `phase`, progress reported while `work` runs, nothing started when the
  /// call is cancelled already. Returns what `work` returned and the call's summary; on failure the error (a
  /// cancellation carries what completed before it).
  async fn run<T, F, Fut>(&self, phase: Phase, work: F) -> Result<(T, Summary)>
  where
    F: FnOnce(std::sync::Arc<ProgressState>) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
  {
    let state = ProgressState::new();
    state.set_phase(phase);
    let mut out = None;
    let result = progress::report_while(&state, self.progress.as_ref(), self.progress_interval, async {
      if self.cancel.is_cancelled() {
        return Err(Error::Cancelled { summary: None });
      }
      out = Some(work(state.clone()).await?);
      Ok(())
    })
    .await;
    let summary = self.finish(result, &state)?;
    Ok((out.expect("set when the work succeeded"), summary))
  }

  /// The call's outcome: its summary, or its error; a cancellation, and a call whose files failed, carry what
  /// completed.
  fn finish(&self, result: Result<()>, state: &ProgressState) -> Result<Summary> {
    let s = state.summary();
    match &result {
      Ok(()) => {
        tracing::info!(target: "s3_ferry::transfer", files = s.files, bytes = s.bytes, seconds = s.seconds, "done")
      }
      Err(e) => {
        tracing::info!(target: "s3_ferry::transfer", files = s.files, bytes = s.bytes, code = %e.code(), "failed")
      }
    }
    match result {
      Ok(()) => Ok(state.summary()),
      Err(Error::Cancelled { .. }) => Err(Error::Cancelled {
        summary: Some(state.summary()),
      }),
      Err(Error::Files { failures, .. }) => Err(Error::Files {
        failures,
        summary: Some(state.summary()),
      }),
      Err(e) => Err(e),
    }
  }
}

/// Why a dry run would skip a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
  /// `skip_unchanged` found the destination the same.
  Unchanged,
  /// The destination exists and the conflict policy is `Skip`.
  Exists,
}

/// One file of a dry run: where it would go, and whether it would be skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
  /// The local file (an upload's source, a download's destination).
  pub path: std::path::PathBuf,
  /// The key (an upload's destination, a download's source).
  pub key: String,
  /// Its size, when known without a request (not for a download's explicit list).
  pub bytes: Option<u64>,
  /// `Some` for a file that would be skipped.
  pub skip: Option<SkipReason>,
}

/// What a dry run resolves to: every file it would transfer or skip, sorted by key, and the call's summary
/// (nothing transferred; what it skipped).
#[derive(Debug, Clone)]
pub struct Plan {
  pub summary: Summary,
  pub files: Vec<PlannedFile>,
}

impl Plan {
  /// The plan of `files` (in any order; sorted here by key).
  fn new(mut files: Vec<PlannedFile>, summary: Summary) -> Plan {
    files.sort_by(|a, b| a.key.cmp(&b.key));
    Plan { summary, files }
  }

  /// Files and bytes it would transfer (bytes of a download's explicit list are not known).
  pub fn would_transfer(&self) -> (u64, u64) {
    let sent = self.files.iter().filter(|f| f.skip.is_none());
    (sent.clone().count() as u64, sent.filter_map(|f| f.bytes).sum())
  }
}

/// What every task of one call shares.
struct Call {
  bucket: Bucket,
  /// How uploaded objects are stored (a file's own settings, in `Planned`, replace these).
  object: std::sync::Arc<ObjectSettings>,
  progress: std::sync::Arc<ProgressState>,
  /// The call's own cap, else the client's, else none.
  throttle: Option<std::sync::Arc<Bandwidth>>,
  /// The client's cache, if it has one (multipart uploads are recorded there to be resumable).
  cache: Option<std::sync::Arc<cache::Cache>>,
  /// A multipart upload that fails (not cancelled) stays on the server, recorded, for the next call to resume.
  keep_failed_uploads: bool,
  /// A file that fails does not stop the others; the call fails at the end with every failure.
  keep_going: bool,
}

impl Call {
  /// A download's: no cache, no uploads to keep.
  fn download(
    bucket: &Bucket,
    progress: std::sync::Arc<ProgressState>,
    throttle: Option<std::sync::Arc<Bandwidth>>,
    keep_going: bool,
  ) -> std::sync::Arc<Call> {
    std::sync::Arc::new(Call {
      bucket: bucket.clone(),
      object: Default::default(),
      progress,
      throttle,
      cache: None,
      keep_failed_uploads: false,
      keep_going,
    })
  }
}

/// A local path from a request: not empty, and without NUL (which no file system takes, and which would
/// otherwise surface as an `EIO` from the first `stat`).
fn validate_path(path: &std::path::Path, what: &str) -> Result<()> {
  if path.as_os_str().is_empty() {
    return Err(Error::invalid_value(format!("{what} must not be empty")));
  }
  if path.as_os_str().as_encoded_bytes().contains(&0) {
    return Err(Error::invalid_value(format!(
      "{what} contains a NUL character, which no file name can: {:?}",
      path.display().to_string()
    )));
  }
  Ok(())
}

/// S3 bucket names are 3-63 characters; S3-compatible stores are laxer, so only what can never work is refused.
fn validate_bucket(bucket: &str) -> Result<()> {
  if bucket.is_empty() {
    return Err(Error::invalid_value("bucket must be a non-empty string"));
  }
  if bucket.contains('/') || bucket.len() > 255 || bucket == "." || bucket == ".." {
    return Err(Error::invalid_value(format!(
      "bucket '{bucket}' is not a valid bucket name"
    )));
  }
  Ok(())
}

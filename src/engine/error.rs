//! The engine's one error type. Every variant carries what it concerns (bucket, key, path) and a stable
//! `code()` that the binding layer hands to JavaScript as `err.code`.

use std::path::PathBuf;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::progress::Summary;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a transfer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
  /// An option or request field has the wrong type (`ERR_INVALID_ARG_TYPE`) or value (`ERR_INVALID_ARG_VALUE`).
  /// Raised before any request is sent.
  #[error("{message}")]
  InvalidArgument {
    /// `ERR_INVALID_ARG_TYPE` or `ERR_INVALID_ARG_VALUE`.
    code: &'static str,
    /// Names the offending option and value.
    message: String,
  },

  /// A local file operation failed.
  #[error("{op} '{}': {source}", path.display())]
  Io {
    /// What was being done ("open", "read", "write", "rename", ...).
    op: &'static str,
    /// The local path concerned.
    path: PathBuf,
    /// The operating system's error.
    #[source]
    source: std::io::Error,
  },

  /// S3 answered with an error, or the request could not be completed.
  #[error("{operation} s3://{bucket}/{}: {code}{}{}", key.as_deref().unwrap_or(""), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default(), if *attempts > 1 { format!(" (after {attempts} attempts)") } else { String::new() })]
  S3 {
    /// The S3 operation ("PutObject", "GetObject", ...).
    operation: &'static str,
    /// The bucket concerned.
    bucket: String,
    /// The key concerned, if any.
    key: Option<String>,
    /// The S3 error code (`NoSuchBucket`, `AccessDenied`, ...) or one of ours for transport failures
    /// (`ERR_NETWORK`, `ETIMEDOUT`, `ERR_CREDENTIALS`).
    code: String,
    /// The server's or the transport's message.
    message: Option<String>,
    /// The HTTP status, when a response arrived.
    status_code: Option<u16>,
    /// Attempts made, the first included; 0 when not counted. Equal to `maxAttempts` when retries ran out.
    attempts: u32,
    /// The underlying SDK error, for `source()` chains.
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
  },

  /// A response body broke off mid-stream (the connection dropped). The SDK retries requests, not the bytes
  /// after them, so the engine fetches such a range again; this is what remains when every attempt broke off.
  #[error("s3://{bucket}/{key}: the response body broke off: {source}")]
  BodyInterrupted {
    /// The bucket concerned.
    bucket: String,
    /// The key concerned.
    key: String,
    /// What the transport said.
    #[source]
    source: aws_smithy_types::byte_stream::error::Error,
  },

  /// A key would be written outside the destination directory.
  #[error("key '{key}' resolves outside the destination directory '{}': {reason}", local_dir.display())]
  PathOutsideDestination {
    /// The offending key.
    key: String,
    /// The destination directory.
    local_dir: PathBuf,
    /// What in the key would make it land elsewhere ("a '..' segment", "a Windows device name ...").
    reason: &'static str,
  },

  /// Two listed keys would write the same local file (`a//b` and `a/b`), or one needs a directory where the
  /// other is a file (`a` and `a/b`). Found before anything is fetched.
  #[error("keys '{first}' and '{second}' would both be written to '{}'", path.display())]
  DestinationConflict {
    /// The key listed first.
    first: String,
    /// The key that collides with it.
    second: String,
    /// The local path they share.
    path: PathBuf,
  },

  /// A download destination already exists and the conflict policy is `Error`.
  #[error("'{}' already exists (conflict policy: error)", path.display())]
  DestinationExists {
    /// The existing destination.
    path: PathBuf,
  },

  /// The object changed on the server while it was being downloaded (its ETag no longer matched).
  #[error("s3://{bucket}/{key} changed on the server during the download")]
  ObjectChanged {
    /// The bucket concerned.
    bucket: String,
    /// The key concerned.
    key: String,
  },

  /// A local file changed (size or modification time) while it was being uploaded.
  #[error("'{}' changed while it was being uploaded", path.display())]
  FileChanged {
    /// The local path concerned.
    path: PathBuf,
  },

  /// What arrived does not match the checksum S3 stored with the object. The destination is untouched.
  #[error(
    "s3://{bucket}/{key}: {algorithm} checksum mismatch: the object's is {expected}, the bytes received give {actual}"
  )]
  ChecksumMismatch {
    /// The bucket concerned.
    bucket: String,
    /// The key concerned.
    key: String,
    /// `CRC64NVME`, `CRC32C` or `CRC32`.
    algorithm: &'static str,
    /// The stored checksum (base64).
    expected: String,
    /// The checksum of what arrived (base64).
    actual: String,
  },

  /// The store refused an upload's bytes: they do not match the content hash their key names (sent as the
  /// `XXHASH128` checksum). The file changed after it was hashed, or the bytes were corrupted on the way; nothing
  /// was stored.
  #[error(
    "s3://{bucket}/{key}: the store refused the bytes sent from '{}': their XXHASH128 is not {hash}, the content \
     hash the key names (the file changed after it was hashed, or the bytes were corrupted on the way); nothing \
     was stored, and the file's cached hash is dropped so the next call hashes it again",
    path.display()
  )]
  ContentRefused {
    /// The bucket concerned.
    bucket: String,
    /// The content key.
    key: String,
    /// The file whose bytes were sent.
    path: PathBuf,
    /// The content hash (xxh128, hex) the key names.
    hash: String,
    /// The store's answer (400 BadDigest), with its status and attempts.
    source: Box<Error>,
  },

  /// A job's inputs that cannot be submitted, all of them: files that do not exist, input directories that do
  /// not exist, and directories given as files. Raised before anything is hashed or sent.
  #[error(
    "Job submission contains missing input files or directories specified as files. All inputs must exist and be \
     classified properly.{}{}{}",
    list("Missing input files", missing),
    list("Non-existent directories", missing_directories),
    list("Directories classified as files", directories)
  )]
  MisconfiguredInputs {
    /// Input files that do not exist (absolute, sorted).
    missing: Vec<PathBuf>,
    /// Input directories that do not exist (absolute, sorted).
    missing_directories: Vec<PathBuf>,
    /// Input files that are directories (absolute, sorted).
    directories: Vec<PathBuf>,
  },

  /// A stored manifest that cannot be used: not a manifest, or an output manifest without its asset root.
  #[error("s3://{bucket}/{key}: not a usable manifest: {reason}")]
  BadManifest {
    /// The bucket concerned.
    bucket: String,
    /// The manifest's key.
    key: String,
    /// What is wrong with it.
    reason: String,
  },

  /// Output roots recorded in another path format (another OS) with no local directory given for them.
  #[error(
    "outputs recorded under {} with no local directory: give each in rootMap (or a storage profile location of \
     the name it was recorded with)",
    roots.iter().map(|r| format!("'{r}'")).collect::<Vec<_>>().join(", ")
  )]
  UnmappedRoots {
    /// The roots as recorded.
    roots: Vec<String>,
  },

  /// The server sent a different number of bytes than it announced.
  #[error("s3://{bucket}/{key}: expected {expected} bytes, received {received}")]
  Truncated {
    /// The bucket concerned.
    bucket: String,
    /// The key concerned.
    key: String,
    /// What the server announced.
    expected: u64,
    /// What arrived.
    received: u64,
  },

  /// A multipart upload could not be aborted during clean-up; it is still on the server.
  #[error(
    "{source}; aborting multipart upload {upload_id} of s3://{bucket}/{key} also failed, it remains on the server"
  )]
  AbortFailed {
    /// The error that caused the clean-up.
    #[source]
    source: Box<Error>,
    /// The bucket concerned.
    bucket: String,
    /// The key concerned.
    key: String,
    /// The upload id that remains.
    upload_id: String,
  },

  /// A bug: a panic inside the engine or the AWS SDK, caught and turned into an error so the process goes on.
  #[error("internal error: {message} (a bug in s3-ferry or the AWS SDK; please report it)")]
  Internal {
    /// The panic's message.
    message: String,
  },

  /// The transfer was cancelled. `summary` says what completed before.
  #[error("the transfer was aborted")]
  Cancelled {
    /// What completed before the cancel.
    summary: Option<Summary>,
  },

  /// Files of a call failed: every one, in the order they failed (never empty). The call's code, message, key
  /// and path are the first failure's.
  #[error("{}{}", failures[0].error, match failures.len() { 1 => String::new(), n => format!(" (and {} more file{} failed)", n - 1, if n == 2 { "" } else { "s" }) })]
  Files {
    /// Every file that failed.
    failures: Vec<FileFailure>,
    /// What completed.
    summary: Option<Summary>,
  },
}

/// Which file a job moves: its key and its local path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileId {
  pub key: String,
  pub path: PathBuf,
}

impl FileId {
  pub fn new(key: impl Into<String>, path: impl Into<PathBuf>) -> FileId {
    FileId {
      key: key.into(),
      path: path.into(),
    }
  }
}

/// One file that failed, and why.
#[derive(Debug)]
pub struct FileFailure {
  /// Its key.
  pub key: String,
  /// Its local path.
  pub path: PathBuf,
  /// What went wrong.
  pub error: Error,
}

impl Error {
  /// The stable code shown to JavaScript as `err.code`.
  pub fn code(&self) -> String {
    match self {
      Error::InvalidArgument { code, .. } => (*code).to_owned(),
      Error::Io { source, .. } => io_code(source).to_owned(),
      Error::S3 { code, .. } => code.clone(),
      Error::PathOutsideDestination { .. } => "ERR_PATH_OUTSIDE_DESTINATION".to_owned(),
      Error::ObjectChanged { .. } => "ERR_OBJECT_CHANGED".to_owned(),
      Error::DestinationExists { .. } => "ERR_DESTINATION_EXISTS".to_owned(),
      Error::DestinationConflict { .. } => "ERR_DESTINATION_CONFLICT".to_owned(),
      Error::FileChanged { .. } => "ERR_FILE_CHANGED".to_owned(),
      Error::Truncated { .. } => "ERR_TRUNCATED".to_owned(),
      Error::ChecksumMismatch { .. } | Error::ContentRefused { .. } => "ERR_CHECKSUM_MISMATCH".to_owned(),
      Error::MisconfiguredInputs { .. } => "ERR_MISCONFIGURED_INPUTS".to_owned(),
      Error::BadManifest { .. } => "ERR_BAD_MANIFEST".to_owned(),
      Error::UnmappedRoots { .. } => "ERR_UNMAPPED_ROOTS".to_owned(),
      Error::BodyInterrupted { .. } => "ERR_NETWORK".to_owned(),
      Error::AbortFailed { source, .. } => source.code(),
      Error::Cancelled { .. } => "ABORT_ERR".to_owned(),
      Error::Internal { .. } => "ERR_INTERNAL".to_owned(),
      Error::Files { failures, .. } => failures[0].error.code(),
    }
  }

  /// The S3 error code, for an error the server answered.
  pub(crate) fn s3_code(&self) -> Option<&str> {
    match self {
      Error::S3 { code, .. } => Some(code),
      _ => None,
    }
  }

  /// The error itself, or for `Files` the first failure's.
  pub fn first(&self) -> &Error {
    match self {
      Error::Files { failures, .. } => &failures[0].error,
      e => e,
    }
  }

  /// The output roots no local directory was given for.
  pub fn unmapped_roots(&self) -> Option<&[String]> {
    match self {
      Error::UnmappedRoots { roots } => Some(roots),
      _ => None,
    }
  }

  /// A job submission's misconfigured inputs: (missing files, missing directories, directories given as files).
  pub fn misconfigured_inputs(&self) -> Option<[&[PathBuf]; 3]> {
    match self {
      Error::MisconfiguredInputs {
        missing,
        missing_directories,
        directories,
      } => Some([missing, missing_directories, directories]),
      _ => None,
    }
  }

  /// Every file that failed, for a call whose files failed.
  pub fn failures(&self) -> &[FileFailure] {
    match self {
      Error::Files { failures, .. } => failures,
      _ => &[],
    }
  }

  /// What completed, for a cancelled call or one whose files failed.
  pub fn summary(&self) -> Option<&Summary> {
    match self {
      Error::Cancelled { summary } | Error::Files { summary, .. } => summary.as_ref(),
      _ => None,
    }
  }

  /// A download range whose body broke off, came up short or failed its checksum: worth fetching again.
  pub fn is_interrupted_body(&self) -> bool {
    matches!(
      self,
      Error::BodyInterrupted { .. } | Error::Truncated { .. } | Error::ChecksumMismatch { .. }
    )
  }

  /// Whether this is a cancellation (as opposed to a failure).
  pub fn is_cancelled(&self) -> bool {
    matches!(self, Error::Cancelled { .. })
  }

  /// A caught panic, with its message when it has one.
  pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
    let message = payload
      .downcast_ref::<&str>()
      .map(|s| (*s).to_owned())
      .or_else(|| payload.downcast_ref::<String>().cloned())
      .unwrap_or_else(|| "a panic".to_owned());
    Error::Internal { message }
  }

  pub(crate) fn invalid_value(message: impl Into<String>) -> Self {
    Error::InvalidArgument {
      code: "ERR_INVALID_ARG_VALUE",
      message: message.into(),
    }
  }

  pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
    Error::Io {
      op,
      path: path.into(),
      source,
    }
  }

  /// Converts an SDK error, keeping the S3 error code, the HTTP status and the request's bucket and key.
  pub(crate) fn from_sdk<E>(
    operation: &'static str,
    bucket: &str,
    key: Option<&str>,
    err: SdkError<E, HttpResponse>,
  ) -> Self
  where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
  {
    let status_code = err.raw_response().map(|r| r.status().as_u16());
    let (code, message) = match &err {
      SdkError::ServiceError(service) => {
        let e = service.err();
        let code = e
          .code()
          .map(str::to_owned)
          .unwrap_or_else(|| status_code_name(status_code));
        (code, e.message().map(str::to_owned))
      }
      SdkError::TimeoutError(_) => ("ETIMEDOUT".to_owned(), Some("the request timed out".to_owned())),
      // Credentials are resolved while the request is dispatched, so their failures arrive as dispatch or
      // construction failures; the source chain tells them apart from network trouble.
      SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) if is_credentials_failure(&err) => {
        ("ERR_CREDENTIALS".to_owned(), Some(credentials_message(&err)))
      }
      SdkError::DispatchFailure(d) => {
        let code = if d.is_timeout() { "ETIMEDOUT" } else { "ERR_NETWORK" };
        (code.to_owned(), Some(source_chain(&err)))
      }
      SdkError::ConstructionFailure(_) => ("ERR_REQUEST".to_owned(), Some(source_chain(&err))),
      _ => ("ERR_RESPONSE".to_owned(), Some(source_chain(&err))),
    };
    // HEAD responses have no body, so S3 cannot name the error; a 404 there means the key is missing.
    let code = if code == "NotFound" && operation == "HeadObject" {
      "NoSuchKey".to_owned()
    } else {
      code
    };
    Error::S3 {
      operation,
      bucket: bucket.to_owned(),
      key: key.map(str::to_owned),
      code,
      message,
      status_code,
      attempts: 0,
      source: Some(Box::new(err)),
    }
  }

  /// Records how many attempts the failed request made (see `log::counting`).
  pub(crate) fn after_attempts(mut self, n: u32) -> Self {
    if let Error::S3 { attempts, .. } = &mut self {
      *attempts = n;
    }
    self
  }

  /// Attempts the failed request made, when counted.
  pub fn attempts(&self) -> Option<u32> {
    match self {
      Error::S3 { attempts, .. } if *attempts > 0 => Some(*attempts),
      Error::AbortFailed { source, .. } | Error::ContentRefused { source, .. } => source.attempts(),
      Error::Files { failures, .. } => failures[0].error.attempts(),
      _ => None,
    }
  }

  /// The bucket this error concerns, if any.
  pub fn bucket(&self) -> Option<&str> {
    match self {
      Error::S3 { bucket, .. }
      | Error::ObjectChanged { bucket, .. }
      | Error::Truncated { bucket, .. }
      | Error::ChecksumMismatch { bucket, .. }
      | Error::ContentRefused { bucket, .. }
      | Error::BodyInterrupted { bucket, .. } => Some(bucket),
      Error::AbortFailed { bucket, .. } => Some(bucket),
      Error::Files { failures, .. } => failures[0].error.bucket(),
      _ => None,
    }
  }

  /// The key this error concerns, if any.
  pub fn key(&self) -> Option<&str> {
    match self {
      Error::S3 { key, .. } => key.as_deref(),
      Error::ObjectChanged { key, .. }
      | Error::Truncated { key, .. }
      | Error::ChecksumMismatch { key, .. }
      | Error::ContentRefused { key, .. }
      | Error::PathOutsideDestination { key, .. }
      | Error::DestinationConflict { second: key, .. }
      | Error::BodyInterrupted { key, .. } => Some(key),
      Error::AbortFailed { key, .. } => Some(key),
      Error::Files { failures, .. } => failures[0]
        .error
        .key()
        .or(Some(failures[0].key.as_str()).filter(|k| !k.is_empty())),
      _ => None,
    }
  }

  /// The local path this error concerns, if any.
  pub fn path(&self) -> Option<&std::path::Path> {
    match self {
      Error::Io { path, .. }
      | Error::FileChanged { path }
      | Error::DestinationExists { path }
      | Error::ContentRefused { path, .. }
      | Error::DestinationConflict { path, .. } => Some(path),
      Error::AbortFailed { source, .. } => source.path(),
      Error::Files { failures, .. } => failures[0]
        .error
        .path()
        .or(Some(failures[0].path.as_path()).filter(|p| !p.as_os_str().is_empty())),
      _ => None,
    }
  }

  /// The HTTP status, when S3 answered.
  pub fn status_code(&self) -> Option<u16> {
    match self {
      Error::S3 { status_code, .. } => *status_code,
      Error::ObjectChanged { .. } => Some(412),
      Error::AbortFailed { source, .. } | Error::ContentRefused { source, .. } => source.status_code(),
      Error::Files { failures, .. } => failures[0].error.status_code(),
      _ => None,
    }
  }

  /// The multipart upload id left on the server, for `AbortFailed`.
  pub fn remaining_upload_id(&self) -> Option<&str> {
    match self {
      Error::AbortFailed { upload_id, .. } => Some(upload_id),
      Error::Files { failures, .. } => failures[0].error.remaining_upload_id(),
      _ => None,
    }
  }
}

/// Node-style code for a local I/O error.
fn io_code(e: &std::io::Error) -> &'static str {
  use std::io::ErrorKind as K;
  if cfg!(windows) {
    if let Some(code) = e.raw_os_error().and_then(windows_code) {
      return code;
    }
  }
  match e.kind() {
    K::NotFound => "ENOENT",
    K::PermissionDenied => "EACCES",
    K::IsADirectory => "EISDIR",
    K::NotADirectory => "ENOTDIR",
    K::AlreadyExists => "EEXIST",
    K::ReadOnlyFilesystem => "EROFS",
    K::StorageFull => "ENOSPC",
    K::DirectoryNotEmpty => "ENOTEMPTY",
    K::InvalidFilename => "ENAMETOOLONG",
    K::UnexpectedEof => "ERR_FILE_CHANGED",
    _ => "EIO",
  }
}

/// The code Node gives a Windows error (libuv's table), for the errors whose `ErrorKind` says too little or
/// something else: a file held open or locked by another program is `EBUSY` (std calls it uncategorized),
/// access denied is `EPERM` as Node reports it on Windows, and an invalid name is `ENOENT`, not too long.
fn windows_code(raw: i32) -> Option<&'static str> {
  Some(match raw {
    5 => "EPERM",          // ERROR_ACCESS_DENIED
    32 | 33 => "EBUSY",    // ERROR_SHARING_VIOLATION, ERROR_LOCK_VIOLATION
    123 | 161 => "ENOENT", // ERROR_INVALID_NAME, ERROR_BAD_PATHNAME
    206 => "ENAMETOOLONG", // ERROR_FILENAME_EXCED_RANGE
    112 | 39 => "ENOSPC",  // ERROR_DISK_FULL, ERROR_HANDLE_DISK_FULL
    _ => return None,
  })
}

fn status_code_name(status: Option<u16>) -> String {
  match status {
    Some(403) => "AccessDenied".to_owned(),
    Some(404) => "NotFound".to_owned(),
    Some(412) => "PreconditionFailed".to_owned(),
    Some(s) => format!("HTTP{s}"),
    None => "ERR_RESPONSE".to_owned(),
  }
}

/// `\n{title}:\n\t{path}...` for a non-empty list, as Deadline's client words it.
fn list(title: &str, paths: &[PathBuf]) -> String {
  match paths.is_empty() {
    true => String::new(),
    false => format!(
      "\n{title}:{}",
      paths.iter().map(|p| format!("\n\t{}", p.display())).collect::<String>()
    ),
  }
}

fn is_credentials_failure(err: &(dyn std::error::Error + 'static)) -> bool {
  // The SDK boxes the provider's error in its own types; the provider's `CredentialsError` is in the chain.
  std::iter::successors(Some(err), |e| e.source()).any(|e| e.is::<CredentialsError>())
}

/// Why no credentials could be had, without the SDK's wrapping ("dispatch failure", "other", "the credential
/// provider was not enabled"): the providers' own words, e.g. "the credentials function failed: <its message>".
fn credentials_message(err: &(dyn std::error::Error + 'static)) -> String {
  const WRAPPING: [&str; 5] = [
    "dispatch failure",
    "other",
    "the credential provider was not enabled",
    "an error occurred while loading credentials",
    "unexpected credentials error",
  ];
  let mut parts = Vec::new();
  let mut cur = err.source();
  while let Some(e) = cur {
    let s = e.to_string();
    let s = WRAPPING.iter().fold(s, |s, w| match s.strip_prefix(w) {
      Some(rest) => rest.trim_start_matches(": ").to_owned(),
      None => s,
    });
    if !s.is_empty() && !parts.iter().any(|p: &String| p.contains(&s)) {
      parts.push(s);
    }
    cur = e.source();
  }
  match parts.is_empty() {
    true => source_chain(err),
    false => parts.join(": "),
  }
}

/// "a: b: c" from an error and its sources; SDK errors keep the useful part in their sources.
/// The SDK never puts credentials or signatures in these messages.
fn source_chain(err: &(dyn std::error::Error + 'static)) -> String {
  let mut parts = vec![err.to_string()];
  let mut cur = err.source();
  while let Some(e) = cur {
    let s = e.to_string();
    if !parts.iter().any(|p| p.contains(&s)) {
      parts.push(s);
    }
    cur = e.source();
  }
  parts.join(": ")
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn io_errors_get_node_codes() {
    let e = Error::io("open", "/x", std::io::Error::from(std::io::ErrorKind::NotFound));
    assert_eq!(e.code(), "ENOENT");
    assert_eq!(e.path().unwrap(), std::path::Path::new("/x"));
    assert!(e.to_string().contains("'/x'"));
    let e = Error::io("open", "/d", std::io::Error::from(std::io::ErrorKind::IsADirectory));
    assert_eq!(e.code(), "EISDIR");
  }

  #[test]
  fn windows_errors_get_the_codes_node_gives_them() {
    assert_eq!(windows_code(32), Some("EBUSY"), "a file another program holds open");
    assert_eq!(windows_code(33), Some("EBUSY"), "a locked range");
    assert_eq!(windows_code(5), Some("EPERM"));
    assert_eq!(windows_code(206), Some("ENAMETOOLONG"));
    assert_eq!(windows_code(123), Some("ENOENT"));
    assert_eq!(
      windows_code(2),
      None,
      "ERROR_FILE_NOT_FOUND: ErrorKind::NotFound says it"
    );
  }

  #[test]
  fn abort_failed_keeps_the_cause_code_and_names_the_upload() {
    let e = Error::AbortFailed {
      source: Box::new(Error::FileChanged { path: "/f".into() }),
      bucket: "b".into(),
      key: "k".into(),
      upload_id: "u-1".into(),
    };
    assert_eq!(e.code(), "ERR_FILE_CHANGED");
    assert_eq!(e.remaining_upload_id(), Some("u-1"));
    assert!(e.to_string().contains("u-1"));
  }
}

//! Engine errors → JavaScript `Error` objects with a stable `code` and the bucket, key, path and HTTP status
//! they concern. Bad-argument errors are `TypeError`s, as Node's own `ERR_INVALID_ARG_*` are; a cancel is an
//! `AbortError` carrying the summary of what completed before it; a call whose files failed carries every
//! failure (`failures`) and the summary of what completed.

use napi::bindgen_prelude::*;
use napi::{JsTypeError, Status};
use napi_derive::napi;

use super::TransferSummary;
use crate::engine::Error;

/// One file of a call that failed (`err.failures`).
#[napi(object, object_from_js = false)]
pub struct FileFailure {
  /// Its key.
  pub key: String,
  /// Its local path (an upload's source, a download's destination).
  pub path: String,
  /// What `err.code` would be for it alone.
  pub code: String,
  /// What went wrong.
  pub message: String,
  /// The HTTP status, when S3 answered.
  pub status_code: Option<u32>,
  /// Attempts its last request made, when retries ran out.
  pub attempts: Option<u32>,
  /// A multipart upload of this file that could not be aborted and is still on the server.
  pub upload_id: Option<String>,
}

/// Builds the JavaScript error for `e` and wraps it so napi throws or rejects with exactly that object.
pub fn to_js_error(env: &Env, e: &Error) -> napi::Error {
  match build(env, e) {
    Ok(obj) => napi::Error::from(obj.to_unknown()),
    // Building failed (the environment is shutting down): a plain error still carries the message.
    Err(_) => napi::Error::new(Status::GenericFailure, e.to_string()),
  }
}

fn build<'env>(env: &'env Env, e: &Error) -> Result<Object<'env>> {
  let message = e.to_string();
  let mut obj = if matches!(e.first(), Error::InvalidArgument { .. }) {
    // SAFETY: `env` is the live environment of the current call, on its JS thread, which is what `into_value`
    // needs; the value it returns belongs to that environment and is wrapped at once.
    let raw = unsafe { JsTypeError::from(napi::Error::new(Status::InvalidArg, message)).into_value(env.raw()) };
    Object::from_raw(env.raw(), raw)
  } else {
    env.create_error(napi::Error::new(Status::GenericFailure, message))?
  };
  obj.set("code", e.code())?;
  if e.is_cancelled() {
    obj.set("name", "AbortError")?;
  }
  if let Some(summary) = e.summary() {
    obj.set("summary", TransferSummary::from(*summary))?;
  }
  if !e.failures().is_empty() {
    let failures: Vec<FileFailure> = e
      .failures()
      .iter()
      .map(|f| FileFailure {
        key: f.key.clone(),
        path: f.path.to_string_lossy().into_owned(),
        code: f.error.code(),
        message: f.error.to_string(),
        status_code: f.error.status_code().map(u32::from),
        attempts: f.error.attempts(),
        upload_id: f.error.remaining_upload_id().map(str::to_owned),
      })
      .collect();
    obj.set("failures", failures)?;
  }
  if let Some(lists) = e.misconfigured_inputs() {
    for (name, paths) in ["missing", "missingDirectories", "directories"].into_iter().zip(lists) {
      let paths: Vec<String> = paths.iter().map(|p| p.to_string_lossy().into_owned()).collect();
      obj.set(name, paths)?;
    }
  }
  if let Some(roots) = e.unmapped_roots() {
    obj.set("roots", roots.to_vec())?;
  }
  if let Some(bucket) = e.bucket() {
    obj.set("bucket", bucket)?;
  }
  if let Some(key) = e.key() {
    obj.set("key", key)?;
  }
  if let Some(path) = e.path() {
    obj.set("path", path.to_string_lossy().as_ref())?;
  }
  if let Some(status) = e.status_code() {
    obj.set("statusCode", status as u32)?;
  }
  if let Some(attempts) = e.attempts() {
    obj.set("attempts", attempts)?;
  }
  if let Some(upload_id) = e.remaining_upload_id() {
    obj.set("uploadId", upload_id)?;
  }
  Ok(obj)
}

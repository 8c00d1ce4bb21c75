//! Upload: files up to `multipartThreshold` as one PutObject, larger ones as a multipart upload whose parts are
//! read from disk as they are sent. A multipart upload that does not complete is aborted on the server.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::body::{FileRange, FileStamp};
use super::cache::{cache_op, Cache, FileKey};
use super::client::Engine;
use super::config::{ChecksumMode, IN_MEMORY_MAX, MAX_KEY_BYTES, MAX_OBJECT_SIZE, MAX_REQUESTS_PER_FILE};
use super::error::{Error, FileId, Result};
use super::filter::Filter;
use super::log::counting;
use super::object::{Bucket, ObjectSettings, ToBucket, WithSettings};
use super::paths::folder_prefix;
use super::positional::PositionalIo;
use super::progress::{Phase, ProgressState};
use super::scheduler::{blocking, joined, or_cancelled, run_jobs, spawn_abortable, Job};
use super::unchanged::{SkipUnchanged, Stamp};
use super::{validate_bucket, validate_path, Call, Control, Plan, PlannedFile, SkipReason};

/// One local file and the key it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadFile {
  /// Local path.
  pub path: PathBuf,
  /// Destination key.
  pub key: String,
  /// This file's own object settings: each field it sets replaces the request's.
  pub object: Option<ObjectSettings>,
}

impl UploadFile {
  /// A file going to `key`, with the request's object settings.
  pub fn new(path: impl Into<PathBuf>, key: impl Into<String>) -> UploadFile {
    UploadFile {
      path: path.into(),
      key: key.into(),
      object: None,
    }
  }
}

/// What to upload.
#[derive(Debug, Clone)]
pub enum UploadSource {
  /// Explicit files.
  Files(Vec<UploadFile>),
  /// Every regular file under `local_dir`, at `key_prefix` + its `/`-separated relative path. A prefix names a
  /// folder: `job` is `job/` (see [`folder_prefix`]).
  Directory {
    /// The directory to walk.
    local_dir: PathBuf,
    /// Prepended to every relative path.
    key_prefix: String,
    /// Only the files it takes (matched on their relative paths); others are left out, not counted.
    filter: Option<Filter>,
    /// Follow symlinks to files and directories (a link back to a directory being walked is skipped, so a loop
    /// ends). Default: links are not followed and count as skipped.
    follow_symlinks: bool,
  },
}

impl UploadSource {
  /// Every regular file under `local_dir` at `key_prefix`, links not followed, nothing filtered.
  pub fn directory(local_dir: impl Into<PathBuf>, key_prefix: impl Into<String>) -> UploadSource {
    UploadSource::Directory {
      local_dir: local_dir.into(),
      key_prefix: key_prefix.into(),
      filter: None,
      follow_symlinks: false,
    }
  }
}

/// An upload call.
#[derive(Debug, Clone)]
pub struct UploadRequest {
  /// Destination bucket, with what every request to it carries.
  pub bucket: Bucket,
  /// What to upload.
  pub source: UploadSource,
  /// How the objects are stored (a file's own settings replace these field by field).
  pub object: ObjectSettings,
  /// On a failure other than a cancel or a changed file, leave an unfinished multipart upload on the server
  /// (recorded in the cache) for the next upload of the same file to resume, instead of aborting it. Needs a
  /// cache. Whatever this says, an upload left by a crash is resumed when the cache has it.
  pub resumable: bool,
  /// Skip files whose object already exists and is the same by this rule (counted as skipped).
  pub skip_unchanged: Option<SkipUnchanged>,
  /// A file that fails does not stop the others: the call goes on and then fails with every failure.
  pub continue_on_error: bool,
}

/// A file checked and sized before any request is sent.
#[derive(Debug, Clone)]
pub(super) struct Planned {
  pub path: PathBuf,
  pub key: String,
  pub size: u64,
  pub modified: Option<SystemTime>,
  /// The file's own object settings merged over the call's; `None`: the call's.
  pub object: Option<Arc<ObjectSettings>>,
  /// A job attachment's content hash (xxh128, hex): its key names it, and a single PUT sends it as the
  /// `XXHASH128` checksum, so a store that verifies checksums refuses other bytes under that key.
  pub content_hash: Option<String>,
}

impl UploadRequest {
  /// Checks everything that can be checked without the file system.
  pub fn validate(&self) -> Result<()> {
    validate_bucket(&self.bucket)?;
    self.object.validate("")?;
    if self.bucket.customer_key_md5().is_some() && self.object.encryption.algorithm.is_some() {
      return Err(Error::invalid_value(
        "give either sse or sseCustomerKey: an object is encrypted one way",
      ));
    }
    match &self.source {
      UploadSource::Files(files) => {
        let mut seen = HashSet::with_capacity(files.len());
        for (i, f) in files.iter().enumerate() {
          validate_path(&f.path, &format!("files[{i}].path"))?;
          validate_key(&f.key, &format!("files[{i}].key"))?;
          if let Some(own) = &f.object {
            self.object.with(own).validate(&format!("files[{i}]."))?;
          }
          if !seen.insert(f.key.as_str()) {
            return Err(Error::invalid_value(format!(
              "files[{i}].key '{}' appears more than once in the request",
              f.key
            )));
          }
        }
      }
      UploadSource::Directory { local_dir, .. } => validate_path(local_dir, "localDir")?,
    }
    Ok(())
  }
}

pub(super) fn validate_key(key: &str, what: &str) -> Result<()> {
  if key.is_empty() {
    return Err(Error::invalid_value(format!("{what} must not be empty")));
  }
  if key.len() > MAX_KEY_BYTES {
    return Err(Error::invalid_value(format!(
      "{what} is {} bytes; S3 keys are at most {MAX_KEY_BYTES} bytes: '{}...'",
      key.len(),
      &key[..key.floor_char_boundary(64)]
    )));
  }
  Ok(())
}

impl Engine {
  /// The checksum uploads send: the configured algorithm under `WhenSupported`, none under `WhenRequired`
  /// (no request this library sends requires one).
  fn checksum_algorithm(&self) -> Option<ChecksumAlgorithm> {
    (self.config().effective_checksum() == ChecksumMode::WhenSupported).then(|| self.config().checksum_algorithm.sdk())
  }

  /// Uploads files. Resolves when every file is stored; on failure or cancel, files already stored stay, and
  /// no multipart upload of this call is left on the server.
  pub async fn upload(self: &Arc<Self>, request: UploadRequest, control: Control) -> Result<super::Summary> {
    request.validate()?;
    let (request, control) = (&request, &control);
    let work = |progress: Arc<ProgressState>| async move {
      let (files, _unchanged) = self.prepare_upload(request, &progress, &control.cancel).await?;
      let call = Arc::new(Call {
        bucket: request.bucket.clone(),
        object: Arc::new(request.object.clone()),
        progress,
        throttle: self.throttle_for(control),
        cache: self.cache_for(&files).await,
        keep_failed_uploads: request.resumable,
        keep_going: request.continue_on_error,
      });
      self.upload_planned(call, files, &control.cancel).await
    };
    control.run(Phase::Uploading, work).await.map(|((), summary)| summary)
  }

  /// What `upload` would send, and would skip as unchanged, without sending it: only the listing (or the
  /// HeadObjects) that `skip_unchanged` needs.
  pub async fn plan_upload(self: &Arc<Self>, request: UploadRequest, control: Control) -> Result<Plan> {
    request.validate()?;
    let (request, control) = (&request, &control);
    let work = |progress: Arc<ProgressState>| async move {
      let (files, unchanged) = self.prepare_upload(request, &progress, &control.cancel).await?;
      let item = |f: Planned, skip| PlannedFile {
        path: f.path,
        key: f.key,
        bytes: Some(f.size),
        skip,
      };
      let sent = files.into_iter().map(|f| item(f, None));
      Ok(
        sent
          .chain(unchanged.into_iter().map(|f| item(f, Some(SkipReason::Unchanged))))
          .collect(),
      )
    };
    let (files, summary) = control.run(Phase::Uploading, work).await?;
    Ok(Plan::new(files, summary))
  }

  /// Walks or stats the source, leaves out what `skip_unchanged` finds already stored, and counts the rest as
  /// the call's plan. Returns the files to send and those skipped as unchanged.
  async fn prepare_upload(
    &self,
    request: &UploadRequest,
    progress: &ProgressState,
    cancel: &CancellationToken,
  ) -> Result<(Vec<Planned>, Vec<Planned>)> {
    let (source, object) = (request.source.clone(), request.object.clone());
    let (files, skipped) = or_cancelled(cancel, blocking(move || plan(source, &object))).await?;
    for bytes in skipped {
      progress.skip(bytes);
    }
    let (files, unchanged) = match request.skip_unchanged {
      None => (files, Vec::new()),
      Some(rule) => {
        let stored = or_cancelled(cancel, self.stored_stamps(request, &files)).await?;
        files.into_iter().partition(|f| {
          let local = Stamp {
            size: f.size,
            modified: f.modified,
          };
          !stored.get(&f.key).is_some_and(|object| rule.unchanged(local, *object))
        })
      }
    };
    for f in &unchanged {
      progress.skip(f.size);
    }
    progress.set_planned(files.len() as u64, files.iter().map(|f| f.size).sum());
    Ok((files, unchanged))
  }

  /// What the bucket has at the keys of `files`: one listing of the folder for a directory upload, a HeadObject
  /// per file for an explicit list.
  async fn stored_stamps(&self, request: &UploadRequest, files: &[Planned]) -> Result<HashMap<String, Stamp>> {
    match &request.source {
      UploadSource::Directory { key_prefix, .. } => {
        let listed = self.list_objects(&request.bucket, &folder_prefix(key_prefix)).await?;
        Ok(
          listed
            .iter()
            .map(|o| (o.key().unwrap_or_default().to_owned(), Stamp::of_object(o)))
            .collect(),
        )
      }
      UploadSource::Files(_) => {
        self
          .stamps_of(&request.bucket, files.iter().map(|f| f.key.clone()).collect())
          .await
      }
    }
  }

  /// The cache, when some file is large enough to need it (multipart records); opening it is otherwise skipped.
  async fn cache_for(&self, files: &[Planned]) -> Option<Arc<Cache>> {
    match files.iter().any(|f| f.size > self.config().multipart_threshold) {
      true => self.cache().await,
      false => None,
    }
  }

  pub(super) async fn upload_planned(
    self: &Arc<Self>,
    call: Arc<Call>,
    files: Vec<Planned>,
    cancel: &CancellationToken,
  ) -> Result<()> {
    let budget = Arc::new(Semaphore::new(
      self.config().effective_upload_workers() * MAX_REQUESTS_PER_FILE,
    ));
    let jobs = files.into_iter().map(|file| {
      let part_size = self.config().part_size_for(file.size);
      let multipart = file.size > self.config().multipart_threshold;
      let weight = if multipart {
        (file.size.div_ceil(part_size) as usize).min(MAX_REQUESTS_PER_FILE)
      } else {
        1
      };
      let (engine, call) = (self.clone(), call.clone());
      Job {
        file: FileId::new(file.key.clone(), file.path.clone()),
        weight,
        run: move |stop: CancellationToken, _slots: usize| async move {
          if multipart {
            let opened = open_checked(&file).await?;
            engine.upload_multipart(&call, &file, opened, weight, &stop).await?;
          } else if file.size <= IN_MEMORY_MAX && call.throttle.is_none() {
            let data = read_whole(&file).await?;
            engine
              .put_object(&call, &file, ByteStream::from(data), None, &stop)
              .await?;
            call.progress.range().reached(file.size);
          } else {
            let opened = open_checked(&file).await?;
            let stamp = Arc::new(FileStamp::new(file.size, file.modified));
            let body = FileRange {
              file: opened,
              path: Arc::new(file.path.clone()),
              offset: 0,
              len: file.size,
              throttle: call.throttle.clone(),
              stamp: stamp.clone(),
            };
            let body = body.into_byte_stream(call.progress.range());
            engine.put_object(&call, &file, body, Some(&stamp), &stop).await?;
          }
          call.progress.file_done();
          Ok(())
        },
      }
    });
    run_jobs(jobs, budget, cancel, call.keep_going).await
  }

  /// One PutObject. `stamp`: the file's, when the body reads it from disk as it goes (a change found there is
  /// the request's failure).
  async fn put_object(
    &self,
    call: &Call,
    file: &Planned,
    body: ByteStream,
    stamp: Option<&FileStamp>,
    stop: &CancellationToken,
  ) -> Result<()> {
    let s3 = self.s3().await?;
    let bucket = &*call.bucket;
    or_cancelled(stop, async {
      let _slot = self.request_slot().await;
      let put = s3
        .put_object()
        .to(&call.bucket)
        .key(&file.key)
        .with_settings(file.object.as_deref().unwrap_or(&call.object), &file.path)
        .content_length(file.size as i64);
      // A content key's own hash is the checksum, when checksums are sent: the store checks the bytes against
      // the key that names them. (The value is given, so the SDK computes none.)
      let content = file
        .content_hash
        .as_deref()
        .filter(|_| self.checksum_algorithm().is_some());
      let put = match content {
        Some(hash) => put.checksum_xxhash128(super::manifest::xxh128_base64(hash)?),
        None => put.set_checksum_algorithm(self.checksum_algorithm()),
      }
      .body(body);
      // UNSIGNED-PAYLOAD, as the SDK already does for streamed bodies: hashing the body for the signature costs
      // the client a SHA-256 of every byte, and servers that check it another. Integrity comes from the
      // checksum (under `whenSupported`) and TLS.
      let (sent, attempts) = counting(put.customize().disable_payload_signing().send()).await;
      sent.map_err(|e| match stamp.is_some_and(FileStamp::changed) {
        true => Error::FileChanged {
          path: file.path.clone(),
        },
        false => {
          let e = Error::from_sdk("PutObject", bucket, Some(&file.key), e).after_attempts(attempts);
          match (content, e.s3_code() == Some("BadDigest")) {
            (Some(hash), true) => Error::ContentRefused {
              bucket: bucket.to_owned(),
              key: file.key.clone(),
              path: file.path.clone(),
              hash: hash.to_owned(),
              source: Box::new(e),
            },
            _ => e,
          }
        }
      })
    })
    .await?;
    Ok(())
  }

  async fn upload_multipart(
    &self,
    call: &Call,
    file: &Planned,
    opened: Arc<std::fs::File>,
    concurrency: usize,
    stop: &CancellationToken,
  ) -> Result<()> {
    let s3 = self.s3().await?.clone();
    let bucket = &*call.bucket;
    let algorithm = self.checksum_algorithm();
    let part_size = self.config().part_size_for(file.size);
    let record = call.cache.as_ref().map(|cache| Record {
      cache: cache.clone(),
      scope: self.cache_scope(bucket),
      file: FileKey::new(
        &std::path::absolute(&file.path).unwrap_or_else(|_| file.path.clone()),
        file.size,
        file.modified,
      ),
    });
    let resumed = match &record {
      Some(r) => {
        or_cancelled(
          stop,
          self.resumable_upload(&s3, call, file, r, &opened, part_size, algorithm.as_ref()),
        )
        .await?
      }
      None => None,
    };
    let (upload_id, done) = match resumed {
      Some(found) => found,
      None => {
        // Waiting for a slot may be cut short by a cancel, but once sent, CreateMultipartUpload is awaited:
        // dropping it mid-flight could leave an upload the server created and whose id we never learn. A cancel
        // that arrives meanwhile is seen right after, and the upload is aborted below like any other.
        let slot = or_cancelled(stop, async { Ok(self.request_slot().await) }).await?;
        let mut req = s3
          .create_multipart_upload()
          .to(&call.bucket)
          .key(&file.key)
          .with_settings(file.object.as_deref().unwrap_or(&call.object), &file.path)
          .set_checksum_algorithm(algorithm.clone());
        if algorithm.is_some() {
          // A full-object checksum (S3 combines the parts' CRCs), so a download in any ranges can be verified.
          req = req.checksum_type(ChecksumType::FullObject);
        }
        let (sent, attempts) = counting(req.send()).await;
        let created = sent
          .map_err(|e| Error::from_sdk("CreateMultipartUpload", bucket, Some(&file.key), e).after_attempts(attempts))?;
        drop(slot);
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        if let Some(r) = &record {
          let (r, id, key, alg) = (
            r.clone(),
            upload_id.clone(),
            file.key.clone(),
            upload_tag(
              algorithm.as_ref(),
              file.object.as_deref().unwrap_or(&call.object),
              &call.bucket,
            ),
          );
          r.write(move |c, scope, f| c.record_upload(scope, &key, f, &id, part_size, &alg))
            .await;
        }
        (upload_id, Vec::new())
      }
    };

    let result = or_cancelled(
      stop,
      self.send_parts_and_complete(
        &s3,
        call,
        file,
        &upload_id,
        opened,
        concurrency,
        algorithm,
        done,
        record.as_ref(),
      ),
    )
    .await;
    let forget = |record: Option<Record>, id: String| async move {
      if let Some(r) = record {
        r.write(move |c, _, _| c.forget_upload(&id)).await;
      }
    };
    let Err(cause) = result else {
      forget(record, upload_id).await;
      return Ok(());
    };
    if call.keep_failed_uploads
      && record.is_some()
      && !matches!(cause, Error::Cancelled { .. } | Error::FileChanged { .. })
    {
      tracing::info!(target: "s3_ferry::transfer", key = %file.key, upload_id = %upload_id, error = %cause,
        "multipart upload kept for the next upload of this file to resume");
      return Err(cause);
    }
    // Whatever else went wrong (a cancel, the file changing), the upload must not stay on the server. This runs
    // even after a cancel and is not itself cancellable: it is one small request.
    let aborted = self.abort_upload(&s3, &call.bucket, &file.key, &upload_id).await;
    forget(record, upload_id.clone()).await;
    match aborted {
      Ok(()) => Err(cause),
      Err(_) => Err(Error::AbortFailed {
        source: Box::new(cause),
        bucket: bucket.to_owned(),
        key: file.key.clone(),
        upload_id,
      }),
    }
  }

  /// Aborts a multipart upload; one already gone (completed, or aborted by a racing request) is fine.
  async fn abort_upload(&self, s3: &aws_sdk_s3::Client, bucket: &Bucket, key: &str, upload_id: &str) -> Result<()> {
    let _slot = self.request_slot().await;
    let aborted = s3
      .abort_multipart_upload()
      .to(bucket)
      .key(key)
      .upload_id(upload_id)
      .send()
      .await;
    match aborted.map_err(|e| Error::from_sdk("AbortMultipartUpload", bucket, Some(key), e)) {
      Ok(_) => Ok(()),
      Err(e) if e.code() == "NoSuchUpload" => Ok(()),
      Err(e) => Err(e),
    }
  }

  /// A multipart upload of this file to this key that an earlier call left unfinished (a crash, an outage),
  /// with the parts that need not be sent again: those the server lists with the ETag and size recorded when
  /// they were sent and, where a checksum was recorded, whose bytes on disk still have it. Records of the key
  /// for another version of the file are aborted and forgotten; a record whose upload is gone is forgotten.
  #[allow(clippy::too_many_arguments)] // one call site
  async fn resumable_upload(
    &self,
    s3: &aws_sdk_s3::Client,
    call: &Call,
    file: &Planned,
    record: &Record,
    opened: &Arc<std::fs::File>,
    part_size: u64,
    algorithm: Option<&ChecksumAlgorithm>,
  ) -> Result<Option<(String, Vec<CompletedPart>)>> {
    let key = file.key.clone();
    let Some((stale, found)) = record
      .read(move |c, scope, f| Ok((c.stale_uploads(scope, &key, f)?, c.find_upload(scope, &key, f)?)))
      .await
    else {
      return Ok(None);
    };
    for id in stale {
      if self.abort_upload(s3, &call.bucket, &file.key, &id).await.is_ok() {
        record.write(move |c, _, _| c.forget_upload(&id)).await;
      }
    }
    let Some(found) = found else { return Ok(None) };
    let id = found.upload_id.clone();
    if found.part_size != part_size
      || found.algorithm != upload_tag(algorithm, file.object.as_deref().unwrap_or(&call.object), &call.bucket)
    {
      // Settings changed since: its parts do not fit this upload.
      if self.abort_upload(s3, &call.bucket, &file.key, &id).await.is_ok() {
        record.write(move |c, _, _| c.forget_upload(&id)).await;
      }
      return Ok(None);
    }
    let listed = match self.list_parts(s3, &call.bucket, &file.key, &found.upload_id).await {
      Ok(listed) => listed,
      Err(e) if e.code() == "NoSuchUpload" => {
        record.write(move |c, _, _| c.forget_upload(&id)).await;
        return Ok(None);
      }
      Err(e) => return Err(e),
    };
    // Candidates: recorded, listed with the same ETag, of the size this part must have.
    let candidates: Vec<(i32, String, String)> = found
      .parts
      .into_iter()
      .filter(|(n, etag, _)| {
        let offset = (*n as u64 - 1) * part_size;
        let expected = part_size.min(file.size.saturating_sub(offset));
        *n >= 1 && offset < file.size && listed.get(n).is_some_and(|(e, size)| e == etag && *size == expected)
      })
      .collect();
    let verify = algorithm.and_then(super::config::ChecksumAlgorithm::from_sdk);
    let (f, size, path) = (opened.clone(), file.size, file.path.clone());
    let parts = blocking(move || {
      let mut parts = Vec::with_capacity(candidates.len());
      for (number, etag, checksum) in candidates {
        let offset = (number as u64 - 1) * part_size;
        let len = part_size.min(size - offset);
        if let (Some(alg), false) = (verify, checksum.is_empty()) {
          let crc = super::checksum::of_range(&f, offset, len, alg).map_err(|e| Error::io("read", &path, e))?;
          if alg.encode(crc) != checksum {
            continue;
          }
        }
        parts.push((number, len, completed_part(number, Some(etag), verify, Some(checksum))));
      }
      Ok(parts)
    })
    .await?;
    let resumed: u64 = parts.iter().map(|(_, len, _)| len).sum();
    tracing::info!(target: "s3_ferry::transfer", key = %file.key, upload_id = %found.upload_id, parts = parts.len(),
      bytes = resumed, "resuming a multipart upload");
    call.progress.resumed(resumed);
    Ok(Some((found.upload_id, parts.into_iter().map(|(_, _, p)| p).collect())))
  }

  /// Every part the server has of an upload: number → (ETag, size).
  async fn list_parts(
    &self,
    s3: &aws_sdk_s3::Client,
    bucket: &Bucket,
    key: &str,
    upload_id: &str,
  ) -> Result<std::collections::HashMap<i32, (String, u64)>> {
    let mut out = std::collections::HashMap::new();
    let mut marker: Option<String> = None;
    loop {
      let (sent, attempts) = {
        let _slot = self.request_slot().await;
        let req = s3
          .list_parts()
          .to(bucket)
          .key(key)
          .upload_id(upload_id)
          .set_part_number_marker(marker.clone());
        counting(req.send()).await
      };
      let page = sent.map_err(|e| Error::from_sdk("ListParts", bucket, Some(key), e).after_attempts(attempts))?;
      for p in page.parts() {
        if let (Some(n), Some(etag)) = (p.part_number(), p.e_tag()) {
          out.insert(n, (etag.to_owned(), p.size().unwrap_or(0).max(0) as u64));
        }
      }
      match (page.is_truncated(), page.next_part_number_marker()) {
        (Some(true), Some(next)) if Some(next) != marker.as_deref() => marker = Some(next.to_owned()),
        _ => return Ok(out),
      }
    }
  }

  #[allow(clippy::too_many_arguments)] // one call site; a struct would only rename these
  async fn send_parts_and_complete(
    &self,
    s3: &aws_sdk_s3::Client,
    call: &Call,
    file: &Planned,
    upload_id: &str,
    opened: Arc<std::fs::File>,
    concurrency: usize,
    algorithm: Option<ChecksumAlgorithm>,
    done: Vec<CompletedPart>,
    record: Option<&Record>,
  ) -> Result<()> {
    let bucket = &*call.bucket;
    let part_size = self.config().part_size_for(file.size);
    let count = file.size.div_ceil(part_size);
    let path = Arc::new(file.path.clone());
    let stamp = Arc::new(FileStamp::new(file.size, file.modified));
    let have: HashSet<i32> = done.iter().filter_map(|p| p.part_number()).collect();
    let verify = algorithm.as_ref().and_then(super::config::ChecksumAlgorithm::from_sdk);
    let sent: Vec<CompletedPart> = stream::iter((0..count).filter(|i| !have.contains(&(*i as i32 + 1))))
      .map(|i| {
        let number = i as i32 + 1;
        let offset = i * part_size;
        let range = FileRange {
          file: opened.clone(),
          path: path.clone(),
          offset,
          len: part_size.min(file.size - offset),
          throttle: call.throttle.clone(),
          stamp: stamp.clone(),
        };
        let req = s3
          .upload_part()
          .to(&call.bucket)
          .key(&file.key)
          .upload_id(upload_id)
          .part_number(number)
          .content_length(range.len as i64)
          .set_checksum_algorithm(algorithm.clone())
          .body(range.into_byte_stream(call.progress.range()));
        let (bucket, key, stamp, path) = (bucket.to_owned(), file.key.clone(), stamp.clone(), path.clone());
        async move {
          let out = {
            let _slot = self.request_slot().await;
            // Each part is its own task so parts use every runtime thread; dropping this future aborts it.
            joined(
              spawn_abortable(async move {
                let (sent, attempts) = counting(req.send()).await;
                sent.map_err(|e| match stamp.changed() {
                  true => Error::FileChanged {
                    path: path.to_path_buf(),
                  },
                  false => Error::from_sdk("UploadPart", &bucket, Some(&key), e).after_attempts(attempts),
                })
              })
              .await,
            )?
          };
          let checksum = verify.and_then(|a| match a {
            super::config::ChecksumAlgorithm::Crc64Nvme => out.checksum_crc64_nvme(),
            super::config::ChecksumAlgorithm::Crc32c => out.checksum_crc32_c(),
            super::config::ChecksumAlgorithm::Crc32 => out.checksum_crc32(),
          });
          let part = completed_part(
            number,
            out.e_tag().map(str::to_owned),
            verify,
            checksum.map(str::to_owned),
          );
          if let Some(r) = record {
            // Remembered as soon as it is stored, so a crash after this loses nothing of this part.
            let (id, etag, sum) = (
              upload_id.to_owned(),
              part.e_tag().unwrap_or_default().to_owned(),
              checksum.unwrap_or_default().to_owned(),
            );
            r.write(move |c, _, _| c.record_part(&id, number, &etag, &sum)).await;
          }
          Ok::<_, Error>(part)
        }
      })
      .buffer_unordered(concurrency.max(1))
      .try_collect()
      .await?;
    let mut completed = done;
    completed.extend(sent);
    completed.sort_by_key(|p| p.part_number());
    check_unchanged(file, opened).await?;
    let _slot = self.request_slot().await;
    let complete = s3
      .complete_multipart_upload()
      .to(&call.bucket)
      .key(&file.key)
      .upload_id(upload_id)
      .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
      .set_checksum_type(algorithm.map(|_| ChecksumType::FullObject));
    let (sent, attempts) = counting(complete.send()).await;
    sent
      .map_err(|e| Error::from_sdk("CompleteMultipartUpload", bucket, Some(&file.key), e).after_attempts(attempts))?;
    Ok(())
  }
}

/// A part as CompleteMultipartUpload names it: number, ETag, and its checksum under the upload's algorithm.
fn completed_part(
  number: i32,
  etag: Option<String>,
  algorithm: Option<super::config::ChecksumAlgorithm>,
  checksum: Option<String>,
) -> CompletedPart {
  use super::config::ChecksumAlgorithm as A;
  let checksum = checksum.filter(|c| !c.is_empty());
  let b = CompletedPart::builder().part_number(number).set_e_tag(etag);
  match algorithm {
    Some(A::Crc64Nvme) => b.set_checksum_crc64_nvme(checksum),
    Some(A::Crc32c) => b.set_checksum_crc32_c(checksum),
    Some(A::Crc32) => b.set_checksum_crc32(checksum),
    None => b,
  }
  .build()
}

/// How a multipart upload's record names what it was created with: its checksum algorithm ("" for none) and,
/// when any object setting or a customer key is given, their fingerprints, so an upload created with other
/// settings (another storage class, other metadata, another key) is not completed under this call's.
fn upload_tag(algorithm: Option<&ChecksumAlgorithm>, settings: &ObjectSettings, bucket: &Bucket) -> String {
  let mut tag = algorithm
    .and_then(super::config::ChecksumAlgorithm::from_sdk)
    .map_or("", super::config::ChecksumAlgorithm::name)
    .to_owned();
  if let Some(f) = settings.fingerprint() {
    tag.push_str(&format!("+{f:016x}"));
  }
  if let Some(md5) = bucket.customer_key_md5() {
    tag.push_str(&format!("+sse-c:{md5}"));
  }
  tag
}

/// One file's rows in the cache: the cache, the server and bucket, and the file as planned.
#[derive(Clone)]
struct Record {
  cache: Arc<Cache>,
  scope: String,
  file: FileKey,
}

impl Record {
  /// Runs a cache operation for this file on the blocking pool; a failing cache is logged and reads as nothing.
  async fn read<T: Send + 'static>(
    &self,
    f: impl FnOnce(&Cache, &str, &FileKey) -> rusqlite::Result<T> + Send + 'static,
  ) -> Option<T> {
    let (scope, file) = (self.scope.clone(), self.file.clone());
    cache_op(&self.cache, move |c| f(c, &scope, &file)).await
  }

  /// As `read`, for writes.
  async fn write(&self, f: impl FnOnce(&Cache, &str, &FileKey) -> rusqlite::Result<()> + Send + 'static) {
    self.read(f).await;
  }
}

/// Opens the file and checks it is still what was planned (one trip to the blocking pool).
async fn open_checked(file: &Planned) -> Result<Arc<std::fs::File>> {
  let planned = file.clone();
  blocking(move || {
    let f = std::fs::File::open(&planned.path).map_err(|e| Error::io("open", &planned.path, e))?;
    unchanged(&planned, &f)?;
    Ok(Arc::new(f))
  })
  .await
}

/// A small file, read whole in the same trip to the blocking pool that opens it, and checked against its plan
/// before and after the read: a consistent snapshot, which every attempt of its PutObject resends.
async fn read_whole(file: &Planned) -> Result<Bytes> {
  let planned = file.clone();
  blocking(move || {
    let f = std::fs::File::open(&planned.path).map_err(|e| Error::io("open", &planned.path, e))?;
    unchanged(&planned, &f)?;
    let mut buf = vec![0u8; planned.size as usize];
    match f.read_exact_at(&mut buf, 0) {
      Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
        return Err(Error::FileChanged {
          path: planned.path.clone(),
        })
      }
      other => other.map_err(|e| Error::io("read", &planned.path, e))?,
    }
    unchanged(&planned, &f)?;
    Ok(Bytes::from(buf))
  })
  .await
}

/// After sending: a file whose size or modification time changed meanwhile may have sent a mix of old and new
/// bytes.
async fn check_unchanged(file: &Planned, opened: Arc<std::fs::File>) -> Result<()> {
  let planned = file.clone();
  blocking(move || unchanged(&planned, &opened)).await
}

fn unchanged(file: &Planned, opened: &std::fs::File) -> Result<()> {
  let meta = opened.metadata().map_err(|e| Error::io("stat", &file.path, e))?;
  if meta.len() != file.size || meta.modified().ok() != file.modified {
    return Err(Error::FileChanged {
      path: file.path.clone(),
    });
  }
  Ok(())
}

/// Stats every file (explicit list) or walks the directory. Runs on a blocking thread. Returns the files to
/// send and the sizes of the entries skipped (symlinks and special files are not followed in a directory walk,
/// so a link to `/etc` is never uploaded by accident).
pub(super) fn plan(source: UploadSource, object: &ObjectSettings) -> Result<(Vec<Planned>, Vec<u64>)> {
  let (files, skipped) = plan_unchecked(source, object)?;
  if let Some(f) = files.iter().find(|f| f.size > MAX_OBJECT_SIZE) {
    return Err(Error::invalid_value(format!(
      "'{}' is {} bytes; S3 stores objects up to 5 TiB ({MAX_OBJECT_SIZE} bytes)",
      f.path.display(),
      f.size
    )));
  }
  Ok((files, skipped))
}

fn plan_unchecked(source: UploadSource, object: &ObjectSettings) -> Result<(Vec<Planned>, Vec<u64>)> {
  match source {
    UploadSource::Files(files) => {
      let mut out = Vec::with_capacity(files.len());
      for f in files {
        let meta = std::fs::metadata(&f.path).map_err(|e| Error::io("stat", &f.path, e))?;
        if meta.is_dir() {
          return Err(Error::io(
            "read",
            &f.path,
            std::io::Error::from(std::io::ErrorKind::IsADirectory),
          ));
        }
        out.push(Planned {
          size: meta.len(),
          modified: meta.modified().ok(),
          path: f.path,
          key: f.key,
          object: f.object.map(|own| Arc::new(object.with(&own))),
          content_hash: None,
        });
      }
      Ok((out, Vec::new()))
    }
    UploadSource::Directory {
      local_dir,
      key_prefix,
      filter,
      follow_symlinks,
    } => {
      let meta = std::fs::metadata(&local_dir).map_err(|e| Error::io("stat", &local_dir, e))?;
      if !meta.is_dir() {
        return Err(Error::io(
          "read directory",
          &local_dir,
          std::io::Error::from(std::io::ErrorKind::NotADirectory),
        ));
      }
      let mut walk = Walk {
        root: &local_dir,
        prefix: &folder_prefix(&key_prefix),
        filter: filter.as_ref(),
        // The directories being walked, by their real paths: a link back to one of them would loop.
        ancestors: match follow_symlinks {
          true => Some(vec![
            std::fs::canonicalize(&local_dir).map_err(|e| Error::io("stat", &local_dir, e))?
          ]),
          false => None,
        },
        out: Vec::new(),
        skipped: Vec::new(),
      };
      walk.dir(&local_dir)?;
      let (mut out, skipped) = (walk.out, walk.skipped);
      out.sort_by(|a, b| a.key.cmp(&b.key));
      Ok((out, skipped))
    }
  }
}

/// A directory walk: its root, the key prefix and filter, and what it has found so far.
struct Walk<'a> {
  root: &'a Path,
  prefix: &'a str,
  filter: Option<&'a Filter>,
  /// `Some` when symlinks are followed: the real paths of the directories from the root down to the current one.
  ancestors: Option<Vec<PathBuf>>,
  out: Vec<Planned>,
  skipped: Vec<u64>,
}

impl Walk<'_> {
  fn dir(&mut self, dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
    for entry in entries {
      let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
      let path = entry.path();
      let mut meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
      if meta.is_symlink() && self.ancestors.is_some() {
        match std::fs::metadata(&path) {
          Ok(target) => meta = target,
          // A dangling link (or one we may not follow) is skipped, as links are when not followed.
          Err(_) => {
            self.skipped.push(0);
            continue;
          }
        }
      }
      if meta.is_dir() {
        self.subdir(&path)?;
      } else if meta.is_file() {
        self.file(path, &meta)?;
      } else {
        self.skipped.push(0);
      }
    }
    Ok(())
  }

  fn subdir(&mut self, path: &Path) -> Result<()> {
    let Some(ancestors) = &mut self.ancestors else {
      return self.dir(path);
    };
    let real = std::fs::canonicalize(path).map_err(|e| Error::io("stat", path, e))?;
    if ancestors.contains(&real) {
      // A link back up the tree: following it would never end.
      self.skipped.push(0);
      return Ok(());
    }
    ancestors.push(real);
    let walked = self.dir(path);
    if let Some(a) = &mut self.ancestors {
      a.pop();
    }
    walked
  }

  fn file(&mut self, path: PathBuf, meta: &std::fs::Metadata) -> Result<()> {
    let rel = path.strip_prefix(self.root).expect("walked paths are under the root");
    let mut relative = String::new();
    let mut utf8 = true;
    for (i, part) in rel.components().enumerate() {
      if i > 0 {
        relative.push('/');
      }
      let part = part.as_os_str();
      utf8 &= part.to_str().is_some();
      relative.push_str(&part.to_string_lossy());
    }
    if self.filter.is_some_and(|f| !f.takes(&relative)) {
      return Ok(());
    }
    if !utf8 {
      return Err(Error::invalid_value(format!(
        "'{}' is not valid UTF-8 and cannot be an S3 key",
        path.display()
      )));
    }
    let key = format!("{}{relative}", self.prefix);
    validate_key(&key, &format!("the key for '{}'", path.display()))?;
    self.out.push(Planned {
      path,
      key,
      size: meta.len(),
      modified: meta.modified().ok(),
      object: None,
      content_hash: None,
    });
    Ok(())
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::engine::FilterRule;

  #[test]
  fn duplicate_and_oversized_keys_are_refused_before_anything() {
    let req = UploadRequest {
      bucket: Bucket::named("b"),
      object: ObjectSettings::default(),
      source: UploadSource::Files(vec![UploadFile::new("/a", "k"), UploadFile::new("/b", "k")]),
      resumable: false,
      skip_unchanged: None,
      continue_on_error: false,
    };
    let e = req.validate().unwrap_err();
    assert_eq!(e.code(), "ERR_INVALID_ARG_VALUE");
    assert!(e.to_string().contains("more than once"));
    let long = "x".repeat(1025);
    let req = UploadRequest {
      bucket: Bucket::named("b"),
      object: ObjectSettings::default(),
      source: UploadSource::Files(vec![UploadFile::new("/a", long)]),
      resumable: false,
      skip_unchanged: None,
      continue_on_error: false,
    };
    assert!(req.validate().unwrap_err().to_string().contains("1024"));
  }

  #[cfg(unix)] // creating symlinks on Windows needs a privilege
  #[test]
  fn directory_walk_makes_slash_keys_and_skips_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    std::fs::write(dir.path().join("a/b/c.txt"), b"hello").unwrap();
    std::fs::write(dir.path().join("top file.bin"), b"").unwrap();
    std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
    let (files, skipped) = plan(UploadSource::directory(dir.path(), "job/"), &ObjectSettings::default()).unwrap();
    let keys: Vec<_> = files.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["job/a/b/c.txt", "job/top file.bin"]);
    assert_eq!(files[0].size, 5);
    assert_eq!(skipped.len(), 1);
  }

  fn keys_of(files: &[Planned]) -> Vec<&str> {
    files.iter().map(|f| f.key.as_str()).collect()
  }

  #[test]
  fn a_filter_leaves_files_out_by_their_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    for f in [
      ".git/objects/ab",
      "scene.blend",
      "tex/a.png",
      "tex/tmp/b.png",
      "cache.tmp",
    ] {
      let path = dir.path().join(f);
      std::fs::create_dir_all(path.parent().unwrap()).unwrap();
      std::fs::write(path, b"x").unwrap();
    }
    let filter = Filter::ordered(vec![
      FilterRule {
        include: false,
        pattern: ".git/*".into(),
      },
      FilterRule {
        include: false,
        pattern: "*.tmp".into(),
      },
    ])
    .unwrap();
    let source = UploadSource::Directory {
      local_dir: dir.path().into(),
      key_prefix: "job".into(),
      filter: Some(filter),
      follow_symlinks: false,
    };
    let (files, skipped) = plan(source, &ObjectSettings::default()).unwrap();
    assert_eq!(
      keys_of(&files),
      ["job/scene.blend", "job/tex/a.png", "job/tex/tmp/b.png"]
    );
    assert!(skipped.is_empty(), "filtered files are not counted as skipped");
  }

  #[cfg(unix)] // creating symlinks on Windows needs a privilege
  #[test]
  fn followed_links_upload_what_they_point_to_and_a_loop_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (root, outside) = (dir.path().join("job"), dir.path().join("shared"));
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("sub/a.txt"), b"a").unwrap();
    std::fs::write(outside.join("lib.txt"), b"lib").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("shared")).unwrap();
    std::os::unix::fs::symlink(outside.join("lib.txt"), root.join("lib-link.txt")).unwrap();
    std::os::unix::fs::symlink(&root, root.join("sub/up")).unwrap(); // a loop
    std::os::unix::fs::symlink(root.join("gone"), root.join("dangling")).unwrap();
    let follow = |follow_symlinks| UploadSource::Directory {
      local_dir: root.clone(),
      key_prefix: String::new(),
      filter: None,
      follow_symlinks,
    };
    let (files, skipped) = plan(follow(true), &ObjectSettings::default()).unwrap();
    assert_eq!(keys_of(&files), ["lib-link.txt", "shared/lib.txt", "sub/a.txt"]);
    assert_eq!(files[0].size, 3, "the size of what the link points to");
    assert_eq!(skipped.len(), 2, "the loop and the dangling link");
    let (files, skipped) = plan(follow(false), &ObjectSettings::default()).unwrap();
    assert_eq!(keys_of(&files), ["sub/a.txt"]);
    assert_eq!(skipped.len(), 4, "every link, when links are not followed");
  }

  #[test]
  fn missing_files_and_directories_get_node_codes() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let none = ObjectSettings::default();
    let e = plan(UploadSource::Files(vec![UploadFile::new(missing.clone(), "k")]), &none).unwrap_err();
    assert_eq!(e.code(), "ENOENT");
    assert_eq!(e.path(), Some(missing.as_path()));
    let e = plan(UploadSource::Files(vec![UploadFile::new(dir.path(), "k")]), &none).unwrap_err();
    assert_eq!(e.code(), "EISDIR");
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let e = plan(UploadSource::directory(file, ""), &ObjectSettings::default()).unwrap_err();
    assert_eq!(e.code(), "ENOTDIR");
  }
}

//! Upload: files up to `multipartThreshold` as one PutObject, larger ones as a multipart upload whose parts are
//! read from disk as they are sent. A multipart upload that does not complete is aborted on the server.

use std::collections::HashSet;
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
use super::error::{Error, Result};
use super::log::counting;
use super::paths::folder_prefix;
use super::positional::PositionalIo;
use super::progress::{Phase, ProgressState};
use super::scheduler::{blocking, joined, or_cancelled, run_jobs, spawn_abortable, Job};
use super::{validate_bucket, Call, Control};

/// One local file and the key it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadFile {
  /// Local path.
  pub path: PathBuf,
  /// Destination key.
  pub key: String,
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
  },
}

/// An upload call.
#[derive(Debug, Clone)]
pub struct UploadRequest {
  /// Destination bucket.
  pub bucket: String,
  /// What to upload.
  pub source: UploadSource,
  /// On a failure other than a cancel or a changed file, leave an unfinished multipart upload on the server
  /// (recorded in the cache) for the next upload of the same file to resume, instead of aborting it. Needs a
  /// cache. Whatever this says, an upload left by a crash is resumed when the cache has it.
  pub resumable: bool,
}

/// A file checked and sized before any request is sent.
#[derive(Debug, Clone)]
pub(super) struct Planned {
  pub path: PathBuf,
  pub key: String,
  pub size: u64,
  pub modified: Option<SystemTime>,
}

impl UploadRequest {
  /// Checks everything that can be checked without the file system.
  pub fn validate(&self) -> Result<()> {
    validate_bucket(&self.bucket)?;
    match &self.source {
      UploadSource::Files(files) => {
        let mut seen = HashSet::with_capacity(files.len());
        for (i, f) in files.iter().enumerate() {
          if f.path.as_os_str().is_empty() {
            return Err(Error::invalid_value(format!("files[{i}].path must not be empty")));
          }
          validate_key(&f.key, &format!("files[{i}].key"))?;
          if !seen.insert(f.key.as_str()) {
            return Err(Error::invalid_value(format!(
              "files[{i}].key '{}' appears more than once in the request",
              f.key
            )));
          }
        }
      }
      UploadSource::Directory { local_dir, .. } => {
        if local_dir.as_os_str().is_empty() {
          return Err(Error::invalid_value("localDir must not be empty"));
        }
      }
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
      let source = request.source.clone();
      let (files, skipped) = or_cancelled(&control.cancel, blocking(move || plan(source))).await?;
      for bytes in skipped {
        progress.skip(bytes);
      }
      progress.set_planned(files.len() as u64, files.iter().map(|f| f.size).sum());
      let call = Arc::new(Call {
        bucket: Arc::from(request.bucket.as_str()),
        progress,
        throttle: self.throttle_for(control),
        cache: self.cache_for(&files).await,
        keep_failed_uploads: request.resumable,
      });
      self.upload_planned(call, files, &control.cancel).await
    };
    control.run(Phase::Uploading, work).await.map(|((), summary)| summary)
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
    run_jobs(jobs, budget, cancel).await
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
        .bucket(bucket)
        .key(&file.key)
        .content_length(file.size as i64)
        .set_checksum_algorithm(self.checksum_algorithm())
        .body(body);
      // UNSIGNED-PAYLOAD, as the SDK already does for streamed bodies: hashing the body for the signature costs
      // the client a SHA-256 of every byte, and servers that check it another. Integrity comes from the
      // checksum (under `whenSupported`) and TLS.
      let (sent, attempts) = counting(put.customize().disable_payload_signing().send()).await;
      sent.map_err(|e| match stamp.is_some_and(FileStamp::changed) {
        true => Error::FileChanged {
          path: file.path.clone(),
        },
        false => Error::from_sdk("PutObject", bucket, Some(&file.key), e).after_attempts(attempts),
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
          .bucket(bucket)
          .key(&file.key)
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
            algorithm_name(algorithm.as_ref()),
          );
          r.write(move |c, scope, f| c.record_upload(scope, &key, f, &id, part_size, alg))
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
    let aborted = self.abort_upload(&s3, bucket, &file.key, &upload_id).await;
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
  async fn abort_upload(&self, s3: &aws_sdk_s3::Client, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
    let _slot = self.request_slot().await;
    let aborted = s3
      .abort_multipart_upload()
      .bucket(bucket)
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
    let bucket = &*call.bucket;
    let key = file.key.clone();
    let Some((stale, found)) = record
      .read(move |c, scope, f| Ok((c.stale_uploads(scope, &key, f)?, c.find_upload(scope, &key, f)?)))
      .await
    else {
      return Ok(None);
    };
    for id in stale {
      if self.abort_upload(s3, bucket, &file.key, &id).await.is_ok() {
        record.write(move |c, _, _| c.forget_upload(&id)).await;
      }
    }
    let Some(found) = found else { return Ok(None) };
    let id = found.upload_id.clone();
    if found.part_size != part_size || found.algorithm != algorithm_name(algorithm) {
      // Settings changed since: its parts do not fit this upload.
      if self.abort_upload(s3, bucket, &file.key, &id).await.is_ok() {
        record.write(move |c, _, _| c.forget_upload(&id)).await;
      }
      return Ok(None);
    }
    let listed = match self.list_parts(s3, bucket, &file.key, &found.upload_id).await {
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
    bucket: &str,
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
          .bucket(bucket)
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
          .bucket(bucket)
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
      .bucket(bucket)
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

/// How a multipart upload's record names its algorithm ("" for none).
fn algorithm_name(algorithm: Option<&ChecksumAlgorithm>) -> &'static str {
  algorithm
    .and_then(super::config::ChecksumAlgorithm::from_sdk)
    .map_or("", super::config::ChecksumAlgorithm::name)
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
pub(super) fn plan(source: UploadSource) -> Result<(Vec<Planned>, Vec<u64>)> {
  let (files, skipped) = plan_unchecked(source)?;
  if let Some(f) = files.iter().find(|f| f.size > MAX_OBJECT_SIZE) {
    return Err(Error::invalid_value(format!(
      "'{}' is {} bytes; S3 stores objects up to 5 TiB ({MAX_OBJECT_SIZE} bytes)",
      f.path.display(),
      f.size
    )));
  }
  Ok((files, skipped))
}

fn plan_unchecked(source: UploadSource) -> Result<(Vec<Planned>, Vec<u64>)> {
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
        });
      }
      Ok((out, Vec::new()))
    }
    UploadSource::Directory { local_dir, key_prefix } => {
      let meta = std::fs::metadata(&local_dir).map_err(|e| Error::io("stat", &local_dir, e))?;
      if !meta.is_dir() {
        return Err(Error::io(
          "read directory",
          &local_dir,
          std::io::Error::from(std::io::ErrorKind::NotADirectory),
        ));
      }
      let mut out = Vec::new();
      let mut skipped = Vec::new();
      walk(
        &local_dir,
        &local_dir,
        &folder_prefix(&key_prefix),
        &mut out,
        &mut skipped,
      )?;
      out.sort_by(|a, b| a.key.cmp(&b.key));
      Ok((out, skipped))
    }
  }
}

fn walk(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<Planned>, skipped: &mut Vec<u64>) -> Result<()> {
  let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
  for entry in entries {
    let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
    let path = entry.path();
    let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
    if meta.is_dir() {
      walk(root, &path, prefix, out, skipped)?;
    } else if meta.is_file() {
      let rel = path.strip_prefix(root).expect("walked paths are under the root");
      let mut key = String::from(prefix);
      for (i, part) in rel.components().enumerate() {
        if i > 0 {
          key.push('/');
        }
        let part = part.as_os_str().to_str().ok_or_else(|| {
          Error::invalid_value(format!(
            "'{}' is not valid UTF-8 and cannot be an S3 key",
            path.display()
          ))
        })?;
        key.push_str(part);
      }
      validate_key(&key, &format!("the key for '{}'", path.display()))?;
      out.push(Planned {
        path,
        key,
        size: meta.len(),
        modified: meta.modified().ok(),
      });
    } else {
      skipped.push(0);
    }
  }
  Ok(())
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn duplicate_and_oversized_keys_are_refused_before_anything() {
    let req = UploadRequest {
      bucket: "b".into(),
      source: UploadSource::Files(vec![
        UploadFile {
          path: "/a".into(),
          key: "k".into(),
        },
        UploadFile {
          path: "/b".into(),
          key: "k".into(),
        },
      ]),
      resumable: false,
    };
    let e = req.validate().unwrap_err();
    assert_eq!(e.code(), "ERR_INVALID_ARG_VALUE");
    assert!(e.to_string().contains("more than once"));
    let long = "x".repeat(1025);
    let req = UploadRequest {
      bucket: "b".into(),
      source: UploadSource::Files(vec![UploadFile {
        path: "/a".into(),
        key: long,
      }]),
      resumable: false,
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
    let (files, skipped) = plan(UploadSource::Directory {
      local_dir: dir.path().to_owned(),
      key_prefix: "job/".into(),
    })
    .unwrap();
    let keys: Vec<_> = files.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["job/a/b/c.txt", "job/top file.bin"]);
    assert_eq!(files[0].size, 5);
    assert_eq!(skipped.len(), 1);
  }

  #[test]
  fn missing_files_and_directories_get_node_codes() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let e = plan(UploadSource::Files(vec![UploadFile {
      path: missing.clone(),
      key: "k".into(),
    }]))
    .unwrap_err();
    assert_eq!(e.code(), "ENOENT");
    assert_eq!(e.path(), Some(missing.as_path()));
    let e = plan(UploadSource::Files(vec![UploadFile {
      path: dir.path().to_owned(),
      key: "k".into(),
    }]))
    .unwrap_err();
    assert_eq!(e.code(), "EISDIR");
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let e = plan(UploadSource::Directory {
      local_dir: file,
      key_prefix: String::new(),
    })
    .unwrap_err();
    assert_eq!(e.code(), "ENOTDIR");
  }
}

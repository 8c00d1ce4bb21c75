//! Download: objects up to `multipartThreshold` as one GET, larger ones as parallel ranged GETs pinned to the
//! object's ETag (`If-Match`), written at their offsets into a temporary file that is renamed into place only
//! when complete.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use bytes::{Bytes, BytesMut};
use futures_util::{stream, StreamExt, TryStreamExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::checksum::{self, FullObjectChecksum, RangeDigest};
use super::client::Engine;
use super::config::{ChecksumAlgorithm, IN_MEMORY_MAX, MAX_REQUESTS_PER_FILE};
use super::error::{Error, FileId, Result};
use super::filter::Filter;
use super::log::counting;
use super::object::{Bucket, ToBucket};
use super::paths::{check_contained, conflicting_destinations, copy_name, destination_for, relative_key, TempFile};
use super::positional::PositionalIo;
use super::progress::{Phase, ProgressState, RangeProgress};
use super::scheduler::{blocking, joined, or_cancelled, run_jobs, spawn_abortable, Job};
use super::unchanged::{local_stamp, SkipUnchanged, Stamp};
use super::{validate_bucket, validate_path, Call, Control, Plan, PlannedFile, SkipReason};

/// Bytes gathered from the network before one positional write to disk.
const WRITE_BATCH: usize = 1024 * 1024;

/// One object and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadObject {
  /// Source key.
  pub key: String,
  /// Local destination path.
  pub path: PathBuf,
}

/// What to download.
#[derive(Debug, Clone)]
pub enum DownloadSource {
  /// Explicit objects.
  Objects(Vec<DownloadObject>),
  /// Every key `key_prefix` names (the folder, and the object of that name: see `paths::relative_key`),
  /// recreated as a tree under `local_dir`.
  Prefix {
    /// Listed prefix; it is removed from keys to form relative paths.
    key_prefix: String,
    /// Destination directory (created if missing).
    local_dir: PathBuf,
    /// Only the keys it takes (matched on their relative paths); others are left out, not counted.
    filter: Option<Filter>,
  },
}

impl DownloadSource {
  /// Every key `key_prefix` names, into `local_dir`, nothing filtered.
  pub fn prefix(key_prefix: impl Into<String>, local_dir: impl Into<PathBuf>) -> DownloadSource {
    DownloadSource::Prefix {
      key_prefix: key_prefix.into(),
      local_dir: local_dir.into(),
      filter: None,
    }
  }
}

/// What to do when a destination file already exists. Whatever the policy, a destination is only ever replaced
/// or created whole (temporary file, then rename or link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Conflict {
  /// Replace it (the default).
  #[default]
  Overwrite,
  /// Leave it and skip the object (counted in `skipped_files`); nothing is fetched.
  Skip,
  /// Keep it and write `name (1).ext`, `name (2).ext`, ... (the first free name).
  CreateCopy,
  /// Fail with `ERR_DESTINATION_EXISTS`, before fetching that object.
  Error,
}

/// A download call.
#[derive(Debug, Clone)]
pub struct DownloadRequest {
  /// Source bucket, with what every request to it carries (expected owner, SSE-C key).
  pub bucket: Bucket,
  /// What to download.
  pub source: DownloadSource,
  /// What to do with destination files that already exist (and are not skipped as unchanged).
  pub conflict: Conflict,
  /// Skip objects whose destination file exists and is the same by this rule (counted as skipped).
  pub skip_unchanged: Option<SkipUnchanged>,
  /// An object that fails does not stop the others: the call goes on and then fails with every failure.
  pub continue_on_error: bool,
}

impl DownloadRequest {
  /// Checks everything that can be checked without a request.
  pub fn validate(&self) -> Result<()> {
    validate_bucket(&self.bucket)?;
    match &self.source {
      DownloadSource::Objects(objects) => {
        let mut seen = HashSet::with_capacity(objects.len());
        for (i, o) in objects.iter().enumerate() {
          if o.key.is_empty() {
            return Err(Error::invalid_value(format!("objects[{i}].key must not be empty")));
          }
          validate_path(&o.path, &format!("objects[{i}].path"))?;
          if !seen.insert(o.path.as_path()) {
            return Err(Error::invalid_value(format!(
              "objects[{i}].path '{}' appears more than once in the request",
              o.path.display()
            )));
          }
        }
      }
      DownloadSource::Prefix { local_dir, .. } => validate_path(local_dir, "localDir")?,
    }
    Ok(())
  }
}

/// An object to fetch. Size and ETag are known from a listing, unknown for an explicit list.
#[derive(Debug, Clone)]
pub(super) struct Entry {
  pub key: String,
  pub dest: PathBuf,
  pub size: Option<u64>,
  /// `LastModified`, from the listing.
  pub modified: Option<std::time::SystemTime>,
  pub etag: Option<String>,
  /// The checksum the listing says the object has, if any.
  pub algorithm: Option<ChecksumAlgorithm>,
  /// What a manifest says of the file: checked and applied before it is put in place.
  pub expect: Option<Arc<Expected>>,
}

/// A manifest's word on one file.
#[derive(Debug)]
pub(super) struct Expected {
  /// xxh128 of the content (lowercase hex); a download that does not have it fails with
  /// `ERR_CHECKSUM_MISMATCH` and leaves nothing.
  pub hash: String,
  /// Given to the file before it is put in place.
  pub mtime: std::time::SystemTime,
  /// Fetched once instead when `key` does not exist (older uploads stored content without the `.xxh128`).
  pub fallback_key: Option<String>,
}

impl Expected {
  /// Checks content against the manifest's hash.
  fn check(&self, actual: String, bucket: &str, key: &str) -> Result<()> {
    match actual == self.hash {
      true => Ok(()),
      false => Err(Error::ChecksumMismatch {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        algorithm: "xxh128",
        expected: self.hash.clone(),
        actual,
      }),
    }
  }
}

impl Engine {
  /// Downloads objects. Resolves when every file is in place; on failure or cancel, files completed before stay
  /// whole, and no temporary or partial file is left.
  pub async fn download(self: &Arc<Self>, request: DownloadRequest, control: Control) -> Result<super::Summary> {
    request.validate()?;
    let (request, control) = (&request, &control);
    let work = |progress: Arc<ProgressState>| async move {
      let (entries, _skipped) = self
        .prepare_download(request, &progress, false, &control.cancel)
        .await?;
      let call = Call::download(
        &request.bucket,
        progress,
        self.throttle_for(control),
        request.continue_on_error,
      );
      let root = match &request.source {
        DownloadSource::Prefix { local_dir, .. } => Some(Arc::new(local_dir.clone())),
        DownloadSource::Objects(_) => None,
      };
      self
        .download_entries(call, entries, request.conflict, root, &control.cancel)
        .await
    };
    control.run(Phase::Downloading, work).await.map(|((), summary)| summary)
  }

  /// What `download` would fetch, and would skip, without fetching it: the listing, and the HeadObjects that
  /// `skip_unchanged` needs for an explicit list. Under `Conflict::Error` an existing destination fails it as it
  /// would fail the download.
  pub async fn plan_download(self: &Arc<Self>, request: DownloadRequest, control: Control) -> Result<Plan> {
    request.validate()?;
    let (request, control) = (&request, &control);
    let work = |progress: Arc<ProgressState>| async move {
      let (entries, skipped) = self.prepare_download(request, &progress, true, &control.cancel).await?;
      let item = |e: Entry, skip| PlannedFile {
        path: e.dest,
        key: e.key,
        bytes: e.size,
        skip,
      };
      let sent = entries.into_iter().map(|e| item(e, None));
      Ok(
        sent
          .chain(skipped.into_iter().map(|(e, why)| item(e, Some(why))))
          .collect(),
      )
    };
    let (files, summary) = control.run(Phase::Downloading, work).await?;
    Ok(Plan::new(files, summary))
  }

  /// Lists (or takes) the objects, leaves out those `skip_unchanged` finds the same (and, for a dry run, those
  /// the conflict policy would skip), and counts the rest as the call's plan.
  async fn prepare_download(
    &self,
    request: &DownloadRequest,
    progress: &ProgressState,
    dry_run: bool,
    cancel: &CancellationToken,
  ) -> Result<(Vec<Entry>, Vec<(Entry, SkipReason)>)> {
    let mut entries = or_cancelled(cancel, self.list_download(request)).await?;
    let mut skipped = Vec::new();
    if let Some(rule) = request.skip_unchanged {
      let dests: Vec<PathBuf> = entries.iter().map(|e| e.dest.clone()).collect();
      let local = blocking(move || Ok(dests.iter().map(|d| local_stamp(d)).collect::<Vec<_>>())).await?;
      // An explicit list has no sizes or times yet: ask for those whose destination exists.
      let asked: Vec<String> = entries
        .iter()
        .zip(&local)
        .filter(|(e, l)| e.size.is_none() && l.is_some())
        .map(|(e, _)| e.key.clone())
        .collect();
      let heads = match asked.is_empty() {
        true => Default::default(),
        false => or_cancelled(cancel, self.stamps_of(&request.bucket, asked)).await?,
      };
      let mut kept = Vec::with_capacity(entries.len());
      for (entry, local) in entries.into_iter().zip(local) {
        let object = match entry.size {
          Some(size) => Some(Stamp {
            size,
            modified: entry.modified,
          }),
          None => heads.get(&entry.key).copied(),
        };
        match (object, local) {
          (Some(object), Some(local)) if rule.unchanged(object, local) => {
            progress.skip(object.size);
            skipped.push((
              Entry {
                size: Some(object.size),
                ..entry
              },
              SkipReason::Unchanged,
            ));
          }
          _ => kept.push(entry),
        }
      }
      entries = kept;
    }
    if dry_run && matches!(request.conflict, Conflict::Skip | Conflict::Error) {
      let (conflict, dests) = (
        request.conflict,
        entries.iter().map(|e| e.dest.clone()).collect::<Vec<_>>(),
      );
      let exists = blocking(move || {
        dests
          .iter()
          .map(|d| skips_existing(d, conflict))
          .collect::<Result<Vec<_>>>()
      })
      .await?;
      let (kept, existing): (Vec<_>, Vec<_>) = entries.into_iter().zip(exists).partition(|(_, exists)| !exists);
      for (entry, _) in existing {
        progress.skip(entry.size.unwrap_or(0));
        skipped.push((entry, SkipReason::Exists));
      }
      entries = kept.into_iter().map(|(e, _)| e).collect();
    }
    let listed: u64 = entries.iter().filter_map(|e| e.size).sum();
    progress.set_planned(entries.len() as u64, listed);
    Ok((entries, skipped))
  }

  async fn list_download(&self, request: &DownloadRequest) -> Result<Vec<Entry>> {
    match &request.source {
      DownloadSource::Objects(objects) => Ok(
        objects
          .iter()
          .map(|o| Entry {
            key: o.key.clone(),
            dest: o.path.clone(),
            size: None,
            modified: None,
            etag: None,
            algorithm: None,
            expect: None,
          })
          .collect(),
      ),
      DownloadSource::Prefix {
        key_prefix,
        local_dir,
        filter,
      } => {
        let mut entries = Vec::new();
        for obj in self.list_objects(&request.bucket, key_prefix).await? {
          let key = obj.key().unwrap_or_default();
          if let Some(f) = filter {
            if !relative_key(key_prefix, key).is_some_and(|rel| f.takes(rel)) {
              continue;
            }
          }
          if let Some(dest) = destination_for(local_dir, key_prefix, key)? {
            entries.push(Entry {
              key: key.to_owned(),
              dest,
              // A listing without a size leaves it to the GET's response, as an explicit object does.
              size: obj.size().map(|s| s.max(0) as u64),
              modified: Stamp::of_object(&obj).modified,
              etag: obj.e_tag().map(str::to_owned),
              algorithm: obj.checksum_algorithm().iter().find_map(ChecksumAlgorithm::from_sdk),
              expect: None,
            });
          }
        }
        if let Some((first, second)) =
          conflicting_destinations(entries.iter().map(|e| (e.key.as_str(), e.dest.as_path())))
        {
          let path = entries
            .iter()
            .find(|e| e.key == second)
            .map(|e| e.dest.clone())
            .unwrap_or_default();
          return Err(Error::DestinationConflict { first, second, path });
        }
        Ok(entries)
      }
    }
  }

  pub(super) async fn download_entries(
    self: &Arc<Self>,
    call: Arc<Call>,
    entries: Vec<Entry>,
    conflict: Conflict,
    root: Option<Arc<PathBuf>>,
    cancel: &CancellationToken,
  ) -> Result<()> {
    let budget = Arc::new(Semaphore::new(
      self.config().effective_download_workers() * MAX_REQUESTS_PER_FILE,
    ));
    let dirs = Arc::new(Mutex::new(HashSet::<PathBuf>::new()));
    let threshold = self.config().multipart_threshold;
    let jobs: Vec<_> = entries
      .into_iter()
      .map(|entry| {
        let weight = match entry.size {
          Some(size) if size > threshold => {
            (size.div_ceil(self.config().part_size_for(size)) as usize).min(MAX_REQUESTS_PER_FILE)
          }
          _ => 1,
        };
        let (engine, call, dirs, budget, root) =
          (self.clone(), call.clone(), dirs.clone(), budget.clone(), root.clone());
        Job {
          file: FileId::new(entry.key.clone(), entry.dest.clone()),
          weight,
          run: move |stop: CancellationToken, slots: usize| async move {
            let fallback = entry
              .expect
              .as_ref()
              .and_then(|e| e.fallback_key.clone())
              .map(|key| Entry { key, ..entry.clone() });
            // Boxed: two inlined `download_one` state machines make a job future too large for a worker
            // thread's stack in debug builds.
            let first = engine.download_one(
              call.clone(),
              entry,
              conflict,
              root.clone(),
              &dirs,
              &budget,
              slots,
              &stop,
            );
            let placed = match Box::pin(first).await {
              Err(e) if e.status_code() == Some(404) && fallback.is_some() => {
                let fallback = fallback.expect("checked");
                let again = engine.download_one(call.clone(), fallback, conflict, root, &dirs, &budget, slots, &stop);
                Box::pin(again).await?
              }
              other => other?,
            };
            if placed {
              call.progress.file_done();
            }
            Ok(())
          },
        }
      })
      .collect();
    let keep_going = call.keep_going;
    run_jobs(jobs, budget, cancel, keep_going).await
  }

  /// Fetches one object into place. `Ok(false)`: skipped, its destination exists and the policy is `Skip`.
  #[allow(clippy::too_many_arguments)] // one call site; a struct would only rename these
  async fn download_one(
    &self,
    call: Arc<Call>,
    entry: Entry,
    conflict: Conflict,
    root: Option<Arc<PathBuf>>,
    dirs: &Mutex<HashSet<PathBuf>>,
    budget: &Arc<Semaphore>,
    slots: usize,
    stop: &CancellationToken,
  ) -> Result<bool> {
    if let Some(size) = entry.size.filter(|s| *s <= IN_MEMORY_MAX) {
      return self.download_small(call, entry, size, conflict, root, dirs, stop).await;
    }
    let (dest, key) = (entry.dest.clone(), entry.key.clone());
    let (parent, need_dir) = new_parent(&dest, dirs);
    // Before anything is fetched: its directory (checked first; a no-op where the destination exists), then
    // skip or refuse an existing destination.
    let prepared = blocking(move || {
      if need_dir {
        make_dir(root.as_deref(), &parent, &key)?;
      }
      if skips_existing(&dest, conflict)? {
        return Ok(None);
      }
      TempFile::create_beside(&dest).map(|t| Some((t, parent)))
    })
    .await?;
    let Some((mut temp, parent)) = prepared else {
      call.progress.skip_planned(entry.size.unwrap_or(0));
      return Ok(false);
    };
    dirs.lock().unwrap().insert(parent);
    // Objects that may come in ranges are checksummed as they are written (see `checksum`); a small one comes
    // in one GET that the SDK verifies.
    let ranged = entry.size.is_none_or(|s| s > self.config().multipart_threshold);
    let sink = Arc::new(Sink {
      call: call.clone(),
      key: entry.key.clone(),
      dest: entry.dest.clone(),
      file: temp.take_file(),
      // A manifest's file is checked against its xxh128 instead (no HeadObject for the stored CRC).
      digest: (ranged && entry.expect.is_none()).then(|| entry.algorithm.unwrap_or(self.config().checksum_algorithm)),
      ranges: Mutex::new(Vec::new()),
    });
    // Everything below is dropped (stopping its requests) if the call is cancelled; `temp` then removes itself.
    or_cancelled(stop, self.fetch_into(&sink, &entry, budget, slots)).await?;
    let (dest, expect, bucket, key) = (
      entry.dest.clone(),
      entry.expect.clone(),
      call.bucket.clone(),
      entry.key.clone(),
    );
    let placed = blocking(move || {
      if let Some(expect) = expect {
        // Writable: Windows sets a file's times only through a handle with write access.
        let f = std::fs::File::options()
          .read(true)
          .write(true)
          .open(temp.path())
          .map_err(|e| Error::io("open", &dest, e))?;
        let hash = super::manifest::hash_open_file(&f, &mut |_| true).map_err(|e| Error::io("read", &dest, e))?;
        expect.check(hash, &bucket, &key)?;
        f.set_modified(expect.mtime)
          .map_err(|e| Error::io("set the modification time of", &dest, e))?;
      }
      place(temp, &dest, conflict)
    })
    .await?;
    if !placed {
      // Skip: the destination appeared while the object was being fetched; it is left as it is. Its bytes moved
      // (and stay counted); the file leaves the totals so the finished counts still end at them.
      call.progress.skip_planned(0);
    }
    Ok(placed)
  }

  /// A small object (size known from the listing): fetched into memory by one GET that the SDK verifies, then
  /// written in one trip to the blocking pool: its directory (checked and created once), a temporary file, the
  /// bytes, the rename. One trip per file instead of three, and no temporary file exists while it is fetched.
  #[allow(clippy::too_many_arguments)] // one call site, the same arguments as `download_one`
  async fn download_small(
    &self,
    call: Arc<Call>,
    entry: Entry,
    size: u64,
    conflict: Conflict,
    root: Option<Arc<PathBuf>>,
    dirs: &Mutex<HashSet<PathBuf>>,
    stop: &CancellationToken,
  ) -> Result<bool> {
    if matches!(conflict, Conflict::Skip | Conflict::Error) {
      let dest = entry.dest.clone();
      if blocking(move || skips_existing(&dest, conflict)).await? {
        call.progress.skip_planned(size);
        return Ok(false);
      }
    }
    let data = or_cancelled(stop, self.fetch_small(&call, &entry, size)).await?;
    if let Some(expect) = &entry.expect {
      expect.check(super::manifest::hash_bytes(&data), &call.bucket, &entry.key)?;
    }
    let mtime = entry.expect.as_ref().map(|e| e.mtime);
    let (parent, need_dir) = new_parent(&entry.dest, dirs);
    let (dest, key, dir) = (entry.dest, entry.key, parent.clone());
    let placed = blocking(move || {
      if need_dir {
        make_dir(root.as_deref(), &dir, &key)?;
      }
      let mut temp = TempFile::create_beside(&dest)?;
      let file = temp.take_file();
      file.write_all_at(&data, 0).map_err(|e| Error::io("write", &dest, e))?;
      if let Some(mtime) = mtime {
        file
          .set_modified(mtime)
          .map_err(|e| Error::io("set the modification time of", &dest, e))?;
      }
      place(temp, &dest, conflict)
    })
    .await?;
    dirs.lock().unwrap().insert(parent);
    if !placed {
      call.progress.skip_planned(0);
    }
    Ok(placed)
  }

  /// One GET of a whole small object into memory, fetched again if its body breaks off or fails its checksum.
  async fn fetch_small(&self, call: &Call, entry: &Entry, size: u64) -> Result<Bytes> {
    let s3 = self.s3().await?;
    let (bucket, key) = (&*call.bucket, entry.key.as_str());
    let request = s3
      .get_object()
      .to(&call.bucket)
      .key(key)
      .set_if_match(entry.etag.clone());
    let progress = call.progress.range();
    refetching(self.config().max_attempts, || async {
      let _slot = self.request_slot().await;
      let (sent, attempts) = counting(request.clone().send()).await;
      let mut body = sent
        .map_err(|e| get_error(bucket, key, e).after_attempts(attempts))?
        .body;
      let mut data = BytesMut::with_capacity(size as usize);
      while let Some(chunk) = body.next().await.transpose().map_err(|e| body_error(bucket, key, e))? {
        data.extend_from_slice(&chunk);
        progress.reached(data.len() as u64);
        if let Some(bw) = &call.throttle {
          bw.take(chunk.len() as u64).await;
        }
      }
      if data.len() as u64 != size {
        return Err(Error::Truncated {
          bucket: bucket.to_owned(),
          key: key.to_owned(),
          expected: size,
          received: data.len() as u64,
        });
      }
      Ok(data.freeze())
    })
    .await
  }

  async fn fetch_into(&self, sink: &Arc<Sink>, entry: &Entry, budget: &Arc<Semaphore>, held: usize) -> Result<()> {
    let s3 = self.s3().await?;
    let part_size = self.config().part_size_for(entry.size.unwrap_or(0));
    let (bucket, key) = (&*sink.call.bucket, sink.key.as_str());
    let progress = &sink.call.progress;
    // Every request for this object: the parts differ only in range and ETag pin.
    let object = s3.get_object().to(&sink.call.bucket).key(key);

    // The first request: the first part of an object known to be large; else the whole object, so a small one
    // arrives in one response the SDK verifies against its stored checksum. Of a large object from an explicit
    // list (size unknown), only the first part of that response is read, and its connection is dropped.
    let first = {
      let _slot = self.request_slot().await;
      let range = entry
        .size
        .is_some_and(|s| s > self.config().multipart_threshold)
        .then(|| format!("bytes=0-{}", part_size - 1));
      let (sent, attempts) = counting(object.clone().set_range(range).set_if_match(entry.etag.clone()).send()).await;
      let (sent, attempts) = match sent {
        // An empty object has no byte 0: fetch it whole.
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
          counting(object.clone().set_if_match(entry.etag.clone()).send()).await
        }
        other => (other, attempts),
      };
      let out = sent.map_err(|e| get_error(bucket, key, e).after_attempts(attempts))?;
      let total = object_size(&out).unwrap_or(0);
      if entry.size.is_none() {
        progress.add_total_bytes(total);
      }
      let etag = out.e_tag().map(str::to_owned).or_else(|| entry.etag.clone());
      let whole = out.content_range().is_none();
      let len = out.content_length().map(|l| l.max(0) as u64).unwrap_or(total);
      let len = if whole && total > self.config().multipart_threshold {
        len.min(part_size)
      } else {
        len
      };
      let first_progress = progress.range();
      match sink.write_body(out, 0, len, first_progress.clone()).await {
        Err(e) if e.is_interrupted_body() && self.config().max_attempts > 1 => {
          // The same bytes again, now pinned to the ETag the first response gave.
          let again = object
            .clone()
            .set_range((len < total).then(|| format!("bytes=0-{}", len - 1)))
            .set_if_match(etag.clone());
          let max = self.config().max_attempts.saturating_sub(1);
          refetching(max, || sink.fetch_range(again.clone(), 0, len, first_progress.clone())).await?
        }
        other => other?,
      }
      (total, len, etag)
    };
    let (total, first_len, etag) = first;
    let verify = total > self.config().multipart_threshold;
    if first_len >= total {
      return match verify {
        true => sink.verify(self, etag).await,
        false => Ok(()),
      };
    }

    // The rest, in parallel, each part pinned to the ETag of the first response so a replaced object is an
    // error rather than a mix of two versions.
    let count = total.div_ceil(part_size);
    let wanted = (count as usize).min(MAX_REQUESTS_PER_FILE);
    // A file from an explicit list started with one slot; take more if the budget has them free right now
    // (never wait for them: waiting while holding slots could deadlock against other such files).
    let extra = if wanted > held {
      budget.clone().try_acquire_many_owned((wanted - held) as u32).ok()
    } else {
      None
    };
    let concurrency = held + extra.as_ref().map_or(0, |p| p.num_permits());
    stream::iter(1..count)
      .map(|i| {
        let offset = i * part_size;
        let len = part_size.min(total - offset);
        let req = object
          .clone()
          .range(format!("bytes={}-{}", offset, offset + len - 1))
          .set_if_match(etag.clone());
        let (sink, range_progress, max) = (sink.clone(), progress.range(), self.config().max_attempts);
        async move {
          let _slot = self.request_slot().await;
          joined(
            spawn_abortable(async move {
              refetching(max, || {
                sink.fetch_range(req.clone(), offset, len, range_progress.clone())
              })
              .await
            })
            .await,
          )
        }
      })
      .buffer_unordered(concurrency.max(1))
      .try_collect::<()>()
      .await?;
    sink.verify(self, etag).await
  }
}

/// One object's destination: the temporary file its parts write into, and the call it belongs to.
struct Sink {
  call: Arc<Call>,
  key: String,
  dest: PathBuf,
  file: std::fs::File,
  /// The CRC computed over each range as it is written, if any.
  digest: Option<ChecksumAlgorithm>,
  /// (offset, length, CRC) of every range written whole.
  ranges: Mutex<Vec<(u64, u64, u64)>>,
}

/// Runs `fetch` until it succeeds or fails otherwise than by a body that broke off, at most `attempts` times,
/// pausing a little longer each time. The SDK retries a request whose response never came; a body that breaks
/// off mid-stream is the engine's to fetch again. Progress counts each byte once however many times a range is
/// fetched (its high-water mark).
async fn refetching<T, F, Fut>(attempts: u32, mut fetch: F) -> Result<T>
where
  F: FnMut() -> Fut,
  Fut: std::future::Future<Output = Result<T>>,
{
  let mut attempt = 1;
  loop {
    match fetch().await {
      Err(e) if e.is_interrupted_body() && attempt < attempts => {
        tracing::debug!(target: "s3_ferry::transfer", attempt, error = %e, "fetching the range again");
        tokio::time::sleep(std::time::Duration::from_millis(50 << attempt.min(6))).await;
        attempt += 1;
      }
      other => return other,
    }
  }
}

impl Sink {
  /// Sends a ranged GET and writes its body at `offset`.
  async fn fetch_range(
    self: &Arc<Self>,
    req: aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder,
    offset: u64,
    len: u64,
    progress: RangeProgress,
  ) -> Result<()> {
    let (sent, attempts) = counting(req.send()).await;
    let out = sent.map_err(|e| get_error(&self.call.bucket, &self.key, e).after_attempts(attempts))?;
    self.write_body(out, offset, len, progress).await
  }

  /// Streams a response body into the file at `offset`, in batches, counting bytes as they arrive and, under a
  /// bandwidth cap, reading no faster than the cap allows (the server's sending slows with it).
  async fn write_body(
    self: &Arc<Self>,
    out: GetObjectOutput,
    offset: u64,
    expected: u64,
    progress: RangeProgress,
  ) -> Result<()> {
    let mut body = out.body;
    let mut received: u64 = 0;
    let mut batch = BytesMut::new();
    let mut written = offset;
    let mut digest = self.digest.map(RangeDigest::new);
    loop {
      let chunk = body
        .next()
        .await
        .transpose()
        .map_err(|source| body_error(&self.call.bucket, &self.key, source))?;
      // A whole-object response of which only the first part is wanted: stop there (the body is dropped).
      // Any other body is read to its end, where the SDK checks the response's checksum.
      let (chunk, cut) = match chunk {
        Some(c) if received + c.len() as u64 > expected => (Some(c.slice(..(expected - received) as usize)), true),
        other => (other, false),
      };
      let done = chunk.is_none() || cut;
      if let Some(chunk) = chunk {
        received += chunk.len() as u64;
        progress.reached(received);
        if let Some(d) = &mut digest {
          d.update(&chunk);
        }
        batch.extend_from_slice(&chunk);
        if let Some(bw) = &self.call.throttle {
          bw.take(chunk.len() as u64).await;
        }
      }
      if batch.len() >= WRITE_BATCH || (done && !batch.is_empty()) {
        let data: Bytes = batch.split().freeze();
        let (me, at) = (self.clone(), written);
        written += data.len() as u64;
        blocking(move || {
          me.file
            .write_all_at(&data, at)
            .map_err(|e| Error::io("write", &me.dest, e))
        })
        .await?;
      }
      if done {
        break;
      }
    }
    if received != expected {
      return Err(Error::Truncated {
        bucket: self.call.bucket.to_string(),
        key: self.key.clone(),
        expected,
        received,
      });
    }
    if let Some(d) = digest {
      let (len, crc) = d.finish();
      self
        .ranges
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((offset, len, crc));
    }
    Ok(())
  }

  /// Checks the ranges written against the object's full-object checksum, from a HEAD pinned to the ETag the
  /// ranges were pinned to. An object without one (uploaded without a checksum, or with a composite one) has
  /// been checked for size and ETag only.
  async fn verify(self: &Arc<Self>, engine: &Engine, etag: Option<String>) -> Result<()> {
    let Some(computed_with) = self.digest else {
      return Ok(());
    };
    let (bucket, key) = (&*self.call.bucket, self.key.as_str());
    let head = engine
      .s3()
      .await?
      .head_object()
      .to(&self.call.bucket)
      .key(key)
      .set_if_match(etag)
      .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled);
    let (sent, attempts) = {
      let _slot = engine.request_slot().await;
      counting(head.send()).await
    };
    let head = sent.map_err(|e| match e.raw_response().map(|r| r.status().as_u16()) {
      Some(412) => Error::ObjectChanged {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
      },
      _ => Error::from_sdk("HeadObject", bucket, Some(key), e).after_attempts(attempts),
    })?;
    let Some(stored) = FullObjectChecksum::from_head(&head) else {
      return Ok(());
    };
    let actual = if stored.algorithm == computed_with {
      let ranges = std::mem::take(&mut *self.ranges.lock().unwrap_or_else(|p| p.into_inner()));
      checksum::combine(computed_with, ranges)
    } else {
      // Stored with another algorithm than the one computed while writing: one more pass, over the file.
      let me = self.clone();
      blocking(move || checksum::of_file(&me.file, stored.algorithm).map_err(|e| Error::io("read", &me.dest, e)))
        .await
        .map(Some)?
    };
    match actual {
      Some(value) if value == stored.value => Ok(()),
      actual => Err(Error::ChecksumMismatch {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        algorithm: stored.algorithm.name(),
        expected: stored.algorithm.encode(stored.value),
        actual: actual.map_or_else(|| "(ranges incomplete)".to_owned(), |v| stored.algorithm.encode(v)),
      }),
    }
  }
}

/// A destination's directory, and whether this call has not made (and checked) it yet.
fn new_parent(dest: &Path, made: &Mutex<HashSet<PathBuf>>) -> (PathBuf, bool) {
  let parent = dest.parent().map(Path::to_path_buf).unwrap_or_default();
  let new = !parent.as_os_str().is_empty() && !made.lock().unwrap().contains(&parent);
  (parent, new)
}

/// Makes a destination directory; for a prefix download (`root`), first refuses one reached through a symlink
/// out of the destination tree. Blocking.
fn make_dir(root: Option<&PathBuf>, dir: &Path, key: &str) -> Result<()> {
  if let Some(root) = root {
    check_contained(root, dir, key)?;
  }
  std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))
}

/// Before fetching: `true` when the destination exists and the policy is `Skip`; `ERR_DESTINATION_EXISTS` when
/// it exists and the policy is `Error`. Blocking.
fn skips_existing(dest: &Path, conflict: Conflict) -> Result<bool> {
  if !matches!(conflict, Conflict::Skip | Conflict::Error) || std::fs::symlink_metadata(dest).is_err() {
    return Ok(false);
  }
  match conflict {
    Conflict::Skip => Ok(true),
    _ => Err(Error::DestinationExists { path: dest.to_owned() }),
  }
}

/// Moves a complete temporary file into place under the conflict policy; `false` when `Skip` found the
/// destination already there.
fn place(mut temp: TempFile, dest: &Path, conflict: Conflict) -> Result<bool> {
  match conflict {
    Conflict::Overwrite => temp.persist(dest).map(|()| true),
    // The destination appeared while the object was being fetched.
    Conflict::Error => match temp.persist_new(dest)? {
      true => Ok(true),
      false => Err(Error::DestinationExists { path: dest.to_owned() }),
    },
    Conflict::Skip => temp.persist_new(dest),
    Conflict::CreateCopy => {
      for n in 0..10_000 {
        let name = if n == 0 { dest.to_owned() } else { copy_name(dest, n) };
        if temp.persist_new(&name)? {
          return Ok(true);
        }
      }
      Err(Error::DestinationExists { path: dest.to_owned() })
    }
  }
}

/// A response body that failed: the SDK's checksum check, else a body that broke off.
fn body_error(bucket: &str, key: &str, source: aws_smithy_types::byte_stream::error::Error) -> Error {
  match checksum::sdk_mismatch(&source) {
    Some((algorithm, expected, actual)) => Error::ChecksumMismatch {
      bucket: bucket.to_owned(),
      key: key.to_owned(),
      algorithm,
      expected,
      actual,
    },
    None => Error::BodyInterrupted {
      bucket: bucket.to_owned(),
      key: key.to_owned(),
      source,
    },
  }
}

/// A 412 on a GET pinned with `If-Match` means the object was replaced since its ETag was learned.
fn get_error(bucket: &str, key: &str, e: SdkError<GetObjectError, HttpResponse>) -> Error {
  if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) {
    return Error::ObjectChanged {
      bucket: bucket.to_owned(),
      key: key.to_owned(),
    };
  }
  Error::from_sdk("GetObject", bucket, Some(key), e)
}

/// The object's full size: from `Content-Range` for a ranged response, else `Content-Length`.
fn object_size(out: &GetObjectOutput) -> Option<u64> {
  if let Some(total) = out
    .content_range()
    .and_then(|r| r.rsplit('/').next())
    .and_then(|t| t.parse().ok())
  {
    return Some(total);
  }
  out.content_length().map(|l| l.max(0) as u64)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn duplicate_destinations_are_refused() {
    let req = DownloadRequest {
      conflict: Conflict::Overwrite,
      skip_unchanged: None,
      continue_on_error: false,
      bucket: Bucket::named("b"),
      source: DownloadSource::Objects(vec![
        DownloadObject {
          key: "a".into(),
          path: "/tmp/x".into(),
        },
        DownloadObject {
          key: "b".into(),
          path: "/tmp/x".into(),
        },
      ]),
    };
    assert_eq!(req.validate().unwrap_err().code(), "ERR_INVALID_ARG_VALUE");
  }
}

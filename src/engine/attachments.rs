//! Job attachments: files stored by content (`{rootPrefix}/Data/{xxh128}.xxh128`), uploaded only when S3 does not
//! have that content yet, described by a manifest (see `manifest`) from which workers download them.
//!
//! Upload: hash every file (in parallel on the blocking pool, hashes of unchanged files from the cache), ask S3
//! which contents it lacks (HeadObject, many in flight; keys seen within 30 days come from the cache), upload
//! those through the ordinary upload path (multipart, resumable), then write the manifest.
//! Download: read the manifest, skip files already present with the same hash, fetch the rest through the
//! ordinary download path, each checked against its xxh128 and given its mtime before it is put in place.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::{stream, FutureExt, StreamExt, TryStreamExt};
use tokio_util::sync::CancellationToken;

use super::cache::{cache_op, Cache, FileKey};
use super::client::Engine;
use super::download::{Conflict, Entry, Expected};
use super::error::{Error, Result};
use super::log::counting;
use super::manifest::{self, ManifestEntry};
use super::object::{Bucket, ObjectSettings, ToBucket};
use super::paths::{conflicting_destinations, destination_for};
use super::progress::{Phase, ProgressState, Summary};
use super::scheduler::{blocking, or_cancelled};
use super::upload::{plan, validate_key, Planned, UploadFile, UploadSource};
use super::{validate_bucket, validate_path, Call, Control};

/// A content-addressed upload.
#[derive(Debug, Clone)]
pub struct AttachmentUpload {
  /// Destination bucket, with its expected owner.
  pub bucket: Bucket,
  /// Contents go to `{root_prefix}/Data/{hash}.xxh128`.
  pub root_prefix: String,
  /// The job's root: manifest paths are relative to it.
  pub local_dir: PathBuf,
  /// Only these files (absolute, or relative to `local_dir`; each inside it); `None`: every regular file under
  /// `local_dir` (symlinks and special files are skipped, as for `upload`).
  pub files: Option<Vec<PathBuf>>,
  /// Also store the manifest at this key.
  pub manifest_key: Option<String>,
  /// User metadata stored with the manifest (`x-amz-meta-*`).
  pub manifest_metadata: Vec<(String, String)>,
  /// As `UploadRequest::resumable`.
  pub resumable: bool,
}

/// What a content-addressed upload did.
#[derive(Debug, Clone)]
pub struct AttachmentUploadOutput {
  /// Uploaded files and bytes (each content once), skipped ones (already in S3, or the same content as another
  /// file of the job), hashing counts, time.
  pub summary: Summary,
  /// The manifest, byte-exact format `2023-03-03`.
  pub manifest: String,
  /// xxh128 of the manifest's bytes.
  pub manifest_hash: String,
  /// Where the manifest was stored, if it was.
  pub manifest_key: Option<String>,
  /// Files whose hash came from the cache (not read).
  pub cached_hashes: u64,
  /// Contents known present from the cache (no request).
  pub cached_keys: u64,
  /// HeadObject requests sent to find what S3 has.
  pub checked_keys: u64,
}

/// A manifest download.
#[derive(Debug, Clone)]
pub struct AttachmentDownload {
  /// Source bucket, with its expected owner.
  pub bucket: Bucket,
  /// Contents are read from `{root_prefix}/Data/{hash}.xxh128` (else `{root_prefix}/Data/{hash}`).
  pub root_prefix: String,
  /// The manifest.
  pub manifest: ManifestSource,
  /// Where the manifest's paths are recreated.
  pub local_dir: PathBuf,
  /// For destinations that exist with other content (same content is always skipped).
  pub conflict: Conflict,
}

/// Where a manifest download finds its manifest.
#[derive(Debug, Clone)]
pub enum ManifestSource {
  /// Its JSON.
  Text(String),
  /// The key it is stored at in the bucket.
  Key(String),
}

impl AttachmentUpload {
  /// Checks everything that can be checked without the file system.
  pub fn validate(&self) -> Result<()> {
    validate_bucket(&self.bucket)?;
    validate_path(&self.local_dir, "localDir")?;
    if let Some(key) = &self.manifest_key {
      validate_key(key, "manifestKey")?;
    }
    if let Some(files) = &self.files {
      relative_files(&self.local_dir, files)?;
    }
    Ok(())
  }
}

impl AttachmentDownload {
  /// Checks everything that can be checked without a request: the manifest itself when it is given.
  pub fn validate(&self) -> Result<()> {
    validate_bucket(&self.bucket)?;
    validate_path(&self.local_dir, "localDir")?;
    match &self.manifest {
      ManifestSource::Text(text) => self.plan(text).map(|_| ()),
      ManifestSource::Key(key) => validate_key(key, "manifestKey"),
    }
  }

  /// The manifest's entries and their destinations, every path checked to stay inside `local_dir`.
  fn plan(&self, text: &str) -> Result<ManifestTarget> {
    let entries = manifest::decode(text).map_err(|e| Error::invalid_value(format!("manifest: {e}")))?;
    ManifestTarget::new(&self.local_dir, entries)
  }
}

/// A manifest's files and where they go.
pub(super) struct ManifestTarget {
  /// The directory its paths are relative to.
  pub local_dir: PathBuf,
  /// Its entries.
  pub entries: Vec<ManifestEntry>,
  /// Each entry's destination, inside `local_dir`.
  pub dests: Vec<PathBuf>,
}

impl ManifestTarget {
  /// The destinations of `entries` under `local_dir`, every path checked to stay inside it and no two the same
  /// file.
  pub fn new(local_dir: &Path, entries: Vec<ManifestEntry>) -> Result<ManifestTarget> {
    let mut dests = Vec::with_capacity(entries.len());
    for e in &entries {
      match destination_for(local_dir, "", &e.path)? {
        Some(dest) => dests.push(dest),
        None => {
          return Err(Error::invalid_value(format!(
            "manifest: path '{}' is not a file path",
            e.path
          )))
        }
      }
    }
    let paths = entries
      .iter()
      .map(|e| e.path.as_str())
      .zip(dests.iter().map(PathBuf::as_path));
    if let Some((first, second)) = conflicting_destinations(paths) {
      let path = local_dir.join(&second);
      return Err(Error::DestinationConflict { first, second, path });
    }
    Ok(ManifestTarget {
      local_dir: local_dir.to_path_buf(),
      entries,
      dests,
    })
  }
}

/// The key a content is stored at.
pub fn data_key(root_prefix: &str, hash: &str) -> String {
  let root = root_prefix.trim_end_matches('/');
  match root.is_empty() {
    true => format!("Data/{hash}.{}", manifest::HASH_ALG),
    false => format!("{root}/Data/{hash}.{}", manifest::HASH_ALG),
  }
}

/// Cached keys checked on every call: this many, or 1% of them when that is more (all when fewer).
const CACHE_SAMPLE: usize = 16;

/// A random sample of `items` (see `CACHE_SAMPLE`): a partial Fisher-Yates shuffle on a xorshift seeded from the
/// clock (no cryptographic quality needed, only a different sample each call).
fn sample_of(items: &[usize]) -> Vec<usize> {
  let want = CACHE_SAMPLE.max(items.len() / 100).min(items.len());
  let mut pool = items.to_vec();
  let mut state = std::time::SystemTime::now()
    .duration_since(std::time::UNIX_EPOCH)
    .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
    | 1;
  for i in 0..want {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    let j = i + (state % (pool.len() - i) as u64) as usize;
    pool.swap(i, j);
  }
  pool.truncate(want);
  pool
}

impl Engine {
  /// Uploads a job's files by content and returns its manifest.
  pub async fn upload_attachments(
    self: &Arc<Self>,
    request: AttachmentUpload,
    control: Control,
  ) -> Result<AttachmentUploadOutput> {
    request.validate()?;
    let (request, control) = (&request, &control);
    // Boxed: the whole upload path inlined into one state machine is large (megabytes in debug builds).
    let work =
      |progress: Arc<ProgressState>| async move { Box::pin(self.attachments_up(request, &progress, control)).await };
    let (mut out, summary) = control.run(Phase::Hashing, work).await?;
    out.summary = summary;
    Ok(out)
  }

  async fn attachments_up(
    self: &Arc<Self>,
    request: &AttachmentUpload,
    progress: &Arc<ProgressState>,
    control: &Control,
  ) -> Result<AttachmentUploadOutput> {
    let cancel = &control.cancel;
    let source = match &request.files {
      None => UploadSource::directory(request.local_dir.clone(), ""),
      Some(files) => UploadSource::Files(relative_files(&request.local_dir, files)?),
    };
    let (files, skipped) = or_cancelled(cancel, blocking(move || plan(source, &ObjectSettings::default()))).await?;
    for bytes in skipped {
      progress.skip(bytes);
    }
    if files.is_empty() {
      // Deadline Cloud refuses to decode a manifest whose `paths` is empty, so a job would fail on its workers.
      return Err(Error::invalid_value(format!(
        "'{}' has no files to upload: a job attachments manifest must list at least one file",
        request.local_dir.display()
      )));
    }
    let stored = self
      .store_contents(
        &request.bucket,
        &request.root_prefix,
        request.resumable,
        &files,
        progress,
        control,
      )
      .await?;
    let entries = manifest_entries(&files, &stored.hashes);
    let manifest = manifest::encode(&entries);
    if let Some(key) = &request.manifest_key {
      self
        .put_manifest(&request.bucket, key, &manifest, &request.manifest_metadata, cancel)
        .await?;
    }
    Ok(AttachmentUploadOutput {
      summary: progress.summary(),
      manifest_hash: manifest::hash_bytes(manifest.as_bytes()),
      manifest,
      manifest_key: request.manifest_key.clone(),
      cached_hashes: stored.cached_hashes,
      cached_keys: stored.cached_keys,
      checked_keys: stored.checked_keys,
    })
  }

  /// Stores the contents of `files` (planned, with their manifest paths as keys) under `root_prefix`: hashes
  /// them, asks S3 which contents it lacks, uploads each missing content once. Sets the progress's plan and
  /// moves it through `hashing`, `checking` and `uploading`.
  pub(super) async fn store_contents(
    self: &Arc<Self>,
    bucket: &Bucket,
    root_prefix: &str,
    resumable: bool,
    files: &[Planned],
    progress: &Arc<ProgressState>,
    control: &Control,
  ) -> Result<Stored> {
    let cancel = &control.cancel;
    progress.set_planned(files.len() as u64, files.iter().map(|f| f.size).sum());
    let cache = self.cache().await;

    let (hashes, cached_hashes) = self.hash_files(files, progress, cancel, cache.clone()).await?;

    // Each content once: the first file with it is the one sent.
    progress.set_phase(Phase::Checking);
    let mut first_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, h) in hashes.iter().enumerate() {
      first_of.entry(h.as_str()).or_insert(i);
    }
    let mut unique: Vec<usize> = first_of.values().copied().collect();
    unique.sort_unstable();
    let keys: Vec<String> = unique.iter().map(|&i| data_key(root_prefix, &hashes[i])).collect();
    let scope = self.cache_scope(bucket);
    let seen = match &cache {
      Some(c) => cache_op(c, {
        let (scope, keys) = (scope.clone(), keys.clone());
        move |c| c.seen(&scope, &keys)
      })
      .await
      .unwrap_or_else(|| vec![false; keys.len()]),
      None => vec![false; keys.len()],
    };
    // The cache can be wrong: an object deleted from the bucket (by hand, by a lifecycle rule) stays "seen" for
    // 30 days. So a sample of what it vouches for is checked on every call; one missing and nothing it says for
    // this bucket is trusted: every key is checked, and its record of the bucket is dropped.
    let mut seen = seen;
    let vouched: Vec<usize> = (0..keys.len()).filter(|&k| seen[k]).collect();
    let sample = sample_of(&vouched);
    let sampled = or_cancelled(
      cancel,
      self.exist(bucket, sample.iter().map(|&k| keys[k].clone()).collect()),
    )
    .await?;
    let mut known: std::collections::HashMap<usize, bool> = sample.iter().copied().zip(sampled).collect();
    if known.values().any(|present| !present) {
      tracing::info!(target: "s3_ferry::transfer", sampled = sample.len(), "the cache listed a content S3 no longer has: checking every key");
      seen = vec![false; keys.len()];
      if let Some(c) = &cache {
        let scope = scope.clone();
        cache_op(c, move |c| c.forget_scope(&scope)).await;
      }
    }
    let cached_keys = (0..keys.len()).filter(|k| seen[*k] && !known.contains_key(k)).count() as u64;
    let to_check: Vec<usize> = (0..keys.len())
      .filter(|k| !seen[*k] && !known.contains_key(k))
      .collect();
    let checked_keys = (sample.len() + to_check.len()) as u64;
    let present = or_cancelled(
      cancel,
      self.exist(bucket, to_check.iter().map(|&k| keys[k].clone()).collect()),
    )
    .await?;
    known.extend(to_check.iter().copied().zip(present));
    let mut missing = vec![false; keys.len()];
    let mut found_now = Vec::new();
    for (k, there) in known {
      match there {
        true => found_now.push(keys[k].clone()),
        false => missing[k] = true,
      }
    }
    if let (Some(c), false) = (&cache, found_now.is_empty()) {
      let scope = scope.clone();
      cache_op(c, move |c| c.put_seen(&scope, &found_now)).await;
    }

    // Files not sent: their content is in S3 already, or another file of this job sends it.
    let sent: std::collections::HashSet<usize> = unique
      .iter()
      .enumerate()
      .filter(|(k, _)| missing[*k])
      .map(|(_, &i)| i)
      .collect();
    for (i, f) in files.iter().enumerate() {
      if !sent.contains(&i) {
        progress.skip_planned(f.size);
      }
    }
    progress.set_phase(Phase::Uploading);
    let uploads: Vec<Planned> = unique
      .iter()
      .enumerate()
      .filter(|(k, _)| missing[*k])
      .map(|(k, &i)| Planned {
        key: keys[k].clone(),
        content_hash: Some(hashes[i].clone()),
        ..files[i].clone()
      })
      .collect();
    let uploaded_keys: Vec<String> = uploads.iter().map(|p| p.key.clone()).collect();
    let call = Arc::new(Call {
      bucket: bucket.clone(),
      // A content is stored once for every file that has it, under its hash: no name to guess a type from.
      object: Arc::new(ObjectSettings {
        guess_content_type: false,
        ..ObjectSettings::default()
      }),
      progress: progress.clone(),
      throttle: self.throttle_for(control),
      cache: cache.clone(),
      keep_failed_uploads: resumable,
      keep_going: false,
    });
    let uploaded = Box::pin(self.upload_planned(call, uploads, cancel)).await;
    if let (Err(e), Some(c)) = (&uploaded, &cache) {
      // A content the store refused was sent from a file whose cached hash may be stale (its bytes changed while
      // its size and mtime did not: `cp -p`, `rsync -t`): hashed again next time, not refused forever.
      let refused: Vec<PathBuf> = std::iter::once(e)
        .chain(e.failures().iter().map(|f| &f.error))
        .filter_map(|e| match e {
          Error::ContentRefused { path, .. } => Some(std::path::absolute(path).unwrap_or_else(|_| path.clone())),
          _ => None,
        })
        .collect();
      if !refused.is_empty() {
        cache_op(c, move |c| c.forget_hashes(&refused)).await;
      }
    }
    uploaded?;
    if let (Some(c), false) = (&cache, uploaded_keys.is_empty()) {
      cache_op(c, move |c| c.put_seen(&scope, &uploaded_keys)).await;
    }

    Ok(Stored {
      hashes,
      cached_hashes,
      cached_keys,
      checked_keys,
    })
  }

  /// Downloads the files of a manifest into `local_dir`.
  pub async fn download_attachments(
    self: &Arc<Self>,
    request: AttachmentDownload,
    control: Control,
  ) -> Result<Summary> {
    request.validate()?;
    let (request, control) = (&request, &control);
    let work = |progress: Arc<ProgressState>| async move {
      let target = match &request.manifest {
        ManifestSource::Text(text) => request.plan(text)?,
        ManifestSource::Key(key) => {
          let text = or_cancelled(&control.cancel, Box::pin(self.get_manifest(&request.bucket, key))).await?;
          request.plan(&text)?
        }
      };
      let targets = [target];
      Box::pin(self.fetch_manifests(
        &request.bucket,
        &request.root_prefix,
        request.conflict,
        &targets,
        &progress,
        control,
      ))
      .await
    };
    control.run(Phase::Hashing, work).await.map(|((), summary)| summary)
  }

  /// Downloads the files of manifests, each into its own directory, with one plan and progress: destinations
  /// that exist with the manifest's content are skipped (hashed, cache first) and given its mtime; the rest are
  /// fetched from `{root_prefix}/Data/`, each checked against its hash.
  pub(super) async fn fetch_manifests(
    self: &Arc<Self>,
    bucket: &Bucket,
    root_prefix: &str,
    conflict: Conflict,
    targets: &[ManifestTarget],
    progress: &Arc<ProgressState>,
    control: &Control,
  ) -> Result<()> {
    let all = || targets.iter().flat_map(|t| t.entries.iter().zip(&t.dests));
    progress.set_planned(all().count() as u64, all().map(|(e, _)| e.size).sum());
    let cache = self.cache().await;
    // Destinations that exist with the manifest's size are hashed; the same content is skipped.
    let candidates = {
      let sized: Vec<(usize, PathBuf, u64)> = all().enumerate().map(|(i, (e, d))| (i, d.clone(), e.size)).collect();
      or_cancelled(
        &control.cancel,
        blocking(move || {
          Ok(
            sized
              .into_iter()
              .filter_map(|(i, dest, size)| {
                let meta = std::fs::symlink_metadata(&dest).ok()?;
                (meta.is_file() && meta.len() == size).then(|| {
                  (
                    i,
                    Planned {
                      path: dest,
                      key: String::new(),
                      size,
                      modified: meta.modified().ok(),
                      object: None,
                      content_hash: None,
                    },
                  )
                })
              })
              .collect::<Vec<_>>(),
          )
        }),
      )
      .await?
    };
    let (indices, present): (Vec<usize>, Vec<Planned>) = candidates.into_iter().unzip();
    let (hashes, _) = self
      .hash_files(&present, progress, &control.cancel, cache.clone())
      .await?;
    let entries: Vec<&ManifestEntry> = all().map(|(e, _)| e).collect();
    let mut same = vec![false; entries.len()];
    let mut retime = Vec::new();
    for ((&i, hash), p) in indices.iter().zip(&hashes).zip(&present) {
      if *hash == entries[i].hash {
        same[i] = true;
        progress.skip_planned(entries[i].size);
        if p.modified.map(manifest::mtime_micros) != Some(entries[i].mtime) {
          retime.push((p.path.clone(), manifest::time_from_micros(entries[i].mtime)));
        }
      }
    }
    if !retime.is_empty() {
      blocking(move || {
        for (path, mtime) in retime {
          let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
          f.set_modified(mtime)
            .map_err(|e| Error::io("set the modification time of", &path, e))?;
        }
        Ok(())
      })
      .await?;
    }
    progress.set_phase(Phase::Downloading);
    let mut at = 0;
    for target in targets {
      let todo: Vec<Entry> = target
        .entries
        .iter()
        .zip(&target.dests)
        .enumerate()
        .filter(|(i, _)| !same[at + *i])
        .map(|(_, (e, dest))| {
          let key = data_key(root_prefix, &e.hash);
          Entry {
            key: key.clone(),
            dest: dest.clone(),
            size: Some(e.size),
            modified: None,
            etag: None,
            algorithm: None,
            expect: Some(Arc::new(Expected {
              hash: e.hash.clone(),
              mtime: manifest::time_from_micros(e.mtime),
              fallback_key: key.strip_suffix(".xxh128").map(str::to_owned),
            })),
          }
        })
        .collect();
      at += target.entries.len();
      let call = Call::download(bucket, progress.clone(), self.throttle_for(control), false);
      let root = Some(Arc::new(target.local_dir.clone()));
      // Under `overwrite`, every file fetched is now at its destination with the manifest's content and mtime:
      // the cache learns their hashes, so the next download of this manifest skips them without reading them.
      let known: Vec<(FileKey, String)> = todo
        .iter()
        .filter_map(|e| {
          let expect = e.expect.as_ref()?;
          let path = std::path::absolute(&e.dest).ok()?;
          Some((FileKey::new(&path, e.size?, Some(expect.mtime)), expect.hash.clone()))
        })
        .collect();
      Box::pin(self.download_entries(call, todo, conflict, root, &control.cancel)).await?;
      if let (Some(c), Conflict::Overwrite, false) = (&cache, conflict, known.is_empty()) {
        cache_op(c, move |c| c.put_hashes(&known)).await;
      }
    }
    Ok(())
  }

  /// Hashes files (xxh128), `2 × threads` at a time on the blocking pool; hashes of files unchanged since they
  /// were last hashed come from the cache. Returns the hashes in order, and how many came from the cache.
  async fn hash_files(
    &self,
    files: &[Planned],
    progress: &Arc<ProgressState>,
    cancel: &CancellationToken,
    cache: Option<Arc<Cache>>,
  ) -> Result<(Vec<String>, u64)> {
    let keys: Vec<FileKey> = files
      .iter()
      .map(|f| {
        FileKey::new(
          &std::path::absolute(&f.path).unwrap_or_else(|_| f.path.clone()),
          f.size,
          f.modified,
        )
      })
      .collect();
    let cached = match &cache {
      Some(c) => {
        let k = keys.clone();
        cache_op(c, move |c| c.hashes(&k))
          .await
          .unwrap_or_else(|| vec![None; keys.len()])
      }
      None => vec![None; keys.len()],
    };
    let from_cache = cached.iter().filter(|h| h.is_some()).count() as u64;
    for (f, h) in files.iter().zip(&cached) {
      if h.is_some() {
        progress.hashed(f.size);
        progress.hashed_file();
      }
    }
    let parallel = 2 * std::thread::available_parallelism().map_or(2, |n| n.get()).min(8);
    let todo: Vec<usize> = (0..files.len()).filter(|&i| cached[i].is_none()).collect();
    let fresh: Vec<(usize, String)> = stream::iter(todo)
      .map(|i| {
        let (file, progress, cancel) = (files[i].clone(), progress.clone(), cancel.clone());
        async move { blocking(move || hash_one(&file, &progress, &cancel).map(|h| (i, h))).await }
      })
      .buffer_unordered(parallel)
      .try_collect()
      .await?;
    let mut hashes = cached;
    let mut rows = Vec::with_capacity(fresh.len());
    for (i, h) in fresh {
      rows.push((keys[i].clone(), h.clone()));
      hashes[i] = Some(h);
    }
    if let (Some(c), false) = (&cache, rows.is_empty()) {
      cache_op(c, move |c| c.put_hashes(&rows)).await;
    }
    Ok((
      hashes.into_iter().map(|h| h.expect("every file hashed")).collect(),
      from_cache,
    ))
  }

  /// Which keys exist (HeadObject each, as many in flight as the client allows).
  /// Whether each key exists (a HeadObject each). Boxed as a `dyn Future`: inlined, the HEAD stream makes the
  /// whole upload future too deep for the compiler to prove `Send`.
  fn exist<'a>(&'a self, bucket: &'a Bucket, keys: Vec<String>) -> BoxFuture<'a, Result<Vec<bool>>> {
    async move {
      let found = self.stamps_of(bucket, keys.clone()).await?;
      Ok(keys.iter().map(|k| found.contains_key(k)).collect())
    }
    .boxed()
  }

  async fn get_manifest(&self, bucket: &Bucket, key: &str) -> Result<String> {
    let s3 = self.s3().await?;
    let _slot = self.request_slot().await;
    let (sent, attempts) = counting(s3.get_object().to(bucket).key(key).send()).await;
    let out = sent.map_err(|e| Error::from_sdk("GetObject", bucket, Some(key), e).after_attempts(attempts))?;
    let data = out.body.collect().await.map_err(|e| Error::BodyInterrupted {
      bucket: bucket.to_string(),
      key: key.to_owned(),
      source: e,
    })?;
    String::from_utf8(data.to_vec())
      .map_err(|_| Error::invalid_value(format!("manifest s3://{bucket}/{key} is not UTF-8 text")))
  }

  /// Stores a manifest (`application/json`) with its user metadata.
  pub(super) async fn put_manifest(
    &self,
    bucket: &Bucket,
    key: &str,
    manifest: &str,
    metadata: &[(String, String)],
    cancel: &CancellationToken,
  ) -> Result<()> {
    let s3 = self.s3().await?;
    let body = aws_sdk_s3::primitives::ByteStream::from(manifest.as_bytes().to_vec());
    or_cancelled(cancel, async {
      let _slot = self.request_slot().await;
      let put = s3
        .put_object()
        .to(bucket)
        .key(key)
        .content_type("application/json")
        .set_metadata((!metadata.is_empty()).then(|| metadata.iter().cloned().collect()))
        .body(body);
      let (sent, attempts) = counting(put.send()).await;
      sent.map_err(|e| Error::from_sdk("PutObject", bucket, Some(key), e).after_attempts(attempts))?;
      Ok(())
    })
    .await
  }
}

/// What `store_contents` did: each file's hash (in order), and how the cache and S3 were asked.
pub(super) struct Stored {
  pub hashes: Vec<String>,
  pub cached_hashes: u64,
  pub cached_keys: u64,
  pub checked_keys: u64,
}

/// The manifest entries of planned files (keyed by their manifest paths) and their hashes.
pub(super) fn manifest_entries(files: &[Planned], hashes: &[String]) -> Vec<ManifestEntry> {
  files
    .iter()
    .zip(hashes)
    .map(|(f, hash)| ManifestEntry {
      path: f.key.clone(),
      hash: hash.clone(),
      size: f.size,
      mtime: f.modified.map_or(0, manifest::mtime_micros),
    })
    .collect()
}

/// Reads and hashes one file (blocking), checking it did not change meanwhile.
fn hash_one(file: &Planned, progress: &ProgressState, cancel: &CancellationToken) -> Result<String> {
  let f = std::fs::File::open(&file.path).map_err(|e| Error::io("open", &file.path, e))?;
  let hash = manifest::hash_open_file(&f, &mut |n| {
    progress.hashed(n);
    !cancel.is_cancelled()
  })
  .map_err(|e| match e.kind() {
    std::io::ErrorKind::Interrupted => Error::Cancelled { summary: None },
    _ => Error::io("read", &file.path, e),
  })?;
  let meta = f.metadata().map_err(|e| Error::io("stat", &file.path, e))?;
  if meta.len() != file.size || meta.modified().ok() != file.modified {
    return Err(Error::FileChanged {
      path: file.path.clone(),
    });
  }
  progress.hashed_file();
  Ok(hash)
}

/// The explicit files of a job as (path, manifest path): each must be inside `root`, and its manifest path is
/// its `/`-separated path relative to `root`.
fn relative_files(root: &Path, files: &[PathBuf]) -> Result<Vec<UploadFile>> {
  let root_abs = std::path::absolute(root).map_err(|e| Error::io("resolve", root, e))?;
  let mut seen = std::collections::HashSet::new();
  files
    .iter()
    .enumerate()
    .map(|(i, f)| {
      validate_path(f, &format!("files[{i}]"))?;
      let abs = std::path::absolute(root_abs.join(f)).map_err(|e| Error::io("resolve", f, e))?;
      let rel = abs
        .strip_prefix(&root_abs)
        .ok()
        .filter(|r| !r.as_os_str().is_empty() && r.components().all(|c| matches!(c, Component::Normal(_))));
      let Some(rel) = rel else {
        return Err(Error::invalid_value(format!(
          "files[{i}] '{}' is not inside localDir '{}'",
          f.display(),
          root.display()
        )));
      };
      let mut key = String::new();
      for (n, part) in rel.components().enumerate() {
        let part = part.as_os_str().to_str().ok_or_else(|| {
          Error::invalid_value(format!(
            "'{}' is not valid UTF-8 and cannot be a manifest path",
            abs.display()
          ))
        })?;
        if n > 0 {
          key.push('/');
        }
        key.push_str(part);
      }
      if !seen.insert(key.clone()) {
        return Err(Error::invalid_value(format!(
          "files[{i}] '{}' appears more than once",
          f.display()
        )));
      }
      Ok(UploadFile::new(abs, key))
    })
    .collect()
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn the_cache_sample_is_16_or_one_percent_distinct_and_from_the_set() {
    let few: Vec<usize> = (0..10).collect();
    let mut s = sample_of(&few);
    s.sort_unstable();
    assert_eq!(s, few, "fewer than 16: all of them");
    let many: Vec<usize> = (0..5000).map(|i| i * 3).collect();
    let s = sample_of(&many);
    assert_eq!(s.len(), 50, "1% of 5000");
    let distinct: std::collections::HashSet<_> = s.iter().collect();
    assert_eq!(distinct.len(), 50);
    assert!(s.iter().all(|i| i % 3 == 0 && *i < 15000));
    assert_eq!(sample_of(&(0..100).collect::<Vec<_>>()).len(), 16);
    assert!(sample_of(&[]).is_empty());
  }

  #[test]
  fn data_keys_follow_the_original_layout() {
    let h = "0123456789abcdef0123456789abcdef";
    assert_eq!(data_key("root", h), format!("root/Data/{h}.xxh128"));
    assert_eq!(data_key("root/", h), format!("root/Data/{h}.xxh128"));
    assert_eq!(data_key("", h), format!("Data/{h}.xxh128"));
  }

  #[test]
  fn explicit_files_must_be_inside_the_root() {
    let root = Path::new("/job");
    let ok = relative_files(root, &["scenes/a.blend".into(), "/job/tex/b.png".into()]).unwrap();
    assert_eq!(ok[0].key, "scenes/a.blend");
    assert_eq!(ok[1].key, "tex/b.png");
    assert_eq!(ok[1].path, Path::new("/job/tex/b.png"));
    for bad in ["../etc/passwd", "/etc/passwd", "/job", "a/../../x"] {
      let e = relative_files(root, &[bad.into()]).unwrap_err();
      assert_eq!(e.code(), "ERR_INVALID_ARG_VALUE", "{bad}");
    }
    let e = relative_files(root, &["a".into(), "/job/a".into()]).unwrap_err();
    assert!(e.to_string().contains("more than once"));
  }
}

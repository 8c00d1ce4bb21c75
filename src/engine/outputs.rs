//! A job's outputs brought back, as Deadline Cloud's client brings them (`get_output_manifests_by_asset_root` and
//! `OutputDownloader` in `deadline.job_attachments.download`):
//!
//! 1. The output manifests are listed under `{rootPrefix}/Manifests/{farm}/{queue}/{job}/` (or a step's, a task's
//!    folder). Keys matching Deadline's `step-.*/.*/.*output.*` are taken: every one of a step without tasks
//!    (chunked), and of each task only its latest session action (the greatest folder name, which starts with the
//!    action's start time).
//! 2. Each is read with its metadata: the asset root it was written for (`asset-root-json`, else `asset-root`) and
//!    the storage-profile location (`file-system-location-name`).
//! 3. The manifests of each root are merged oldest first by `LastModified`, a later manifest's file replacing an
//!    earlier one's at the same path.
//! 4. Each root is mapped to a local directory (see `OutputRequest::root_map`) and its files downloaded there as
//!    `downloadManifest` downloads them, never outside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::{stream, StreamExt, TryStreamExt};

use super::asset_roots::{Location, LocationKind};
use super::attachments::{AttachmentUpload, AttachmentUploadOutput, ManifestTarget};
use super::client::Engine;
use super::download::Conflict;
use super::error::{Error, Result};
use super::job::manifest_key;
use super::log::counting;
use super::manifest::{self, ManifestEntry};
use super::object::{Bucket, ToBucket};
use super::progress::{Phase, ProgressState, Summary};
use super::scheduler::or_cancelled;
use super::{validate_bucket, validate_path, Control};

/// Which outputs to bring back, and where.
#[derive(Debug, Clone)]
pub struct OutputRequest {
  /// The queue's job-attachments bucket, with its expected owner.
  pub bucket: Bucket,
  /// The queue's job-attachments root prefix.
  pub root_prefix: String,
  /// The farm's id.
  pub farm_id: String,
  /// The queue's id.
  pub queue_id: String,
  /// The job's id.
  pub job_id: String,
  /// Only this step's outputs.
  pub step_id: Option<String>,
  /// Only this task's outputs (needs `step_id`).
  pub task_id: Option<String>,
  /// Where a root goes: its path as recorded (exactly) → a local directory. First choice.
  pub root_map: Vec<(String, PathBuf)>,
  /// The storage profile's locations on this machine: a root recorded with a location's name goes to that
  /// location's path here. Second choice; else a root recorded in this machine's path format goes to its own path,
  /// and any other root is an error.
  pub locations: Vec<Location>,
  /// For destinations that exist with other content (the same content is always skipped).
  pub conflict: Conflict,
}

/// One asset root of a job's outputs.
#[derive(Debug, Clone)]
pub struct OutputRoot {
  /// The root's path as the worker recorded it.
  pub root_path: String,
  /// The storage-profile location it was recorded with.
  pub location_name: Option<String>,
  /// Where its files went.
  pub local_root: PathBuf,
  /// The output manifests merged for it, oldest first.
  pub manifest_keys: Vec<String>,
  /// The merged manifest (format `2023-03-03`).
  pub manifest: String,
}

/// What an output download did.
#[derive(Debug, Clone)]
pub struct DownloadedOutputs {
  /// Every root with outputs, sorted by recorded path.
  pub roots: Vec<OutputRoot>,
  /// Files downloaded, files skipped (already there with the same content), time.
  pub summary: Summary,
}

impl OutputRequest {
  /// Checks everything that can be checked without a request.
  pub fn validate(&self) -> Result<()> {
    validate_bucket(&self.bucket)?;
    let ids = [
      ("rootPrefix", Some(&self.root_prefix)),
      ("farmId", Some(&self.farm_id)),
      ("queueId", Some(&self.queue_id)),
      ("jobId", Some(&self.job_id)),
      ("stepId", self.step_id.as_ref()),
      ("taskId", self.task_id.as_ref()),
    ];
    for (what, value) in ids {
      let Some(value) = value else { continue };
      if value.is_empty() || value.contains(['\0', '\n', '\r']) || (what != "rootPrefix" && value.contains('/')) {
        return Err(Error::invalid_value(format!(
          "{what} '{value}' must be a non-empty string without '/' or line breaks"
        )));
      }
    }
    if self.task_id.is_some() && self.step_id.is_none() {
      return Err(Error::invalid_value(
        "taskId needs stepId (a task's outputs are under its step)",
      ));
    }
    for (root, dir) in &self.root_map {
      validate_path(dir, &format!("rootMap['{root}']"))?;
    }
    Ok(())
  }

  /// The folder the output manifests are listed under, with its trailing `/`.
  fn prefix(&self) -> String {
    let mut rest = format!("{}/{}/{}", self.farm_id, self.queue_id, self.job_id);
    for id in [&self.step_id, &self.task_id].into_iter().flatten() {
      rest.push('/');
      rest.push_str(id);
    }
    format!("{}/", manifest_key(&self.root_prefix, &rest))
  }

  /// Where a root's files go (see `root_map` and `locations`).
  fn local_root(&self, root_path: &str, location: Option<&str>) -> Option<PathBuf> {
    if let Some((_, dir)) = self.root_map.iter().find(|(r, _)| r == root_path) {
      return Some(dir.clone());
    }
    let named = location.and_then(|name| {
      self
        .locations
        .iter()
        .find(|l| l.name == name && l.kind == LocationKind::Local)
    });
    if let Some(l) = named {
      return Some(l.path.clone());
    }
    // A root recorded on this kind of system: its own path (on Windows `C:\…` or `\\server\share\…`; elsewhere
    // `/…`). One recorded on the other kind is not absolute here.
    Path::new(root_path).is_absolute().then(|| PathBuf::from(root_path))
  }
}

/// A session action's outputs, stored as Deadline's worker stores them (`AssetSync._upload_output_manifest_to_s3`):
/// contents by hash, and the manifest at
/// `{rootPrefix}/Manifests/{farm}/{queue}/{job}/{step}[/{task}]/{start time}_{session action}/{name}_output`, where
/// the start time is ISO 8601 with microseconds (`2026-12-03T20:15:00.000000Z`) and the name is
/// `xxh128(location name + root path)`, with the root path (and location name) as the manifest's metadata.
#[derive(Debug, Clone)]
pub struct OutputUpload {
  /// The files: `local_dir` is where the root's files are on this machine; `manifest_key` and
  /// `manifest_metadata` are set from the fields below.
  pub upload: AttachmentUpload,
  /// The farm's id.
  pub farm_id: String,
  /// The queue's id.
  pub queue_id: String,
  /// The job's id.
  pub job_id: String,
  /// The step's id.
  pub step_id: String,
  /// The task's id; `None` for a chunked step.
  pub task_id: Option<String>,
  /// The session action's id.
  pub session_action_id: String,
  /// When the session action started: orders a task's session actions.
  pub start_time: SystemTime,
  /// The asset root as the job records it (`attachments.manifests[i].rootPath`).
  pub root_path: String,
  /// Its storage-profile location (`fileSystemLocationName`).
  pub location_name: Option<String>,
}

impl OutputUpload {
  /// Checks everything that can be checked without the file system.
  pub fn validate(&self) -> Result<()> {
    self.upload.validate()?;
    let ids = [
      ("farmId", Some(&self.farm_id)),
      ("queueId", Some(&self.queue_id)),
      ("jobId", Some(&self.job_id)),
      ("stepId", Some(&self.step_id)),
      ("taskId", self.task_id.as_ref()),
      ("sessionActionId", Some(&self.session_action_id)),
    ];
    for (what, value) in ids {
      let Some(value) = value else { continue };
      if value.is_empty() || value.contains(['/', '\0', '\n', '\r']) {
        return Err(Error::invalid_value(format!(
          "{what} '{value}' must be a non-empty string without '/' or line breaks"
        )));
      }
    }
    if self.root_path.is_empty() || self.root_path.contains(['\0', '\n', '\r']) {
      return Err(Error::invalid_value(
        "rootPath must be a non-empty path without line breaks",
      ));
    }
    if let Some(name) = &self.location_name {
      if name.is_empty() || !name.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(Error::invalid_value(format!(
          "fileSystemLocationName '{name}' must be non-empty printable ASCII (S3 metadata)"
        )));
      }
    }
    if self.start_time < SystemTime::UNIX_EPOCH {
      return Err(Error::invalid_value("startTime must not be before 1970"));
    }
    Ok(())
  }

  /// The output manifest's key.
  pub fn manifest_key(&self) -> String {
    let mut rest = format!("{}/{}/{}/{}", self.farm_id, self.queue_id, self.job_id, self.step_id);
    if let Some(task) = &self.task_id {
      rest.push('/');
      rest.push_str(task);
    }
    let named = format!("{}{}", self.location_name.as_deref().unwrap_or(""), self.root_path);
    let name = manifest::hash_bytes(named.as_bytes());
    let folder = format!("{}_{}", iso_micros(self.start_time), self.session_action_id);
    manifest_key(&self.upload.root_prefix, &format!("{rest}/{folder}/{name}_output"))
  }

  /// The output manifest's metadata, as Deadline's worker writes it: `asset-root` is the path when it is ASCII,
  /// else (S3 metadata is ASCII) its JSON string, which `asset-root-json` then also holds.
  pub fn metadata(&self) -> Vec<(String, String)> {
    let mut meta = Vec::new();
    match self.root_path.is_ascii() {
      true => meta.push(("asset-root".to_owned(), self.root_path.clone())),
      false => {
        let json = manifest::json_string(&self.root_path);
        meta.push(("asset-root".to_owned(), json.clone()));
        meta.push(("asset-root-json".to_owned(), json));
      }
    }
    if let Some(name) = &self.location_name {
      meta.push(("file-system-location-name".to_owned(), name.clone()));
    }
    meta
  }
}

/// UTC time as Deadline writes a session action's start (`%Y-%m-%dT%H:%M:%S.%fZ`).
fn iso_micros(t: SystemTime) -> String {
  let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
  let whole = aws_smithy_types::DateTime::from_secs(since.as_secs() as i64)
    .fmt(aws_smithy_types::date_time::Format::DateTime)
    .unwrap_or_default();
  format!("{}.{:06}Z", whole.trim_end_matches('Z'), since.subsec_micros())
}

/// The output manifests among listed keys, as Deadline selects them (see the module documentation).
pub fn select_output_manifests(keys: &[String]) -> Vec<String> {
  let mut chosen = Vec::new();
  let mut tasks: BTreeMap<String, Vec<&String>> = BTreeMap::new();
  for key in keys.iter().filter(|k| is_step_output(k)) {
    let parts: Vec<&str> = key.split('/').collect();
    match parts.iter().position(|p| p.contains("task-")) {
      Some(i) => tasks.entry(parts[..=i].join("/")).or_default().push(key),
      None => chosen.push(key.clone()),
    }
  }
  for (folder, files) in tasks {
    let depth = folder.split('/').count();
    let latest = files.iter().filter_map(|f| f.split('/').nth(depth)).max();
    if let Some(latest) = latest {
      let under = format!("{folder}/{latest}/");
      chosen.extend(files.iter().filter(|f| f.starts_with(&under)).map(|f| (*f).clone()));
    }
  }
  chosen
}

/// Python's `re.search(r"step-.*/.*/.*output.*", key)`: `step-`, then a `/`, then another, then `output`. The
/// leftmost choice of each leaves the most for the rest, so trying it alone decides.
fn is_step_output(key: &str) -> bool {
  let after = |s: &str, pat: &str| s.find(pat).map(|i| s[i + pat.len()..].to_owned());
  after(key, "step-")
    .and_then(|s| after(&s, "/"))
    .and_then(|s| after(&s, "/"))
    .is_some_and(|s| s.contains("output"))
}

/// A root as the output manifest's metadata records it: `asset-root-json` (a JSON string, for non-ASCII paths),
/// else `asset-root`.
fn recorded_root(metadata: &std::collections::HashMap<String, String>) -> Option<String> {
  match metadata.get("asset-root-json") {
    Some(json) => serde_json::from_str::<String>(json).ok(),
    None => metadata.get("asset-root").cloned(),
  }
}

/// A root's merged outputs: its location name, the manifests merged (oldest first), the files by path.
type Merged = (Option<String>, Vec<String>, BTreeMap<String, ManifestEntry>);

/// One output manifest as read: its key, root, location, time and entries.
struct Read {
  key: String,
  root: String,
  location: Option<String>,
  modified: Option<SystemTime>,
  entries: Vec<ManifestEntry>,
}

impl Engine {
  /// Brings a job's outputs back (see the module documentation).
  pub async fn download_job_outputs(
    self: &Arc<Self>,
    request: OutputRequest,
    control: Control,
  ) -> Result<DownloadedOutputs> {
    request.validate()?;
    let (request, control) = (&request, &control);
    let work =
      |progress: Arc<ProgressState>| async move { Box::pin(self.job_outputs(request, &progress, control)).await };
    let (mut out, summary) = control.run(Phase::Hashing, work).await?;
    out.summary = summary;
    Ok(out)
  }

  async fn job_outputs(
    self: &Arc<Self>,
    request: &OutputRequest,
    progress: &Arc<ProgressState>,
    control: &Control,
  ) -> Result<DownloadedOutputs> {
    let cancel = &control.cancel;
    let bucket = &request.bucket;
    let listed = or_cancelled(cancel, self.list_objects(bucket, &request.prefix())).await?;
    let keys: Vec<String> = listed.iter().filter_map(|o| o.key.clone()).collect();
    let chosen = select_output_manifests(&keys);
    let mut read: Vec<Read> = or_cancelled(
      cancel,
      stream::iter(chosen)
        .map(|key| self.read_output_manifest(bucket, key))
        .buffered(16)
        .try_collect(),
    )
    .await?;
    // Oldest first, as Deadline merges them (a stable sort: equal times keep the listing's order).
    read.sort_by_key(|r| r.modified);

    let mut by_root: BTreeMap<String, Merged> = BTreeMap::new();
    for r in read {
      let (location, keys, files) = by_root.entry(r.root).or_default();
      if location.is_none() {
        *location = r.location;
      }
      keys.push(r.key);
      for e in r.entries {
        files.insert(e.path.clone(), e);
      }
    }
    let mut unmapped = Vec::new();
    let mut roots = Vec::new();
    let mut targets = Vec::new();
    for (root_path, (location, manifest_keys, files)) in by_root {
      let Some(local_root) = request.local_root(&root_path, location.as_deref()) else {
        unmapped.push(root_path);
        continue;
      };
      let entries: Vec<ManifestEntry> = files.into_values().collect();
      roots.push(OutputRoot {
        manifest: manifest::encode(&entries),
        root_path,
        location_name: location,
        local_root: local_root.clone(),
        manifest_keys,
      });
      targets.push(ManifestTarget::new(&local_root, entries)?);
    }
    if !unmapped.is_empty() {
      return Err(Error::UnmappedRoots { roots: unmapped });
    }
    Box::pin(self.fetch_manifests(
      bucket,
      &request.root_prefix,
      request.conflict,
      &targets,
      progress,
      control,
    ))
    .await?;
    Ok(DownloadedOutputs {
      roots,
      summary: progress.summary(),
    })
  }

  /// Stores a session action's outputs (see `OutputUpload`).
  pub async fn upload_job_outputs(
    self: &Arc<Self>,
    request: OutputUpload,
    control: Control,
  ) -> Result<AttachmentUploadOutput> {
    request.validate()?;
    let mut upload = request.upload.clone();
    upload.manifest_key = Some(request.manifest_key());
    upload.manifest_metadata = request.metadata();
    self.upload_attachments(upload, control).await
  }

  /// An output manifest with the root, location and time it was stored with.
  async fn read_output_manifest(&self, bucket: &Bucket, key: String) -> Result<Read> {
    let s3 = self.s3().await?;
    let _slot = self.request_slot().await;
    let (sent, attempts) = counting(s3.get_object().to(bucket).key(&key).send()).await;
    let out = sent.map_err(|e| Error::from_sdk("GetObject", bucket, Some(&key), e).after_attempts(attempts))?;
    let metadata = out.metadata().cloned().unwrap_or_default();
    let modified = out.last_modified().and_then(|t| SystemTime::try_from(*t).ok());
    let data = out.body.collect().await.map_err(|e| Error::BodyInterrupted {
      bucket: bucket.to_string(),
      key: key.clone(),
      source: e,
    })?;
    let bad = |reason: String| Error::BadManifest {
      bucket: bucket.to_string(),
      key: key.clone(),
      reason,
    };
    let root = recorded_root(&metadata).ok_or_else(|| bad("its metadata records no asset root".into()))?;
    let text = String::from_utf8(data.to_vec()).map_err(|_| bad("it is not UTF-8 text".into()))?;
    let entries = manifest::decode(&text).map_err(bad)?;
    Ok(Read {
      location: metadata.get("file-system-location-name").cloned(),
      key,
      root,
      modified,
      entries,
    })
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn output_manifests_are_selected_as_deadline_selects_them() {
    let p = "R/Manifests/farm-1/queue-1/job-1";
    let keys: Vec<String> = [
      // A task with two session actions: only the later one's manifests.
      "step-1/task-1/2026-01-01T00:00:00.000000Z_sessionaction-1/aaa_output",
      "step-1/task-1/2026-01-02T00:00:00.000000Z_sessionaction-2/aaa_output",
      "step-1/task-1/2026-01-02T00:00:00.000000Z_sessionaction-2/bbb_output",
      // A chunked step (no task folder): every one.
      "step-2/2026-01-01T00:00:00.000000Z_sessionaction-3/aaa_output",
      "step-2/2026-01-03T00:00:00.000000Z_sessionaction-4/aaa_output",
      // Not output manifests.
      "step-1/task-1/2026-01-02T00:00:00.000000Z_sessionaction-2/aaa_input",
      "other/aaa_output",
    ]
    .iter()
    .map(|k| format!("{p}/{k}"))
    .collect();
    let mut chosen = select_output_manifests(&keys);
    chosen.sort();
    let expected: Vec<String> = [
      "step-1/task-1/2026-01-02T00:00:00.000000Z_sessionaction-2/aaa_output",
      "step-1/task-1/2026-01-02T00:00:00.000000Z_sessionaction-2/bbb_output",
      "step-2/2026-01-01T00:00:00.000000Z_sessionaction-3/aaa_output",
      "step-2/2026-01-03T00:00:00.000000Z_sessionaction-4/aaa_output",
    ]
    .iter()
    .map(|k| format!("{p}/{k}"))
    .collect();
    assert_eq!(chosen, expected);
  }

  #[test]
  fn step_output_keys_match_as_the_python_pattern_does() {
    assert!(is_step_output("x/step-1/a/b_output"));
    assert!(is_step_output("step-/a/b/output"));
    assert!(!is_step_output("step-1/a_output"), "one slash only");
    assert!(!is_step_output("x/step-1/a/b_input"));
    assert!(is_step_output("step-1/a/step-2/x/y_output"));
  }

  #[test]
  fn the_recorded_root_is_read_as_deadline_writes_it() {
    let meta = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert_eq!(
      recorded_root(&meta(&[("asset-root", "/p/job")])).as_deref(),
      Some("/p/job")
    );
    assert_eq!(
      recorded_root(&meta(&[
        ("asset-root", "\"/p/\\u00e9\""),
        ("asset-root-json", "\"/p/\\u00e9\"")
      ]))
      .as_deref(),
      Some("/p/\u{e9}")
    );
    assert_eq!(recorded_root(&meta(&[])), None);
  }

  #[test]
  fn output_manifests_are_named_keyed_and_labelled_as_deadlines_worker_does() {
    let upload = |root: &str, location: Option<&str>, task: Option<&str>| OutputUpload {
      upload: AttachmentUpload {
        bucket: Bucket::named("b"),
        root_prefix: "R".into(),
        local_dir: PathBuf::from("/x"),
        files: None,
        manifest_key: None,
        manifest_metadata: Vec::new(),
        resumable: false,
      },
      farm_id: "farm-1".into(),
      queue_id: "queue-1".into(),
      job_id: "job-1".into(),
      step_id: "step-1".into(),
      task_id: task.map(str::to_owned),
      session_action_id: "sessionaction-1-0".into(),
      start_time: SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_764_792_900_123_456),
      root_path: root.into(),
      location_name: location.map(str::to_owned),
    };
    let u = upload("/p/job", Some("Projects"), Some("task-1"));
    // xxhash.xxh3_128_hexdigest(b"Projects/p/job")
    let name = manifest::hash_bytes(b"Projects/p/job");
    assert_eq!(
      u.manifest_key(),
      format!(
        "R/Manifests/farm-1/queue-1/job-1/step-1/task-1/2025-12-03T20:15:00.123456Z_sessionaction-1-0/{name}_output"
      )
    );
    assert_eq!(
      u.metadata(),
      [
        ("asset-root".into(), "/p/job".into()),
        ("file-system-location-name".into(), "Projects".into())
      ]
    );
    let chunked = upload("/p/caf\u{e9}", None, None);
    assert!(chunked
      .manifest_key()
      .starts_with("R/Manifests/farm-1/queue-1/job-1/step-1/2025-12-03T20:15:00.123456Z_"));
    let json = "\"/p/caf\\u00e9\"".to_owned();
    assert_eq!(
      chunked.metadata(),
      [("asset-root".into(), json.clone()), ("asset-root-json".into(), json)]
    );
    assert!(
      upload("/p", Some("caf\u{e9}"), None).validate().is_err(),
      "metadata is ASCII"
    );
  }

  #[cfg(unix)]
  #[test]
  fn roots_map_by_request_then_location_then_their_own_path() {
    let request = OutputRequest {
      bucket: Bucket::named("b"),
      root_prefix: "R".into(),
      farm_id: "farm-1".into(),
      queue_id: "queue-1".into(),
      job_id: "job-1".into(),
      step_id: Some("step-1".into()),
      task_id: None,
      root_map: vec![("C:\\proj".into(), PathBuf::from("/home/me/proj"))],
      locations: vec![Location {
        name: "Projects".into(),
        path: PathBuf::from("/mnt/projects"),
        kind: LocationKind::Local,
      }],
      conflict: Conflict::CreateCopy,
    };
    assert_eq!(request.prefix(), "R/Manifests/farm-1/queue-1/job-1/step-1/");
    assert_eq!(
      request.local_root("C:\\proj", None),
      Some(PathBuf::from("/home/me/proj"))
    );
    assert_eq!(
      request.local_root("P:\\", Some("Projects")),
      Some(PathBuf::from("/mnt/projects"))
    );
    assert_eq!(request.local_root("/tmp/job", None), Some(PathBuf::from("/tmp/job")));
    assert_eq!(
      request.local_root("D:\\other", None),
      None,
      "a Windows root with no mapping"
    );
  }
}

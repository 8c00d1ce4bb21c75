//! `submitJobAttachments`: its request, the storage profile it takes, and the `attachments` object it returns,
//! shaped as the Deadline Cloud API shapes them so they pass straight through (GetStorageProfileForQueue's
//! response in, CreateJob's `attachments` out).

use std::collections::HashMap;
use std::path::PathBuf;

use napi::bindgen_prelude::AbortSignal;
use napi_derive::napi;

use super::options::{
  bucket, call_parts, conflict, filter, CallParts, CallRequest, ConflictPolicy, FilterOption, ProgressCallback,
};
use super::{CallOutput, TransferSummary};
use crate::engine::{self, asset_roots, Error};

/// A file-system location's type in a storage profile.
#[napi(string_enum = "UPPERCASE")]
pub enum FileSystemLocationType {
  /// Only on this machine: its files are uploaded, under the location's own asset root.
  Local,
  /// Shared with the workers: its files are not uploaded.
  Shared,
}

/// A file-system location of a storage profile.
#[napi(object, object_to_js = false)]
pub struct FileSystemLocation {
  /// Its name, which ties the asset root to the worker's own path for it.
  pub name: String,
  /// Its path on this machine.
  pub path: String,
  /// `LOCAL` or `SHARED`.
  #[napi(js_name = "type")]
  pub kind: FileSystemLocationType,
}

/// The queue's storage profile for this machine, as Deadline's GetStorageProfileForQueue returns it (pass the
/// response as it is; only `fileSystemLocations` is read).
#[napi(object, object_to_js = false)]
pub struct StorageProfile {
  /// The locations whose paths this machine and the workers know by name.
  pub file_system_locations: Option<Vec<FileSystemLocation>>,
  /// Not read.
  pub storage_profile_id: Option<String>,
  /// Not read.
  pub display_name: Option<String>,
  /// Not read.
  pub os_family: Option<String>,
}

/// How a job's workers load its attachments.
#[napi(string_enum = "UPPERCASE")]
pub enum JobAttachmentsFileSystem {
  /// Downloaded before the job runs (the default).
  Copied,
  /// Mounted and read on demand.
  Virtual,
}

/// What `submitJobAttachments` submits: a job's input files and directories, its output directories and the paths
/// it refers to, for a farm's queue.
#[napi(object, object_to_js = false)]
pub struct JobAttachmentsRequest {
  /// The queue's job-attachments bucket (`jobAttachmentSettings.s3BucketName`).
  pub bucket: String,
  /// The queue's job-attachments root prefix (`jobAttachmentSettings.rootPrefix`).
  pub root_prefix: String,
  /// The farm's id.
  pub farm_id: String,
  /// The queue's id.
  pub queue_id: String,
  /// Input files (absolute, or relative to the working directory).
  pub input_files: Option<Vec<String>>,
  /// Input directories: every file under each (symlinks followed, loops skipped) that `filter` takes. An empty one
  /// becomes a referenced path, as Deadline makes it.
  pub input_directories: Option<Vec<String>>,
  /// Directories the job writes its outputs to.
  pub output_directories: Option<Vec<String>>,
  /// Paths the job names without uploading them.
  pub referenced_paths: Option<Vec<String>>,
  /// The queue's storage profile for this machine: files under a SHARED location are left out, those under a
  /// LOCAL location go under that location's asset root.
  pub storage_profile: Option<StorageProfile>,
  /// A missing input file or directory rejects the call (`ERR_MISCONFIGURED_INPUTS`). Default `false`: it becomes a
  /// referenced path, as Deadline's default.
  pub require_paths_exist: Option<bool>,
  /// Which files of `inputDirectories` go, by their paths relative to the directory given (see `FilterSets`,
  /// `FilterRule`). Input files are not filtered.
  #[napi(ts_type = "FilterSets | Array<FilterRule>")]
  pub filter: Option<FilterOption>,
  /// How the workers load the attachments. Default `COPIED`.
  pub file_system: Option<JobAttachmentsFileSystem>,
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
  /// The AWS account id (12 digits) that must own the bucket (`x-amz-expected-bucket-owner` on every request).
  pub expected_bucket_owner: Option<String>,
}

/// One asset root of a job (CreateJob's `attachments.manifests[i]`), as Deadline's client writes it: optional
/// fields are absent, not empty.
#[napi(object, object_from_js = false)]
pub struct ManifestProperties {
  /// The root's path on this machine.
  pub root_path: String,
  /// This machine's path format.
  #[napi(ts_type = "'posix' | 'windows'")]
  pub root_path_format: String,
  /// The storage profile's LOCAL location the root is.
  pub file_system_location_name: Option<String>,
  /// The input manifest's key below `{rootPrefix}/Manifests/`: `{farmId}/{queueId}/Inputs/{guid}/{name}`. Absent
  /// for a root without inputs.
  pub input_manifest_path: Option<String>,
  /// xxh128 of the input manifest's bytes.
  pub input_manifest_hash: Option<String>,
  /// The output directories, relative to `rootPath` (`.` for the root itself).
  pub output_relative_directories: Option<Vec<String>>,
}

/// CreateJob's `attachments`.
#[napi(object, object_from_js = false)]
pub struct JobAttachments {
  /// One per asset root, sorted by `rootPath`.
  pub manifests: Vec<ManifestProperties>,
  /// How the workers load them.
  #[napi(ts_type = "'COPIED' | 'VIRTUAL'")]
  pub file_system: String,
}

/// An input manifest written by `submitJobAttachments`.
#[napi(object, object_from_js = false)]
pub struct InputManifest {
  /// The asset root it describes.
  pub root_path: String,
  /// Its full key: `{rootPrefix}/Manifests/{inputManifestPath}`.
  pub key: String,
  /// Its JSON (format `2023-03-03`, paths relative to `rootPath`).
  pub manifest: String,
}

/// What `submitJobAttachments` resolves to.
#[napi(object, object_from_js = false)]
pub struct JobAttachmentsResult {
  /// Give this to CreateJob as `attachments`.
  pub attachments: JobAttachments,
  /// The input manifests written, one per root with inputs.
  pub input_manifests: Vec<InputManifest>,
  /// Contents uploaded (`files`, `bytes`), files skipped because S3 had their content or another file of the
  /// job has it (`skippedFiles`, `skippedBytes`), files hashed, time.
  pub summary: TransferSummary,
  /// Files whose hash came from the cache (not read).
  pub cached_hashes: f64,
  /// Contents known to be in S3 from the cache (no request sent).
  pub cached_keys: f64,
  /// HeadObject requests sent to learn which contents S3 has.
  pub checked_keys: f64,
}

/// A storage profile's file-system locations, for the engine.
fn locations(profile: Option<StorageProfile>) -> Vec<asset_roots::Location> {
  profile
    .and_then(|p| p.file_system_locations)
    .unwrap_or_default()
    .into_iter()
    .map(|l| asset_roots::Location {
      name: l.name,
      path: PathBuf::from(l.path),
      kind: match l.kind {
        FileSystemLocationType::Local => asset_roots::LocationKind::Local,
        FileSystemLocationType::Shared => asset_roots::LocationKind::Shared,
      },
    })
    .collect()
}

fn paths(list: Option<Vec<String>>) -> Vec<PathBuf> {
  list.unwrap_or_default().into_iter().map(PathBuf::from).collect()
}

impl CallRequest for JobAttachmentsRequest {
  type Engine = engine::JobSubmission;

  call_parts!();

  fn to_engine(&mut self) -> Result<engine::JobSubmission, Error> {
    let locations = locations(self.storage_profile.take());
    let request = engine::JobSubmission {
      bucket: bucket(&self.bucket, self.expected_bucket_owner.take(), None)?,
      root_prefix: std::mem::take(&mut self.root_prefix),
      farm_id: std::mem::take(&mut self.farm_id),
      queue_id: std::mem::take(&mut self.queue_id),
      input_files: paths(self.input_files.take()),
      input_directories: paths(self.input_directories.take()),
      output_directories: paths(self.output_directories.take()),
      referenced_paths: paths(self.referenced_paths.take()),
      locations,
      require_paths_exist: self.require_paths_exist.unwrap_or(false),
      filter: filter(self.filter.take())?,
      file_system: match self.file_system {
        None | Some(JobAttachmentsFileSystem::Copied) => engine::FileSystem::Copied,
        Some(JobAttachmentsFileSystem::Virtual) => engine::FileSystem::Virtual,
      },
      resumable: self.resumable.unwrap_or(false),
    };
    request.validate()?;
    Ok(request)
  }
}

impl CallOutput for engine::SubmittedJob {
  type Js = JobAttachmentsResult;
  fn summary(&self) -> &engine::Summary {
    &self.summary
  }
  fn into_js(self) -> JobAttachmentsResult {
    let mut input_manifests = Vec::new();
    let manifests = self
      .roots
      .into_iter()
      .map(|r| {
        if let (Some(manifest), Some(key)) = (r.manifest, r.manifest_key) {
          input_manifests.push(InputManifest {
            root_path: r.root_path.clone(),
            key,
            manifest,
          });
        }
        ManifestProperties {
          root_path: r.root_path,
          root_path_format: r.root_path_format.to_owned(),
          file_system_location_name: r.file_system_location_name,
          input_manifest_path: r.input_manifest_path,
          input_manifest_hash: r.input_manifest_hash,
          output_relative_directories: (!r.output_relative_directories.is_empty())
            .then_some(r.output_relative_directories),
        }
      })
      .collect();
    JobAttachmentsResult {
      attachments: JobAttachments {
        manifests,
        file_system: self.file_system.as_str().to_owned(),
      },
      input_manifests,
      summary: self.summary.into(),
      cached_hashes: self.cached_hashes as f64,
      cached_keys: self.cached_keys as f64,
      checked_keys: self.checked_keys as f64,
    }
  }
}

/// What `downloadJobOutputs` brings back: a job's outputs (or a step's, a task's), and where each asset root goes.
#[napi(object, object_to_js = false)]
pub struct JobOutputsRequest {
  /// The queue's job-attachments bucket.
  pub bucket: String,
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
  /// Only this task's outputs (with `stepId`).
  pub task_id: Option<String>,
  /// Where a root's files go, by the root's path as recorded (`attachments.manifests[i].rootPath`). A root not
  /// named here goes to the path of the storage profile location it was recorded with, else to its own path when
  /// that is a path of this OS; a root recorded on another OS with neither rejects the call
  /// (`ERR_UNMAPPED_ROOTS`, with `roots`) before any file is written.
  pub root_map: Option<HashMap<String, String>>,
  /// This machine's storage profile for the queue (GetStorageProfileForQueue's response as it is).
  pub storage_profile: Option<StorageProfile>,
  /// What to do with a destination that exists with other content. Default `createCopy`, as Deadline's. One with
  /// the output's content is always skipped.
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
  /// The AWS account id (12 digits) that must own the bucket (`x-amz-expected-bucket-owner` on every request).
  pub expected_bucket_owner: Option<String>,
}

/// One asset root of a job's outputs.
#[napi(object, object_from_js = false)]
pub struct OutputRoot {
  /// The root's path as the worker recorded it.
  pub root_path: String,
  /// The storage profile location it was recorded with.
  pub file_system_location_name: Option<String>,
  /// Where its files went.
  pub local_root: String,
  /// The output manifests merged for it, oldest first (a later task's file replaces an earlier one's).
  pub manifest_keys: Vec<String>,
  /// The merged manifest (format `2023-03-03`, paths relative to `localRoot`).
  pub manifest: String,
}

/// What `downloadJobOutputs` resolves to.
#[napi(object, object_from_js = false)]
pub struct JobOutputsResult {
  /// Every root with outputs, sorted by `rootPath`; none when the job has no outputs yet.
  pub roots: Vec<OutputRoot>,
  /// Files downloaded, files skipped (already there with the same content), time.
  pub summary: TransferSummary,
}

impl CallRequest for JobOutputsRequest {
  type Engine = engine::OutputRequest;

  call_parts!();

  fn to_engine(&mut self) -> Result<engine::OutputRequest, Error> {
    let mut root_map: Vec<(String, PathBuf)> = self
      .root_map
      .take()
      .unwrap_or_default()
      .into_iter()
      .map(|(root, dir)| (root, PathBuf::from(dir)))
      .collect();
    root_map.sort();
    let request = engine::OutputRequest {
      bucket: bucket(&self.bucket, self.expected_bucket_owner.take(), None)?,
      root_prefix: std::mem::take(&mut self.root_prefix),
      farm_id: std::mem::take(&mut self.farm_id),
      queue_id: std::mem::take(&mut self.queue_id),
      job_id: std::mem::take(&mut self.job_id),
      step_id: self.step_id.take(),
      task_id: self.task_id.take(),
      root_map,
      locations: locations(self.storage_profile.take()),
      conflict: match self.conflict.take() {
        None => engine::Conflict::CreateCopy,
        given => conflict(given),
      },
    };
    request.validate()?;
    Ok(request)
  }
}

impl CallOutput for engine::DownloadedOutputs {
  type Js = JobOutputsResult;
  fn summary(&self) -> &engine::Summary {
    &self.summary
  }
  fn into_js(self) -> JobOutputsResult {
    JobOutputsResult {
      roots: self
        .roots
        .into_iter()
        .map(|r| OutputRoot {
          root_path: r.root_path,
          file_system_location_name: r.location_name,
          local_root: r.local_root.to_string_lossy().into_owned(),
          manifest_keys: r.manifest_keys,
          manifest: r.manifest,
        })
        .collect(),
      summary: self.summary.into(),
    }
  }
}

/// What `uploadJobOutputs` stores: one asset root's outputs of a session action, as Deadline's worker stores them,
/// so Deadline's own tools (and `downloadJobOutputs`) find them.
#[napi(object, object_to_js = false)]
pub struct JobOutputUploadRequest {
  /// The queue's job-attachments bucket.
  pub bucket: String,
  /// The queue's job-attachments root prefix.
  pub root_prefix: String,
  /// The farm's id.
  pub farm_id: String,
  /// The queue's id.
  pub queue_id: String,
  /// The job's id.
  pub job_id: String,
  /// The step's id.
  pub step_id: String,
  /// The task's id; leave it out for a step run in chunks.
  pub task_id: Option<String>,
  /// The session action's id.
  pub session_action_id: String,
  /// When the session action started, in milliseconds since 1970 (`Date.now()`); orders a task's session actions.
  /// Default: now.
  pub start_time: Option<f64>,
  /// The asset root as the job's attachments record it (`attachments.manifests[i].rootPath`).
  pub root_path: String,
  /// Its storage profile location (`attachments.manifests[i].fileSystemLocationName`).
  pub file_system_location_name: Option<String>,
  /// Where the root's files are on this machine: output paths are relative to it. Without `files`, every regular
  /// file under it.
  pub local_dir: String,
  /// Only these files: absolute, or relative to `localDir`; each must be inside it.
  pub files: Option<Vec<String>>,
  /// As for `upload`. Default `false`.
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
  /// The AWS account id (12 digits) that must own the bucket (`x-amz-expected-bucket-owner` on every request).
  pub expected_bucket_owner: Option<String>,
}

impl CallRequest for JobOutputUploadRequest {
  type Engine = engine::OutputUpload;

  call_parts!();

  fn to_engine(&mut self) -> Result<engine::OutputUpload, Error> {
    let start_time = match self.start_time {
      None => std::time::SystemTime::now(),
      Some(ms) if ms.is_finite() && (0.0..=8.64e15).contains(&ms) => {
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_micros((ms * 1000.0).round() as u64)
      }
      Some(ms) => {
        return Err(Error::invalid_value(format!(
          "startTime must be milliseconds since 1970 (as Date.now() gives), got {ms}"
        )))
      }
    };
    let request = engine::OutputUpload {
      upload: engine::AttachmentUpload {
        bucket: bucket(&self.bucket, self.expected_bucket_owner.take(), None)?,
        root_prefix: std::mem::take(&mut self.root_prefix),
        local_dir: PathBuf::from(std::mem::take(&mut self.local_dir)),
        files: self.files.take().map(|f| f.into_iter().map(PathBuf::from).collect()),
        manifest_key: None,
        manifest_metadata: Vec::new(),
        resumable: self.resumable.unwrap_or(false),
      },
      farm_id: std::mem::take(&mut self.farm_id),
      queue_id: std::mem::take(&mut self.queue_id),
      job_id: std::mem::take(&mut self.job_id),
      step_id: std::mem::take(&mut self.step_id),
      task_id: self.task_id.take(),
      session_action_id: std::mem::take(&mut self.session_action_id),
      start_time,
      root_path: std::mem::take(&mut self.root_path),
      location_name: self.file_system_location_name.take(),
    };
    request.validate()?;
    Ok(request)
  }
}

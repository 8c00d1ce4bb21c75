//! A job's attachments submitted as Deadline Cloud's client submits them (`S3AssetManager.prepare_paths_for_upload`,
//! `hash_assets_and_create_manifest` and `upload_assets` in `deadline.job_attachments.upload`, with the
//! directory expansion of `deadline.client.api._submit_job_bundle`):
//!
//! 1. Input directories become the files under them (after the filter). One that is empty becomes a reference;
//!    one that does not exist is a reference too, or an error when paths must exist.
//! 2. Inputs, outputs and references are grouped into asset roots (see `asset_roots`).
//! 3. The contents of every root are stored once (`store_contents`: hashed, checked, uploaded), shared contents
//!    across roots included.
//! 4. Each root with inputs gets its manifest, stored at
//!    `{rootPrefix}/Manifests/{farmId}/{queueId}/Inputs/{guid}/{name}` (a new guid per root, as Deadline).
//! 5. The result is the `attachments` object of Deadline's CreateJob, field for field as Deadline writes it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::asset_roots::{self, AssetRoot, Location};
use super::attachments::manifest_entries;
use super::client::Engine;
use super::error::{Error, Result};
use super::filter::Filter;
use super::manifest;
use super::object::{Bucket, ObjectSettings};
use super::progress::{Phase, ProgressState, Summary};
use super::scheduler::{blocking, or_cancelled};
use super::upload::{plan, Planned, UploadFile, UploadSource};
use super::{validate_bucket, Control};

/// How a job's workers load its attachments (CreateJob's `attachments.fileSystem`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileSystem {
  /// Downloaded before the job runs.
  #[default]
  Copied,
  /// Mounted and read on demand.
  Virtual,
}

impl FileSystem {
  /// Its name in the Deadline API.
  pub fn as_str(self) -> &'static str {
    match self {
      FileSystem::Copied => "COPIED",
      FileSystem::Virtual => "VIRTUAL",
    }
  }
}

/// A job's attachments to submit.
#[derive(Debug, Clone)]
pub struct JobSubmission {
  /// The queue's job-attachments bucket, with its expected owner.
  pub bucket: Bucket,
  /// The queue's job-attachments root prefix.
  pub root_prefix: String,
  /// The farm's id (`farm-…`).
  pub farm_id: String,
  /// The queue's id (`queue-…`).
  pub queue_id: String,
  /// Input files.
  pub input_files: Vec<PathBuf>,
  /// Input directories: every file under each (links followed, loops skipped), as the filter takes it.
  pub input_directories: Vec<PathBuf>,
  /// Directories the job writes its outputs to.
  pub output_directories: Vec<PathBuf>,
  /// Paths the job refers to without uploading them.
  pub referenced_paths: Vec<PathBuf>,
  /// The storage profile's file-system locations.
  pub locations: Vec<Location>,
  /// A missing input file or directory is an error (else it becomes a reference).
  pub require_paths_exist: bool,
  /// Which files of the input directories go, matched on their paths relative to the directory given.
  pub filter: Option<Filter>,
  /// How the workers load the attachments.
  pub file_system: FileSystem,
  /// As `UploadRequest::resumable`.
  pub resumable: bool,
}

/// One asset root of a submitted job: CreateJob's `attachments.manifests[i]`, and its manifest.
#[derive(Debug, Clone)]
pub struct SubmittedRoot {
  /// The root's path on this machine.
  pub root_path: String,
  /// `posix` or `windows`: this machine's.
  pub root_path_format: &'static str,
  /// The storage profile's LOCAL location the root is, if any.
  pub file_system_location_name: Option<String>,
  /// The manifest's key below `{rootPrefix}/Manifests/`; `None` for a root without inputs.
  pub input_manifest_path: Option<String>,
  /// xxh128 of the manifest's bytes.
  pub input_manifest_hash: Option<String>,
  /// The output directories, relative to the root (`.` for the root itself), with this machine's separator.
  pub output_relative_directories: Vec<String>,
  /// The manifest (format `2023-03-03`), when the root has inputs.
  pub manifest: Option<String>,
  /// Its full key, `{rootPrefix}/Manifests/{input_manifest_path}`.
  pub manifest_key: Option<String>,
}

/// What a submission did.
#[derive(Debug, Clone)]
pub struct SubmittedJob {
  /// Every asset root, sorted by path.
  pub roots: Vec<SubmittedRoot>,
  /// How the workers load the attachments.
  pub file_system: FileSystem,
  /// Contents uploaded, files skipped (in S3 already, or another file's content), hashing counts, time.
  pub summary: Summary,
  /// Files whose hash came from the cache.
  pub cached_hashes: u64,
  /// Contents known present from the cache.
  pub cached_keys: u64,
  /// HeadObject requests sent to find what S3 has.
  pub checked_keys: u64,
}

impl JobSubmission {
  /// Checks everything that can be checked without the file system.
  pub fn validate(&self) -> Result<()> {
    validate_bucket(&self.bucket)?;
    for (what, value) in [
      ("rootPrefix", &self.root_prefix),
      ("farmId", &self.farm_id),
      ("queueId", &self.queue_id),
    ] {
      if value.is_empty() || value.contains(['\0', '\n', '\r']) {
        return Err(Error::invalid_value(format!(
          "{what} must be a non-empty string without line breaks"
        )));
      }
    }
    for (what, value) in [("farmId", &self.farm_id), ("queueId", &self.queue_id)] {
      if value.contains('/') {
        return Err(Error::invalid_value(format!("{what} '{value}' must not contain '/'")));
      }
    }
    let lists = [
      ("inputFiles", &self.input_files),
      ("inputDirectories", &self.input_directories),
      ("outputDirectories", &self.output_directories),
      ("referencedPaths", &self.referenced_paths),
    ];
    for (what, paths) in lists {
      for (i, p) in paths.iter().enumerate() {
        if p.as_os_str().as_encoded_bytes().contains(&0) {
          return Err(Error::invalid_value(format!("{what}[{i}] contains a NUL character")));
        }
      }
    }
    if self.input_files.is_empty()
      && self.input_directories.is_empty()
      && self.output_directories.is_empty()
      && self.referenced_paths.is_empty()
    {
      return Err(Error::invalid_value(
        "a job submission needs at least one of inputFiles, inputDirectories, outputDirectories, referencedPaths",
      ));
    }
    Ok(())
  }
}

/// `{root_prefix}/Manifests/{rest}` (a trailing `/` of the prefix dropped, as for contents).
pub fn manifest_key(root_prefix: &str, rest: &str) -> String {
  format!("{}/Manifests/{rest}", root_prefix.trim_end_matches('/'))
}

/// The manifest path of a new input manifest: `{farm}/{queue}/Inputs/{guid}/{name}`, a random guid each.
fn input_manifest_path(farm_id: &str, queue_id: &str, name: &str) -> String {
  let guid = uuid::Uuid::new_v4().simple().to_string();
  format!("{farm_id}/{queue_id}/Inputs/{guid}/{name}")
}

/// The host's path format, as Deadline names it.
fn host_path_format() -> &'static str {
  match cfg!(windows) {
    true => "windows",
    false => "posix",
  }
}

/// Input directories expanded (blocking): the files under each (as the filter takes them) join `files`; an empty
/// directory, or a missing one when paths need not exist, joins `references`. Returns the missing directories
/// when paths must exist.
fn expand_directories(
  request: &JobSubmission,
  files: &mut Vec<PathBuf>,
  references: &mut Vec<PathBuf>,
) -> Result<Vec<PathBuf>> {
  let mut missing = Vec::new();
  for dir in request.input_directories.iter().filter(|d| !d.as_os_str().is_empty()) {
    let abs = std::path::absolute(dir).map_err(|e| Error::io("resolve", dir, e))?;
    if !abs.is_dir() {
      match request.require_paths_exist {
        true => missing.push(abs),
        false => {
          tracing::warn!(target: "s3_ferry::transfer", path = %abs.display(), "an input directory does not exist: taken as a reference");
          references.push(abs);
        }
      }
      continue;
    }
    let source = UploadSource::Directory {
      local_dir: abs.clone(),
      key_prefix: String::new(),
      filter: request.filter.clone(),
      follow_symlinks: true,
    };
    let (found, _) = plan(source, &ObjectSettings::default())?;
    match found.is_empty() {
      // The manifest format cannot list a directory: an empty one is a reference, as Deadline makes it.
      true => references.push(abs),
      false => files.extend(found.into_iter().map(|f| f.path)),
    }
  }
  missing.sort();
  missing.dedup();
  Ok(missing)
}

/// Every input of every root, planned with its manifest path (relative to its root) as its key.
fn plan_roots(roots: &[AssetRoot]) -> Result<Vec<Vec<Planned>>> {
  roots
    .iter()
    .map(|root| {
      let files = root
        .inputs
        .iter()
        .map(|abs| {
          let rel = asset_roots::relative_to_root(abs, &root.root).ok_or_else(|| {
            Error::invalid_value(format!(
              "'{}' is not valid UTF-8 and cannot be a manifest path",
              abs.display()
            ))
          })?;
          Ok(UploadFile::new(abs.clone(), rel))
        })
        .collect::<Result<Vec<_>>>()?;
      Ok(plan(UploadSource::Files(files), &ObjectSettings::default())?.0)
    })
    .collect()
}

/// A root's path as text (Deadline's `str(path)`).
fn path_text(path: &Path) -> Result<String> {
  path
    .to_str()
    .map(str::to_owned)
    .ok_or_else(|| Error::invalid_value(format!("'{}' is not valid UTF-8", path.display())))
}

/// An output directory relative to its root, as Python's `str(path.relative_to(root))`: `.` for the root itself,
/// this machine's separator.
fn output_relative(out: &Path, root: &Path) -> Result<String> {
  if asset_roots::relative_to_root(out, root).is_none() && path_text(out)? != path_text(root)? {
    return Err(Error::invalid_value(format!("'{}' is not valid UTF-8", out.display())));
  }
  let rel = asset_roots::relative_to_root(out, root).unwrap_or_else(|| ".".to_owned());
  Ok(match cfg!(windows) {
    true => rel.replace('/', "\\"),
    false => rel,
  })
}

impl Engine {
  /// Submits a job's attachments (see the module documentation).
  pub async fn submit_job_attachments(
    self: &Arc<Self>,
    request: JobSubmission,
    control: Control,
  ) -> Result<SubmittedJob> {
    request.validate()?;
    let (request, control) = (&request, &control);
    let work =
      |progress: Arc<ProgressState>| async move { Box::pin(self.submit_job(request, &progress, control)).await };
    let (mut out, summary) = control.run(Phase::Hashing, work).await?;
    out.summary = summary;
    Ok(out)
  }

  async fn submit_job(
    self: &Arc<Self>,
    request: &JobSubmission,
    progress: &Arc<ProgressState>,
    control: &Control,
  ) -> Result<SubmittedJob> {
    let cancel = &control.cancel;
    let (roots, planned) = or_cancelled(cancel, {
      let request = request.clone();
      blocking(move || {
        let (mut files, mut references) = (request.input_files.clone(), request.referenced_paths.clone());
        let missing_directories = expand_directories(&request, &mut files, &mut references)?;
        let grouped = asset_roots::group(
          &files,
          &request.output_directories,
          &references,
          &request.locations,
          request.require_paths_exist,
        );
        let roots = match (grouped, missing_directories.is_empty()) {
          (Ok(roots), true) => roots,
          (Ok(_), false) => {
            return Err(Error::MisconfiguredInputs {
              missing: Vec::new(),
              missing_directories,
              directories: Vec::new(),
            })
          }
          (
            Err(Error::MisconfiguredInputs {
              missing, directories, ..
            }),
            _,
          ) => {
            return Err(Error::MisconfiguredInputs {
              missing,
              missing_directories,
              directories,
            })
          }
          (Err(e), _) => return Err(e),
        };
        let planned = plan_roots(&roots)?;
        Ok((roots, planned))
      })
    })
    .await?;

    let all: Vec<Planned> = planned.iter().flatten().cloned().collect();
    let stored = self
      .store_contents(
        &request.bucket,
        &request.root_prefix,
        request.resumable,
        &all,
        progress,
        control,
      )
      .await?;

    let mut hashes = stored.hashes.as_slice();
    let mut submitted = Vec::with_capacity(roots.len());
    for (root, files) in roots.iter().zip(&planned) {
      let (mine, rest) = hashes.split_at(files.len());
      hashes = rest;
      let mut out = SubmittedRoot {
        root_path: path_text(&root.root)?,
        root_path_format: host_path_format(),
        file_system_location_name: root.location_name.clone(),
        input_manifest_path: None,
        input_manifest_hash: None,
        output_relative_directories: root
          .outputs
          .iter()
          .map(|o| output_relative(o, &root.root))
          .collect::<Result<_>>()?,
        manifest: None,
        manifest_key: None,
      };
      if !files.is_empty() {
        let text = manifest::encode(&manifest_entries(files, mine));
        let path = input_manifest_path(&request.farm_id, &request.queue_id, &root.manifest_name());
        let key = manifest_key(&request.root_prefix, &path);
        self.put_manifest(&request.bucket, &key, &text, &[], cancel).await?;
        out.input_manifest_hash = Some(manifest::hash_bytes(text.as_bytes()));
        out.input_manifest_path = Some(path);
        out.manifest = Some(text);
        out.manifest_key = Some(key);
      }
      submitted.push(out);
    }
    Ok(SubmittedJob {
      roots: submitted,
      file_system: request.file_system,
      summary: progress.summary(),
      cached_hashes: stored.cached_hashes,
      cached_keys: stored.cached_keys,
      checked_keys: stored.checked_keys,
    })
  }
}

#[cfg(all(test, unix))]
mod tests {
  use super::*;
  use crate::engine::FilterRule;

  fn submission(dirs: Vec<PathBuf>, require: bool, filter: Option<Filter>) -> JobSubmission {
    JobSubmission {
      bucket: Bucket::named("b"),
      root_prefix: "DeadlineCloud".into(),
      farm_id: "farm-1".into(),
      queue_id: "queue-1".into(),
      input_files: Vec::new(),
      input_directories: dirs,
      output_directories: Vec::new(),
      referenced_paths: Vec::new(),
      locations: Vec::new(),
      require_paths_exist: require,
      filter,
      file_system: FileSystem::Copied,
      resumable: false,
    }
  }

  #[test]
  fn manifest_keys_are_deadlines() {
    assert_eq!(
      manifest_key("DeadlineCloud", "f/q/Inputs/g/n_input"),
      "DeadlineCloud/Manifests/f/q/Inputs/g/n_input"
    );
    assert_eq!(manifest_key("DeadlineCloud/", "x"), "DeadlineCloud/Manifests/x");
    let path = input_manifest_path("farm-1", "queue-1", "abc_input");
    let parts: Vec<&str> = path.split('/').collect();
    assert_eq!(parts.len(), 5);
    assert_eq!(
      [parts[0], parts[1], parts[2], parts[4]],
      ["farm-1", "queue-1", "Inputs", "abc_input"]
    );
    assert!(
      parts[3].len() == 32
        && parts[3]
          .bytes()
          .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_ne!(
      path,
      input_manifest_path("farm-1", "queue-1", "abc_input"),
      "a new guid each time"
    );
  }

  #[test]
  fn outputs_are_relative_to_their_root_and_the_root_itself_is_a_dot() {
    let root = Path::new("/p/job");
    assert_eq!(
      output_relative(Path::new("/p/job/renders/beauty"), root).unwrap(),
      "renders/beauty"
    );
    assert_eq!(output_relative(Path::new("/p/job"), root).unwrap(), ".");
  }

  #[test]
  fn input_directories_become_their_files_and_empty_or_missing_ones_references() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for f in ["tex/a.png", "tex/sub/b.png", "tex/c.tmp"] {
      std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
      std::fs::write(d.join(f), f).unwrap();
    }
    std::fs::create_dir(d.join("empty")).unwrap();
    std::os::unix::fs::symlink(d.join("tex/a.png"), d.join("tex/link.png")).unwrap();
    let filter = Filter::ordered(vec![FilterRule {
      include: false,
      pattern: "*.tmp".into(),
    }])
    .unwrap();
    let dirs = vec![d.join("tex"), d.join("empty"), d.join("gone")];
    let (mut files, mut refs) = (Vec::new(), Vec::new());
    let missing = expand_directories(&submission(dirs.clone(), false, Some(filter)), &mut files, &mut refs).unwrap();
    files.sort();
    assert_eq!(
      files,
      [d.join("tex/a.png"), d.join("tex/link.png"), d.join("tex/sub/b.png")],
      "filtered, links to files followed"
    );
    assert_eq!(refs, [d.join("empty"), d.join("gone")]);
    assert!(missing.is_empty());

    let (mut files, mut refs) = (Vec::new(), Vec::new());
    let missing = expand_directories(&submission(dirs, true, None), &mut files, &mut refs).unwrap();
    assert_eq!(missing, [d.join("gone")], "required: a missing directory is an error");
    assert_eq!(refs, [d.join("empty")], "an empty one is still a reference");
    assert_eq!(files.len(), 4);
  }

  #[test]
  fn submissions_are_checked_before_anything() {
    let ok = || submission(vec![PathBuf::from("/x")], false, None);
    assert!(ok().validate().is_ok());
    let bad: [(&str, fn(&mut JobSubmission)); 5] = [
      ("farmId", |s| s.farm_id = "a/b".into()),
      ("queueId", |s| s.queue_id.clear()),
      ("rootPrefix", |s| s.root_prefix = "a\nb".into()),
      ("at least one", |s| s.input_directories.clear()),
      ("NUL", |s| s.output_directories = vec![PathBuf::from("/a\0b")]),
    ];
    for (what, change) in bad {
      let mut s = ok();
      change(&mut s);
      let e = s.validate().unwrap_err();
      assert_eq!(e.code(), "ERR_INVALID_ARG_VALUE", "{what}");
      assert!(e.to_string().contains(what), "{what}: {e}");
    }
  }
}

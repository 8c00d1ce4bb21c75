//! Asset roots: a job's input files and output directories grouped the way Deadline Cloud's own client groups
//! them (`S3AssetManager._get_asset_groups` in `deadline.job_attachments.upload`), one manifest per group.
//!
//! - Every path is made absolute and normalised lexically (`..` and `.` removed, symlinks not followed), as
//!   Python's `os.path.normpath(Path(p).absolute())` (on Windows `std::path::absolute`, which is
//!   `GetFullPathNameW`, as `ntpath.abspath`).
//! - An input that is a directory is an error; so is one that does not exist when `require_exist` (Deadline's
//!   `require_paths_exist`), else it becomes a reference. All of them are reported together, before any work, as
//!   `MisconfiguredInputs`.
//! - A path under a SHARED file-system location of the storage profile is left out: the workers see it already.
//! - A path under a LOCAL location belongs to that location's group (the most specific one when they nest),
//!   which carries the location's name; any other path belongs to the group of its top directory (`/` on Unix,
//!   the drive or share on Windows; compared without case on Windows).
//! - A group's root is the common path of everything in it (its parent when that is a single file).
//!
//! The manifest of a root is named `{xxh128(root)}_input`, as Deadline names it.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use super::error::{Error, Result};

/// What a file-system location of a storage profile is to the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationKind {
  /// A path that exists only on this machine: its files are uploaded, under the location's own root.
  Local,
  /// A path the workers share: its files are not uploaded.
  Shared,
}

/// A file-system location of the queue's storage profile (fetched by the app with the Deadline API).
#[derive(Debug, Clone)]
pub struct Location {
  /// Its name, which ties the root to the worker's own path for it.
  pub name: String,
  /// Its path on this machine.
  pub path: PathBuf,
  /// LOCAL or SHARED.
  pub kind: LocationKind,
}

/// The paths of one asset root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetRoot {
  /// The common path of everything below (absolute).
  pub root: PathBuf,
  /// The LOCAL location it belongs to, if any.
  pub location_name: Option<String>,
  /// Input files (absolute).
  pub inputs: BTreeSet<PathBuf>,
  /// Output directories (absolute).
  pub outputs: BTreeSet<PathBuf>,
  /// Paths the job refers to without uploading them (absolute).
  pub references: BTreeSet<PathBuf>,
}

impl AssetRoot {
  /// The manifest's file name, as Deadline 0.60 names it (`S3AssetUploader._gather_upload_metadata`):
  /// `{xxh128(str(root))}_input`, the root with this machine's separators; the location name is not part of it.
  pub fn manifest_name(&self) -> String {
    let root = self.root.to_string_lossy();
    format!("{}_input", super::manifest::hash_bytes(root.as_bytes()))
  }
}

/// Which of a group's sets a path goes to.
type PathsOf = fn(&mut AssetRoot) -> &mut BTreeSet<PathBuf>;

/// Groups a job's paths into asset roots (see the module documentation), sorted by root.
pub fn group(
  inputs: &[PathBuf],
  outputs: &[PathBuf],
  references: &[PathBuf],
  locations: &[Location],
  require_exist: bool,
) -> Result<Vec<AssetRoot>> {
  let (mut missing, mut directories) = (Vec::new(), Vec::new());
  let mut files = Vec::new();
  let mut references: Vec<PathBuf> = given(references).map(absolute).collect::<Result<_>>()?;
  for p in given(inputs) {
    let abs = absolute(p)?;
    match std::fs::metadata(&abs) {
      Err(_) if require_exist => missing.push(abs),
      Err(_) => {
        tracing::warn!(target: "s3_ferry::transfer", path = %abs.display(), "an input does not exist: taken as a reference");
        references.push(abs);
      }
      Ok(m) if m.is_dir() => directories.push(abs),
      Ok(_) => files.push(abs),
    }
  }
  if !missing.is_empty() || !directories.is_empty() {
    for list in [&mut missing, &mut directories] {
      // As Python sorts `str(path)`.
      list.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
      list.dedup();
    }
    return Err(Error::MisconfiguredInputs {
      missing,
      missing_directories: Vec::new(),
      directories,
    });
  }

  let mut groups: Vec<(PathBuf, AssetRoot)> = Vec::new();
  let outputs = given(outputs).map(absolute).collect::<Result<_>>()?;
  let kinds: [(Vec<PathBuf>, PathsOf); 3] = [
    (files, |g| &mut g.inputs),
    (outputs, |g| &mut g.outputs),
    (references, |g| &mut g.references),
  ];
  for (paths, field) in kinds {
    for abs in paths {
      let shared = locations
        .iter()
        .any(|l| l.kind == LocationKind::Shared && is_under(&abs, &l.path));
      if shared {
        continue;
      }
      // The most specific LOCAL location (the first of equals, as Deadline), else the top directory.
      let local = locations
        .iter()
        .filter(|l| l.kind == LocationKind::Local && is_under(&abs, &l.path))
        .fold(None::<&Location>, |best, l| match best {
          Some(b) if b.path.as_os_str().len() >= l.path.as_os_str().len() => Some(b),
          _ => Some(l),
        });
      let (key, name) = match local {
        Some(l) => (normalize(&l.path), Some(l.name.clone())),
        None => (top_directory(&abs), None),
      };
      let at = match groups.iter().position(|(k, _)| same(k, &key)) {
        Some(i) => i,
        None => {
          let root = AssetRoot {
            root: PathBuf::new(),
            location_name: name,
            inputs: BTreeSet::new(),
            outputs: BTreeSet::new(),
            references: BTreeSet::new(),
          };
          groups.push((key, root));
          groups.len() - 1
        }
      };
      field(&mut groups[at].1).insert(abs);
    }
  }
  let mut roots: Vec<AssetRoot> = groups
    .into_iter()
    .map(|(_, mut g)| {
      let all: Vec<&PathBuf> = g.inputs.iter().chain(&g.outputs).chain(&g.references).collect();
      let common = common_path(&all);
      g.root = match common.is_file() {
        true => common.parent().map(Path::to_path_buf).unwrap_or(common),
        false => common,
      };
      g
    })
    .collect();
  // As Deadline sorts them: by the root's text (Python compares code points; UTF-8 bytes sort the same), then by
  // the location's name. Not by components: `/x/a-b` comes before `/x/a/c` there.
  roots.sort_by(|a, b| {
    (a.root.as_os_str().as_encoded_bytes(), &a.location_name)
      .cmp(&(b.root.as_os_str().as_encoded_bytes(), &b.location_name))
  });
  Ok(roots)
}

/// `path`'s `/`-separated path below `root` (both absolute, as `group` made them): `None` when it is not below
/// `root` or is `root` itself. Component by component, so on Windows a path spelled in another case than its
/// root still is below it.
pub fn relative_to_root(path: &Path, root: &Path) -> Option<String> {
  if !is_under(path, root) {
    return None;
  }
  let below: Vec<&std::ffi::OsStr> = path
    .components()
    .skip(normalize(root).components().count())
    .map(|c| match c {
      Component::Normal(part) => Some(part),
      _ => None,
    })
    .collect::<Option<_>>()?;
  let parts: Vec<&str> = below.iter().map(|p| p.to_str()).collect::<Option<_>>()?;
  (!parts.is_empty()).then(|| parts.join("/"))
}

/// The non-empty paths of a list (Deadline drops empty strings).
fn given(paths: &[PathBuf]) -> impl Iterator<Item = &PathBuf> {
  paths.iter().filter(|p| !p.as_os_str().is_empty())
}

/// Absolute and normalised, without following symlinks.
fn absolute(path: &PathBuf) -> Result<PathBuf> {
  let abs = std::path::absolute(path).map_err(|e| Error::io("resolve", path, e))?;
  // Windows' `absolute` has normalised already (and `..` is literal in a verbatim path); on Unix it has not.
  Ok(if cfg!(windows) { abs } else { normalize(&abs) })
}

/// `..` and `.` removed without touching the file system (Python's `os.path.normpath`), for absolute paths.
fn normalize(path: &Path) -> PathBuf {
  let mut out = PathBuf::new();
  for c in path.components() {
    match c {
      Component::CurDir => {}
      Component::ParentDir => {
        // Never above the root.
        if matches!(out.components().next_back(), Some(Component::Normal(_))) {
          out.pop();
        }
      }
      c => out.push(c.as_os_str()),
    }
  }
  out
}

/// Whether `path` is `base` or below it, component by component (without case on Windows). A relative `base`
/// (an empty or `.` location in a profile) contains nothing, as Python's `relative_to` would refuse it.
fn is_under(path: &Path, base: &Path) -> bool {
  if !base.is_absolute() {
    return false;
  }
  let base = normalize(base);
  let (mut p, mut b) = (path.components(), base.components());
  loop {
    match (b.next(), p.next()) {
      (None, _) => return true,
      (Some(x), Some(y)) if same(Path::new(x.as_os_str()), Path::new(y.as_os_str())) => {}
      _ => return false,
    }
  }
}

/// The first component with its root: `/` on Unix, `C:\` or `\\server\share\` on Windows.
fn top_directory(path: &Path) -> PathBuf {
  let mut top = PathBuf::new();
  for c in path.components() {
    match c {
      Component::Prefix(_) | Component::RootDir => top.push(c.as_os_str()),
      _ => break,
    }
  }
  top
}

/// The longest common leading path of absolute paths (component by component).
fn common_path(paths: &[&PathBuf]) -> PathBuf {
  let mut common: Vec<Component> = match paths.first() {
    Some(p) => p.components().collect(),
    None => return PathBuf::new(),
  };
  for p in &paths[1..] {
    let n = common
      .iter()
      .zip(p.components())
      .take_while(|(a, b)| same(Path::new(a.as_os_str()), Path::new(b.as_os_str())))
      .count();
    common.truncate(n);
  }
  common.iter().map(|c| c.as_os_str()).collect()
}

/// Paths compared as the OS does: exactly on Unix; on Windows without case and with either separator
/// (`ntpath.normcase`).
fn same(a: &Path, b: &Path) -> bool {
  #[cfg(windows)]
  {
    let fold = |p: &Path| p.as_os_str().to_string_lossy().replace('/', "\\").to_lowercase();
    fold(a) == fold(b)
  }
  #[cfg(not(windows))]
  {
    a == b
  }
}

#[cfg(all(test, unix))]
mod tests {
  use super::*;

  fn tree(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in files {
      let p = dir.path().join(f);
      std::fs::create_dir_all(p.parent().unwrap()).unwrap();
      std::fs::write(p, f).unwrap();
    }
    dir
  }

  fn set(base: &Path, paths: &[&str]) -> BTreeSet<PathBuf> {
    paths.iter().map(|p| base.join(p)).collect()
  }

  #[test]
  fn paths_outside_any_location_share_one_root_their_common_path() {
    let dir = tree(&["job/scene.blend", "job/tex/a.png", "lib/b.png"]);
    let d = dir.path();
    let roots = group(
      &[
        d.join("job/scene.blend"),
        d.join("job/tex/../tex/a.png"),
        d.join("lib/./b.png"),
      ],
      &[d.join("job/out")],
      &[],
      &[],
      true,
    )
    .unwrap();
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0].root, d);
    assert_eq!(
      roots[0].inputs,
      set(d, &["job/scene.blend", "job/tex/a.png", "lib/b.png"])
    );
    assert_eq!(roots[0].outputs, set(d, &["job/out"]));
    assert_eq!(roots[0].location_name, None);
  }

  #[test]
  fn a_single_file_is_rooted_at_its_directory() {
    let dir = tree(&["job/scene.blend"]);
    let roots = group(&[dir.path().join("job/scene.blend")], &[], &[], &[], true).unwrap();
    assert_eq!(roots[0].root, dir.path().join("job"));
  }

  #[test]
  fn shared_locations_are_left_out_and_local_ones_are_their_own_roots() {
    let dir = tree(&[
      "proj/a/scene.blend",
      "proj/a/tex/t.png",
      "proj/b/x.png",
      "nas/lib.png",
      "home/h.txt",
    ]);
    let d = dir.path();
    let locations = [
      Location {
        name: "Project".into(),
        path: d.join("proj"),
        kind: LocationKind::Local,
      },
      Location {
        name: "ProjectA".into(),
        path: d.join("proj/a"),
        kind: LocationKind::Local,
      },
      Location {
        name: "Library".into(),
        path: d.join("nas"),
        kind: LocationKind::Shared,
      },
    ];
    let inputs: Vec<PathBuf> = [
      "proj/a/scene.blend",
      "proj/a/tex/t.png",
      "proj/b/x.png",
      "nas/lib.png",
      "home/h.txt",
    ]
    .iter()
    .map(|p| d.join(p))
    .collect();
    let roots = group(&inputs, &[d.join("proj/a/renders")], &[], &locations, true).unwrap();
    let summary: Vec<(PathBuf, Option<String>, usize, usize)> = roots
      .iter()
      .map(|r| (r.root.clone(), r.location_name.clone(), r.inputs.len(), r.outputs.len()))
      .collect();
    assert_eq!(
      summary,
      [
        // The most specific LOCAL location wins; the root is the common path of what is in it.
        (d.join("home"), None, 1, 0),
        (d.join("proj/a"), Some("ProjectA".into()), 2, 1),
        (d.join("proj/b"), Some("Project".into()), 1, 0),
      ]
    );
  }

  #[test]
  fn missing_inputs_and_directories_given_as_files_are_reported_together() {
    let dir = tree(&["job/scene.blend"]);
    let d = dir.path();
    let err = group(
      &[
        d.join("job/scene.blend"),
        d.join("job/gone.png"),
        d.join("job"),
        d.join("a/../nope"),
      ],
      &[],
      &[],
      &[],
      true,
    )
    .unwrap_err();
    match &err {
      Error::MisconfiguredInputs {
        missing, directories, ..
      } => {
        assert_eq!(missing, &[d.join("job/gone.png"), d.join("nope")]);
        assert_eq!(directories, &[d.join("job")]);
      }
      other => panic!("{other:?}"),
    }
    assert_eq!(err.code(), "ERR_MISCONFIGURED_INPUTS");
    let text = err.to_string();
    assert!(
      text.contains("Missing input files:") && text.contains("Directories classified as files:"),
      "{text}"
    );
  }

  #[test]
  fn manifest_names_hash_the_root_alone_as_deadline_does() {
    let root = |name: Option<&str>| AssetRoot {
      root: PathBuf::from("/mnt/projects/job"),
      location_name: name.map(str::to_owned),
      inputs: BTreeSet::new(),
      outputs: BTreeSet::new(),
      references: BTreeSet::new(),
    };
    // Python: xxhash.xxh3_128_hexdigest(b"/mnt/projects/job"), the bytes `_gather_upload_metadata` hashes.
    assert_eq!(root(None).manifest_name(), "e04c18959582f3dff2557a252c387ab7_input");
    assert_eq!(
      root(Some("Projects")).manifest_name(),
      "e04c18959582f3dff2557a252c387ab7_input"
    );
  }

  #[test]
  fn without_require_exist_a_missing_input_is_a_reference_and_directories_still_fail() {
    let dir = tree(&["job/scene.blend"]);
    let d = dir.path();
    let roots = group(
      &[d.join("job/scene.blend"), d.join("job/gone.png")],
      &[],
      &[],
      &[],
      false,
    )
    .unwrap();
    assert_eq!(roots[0].inputs, set(d, &["job/scene.blend"]));
    assert_eq!(roots[0].references, set(d, &["job/gone.png"]));
    assert_eq!(roots[0].root, d.join("job"));
    let err = group(&[d.join("job")], &[], &[], &[], false).unwrap_err();
    assert!(
      matches!(err, Error::MisconfiguredInputs { ref missing, ref directories, .. } if missing.is_empty() && directories == &[d.join("job")])
    );
  }

  #[test]
  fn an_empty_or_relative_location_contains_nothing_and_equal_locations_keep_the_first() {
    let dir = tree(&["job/scene.blend"]);
    let d = dir.path();
    let loc = |name: &str, path: PathBuf, kind| Location {
      name: name.into(),
      path,
      kind,
    };
    let locations = [
      loc("Everything?", PathBuf::new(), LocationKind::Shared),
      loc("Dot", PathBuf::from("."), LocationKind::Shared),
      loc("First", d.join("job"), LocationKind::Local),
      loc("Second", d.join("job"), LocationKind::Local),
    ];
    let roots = group(&[d.join("job/scene.blend")], &[], &[], &locations, true).unwrap();
    assert_eq!(roots.len(), 1, "not dropped by the empty or relative SHARED location");
    assert_eq!(roots[0].location_name.as_deref(), Some("First"));
  }

  #[test]
  fn normalising_never_climbs_above_the_root() {
    assert_eq!(normalize(Path::new("/a/./b/../../../c")), PathBuf::from("/c"));
    assert_eq!(normalize(Path::new("/a/b/")), PathBuf::from("/a/b"));
    assert!(is_under(Path::new("/a/b/c"), Path::new("/a/b")));
    assert!(is_under(Path::new("/a/b"), Path::new("/a/b/")));
    assert!(!is_under(Path::new("/a/bc"), Path::new("/a/b")));
    assert_eq!(top_directory(Path::new("/a/b")), PathBuf::from("/"));
  }
}

//! Where downloaded keys may be written, and the temporary files they are written to first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::error::{Error, Result};

/// Whether destinations follow Windows file-name rules (device names, reserved characters, no trailing dots
/// or spaces). They are applied where the file system is Windows', and tested everywhere as pure functions.
const WINDOWS_NAMES: bool = cfg!(windows);

/// Whether two names that differ only in case are one file: on Windows, and on macOS, whose default volumes
/// are case-insensitive (a case-sensitive APFS volume only loses the chance to hold both).
const CASE_INSENSITIVE: bool = cfg!(any(windows, target_os = "macos"));

/// What a key prefix names, as `aws s3 cp --recursive` reads it: a prefix is a folder. `job/` and `job` both
/// name the folder `job/` (keys under it keep their path below it); `job` also names the object `job` itself,
/// which lands under its own name. `job` never names `job10` or `jobs/x`: names are never cut mid-component.
/// The empty prefix names the whole bucket. Returns the part of `key` that becomes its relative path, or `None`
/// for a key the prefix does not name.
///
/// | prefix | key | relative path |
/// |---|---|---|
/// | `job/` | `job/a/b.txt` | `a/b.txt` |
/// | `job` | `job/a/b.txt` | `a/b.txt` |
/// | `job/scene.blend` | `job/scene.blend` | `scene.blend` |
/// | `sub/f1` | `sub/f10.dat`, `sub/f1.dat` | not named |
pub fn relative_key<'k>(prefix: &str, key: &'k str) -> Option<&'k str> {
  if prefix.is_empty() || prefix.ends_with('/') {
    return key.strip_prefix(prefix);
  }
  if key == prefix {
    return key.rsplit('/').next();
  }
  key.strip_prefix(prefix)?.strip_prefix('/')
}

/// The key prefix a directory upload puts before each relative path: a prefix names a folder, so `job` is
/// `job/` (as `aws s3 cp --recursive` does), never glued to the file names (`jobscene.blend`).
pub fn folder_prefix(prefix: &str) -> std::borrow::Cow<'_, str> {
  if prefix.is_empty() || prefix.ends_with('/') {
    prefix.into()
  } else {
    format!("{prefix}/").into()
  }
}

/// The path under `local_dir` for `key` (listed under `prefix`, see [`relative_key`]), or `None` for keys that
/// name no file (folder markers ending in `/`, keys the prefix does not name). Refuses keys that would land
/// outside `local_dir`: `..` segments, backslashes, NUL and drive letters, and on Windows names that would not
/// be the file they say (see [`windows_name_problem`]), before anything is written.
pub fn destination_for(local_dir: &Path, prefix: &str, key: &str) -> Result<Option<PathBuf>> {
  destination_under(local_dir, prefix, key, WINDOWS_NAMES)
}

fn destination_under(local_dir: &Path, prefix: &str, key: &str, windows: bool) -> Result<Option<PathBuf>> {
  let Some(rel) = relative_key(prefix, key) else {
    return Ok(None);
  };
  if rel.ends_with('/') {
    return Ok(None);
  }
  let outside = |reason: &'static str| Error::PathOutsideDestination {
    key: key.to_owned(),
    local_dir: local_dir.to_owned(),
    reason,
  };
  let mut path = local_dir.to_path_buf();
  let mut segments = 0;
  for (i, seg) in rel.split('/').enumerate() {
    if seg.is_empty() || seg == "." {
      continue;
    }
    let drive = i == 0 && seg.len() == 2 && seg.ends_with(':') && seg.as_bytes()[0].is_ascii_alphabetic();
    if seg == ".." {
      return Err(outside("a '..' segment"));
    }
    if seg.contains('\\') || seg.contains('\0') || drive {
      return Err(outside("a backslash, NUL or drive letter"));
    }
    if windows {
      if let Some(reason) = windows_name_problem(seg) {
        return Err(outside(reason));
      }
    }
    path.push(seg);
    segments += 1;
  }
  Ok((segments > 0).then_some(path))
}

/// Why `name` (one path segment) cannot be written as the file it names on Windows, or `None`:
/// - device names (`CON`, `PRN`, `AUX`, `NUL`, `COM1`-`COM9`, `LPT1`-`LPT9`, also with an extension such as
///   `aux.txt`, and `CONIN$` / `CONOUT$`) open a device, not a file;
/// - `:` names an alternate data stream of another file (`a.txt:secret`);
/// - `<>"|?*` and control characters are refused by the file system;
/// - trailing dots and spaces are dropped by Windows, so `a.` would be written to `a`.
pub fn windows_name_problem(name: &str) -> Option<&'static str> {
  if name.contains(':') {
    return Some("':' names an alternate data stream on Windows");
  }
  if name
    .chars()
    .any(|c| matches!(c, '<' | '>' | '"' | '|' | '?' | '*') || c.is_ascii_control())
  {
    return Some("a character Windows does not allow in file names (<>\"|?* or a control character)");
  }
  if name.ends_with('.') || name.ends_with(' ') {
    return Some("a trailing dot or space, which Windows drops from file names");
  }
  // Windows matches device names on the part before the first dot, ignoring trailing spaces and case; the
  // superscript digits ¹²³ count as digits there too.
  let stem = name
    .split('.')
    .next()
    .unwrap_or(name)
    .trim_end_matches(' ')
    .to_ascii_uppercase();
  let device = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$")
    || ["COM", "LPT"].iter().any(|p| {
      stem.strip_prefix(p).is_some_and(|n| {
        let mut c = n.chars();
        matches!((c.next(), c.next()), (Some('1'..='9' | '¹' | '²' | '³'), None))
      })
    });
  device.then_some("a Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9)")
}

/// Checks, before `dir` is created, that no symlink among its existing ancestors (below `local_dir`) leads
/// out of `local_dir`: a link in the destination tree to `/etc` must not make a key land in `/etc`. Links that
/// stay inside the tree are followed. Runs on a blocking thread; one `lstat` per existing component, and the
/// caller checks each directory once.
pub fn check_contained(local_dir: &Path, dir: &Path, key: &str) -> Result<()> {
  let outside = || Error::PathOutsideDestination {
    key: key.to_owned(),
    local_dir: local_dir.to_owned(),
    reason: "a symbolic link or junction in the destination that leads out of it",
  };
  let Ok(rel) = dir.strip_prefix(local_dir) else {
    return Err(outside());
  };
  let mut root: Option<PathBuf> = None;
  let mut at = local_dir.to_path_buf();
  for part in rel.components() {
    at.push(part);
    match std::fs::symlink_metadata(&at) {
      Err(_) => return Ok(()), // from here on, created by us as real directories
      Ok(meta) if meta.file_type().is_symlink() => {
        let root = match &root {
          Some(r) => r,
          None => root.insert(
            local_dir
              .canonicalize()
              .map_err(|e| Error::io("resolve", local_dir, e))?,
          ),
        };
        let target = at.canonicalize().map_err(|e| Error::io("resolve", &at, e))?;
        if !target.starts_with(root) {
          return Err(outside());
        }
      }
      Ok(_) => {}
    }
  }
  Ok(())
}

/// Two listed keys that would write the same file (`a//b` and `a/b`; `A.txt` and `a.txt` where names are
/// case-insensitive), or a file where another key needs a directory (`a` and `a/b`): the pair, found before
/// anything is fetched.
pub fn conflicting_destinations<'a>(entries: impl Iterator<Item = (&'a str, &'a Path)>) -> Option<(String, String)> {
  conflicting_under(entries, CASE_INSENSITIVE)
}

fn conflicting_under<'a>(
  entries: impl Iterator<Item = (&'a str, &'a Path)>,
  fold_case: bool,
) -> Option<(String, String)> {
  let mut files: HashMap<PathBuf, &str> = HashMap::new();
  let mut dirs: HashMap<PathBuf, &str> = HashMap::new();
  for (key, dest) in entries {
    // Lowercase is what Windows and macOS compare closely enough for the names S3 keys carry (their tables
    // are simple case mappings); a path that is not Unicode is compared as it is.
    let dest = match dest.to_str() {
      Some(s) if fold_case => PathBuf::from(s.to_lowercase()),
      _ => dest.to_path_buf(),
    };
    if let Some(other) = dirs.get(&dest) {
      return Some(((*other).to_owned(), key.to_owned()));
    }
    for dir in dest.ancestors().skip(1) {
      if let Some(other) = files.get(dir) {
        return Some(((*other).to_owned(), key.to_owned()));
      }
      if dirs.insert(dir.to_path_buf(), key).is_some() {
        break; // its ancestors are recorded already
      }
    }
    if let Some(other) = files.insert(dest, key) {
      return Some((other.to_owned(), key.to_owned()));
    }
  }
  None
}

/// A temporary file beside a destination, removed on drop unless it was renamed into place. So a failure, a
/// cancel or a panic never leaves a half-written file at the destination or a stray temporary beside it.
#[derive(Debug)]
pub struct TempFile {
  path: PathBuf,
  file: Option<std::fs::File>,
  persisted: bool,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// The longest file name the common file systems take (ext4, APFS: bytes; NTFS: UTF-16 units).
const MAX_NAME_BYTES: usize = 255;

impl TempFile {
  /// Creates `.<name>.<unique>.s3ferry-part` in the destination's directory (same file system, so the final
  /// rename is atomic), with `<name>` cut short where the whole would pass 255 bytes.
  pub fn create_beside(dest: &Path) -> Result<Self> {
    let name = dest
      .file_name()
      .map(|n| n.to_string_lossy().into_owned())
      .unwrap_or_default();
    let unique = format!(
      ".{:x}-{:x}.s3ferry-part",
      std::process::id(),
      NEXT.fetch_add(1, Relaxed)
    );
    // A name that fits the file system must not fail for its temporary's sake: the name is cut (at a character)
    // so the whole stays within 255 bytes, the limit of Linux and macOS file systems in bytes and of NTFS in
    // UTF-16 units (never more units than bytes).
    let room = MAX_NAME_BYTES - 1 - unique.len();
    let cut = name
      .char_indices()
      .map(|(i, c)| i + c.len_utf8())
      .take_while(|&end| end <= room)
      .last()
      .unwrap_or(0);
    let path = dest.with_file_name(format!(".{}{unique}", &name[..cut]));
    let file = std::fs::OpenOptions::new()
      .read(true) // for checksum verification by a second pass
      .write(true)
      .create_new(true)
      .open(&path)
      .map_err(|e| Error::io("create", dest, e))?;
    Ok(TempFile {
      path,
      file: Some(file),
      persisted: false,
    })
  }

  /// The temporary file's own path.
  pub fn path(&self) -> &Path {
    &self.path
  }

  /// The open file, for positional writes.
  pub fn take_file(&mut self) -> std::fs::File {
    self.file.take().expect("the file is taken once")
  }

  /// Renames the finished file over `dest`.
  pub fn persist(mut self, dest: &Path) -> Result<()> {
    std::fs::rename(&self.path, dest).map_err(|e| Error::io("rename", dest, e))?;
    self.persisted = true;
    Ok(())
  }

  /// Puts the finished file at `dest` only if nothing is there, atomically where the file system has hard
  /// links (a link fails if the name exists, even if it appeared a moment ago; NTFS, APFS and Linux file
  /// systems have them). On one without (FAT and exFAT drives, some network shares) the name is checked and
  /// then renamed, which a file appearing in between could lose to. `Ok(false)`: `dest` exists, nothing
  /// changed, the temporary stays.
  pub fn persist_new(&mut self, dest: &Path) -> Result<bool> {
    let linked = std::fs::hard_link(&self.path, dest);
    self.place_new(dest, linked)
  }

  /// `persist_new` after the hard link's outcome (a seam, so the file systems without links are tested too).
  fn place_new(&mut self, dest: &Path, linked: std::io::Result<()>) -> Result<bool> {
    match linked {
      Ok(()) => {
        let _ = std::fs::remove_file(&self.path);
        self.persisted = true;
        Ok(true)
      }
      Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
      Err(e) if no_hard_links(&e) => {
        if std::fs::symlink_metadata(dest).is_ok() {
          return Ok(false);
        }
        std::fs::rename(&self.path, dest).map_err(|e| Error::io("rename", dest, e))?;
        self.persisted = true;
        Ok(true)
      }
      Err(e) => Err(Error::io("create", dest, e)),
    }
  }
}

/// A hard link refused because the file system has none: `EPERM` (Linux's FAT driver), `EOPNOTSUPP` / `ENOTSUP`
/// (95 on Linux; macOS answers `ENOTSUP`, 45), `ERROR_INVALID_FUNCTION` / `ERROR_NOT_SUPPORTED` on Windows.
fn no_hard_links(e: &std::io::Error) -> bool {
  if e.kind() == std::io::ErrorKind::Unsupported {
    return true;
  }
  let raw = e.raw_os_error();
  if cfg!(windows) {
    matches!(raw, Some(1 | 50))
  } else {
    matches!(raw, Some(1)) || raw == Some(if cfg!(target_os = "linux") { 95 } else { 45 })
  }
}

/// `name (n).ext` beside `dest`, as file managers and browsers name copies: `scene.blend` → `scene (1).blend`,
/// `archive.tar.gz` → `archive (1).tar.gz`, `.bashrc` → `.bashrc (1)`.
pub fn copy_name(dest: &Path, n: u32) -> PathBuf {
  let name = dest
    .file_name()
    .map(|n| n.to_string_lossy().into_owned())
    .unwrap_or_default();
  let split = name
    .char_indices()
    .skip(1)
    .find(|&(_, c)| c == '.')
    .map_or(name.len(), |(i, _)| i);
  dest.with_file_name(format!("{} ({n}){}", &name[..split], &name[split..]))
}

impl Drop for TempFile {
  fn drop(&mut self) {
    if !self.persisted {
      let _ = std::fs::remove_file(&self.path);
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn keys_map_under_the_destination() {
    let d = Path::new("/dst");
    assert_eq!(
      destination_for(d, "job/", "job/a/b.txt").unwrap(),
      Some(PathBuf::from("/dst/a/b.txt"))
    );
    assert_eq!(
      destination_for(d, "job", "job/a").unwrap(),
      Some(PathBuf::from("/dst/a"))
    );
    assert_eq!(
      destination_for(d, "", "x//./y z").unwrap(),
      Some(PathBuf::from("/dst/x/y z"))
    );
    assert_eq!(destination_for(d, "job/", "job/dir/").unwrap(), None);
    assert_eq!(destination_for(d, "job/", "job/").unwrap(), None);
  }

  #[test]
  fn a_prefix_names_a_folder_and_the_object_itself_never_part_of_a_name() {
    let d = Path::new("/dst");
    let dest = |prefix, key| destination_for(d, prefix, key).unwrap();
    assert_eq!(
      dest("job/scene.blend", "job/scene.blend"),
      Some(PathBuf::from("/dst/scene.blend"))
    );
    assert_eq!(dest("sub/f1", "sub/f1"), Some(PathBuf::from("/dst/f1")));
    assert_eq!(dest("sub/f1", "sub/f1/x.dat"), Some(PathBuf::from("/dst/x.dat")));
    assert_eq!(dest("sub/f1", "sub/f10.dat"), None);
    assert_eq!(dest("sub/f1", "sub/f1.dat"), None);
    assert_eq!(dest("job", "jobs/x"), None);
    assert_eq!(dest("", "a/b"), Some(PathBuf::from("/dst/a/b")));
    assert_eq!(folder_prefix("noslash"), "noslash/");
    assert_eq!(folder_prefix("job/"), "job/");
    assert_eq!(folder_prefix(""), "");
  }

  #[cfg(unix)] // creating symlinks on Windows needs a privilege; the check itself is the same code there
  #[test]
  fn symlinks_out_of_the_destination_are_refused_inside_ones_followed() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let d = root.path();
    std::fs::create_dir(d.join("real")).unwrap();
    std::os::unix::fs::symlink(outside.path(), d.join("out")).unwrap();
    std::os::unix::fs::symlink(d.join("real"), d.join("in")).unwrap();
    assert!(check_contained(d, &d.join("real/new/deeper"), "k").is_ok());
    assert!(check_contained(d, &d.join("in/x"), "k").is_ok());
    assert!(check_contained(d, d, "k").is_ok());
    for dir in [d.join("out"), d.join("out/x/y")] {
      let e = check_contained(d, &dir, "out/x/y/f").unwrap_err();
      assert_eq!(e.code(), "ERR_PATH_OUTSIDE_DESTINATION");
      assert_eq!(e.key(), Some("out/x/y/f"));
    }
  }

  #[test]
  fn keys_that_would_share_a_destination_are_found() {
    let e =
      |pairs: &[(&'static str, &'static str)]| conflicting_destinations(pairs.iter().map(|(k, p)| (*k, Path::new(*p))));
    assert_eq!(e(&[("a/b", "/d/a/b"), ("a/c", "/d/a/c"), ("b", "/d/b")]), None);
    assert_eq!(
      e(&[("a/b", "/d/a/b"), ("a//b", "/d/a/b")]),
      Some(("a/b".into(), "a//b".into()))
    );
    assert_eq!(e(&[("a", "/d/a"), ("a/b", "/d/a/b")]), Some(("a".into(), "a/b".into())));
    assert_eq!(
      e(&[("a/b/c", "/d/a/b/c"), ("a/b", "/d/a/b")]),
      Some(("a/b/c".into(), "a/b".into()))
    );
  }

  #[test]
  fn keys_that_escape_are_refused() {
    let d = Path::new("/dst");
    for key in ["../x", "a/../../x", "a\\..\\x", "C:/x", "a\0b", "job/../../etc/passwd"] {
      let e = destination_for(d, "", key).unwrap_err();
      assert_eq!(e.code(), "ERR_PATH_OUTSIDE_DESTINATION", "{key}");
      assert_eq!(e.key(), Some(key));
    }
    // An absolute-looking key stays under the destination.
    assert_eq!(
      destination_for(d, "", "/etc/passwd").unwrap(),
      Some(PathBuf::from("/dst/etc/passwd"))
    );
  }

  #[test]
  fn windows_names_that_are_not_their_file_are_refused() {
    for name in [
      "CON",
      "con",
      "nul.txt",
      "aux.tar.gz",
      "PRN",
      "COM1",
      "lpt9.log",
      "COM\u{b9}",
      "CON .txt",
      "CONIN$",
      "a:b",
      "a.txt:stream",
      "a<b",
      "a>b",
      "a\"b",
      "a|b",
      "a?",
      "*",
      "tab\there",
      "bell\u{7}",
      "dot.",
      "space ",
      "...",
    ] {
      assert!(windows_name_problem(name).is_some(), "{name:?} should be refused");
    }
    for name in [
      "CONSOLE",
      "COM0",
      "COM10",
      "LPT",
      "nul_",
      "xCON",
      "a.con",
      "file.txt",
      ".hidden",
      "ü ñ 你好.exr",
      "a b",
    ] {
      assert_eq!(windows_name_problem(name), None, "{name:?} is a fine Windows name");
    }
    let d = Path::new("/dst");
    for key in ["job/CON", "job/sub/aux.txt/x", "job/a.txt:s", "job/trail./f", "job/q?"] {
      let e = destination_under(d, "job/", key, true).unwrap_err();
      assert_eq!(e.code(), "ERR_PATH_OUTSIDE_DESTINATION", "{key}");
      assert_eq!(e.key(), Some(key));
      assert!(e.to_string().contains("Windows"), "{e}");
      // The same keys are ordinary names elsewhere.
      assert!(destination_under(d, "job/", key, false).unwrap().is_some(), "{key}");
    }
    assert_eq!(
      destination_under(d, "job/", "job/console/a.txt", true).unwrap(),
      Some(PathBuf::from("/dst/console/a.txt"))
    );
  }

  #[test]
  fn keys_differing_only_in_case_conflict_where_names_fold_case() {
    let pairs = [("A.txt", "/d/A.txt"), ("a.txt", "/d/a.txt")];
    let entries = || pairs.iter().map(|(k, p)| (*k, Path::new(*p)));
    assert_eq!(conflicting_under(entries(), false), None);
    assert_eq!(
      conflicting_under(entries(), true),
      Some(("A.txt".into(), "a.txt".into()))
    );
    // A folder and a file whose names differ only in case collide too.
    let pairs = [("Dir/x", "/d/Dir/x"), ("dir", "/d/dir")];
    let entries = || pairs.iter().map(|(k, p)| (*k, Path::new(*p)));
    assert_eq!(conflicting_under(entries(), false), None);
    assert_eq!(conflicting_under(entries(), true), Some(("Dir/x".into(), "dir".into())));
    let pairs = [("Ünï/x", "/d/Ünï/x"), ("ünÏ/y", "/d/ünÏ/y")];
    let entries = pairs.iter().map(|(k, p)| (*k, Path::new(*p)));
    assert_eq!(conflicting_under(entries, true), None, "one folder, two files");
  }

  #[test]
  fn copies_are_named_like_file_managers_do() {
    assert_eq!(
      copy_name(Path::new("/d/scene.blend"), 1),
      PathBuf::from("/d/scene (1).blend")
    );
    assert_eq!(
      copy_name(Path::new("/d/archive.tar.gz"), 2),
      PathBuf::from("/d/archive (2).tar.gz")
    );
    assert_eq!(copy_name(Path::new("/d/.bashrc"), 1), PathBuf::from("/d/.bashrc (1)"));
    assert_eq!(copy_name(Path::new("/d/README"), 3), PathBuf::from("/d/README (3)"));
  }

  #[test]
  fn persist_new_never_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    std::fs::write(&dest, b"old").unwrap();
    let mut t = TempFile::create_beside(&dest).unwrap();
    std::io::Write::write_all(&mut t.take_file(), b"new").unwrap();
    assert!(!t.persist_new(&dest).unwrap());
    assert_eq!(std::fs::read(&dest).unwrap(), b"old");
    let copy = copy_name(&dest, 1);
    assert!(t.persist_new(&copy).unwrap());
    assert_eq!(std::fs::read(&copy).unwrap(), b"new");
    drop(t);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "no temporary left");
  }

  #[test]
  fn without_hard_links_persist_new_renames_only_onto_a_free_name() {
    let dir = tempfile::tempdir().unwrap();
    let unsupported = || std::io::Error::from(std::io::ErrorKind::Unsupported);
    let dest = dir.path().join("f");
    std::fs::write(&dest, b"old").unwrap();
    let mut t = TempFile::create_beside(&dest).unwrap();
    std::io::Write::write_all(&mut t.take_file(), b"new").unwrap();
    assert!(
      !t.place_new(&dest, Err(unsupported())).unwrap(),
      "an existing name is kept"
    );
    assert_eq!(std::fs::read(&dest).unwrap(), b"old");
    let copy = copy_name(&dest, 1);
    assert!(t.place_new(&copy, Err(unsupported())).unwrap());
    assert_eq!(std::fs::read(&copy).unwrap(), b"new");
    drop(t);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "no temporary left");
    // Other link failures are errors, not a reason to rename.
    let mut t = TempFile::create_beside(&dest).unwrap();
    let e = t.place_new(
      &copy_name(&dest, 2),
      Err(std::io::Error::from(std::io::ErrorKind::StorageFull)),
    );
    assert_eq!(e.unwrap_err().code(), "ENOSPC");
    assert!(
      no_hard_links(&std::io::Error::from_raw_os_error(1)),
      "EPERM, Linux's FAT"
    );
  }

  #[test]
  fn the_longest_names_get_a_temporary_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["x".repeat(255), "é".repeat(127), format!("{}.blend", "a".repeat(240))] {
      let dest = dir.path().join(&name);
      let mut t = TempFile::create_beside(&dest).unwrap();
      let temp = t.path().file_name().unwrap().len();
      assert!(temp <= 255, "{temp} bytes");
      std::io::Write::write_all(&mut t.take_file(), b"ok").unwrap();
      t.persist(&dest).unwrap();
      assert_eq!(std::fs::read(&dest).unwrap(), b"ok");
    }
  }

  #[test]
  fn temp_files_vanish_unless_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    let t = TempFile::create_beside(&dest).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    drop(t);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let mut t = TempFile::create_beside(&dest).unwrap();
    std::io::Write::write_all(&mut t.take_file(), b"ok").unwrap();
    t.persist(&dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"ok");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
  }
}

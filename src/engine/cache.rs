//! The local cache: one SQLite file in a directory the caller picks. It remembers
//! - file hashes by path + size + modification time, so an unchanged file is not read again;
//! - content-addressed keys seen in S3 (per endpoint and bucket), for 30 days, so they are not checked again;
//! - multipart uploads in progress (upload id, part size, parts sent with their checksums) with the file they
//!   send, so an upload cut short by a crash or an outage resumes where it stopped.
//!
//! The cache only ever saves work: a stale or missing row means the work is done again, never that something is
//! skipped wrongly (a hash is keyed by the file's size and mtime; a seen key could only be wrong if someone
//! deleted objects from the data store, which the original system's cache assumes too; a resumed upload's parts
//! are checked against the server and the file). A cache that cannot be opened or written is logged and ignored.
//!
//! Every method blocks (SQLite I/O): call them from the blocking pool, batched, never per request on the
//! runtime's threads.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

use super::deadline_cache::DeadlineCache;

/// How long a key seen in S3 is trusted without asking again (the original system's 30 days).
pub const SEEN_KEY_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The cache file inside the cache directory.
pub const FILE_NAME: &str = "s3-ferry-cache.sqlite3";

/// A file as the cache knows it: where it is and what it looked like.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileKey {
  pub path: PathBuf,
  pub size: u64,
  /// Modification time in nanoseconds since the epoch (0 if unknown: such a file is never cached).
  pub mtime_ns: i64,
}

impl FileKey {
  pub fn new(path: &Path, size: u64, modified: Option<SystemTime>) -> Self {
    FileKey {
      path: path.to_owned(),
      size,
      mtime_ns: modified.map_or(0, nanos_since_epoch),
    }
  }
}

/// A multipart upload the cache remembers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
  pub upload_id: String,
  pub part_size: u64,
  /// The checksum algorithm its parts were sent with ("" for none).
  pub algorithm: String,
  /// Parts known sent: (number, ETag, checksum as S3 encodes it, "" for none).
  pub parts: Vec<(i32, String, String)>,
}

/// One open cache.
pub struct Cache {
  conn: Mutex<Connection>,
  path: PathBuf,
  /// Deadline's own caches, when shared (`deadlineCache`).
  deadline: Option<DeadlineCache>,
}

impl std::fmt::Debug for Cache {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("Cache").field("path", &self.path).finish()
  }
}

type Sql<T> = rusqlite::Result<T>;

impl Cache {
  /// Opens (creating if needed) the cache in `dir`.
  pub fn open(dir: &Path) -> Sql<Cache> {
    std::fs::create_dir_all(dir).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let path = dir.join(FILE_NAME);
    let conn = Connection::open(&path)?;
    // WAL: readers never wait for a writer; several processes may share the cache. A commit survives the
    // process being killed (NORMAL syncs at checkpoints, enough for a cache: an OS crash may lose the last rows,
    // which only means redoing work).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // Paths are stored as the OS's own bytes (`OsStr::as_encoded_bytes`: the bytes on Unix, WTF-8 on Windows),
    // so every path has one exact key, including names that are not valid Unicode.
    conn.execute_batch(
      "CREATE TABLE IF NOT EXISTS file_hashes (
         path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, hash TEXT NOT NULL);
       CREATE TABLE IF NOT EXISTS seen_keys (
         scope TEXT NOT NULL, key TEXT NOT NULL, seen_at INTEGER NOT NULL, PRIMARY KEY (scope, key));
       CREATE TABLE IF NOT EXISTS uploads (
         upload_id TEXT PRIMARY KEY, scope TEXT NOT NULL, key TEXT NOT NULL, path BLOB NOT NULL,
         size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, part_size INTEGER NOT NULL, algorithm TEXT NOT NULL,
         created_at INTEGER NOT NULL);
       CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (scope, key);
       CREATE TABLE IF NOT EXISTS upload_parts (
         upload_id TEXT NOT NULL, number INTEGER NOT NULL, etag TEXT NOT NULL, checksum TEXT NOT NULL,
         PRIMARY KEY (upload_id, number));",
    )?;
    let cutoff = now_secs() - SEEN_KEY_TTL.as_secs() as i64;
    conn.execute("DELETE FROM seen_keys WHERE seen_at < ?1", params![cutoff])?;
    Ok(Cache {
      conn: Mutex::new(conn),
      path,
      deadline: None,
    })
  }

  /// Also reads and writes Deadline's caches in `dir` (see `deadline_cache`).
  pub fn share_with_deadline(&mut self, dir: &Path) {
    self.deadline = Some(DeadlineCache::open(dir));
  }

  /// Runs `f` on Deadline's caches when they are shared; their failures are logged, never the call's.
  fn with_deadline<T>(&self, f: impl FnOnce(&DeadlineCache) -> Sql<T>) -> Option<T> {
    let d = self.deadline.as_ref()?;
    f(d)
      .map_err(|e| tracing::warn!(target: "s3_ferry::cache", error = %e, "Deadline's cache: operation failed"))
      .ok()
  }

  /// The cache file.
  pub fn path(&self) -> &Path {
    &self.path
  }

  fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
    self.conn.lock().unwrap_or_else(|p| p.into_inner())
  }

  /// The cached hash of each file, if it was hashed at this size and mtime.
  pub fn hashes(&self, files: &[FileKey]) -> Sql<Vec<Option<String>>> {
    let conn = self.conn();
    let mut stmt =
      conn.prepare_cached("SELECT hash FROM file_hashes WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3")?;
    files
      .iter()
      .map(|f| match f.mtime_ns {
        0 => Ok(None),
        m => {
          let own: Option<String> = stmt
            .query_row(params![f.path.as_os_str().as_encoded_bytes(), f.size as i64, m], |r| {
              r.get(0)
            })
            .optional()?;
          Ok(own.or_else(|| self.with_deadline(|d| d.hash(&f.path, m)).flatten()))
        }
      })
      .collect()
  }

  /// Remembers files' hashes, in one transaction.
  pub fn put_hashes(&self, rows: &[(FileKey, String)]) -> Sql<()> {
    let mut conn = self.conn();
    let tx = conn.transaction()?;
    {
      let mut stmt = tx.prepare_cached("INSERT OR REPLACE INTO file_hashes VALUES (?1, ?2, ?3, ?4)")?;
      for (f, hash) in rows.iter().filter(|(f, _)| f.mtime_ns != 0) {
        stmt.execute(params![
          f.path.as_os_str().as_encoded_bytes(),
          f.size as i64,
          f.mtime_ns,
          hash
        ])?;
      }
    }
    tx.commit()?;
    drop(conn);
    self.with_deadline(|d| {
      let rows: Vec<(PathBuf, i64, String)> = rows
        .iter()
        .filter(|(f, _)| f.mtime_ns != 0)
        .map(|(f, h)| (f.path.clone(), f.mtime_ns, h.clone()))
        .collect();
      d.put_hashes(&rows)
    });
    Ok(())
  }

  /// Forgets the hashes of these files (absolute paths), whatever size and mtime they were hashed at.
  pub fn forget_hashes(&self, paths: &[PathBuf]) -> Sql<()> {
    let conn = self.conn();
    let mut stmt = conn.prepare_cached("DELETE FROM file_hashes WHERE path = ?1")?;
    for p in paths {
      stmt.execute(params![p.as_os_str().as_encoded_bytes()])?;
    }
    self.with_deadline(|d| d.forget_hashes(paths));
    Ok(())
  }

  /// Which of `keys` were seen in `scope` (an endpoint and bucket) within the last 30 days.
  pub fn seen(&self, scope: &str, keys: &[String]) -> Sql<Vec<bool>> {
    let conn = self.conn();
    let cutoff = now_secs() - SEEN_KEY_TTL.as_secs() as i64;
    let mut stmt = conn.prepare_cached("SELECT 1 FROM seen_keys WHERE scope = ?1 AND key = ?2 AND seen_at >= ?3")?;
    let own: Vec<bool> = keys
      .iter()
      .map(|k| stmt.exists(params![scope, k, cutoff]))
      .collect::<Sql<_>>()?;
    let theirs = self
      .with_deadline(|d| d.seen(bucket_of(scope), keys))
      .unwrap_or_default();
    Ok(
      own
        .iter()
        .enumerate()
        .map(|(i, o)| *o || theirs.get(i) == Some(&true))
        .collect(),
    )
  }

  /// Remembers keys as present in `scope` now.
  pub fn put_seen(&self, scope: &str, keys: &[String]) -> Sql<()> {
    let mut conn = self.conn();
    let now = now_secs();
    let tx = conn.transaction()?;
    {
      let mut stmt = tx.prepare_cached("INSERT OR REPLACE INTO seen_keys VALUES (?1, ?2, ?3)")?;
      for k in keys {
        stmt.execute(params![scope, k, now])?;
      }
    }
    tx.commit()?;
    drop(conn);
    self.with_deadline(|d| d.put_seen(bucket_of(scope), keys));
    Ok(())
  }

  /// Forgets every key seen in `scope` (one was found missing: the record of that bucket is not to be trusted).
  pub fn forget_scope(&self, scope: &str) -> Sql<()> {
    self
      .conn()
      .execute("DELETE FROM seen_keys WHERE scope = ?1", params![scope])?;
    self.with_deadline(|d| d.forget_bucket(bucket_of(scope)));
    Ok(())
  }

  /// Forgets keys (found missing after all).
  pub fn forget_seen(&self, scope: &str, keys: &[String]) -> Sql<()> {
    let conn = self.conn();
    let mut stmt = conn.prepare_cached("DELETE FROM seen_keys WHERE scope = ?1 AND key = ?2")?;
    for k in keys {
      stmt.execute(params![scope, k])?;
    }
    Ok(())
  }

  /// The newest recorded multipart upload of this file to this key, with its parts. Records of the same key for
  /// another file, size or mtime are returned by `stale_uploads` instead.
  pub fn find_upload(&self, scope: &str, key: &str, file: &FileKey) -> Sql<Option<UploadRecord>> {
    let conn = self.conn();
    let found: Option<(String, i64, String)> = conn
      .query_row(
        "SELECT upload_id, part_size, algorithm FROM uploads
         WHERE scope = ?1 AND key = ?2 AND path = ?3 AND size = ?4 AND mtime_ns = ?5 AND mtime_ns != 0
         ORDER BY created_at DESC LIMIT 1",
        params![
          scope,
          key,
          file.path.as_os_str().as_encoded_bytes(),
          file.size as i64,
          file.mtime_ns
        ],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
      )
      .optional()?;
    let Some((upload_id, part_size, algorithm)) = found else {
      return Ok(None);
    };
    let mut stmt =
      conn.prepare_cached("SELECT number, etag, checksum FROM upload_parts WHERE upload_id = ?1 ORDER BY number")?;
    let parts = stmt
      .query_map(params![upload_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
      .collect::<Sql<Vec<_>>>()?;
    Ok(Some(UploadRecord {
      upload_id,
      part_size: part_size as u64,
      algorithm,
      parts,
    }))
  }

  /// Upload ids recorded for `key` that do not belong to this file as it is now (changed, or another file):
  /// they can never be resumed and should be aborted.
  pub fn stale_uploads(&self, scope: &str, key: &str, file: &FileKey) -> Sql<Vec<String>> {
    let conn = self.conn();
    let mut stmt = conn.prepare_cached(
      "SELECT upload_id FROM uploads WHERE scope = ?1 AND key = ?2
       AND NOT (path = ?3 AND size = ?4 AND mtime_ns = ?5 AND mtime_ns != 0)",
    )?;
    let ids = stmt
      .query_map(
        params![
          scope,
          key,
          file.path.as_os_str().as_encoded_bytes(),
          file.size as i64,
          file.mtime_ns
        ],
        |r| r.get(0),
      )?
      .collect::<Sql<Vec<String>>>()?;
    Ok(ids)
  }

  /// Records a multipart upload just created.
  pub fn record_upload(
    &self,
    scope: &str,
    key: &str,
    file: &FileKey,
    upload_id: &str,
    part_size: u64,
    algorithm: &str,
  ) -> Sql<()> {
    if file.mtime_ns == 0 {
      return Ok(());
    }
    self.conn().execute(
      "INSERT OR REPLACE INTO uploads VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
      params![
        upload_id,
        scope,
        key,
        file.path.as_os_str().as_encoded_bytes(),
        file.size as i64,
        file.mtime_ns,
        part_size as i64,
        algorithm,
        now_secs()
      ],
    )?;
    Ok(())
  }

  /// Records a part sent (its ETag and checksum as the server returned them).
  pub fn record_part(&self, upload_id: &str, number: i32, etag: &str, checksum: &str) -> Sql<()> {
    self.conn().execute(
      "INSERT OR REPLACE INTO upload_parts VALUES (?1, ?2, ?3, ?4)",
      params![upload_id, number, etag, checksum],
    )?;
    Ok(())
  }

  /// Forgets an upload (completed, aborted, or gone from the server).
  pub fn forget_upload(&self, upload_id: &str) -> Sql<()> {
    let mut conn = self.conn();
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM upload_parts WHERE upload_id = ?1", params![upload_id])?;
    tx.execute("DELETE FROM uploads WHERE upload_id = ?1", params![upload_id])?;
    tx.commit()
  }
}

/// The bucket of a cache scope (`{endpoint or region} {bucket}`; bucket names have no spaces): Deadline's records
/// are per bucket only.
fn bucket_of(scope: &str) -> &str {
  scope.rsplit(' ').next().unwrap_or(scope)
}

/// Runs a cache operation on the blocking pool (never on the runtime's threads); a failing cache is logged and
/// gives `None`: the cache only ever saves work.
pub(crate) async fn cache_op<T: Send + 'static>(
  cache: &std::sync::Arc<Cache>,
  f: impl FnOnce(&Cache) -> Sql<T> + Send + 'static,
) -> Option<T> {
  let c = cache.clone();
  match super::scheduler::blocking(move || Ok(f(&c))).await {
    Ok(Ok(v)) => Some(v),
    Ok(Err(e)) => {
      tracing::warn!(target: "s3_ferry::cache", error = %e, "cache operation failed");
      None
    }
    Err(_) => None,
  }
}

fn nanos_since_epoch(t: SystemTime) -> i64 {
  match t.duration_since(UNIX_EPOCH) {
    Ok(d) => d.as_nanos().min(i64::MAX as u128) as i64,
    Err(e) => -(e.duration().as_nanos().min(i64::MAX as u128) as i64),
  }
}

fn now_secs() -> i64 {
  SystemTime::now()
    .duration_since(UNIX_EPOCH)
    .map_or(0, |d| d.as_secs() as i64)
}

/// The default cache directory: `$S3_FERRY_CACHE_DIR`, else `$XDG_CACHE_HOME/s3-ferry`, else
/// `~/.cache/s3-ferry` (`%LOCALAPPDATA%\s3-ferry` on Windows, `~/Library/Caches/s3-ferry` on macOS).
pub fn default_dir() -> Option<PathBuf> {
  let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
  if let Some(dir) = env("S3_FERRY_CACHE_DIR") {
    return Some(dir);
  }
  if cfg!(windows) {
    return env("LOCALAPPDATA").map(|d| d.join("s3-ferry"));
  }
  if cfg!(target_os = "macos") {
    return env("HOME").map(|h| h.join("Library/Caches/s3-ferry"));
  }
  env("XDG_CACHE_HOME")
    .map(|d| d.join("s3-ferry"))
    .or_else(|| env("HOME").map(|h| h.join(".cache/s3-ferry")))
}

#[cfg(test)]
mod tests {
  use super::*;

  fn key(path: &str, size: u64, mtime_ns: i64) -> FileKey {
    FileKey {
      path: path.into(),
      size,
      mtime_ns,
    }
  }

  #[test]
  fn hashes_are_kept_by_path_size_and_mtime() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let a = key("/a", 5, 100);
    cache
      .put_hashes(&[(a.clone(), "h1".into()), (key("/b", 1, 0), "never".into())])
      .unwrap();
    // Reopened: the rows are on disk.
    drop(cache);
    let cache = Cache::open(dir.path()).unwrap();
    let got = cache
      .hashes(&[a.clone(), key("/a", 6, 100), key("/a", 5, 101), key("/b", 1, 0)])
      .unwrap();
    assert_eq!(got, [Some("h1".to_owned()), None, None, None]);
  }

  #[test]
  fn seen_keys_expire_after_thirty_days_and_are_per_scope() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let keys = ["k1".to_owned(), "k2".to_owned()];
    cache.put_seen("s1", &keys[..1]).unwrap();
    assert_eq!(cache.seen("s1", &keys).unwrap(), [true, false]);
    assert_eq!(cache.seen("s2", &keys).unwrap(), [false, false]);
    let old = now_secs() - SEEN_KEY_TTL.as_secs() as i64 - 1;
    cache
      .conn()
      .execute("UPDATE seen_keys SET seen_at = ?1", params![old])
      .unwrap();
    assert_eq!(cache.seen("s1", &keys).unwrap(), [false, false]);
    cache.put_seen("s1", &keys).unwrap();
    cache.forget_seen("s1", &keys[1..]).unwrap();
    assert_eq!(cache.seen("s1", &keys).unwrap(), [true, false]);
  }

  #[test]
  fn uploads_are_found_only_for_the_same_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let f = key("/big", 100, 7);
    cache.record_upload("s", "k", &f, "u1", 10, "CRC64NVME").unwrap();
    cache.record_part("u1", 2, "\"e2\"", "c2").unwrap();
    cache.record_part("u1", 1, "\"e1\"", "c1").unwrap();
    let rec = cache.find_upload("s", "k", &f).unwrap().unwrap();
    assert_eq!(rec.upload_id, "u1");
    assert_eq!(rec.part_size, 10);
    assert_eq!(rec.parts[0], (1, "\"e1\"".to_owned(), "c1".to_owned()));
    assert_eq!(rec.parts.len(), 2);
    let changed = key("/big", 100, 8);
    assert_eq!(cache.find_upload("s", "k", &changed).unwrap(), None);
    assert_eq!(cache.find_upload("other", "k", &f).unwrap(), None);
    assert_eq!(cache.stale_uploads("s", "k", &changed).unwrap(), ["u1"]);
    assert!(cache.stale_uploads("s", "k", &f).unwrap().is_empty());
    cache.forget_upload("u1").unwrap();
    assert_eq!(cache.find_upload("s", "k", &f).unwrap(), None);
  }
}

//! Deadline Cloud's own caches, shared on request (the `deadlineCache` client option): a workstation with the
//! Deadline CLI or a DCC submitter keeps, under `~/.deadline/job_attachments/`,
//! - `hash_cache.db`, table `hashesV4`: a file's xxh128 by its resolved path and
//!   `str(datetime.fromtimestamp(st_mtime))` (the mtime in local time, microseconds), and
//! - `s3_check_cache.db`, table `s3checkV1`: `{bucket}/{key}` of contents seen in S3, with the time as
//!   `str(time.time())`, trusted for 30 days.
//!
//! s3-ferry reads them where its own cache has nothing and writes what it learns to both, so a file hashed by one
//! tool is not hashed by the other. It is tied to those schema versions (deadline 0.60): a table whose columns
//! differ is left alone (logged, never altered) and s3-ferry's own cache goes on alone. Like its own cache, these
//! only ever save work: a stale row means work done again, never something skipped wrongly (hashes are checked by
//! the store and the sample of seen keys is checked on every call).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

/// Deadline's cache directory: `~/.deadline/job_attachments` (`%USERPROFILE%` on Windows, as Python's
/// `expanduser`).
pub fn default_dir() -> Option<PathBuf> {
  let home = if cfg!(windows) { "USERPROFILE" } else { "HOME" };
  std::env::var_os(home)
    .filter(|h| !h.is_empty())
    .map(|h| PathBuf::from(h).join(".deadline").join("job_attachments"))
}

const HASH_TABLE: &str = "hashesV4";
const HASH_COLUMNS: [&str; 6] = [
  "file_path",
  "hash_algorithm",
  "range_start",
  "range_end",
  "file_hash",
  "last_modified_time",
];
const CHECK_TABLE: &str = "s3checkV1";
const CHECK_COLUMNS: [&str; 2] = ["s3_key", "last_seen_time"];
/// Deadline's `S3CheckCache.ENTRY_EXPIRY_DAYS`.
const CHECK_EXPIRY: Duration = Duration::from_secs(30 * 24 * 3600);

/// Deadline's two caches, each open only if its schema is the one this code knows.
pub struct DeadlineCache {
  hashes: Option<Mutex<Connection>>,
  checks: Option<Mutex<Connection>>,
}

impl std::fmt::Debug for DeadlineCache {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("DeadlineCache")
      .field("hashes", &self.hashes.is_some())
      .field("checks", &self.checks.is_some())
      .finish()
  }
}

type Sql<T> = rusqlite::Result<T>;

/// Opens `{dir}/{name}.db` as Deadline opens it (WAL), creating `table` with Deadline's own statement when it is
/// missing; `None` (logged) when it cannot be opened or the table's columns are not `columns`.
fn open_table(dir: &Path, name: &str, table: &str, columns: &[&str], create: &str) -> Option<Mutex<Connection>> {
  let path = dir.join(format!("{name}.db"));
  let opened = (|| -> Sql<Option<Connection>> {
    std::fs::create_dir_all(dir).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let conn = Connection::open(&path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let found: Vec<String> = conn
      .prepare(&format!("PRAGMA table_info({table})"))?
      .query_map([], |r| r.get::<_, String>(1))?
      .collect::<Sql<_>>()?;
    if found.is_empty() {
      conn.execute_batch(create)?;
    } else if found != columns {
      tracing::warn!(
        target: "s3_ferry::cache",
        path = %path.display(),
        table,
        columns = ?found,
        "Deadline's cache has another schema than the one s3-ferry shares (deadline 0.60): left alone"
      );
      return Ok(None);
    }
    Ok(Some(conn))
  })();
  match opened {
    Ok(conn) => conn.map(Mutex::new),
    Err(e) => {
      tracing::warn!(target: "s3_ferry::cache", path = %path.display(), error = %e, "Deadline's cache could not be opened: not shared");
      None
    }
  }
}

fn lock(conn: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
  conn.lock().unwrap_or_else(|p| p.into_inner())
}

impl DeadlineCache {
  /// Opens the caches in `dir` (see the module documentation).
  pub fn open(dir: &Path) -> DeadlineCache {
    DeadlineCache {
      hashes: open_table(
        dir,
        "hash_cache",
        HASH_TABLE,
        &HASH_COLUMNS,
        "CREATE TABLE hashesV4(file_path blob, hash_algorithm text, range_start integer, range_end integer, \
         file_hash text, last_modified_time timestamp, PRIMARY KEY (file_path, hash_algorithm, range_start, \
         range_end))",
      ),
      checks: open_table(
        dir,
        "s3_check_cache",
        CHECK_TABLE,
        &CHECK_COLUMNS,
        "CREATE TABLE s3checkV1(s3_key text primary key, last_seen_time timestamp)",
      ),
    }
  }

  /// The xxh128 Deadline recorded for the file at `path` with this mtime (nanoseconds since the epoch).
  pub fn hash(&self, path: &Path, mtime_ns: i64) -> Sql<Option<String>> {
    let (Some(conn), Some(key), Some(mtime)) = (&self.hashes, resolved_key(path), python_mtime(mtime_ns)) else {
      return Ok(None);
    };
    lock(conn)
      .prepare_cached(
        "SELECT file_hash FROM hashesV4 WHERE file_path = ?1 AND hash_algorithm = 'xxh128' AND range_start = 0 \
         AND range_end = -1 AND last_modified_time = ?2",
      )?
      .query_row(params![key, mtime], |r| r.get(0))
      .optional()
  }

  /// Records hashes as Deadline records them.
  pub fn put_hashes(&self, rows: &[(PathBuf, i64, String)]) -> Sql<()> {
    let Some(conn) = &self.hashes else { return Ok(()) };
    let mut conn = lock(conn);
    let tx = conn.transaction()?;
    {
      let mut stmt = tx.prepare_cached("INSERT OR REPLACE INTO hashesV4 VALUES (?1, 'xxh128', 0, -1, ?2, ?3)")?;
      for (path, mtime_ns, hash) in rows {
        if let (Some(key), Some(mtime)) = (resolved_key(path), python_mtime(*mtime_ns)) {
          stmt.execute(params![key, hash, mtime])?;
        }
      }
    }
    tx.commit()
  }

  /// Forgets the hashes of these files.
  pub fn forget_hashes(&self, paths: &[PathBuf]) -> Sql<()> {
    let Some(conn) = &self.hashes else { return Ok(()) };
    let conn = lock(conn);
    let mut stmt = conn.prepare_cached("DELETE FROM hashesV4 WHERE file_path = ?1")?;
    for key in paths.iter().filter_map(|p| resolved_key(p)) {
      stmt.execute(params![key])?;
    }
    Ok(())
  }

  /// Which of `keys` Deadline saw in `bucket` within 30 days.
  pub fn seen(&self, bucket: &str, keys: &[String]) -> Sql<Vec<bool>> {
    let Some(conn) = &self.checks else {
      return Ok(vec![false; keys.len()]);
    };
    let conn = lock(conn);
    let mut stmt = conn.prepare_cached("SELECT last_seen_time FROM s3checkV1 WHERE s3_key = ?1")?;
    let now = now_seconds();
    keys
      .iter()
      .map(|k| {
        use rusqlite::types::Value;
        // The column's `timestamp` type has numeric affinity: the text Python writes is stored as a REAL.
        let when: Option<Value> = stmt
          .query_row(params![format!("{bucket}/{k}")], |r| r.get(0))
          .optional()?;
        let when = match when {
          Some(Value::Real(t)) => Some(t),
          Some(Value::Integer(t)) => Some(t as f64),
          Some(Value::Text(t)) => t.trim().parse::<f64>().ok(),
          _ => None,
        };
        // Deadline: `(datetime.now() - datetime.fromtimestamp(float(t))).days < 30`.
        Ok(when.is_some_and(|t| now - t < CHECK_EXPIRY.as_secs_f64()))
      })
      .collect()
  }

  /// Records keys of `bucket` as seen now, as Deadline records them.
  pub fn put_seen(&self, bucket: &str, keys: &[String]) -> Sql<()> {
    let Some(conn) = &self.checks else { return Ok(()) };
    let mut conn = lock(conn);
    let now = python_float(now_seconds());
    let tx = conn.transaction()?;
    {
      let mut stmt = tx.prepare_cached("INSERT OR REPLACE INTO s3checkV1 VALUES (?1, ?2)")?;
      for k in keys {
        stmt.execute(params![format!("{bucket}/{k}"), now])?;
      }
    }
    tx.commit()
  }

  /// Forgets every key of `bucket` (one was found missing).
  pub fn forget_bucket(&self, bucket: &str) -> Sql<()> {
    let Some(conn) = &self.checks else { return Ok(()) };
    // `substr` rather than LIKE: a bucket name may hold `_`, which LIKE reads as a wildcard.
    lock(conn).execute(
      "DELETE FROM s3checkV1 WHERE substr(s3_key, 1, ?2) = ?1",
      params![format!("{bucket}/"), bucket.len() as i64 + 1],
    )?;
    Ok(())
  }
}

fn now_seconds() -> f64 {
  SystemTime::now()
    .duration_since(UNIX_EPOCH)
    .map_or(0.0, |d| d.as_secs_f64())
}

/// A float as Python's `str(float)` writes it: the shortest text that reads back the same (Rust's `Display` is
/// that too), with `.0` for a whole number.
fn python_float(x: f64) -> String {
  let s = x.to_string();
  match s.contains(['.', 'e', 'E']) {
    true => s,
    false => format!("{s}.0"),
  }
}

/// The file's key in Deadline's hash cache: its resolved path (`Path.resolve()`: symlinks followed) as UTF-8 bytes.
/// On Windows without the `\\?\` prefix `canonicalize` adds, as Python's `realpath` strips it.
fn resolved_key(path: &Path) -> Option<Vec<u8>> {
  let real = std::fs::canonicalize(path).ok()?;
  let text = real.to_str()?;
  let text = match cfg!(windows) {
    true => match text.strip_prefix(r"\\?\UNC\") {
      Some(share) => format!(r"\\{share}"),
      None => text.strip_prefix(r"\\?\").unwrap_or(text).to_owned(),
    },
    false => text.to_owned(),
  };
  Some(text.into_bytes())
}

/// `str(datetime.fromtimestamp(st.st_mtime))` for a file whose mtime is `mtime_ns`: Python's float seconds
/// (`sec + nsec * 1e-9`), split into whole seconds and microseconds rounded half to even, the seconds in local
/// time; `YYYY-MM-DD HH:MM:SS`, then `.ffffff` unless the microseconds are 0.
pub fn python_mtime(mtime_ns: i64) -> Option<String> {
  use chrono::TimeZone;
  let (sec, nsec) = (mtime_ns.div_euclid(1_000_000_000), mtime_ns.rem_euclid(1_000_000_000));
  let t = sec as f64 + nsec as f64 * 1e-9;
  let whole = t.trunc();
  let mut micros = ((t - whole) * 1e6).round_ties_even();
  let mut secs = whole;
  if micros >= 1e6 {
    micros -= 1e6;
    secs += 1.0;
  } else if micros < 0.0 {
    micros += 1e6;
    secs -= 1.0;
  }
  let local = chrono::Local.timestamp_opt(secs as i64, 0).earliest()?;
  let base = local.format("%Y-%m-%d %H:%M:%S").to_string();
  Some(match micros as u32 {
    0 => base,
    us => format!("{base}.{us:06}"),
  })
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn python_floats_read_as_python_writes_them() {
    assert_eq!(python_float(1764792900.25), "1764792900.25");
    assert_eq!(python_float(1764792900.0), "1764792900.0");
  }

  #[test]
  fn a_table_of_another_schema_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("hash_cache.db")).unwrap();
    conn
      .execute_batch("CREATE TABLE hashesV4(file_path blob primary key, file_hash text)")
      .unwrap();
    drop(conn);
    let cache = DeadlineCache::open(dir.path());
    assert!(cache.hashes.is_none(), "not shared");
    assert!(
      cache.checks.is_some(),
      "the other one is: created with Deadline's statement"
    );
    let conn = Connection::open(dir.path().join("hash_cache.db")).unwrap();
    let sql: String = conn
      .query_row("SELECT sql FROM sqlite_master WHERE name = 'hashesV4'", [], |r| {
        r.get(0)
      })
      .unwrap();
    assert_eq!(
      sql, "CREATE TABLE hashesV4(file_path blob primary key, file_hash text)",
      "unaltered"
    );
  }

  #[test]
  fn seen_keys_are_per_bucket_and_forgotten_per_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DeadlineCache::open(dir.path());
    let keys = vec!["R/Data/a.xxh128".to_owned()];
    cache.put_seen("my_bucket", &keys).unwrap();
    cache.put_seen("myxbucket", &keys).unwrap();
    assert_eq!(cache.seen("my_bucket", &keys).unwrap(), [true]);
    cache.forget_bucket("my_bucket").unwrap();
    assert_eq!(cache.seen("my_bucket", &keys).unwrap(), [false]);
    assert_eq!(cache.seen("myxbucket", &keys).unwrap(), [true], "`_` is not a wildcard");
  }
}

//! Job-attachment manifests, format `2023-03-03` of the original system, byte for byte: JSON with sorted keys,
//! no spaces, non-ASCII escaped as `\uXXXX` (Python's `json.dumps(m, sort_keys=True, separators=(",", ":"))`),
//! `paths` sorted by the UTF-16BE bytes of `path`, each `{hash, mtime, path, size}` with `mtime` in integer
//! microseconds, and `totalSize`. Files are content-addressed by xxHash3-128 (`xxh128`), lowercase hex.
//!
//! Compatibility is the point: another tool must read our manifests and we theirs, and a manifest's own hash
//! must not depend on who wrote it. The tests check against output of the reference serializer.

use std::io::Read;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The manifest format this module writes.
pub const MANIFEST_VERSION: &str = "2023-03-03";

/// The hash algorithm named in manifests.
pub const HASH_ALG: &str = "xxh128";

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
  /// POSIX path relative to the manifest's root.
  pub path: String,
  /// xxh128 of the content, 32 lowercase hex digits.
  pub hash: String,
  /// Size in bytes.
  pub size: u64,
  /// Modification time, microseconds since the Unix epoch.
  pub mtime: i64,
}

/// The manifest's canonical JSON.
pub fn encode(entries: &[ManifestEntry]) -> String {
  let mut sorted: Vec<&ManifestEntry> = entries.iter().collect();
  sorted.sort_by_cached_key(|e| e.path.encode_utf16().collect::<Vec<u16>>());
  let total: u64 = entries.iter().map(|e| e.size).sum();
  let mut out = String::with_capacity(64 + entries.len() * 96);
  out.push_str(r#"{"hashAlg":"#);
  push_json_string(&mut out, HASH_ALG);
  out.push_str(r#","manifestVersion":"#);
  push_json_string(&mut out, MANIFEST_VERSION);
  out.push_str(r#","paths":["#);
  for (i, e) in sorted.iter().enumerate() {
    if i > 0 {
      out.push(',');
    }
    out.push_str(r#"{"hash":"#);
    push_json_string(&mut out, &e.hash);
    out.push_str(&format!(r#","mtime":{},"path":"#, e.mtime));
    push_json_string(&mut out, &e.path);
    out.push_str(&format!(r#","size":{}}}"#, e.size));
  }
  out.push_str(&format!(r#"],"totalSize":{total}}}"#));
  out
}

/// Reads a manifest (format `2023-03-03`, hash `xxh128`). Paths are checked for safety where they are used;
/// here: the format, the fields, hashes of 32 hex digits, and no path given twice. `Err`: why, for a message.
pub fn decode(text: &str) -> Result<Vec<ManifestEntry>, String> {
  #[derive(serde::Deserialize)]
  #[serde(rename_all = "camelCase")]
  struct Raw {
    hash_alg: String,
    manifest_version: String,
    paths: Vec<RawEntry>,
  }
  #[derive(serde::Deserialize)]
  struct RawEntry {
    hash: String,
    mtime: i64,
    path: String,
    size: u64,
  }
  let raw: Raw = serde_json::from_str(text).map_err(|e| format!("not a manifest: {e}"))?;
  if raw.manifest_version != MANIFEST_VERSION {
    return Err(format!(
      "manifestVersion '{}' is not supported (only '{MANIFEST_VERSION}')",
      raw.manifest_version
    ));
  }
  if raw.hash_alg != HASH_ALG {
    return Err(format!(
      "hashAlg '{}' is not supported (only '{HASH_ALG}')",
      raw.hash_alg
    ));
  }
  let mut seen = std::collections::HashSet::with_capacity(raw.paths.len());
  raw
    .paths
    .into_iter()
    .map(|e| {
      if e.hash.len() != 32 || !e.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
          "'{}': hash '{}' is not an xxh128 (32 hex digits)",
          e.path, e.hash
        ));
      }
      if e.path.is_empty() || e.path.starts_with('/') || e.path.ends_with('/') {
        return Err(format!("path '{}' is not a relative file path", e.path));
      }
      if !seen.insert(e.path.clone()) {
        return Err(format!("path '{}' appears more than once", e.path));
      }
      Ok(ManifestEntry {
        hash: e.hash.to_ascii_lowercase(),
        mtime: e.mtime,
        path: e.path,
        size: e.size,
      })
    })
    .collect()
}

/// A JSON string as Python's `json.dumps` writes it with `ensure_ascii=True`: the two-character escapes for
/// `"`, `\` and `\b \f \n \r \t`, and everything outside printable ASCII (space to `~`) as `\uXXXX`:
/// other control characters, DEL, and all non-ASCII (lowercase hex; UTF-16 surrogate pairs above U+FFFF).
fn push_json_string(out: &mut String, s: &str) {
  out.push('"');
  for c in s.chars() {
    match c {
      '"' => out.push_str("\\\""),
      '\\' => out.push_str("\\\\"),
      '\n' => out.push_str("\\n"),
      '\r' => out.push_str("\\r"),
      '\t' => out.push_str("\\t"),
      '\u{8}' => out.push_str("\\b"),
      '\u{c}' => out.push_str("\\f"),
      ' '..='~' => out.push(c),
      _ => {
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
          out.push_str(&format!("\\u{unit:04x}"));
        }
      }
    }
  }
  out.push('"');
}

/// `s` as Python's `json.dumps(s, ensure_ascii=True)` writes it (see `push_json_string`).
pub fn json_string(s: &str) -> String {
  let mut out = String::with_capacity(s.len() + 2);
  push_json_string(&mut out, s);
  out
}

/// xxh128 of a byte slice, as manifests write it.
pub fn hash_bytes(data: &[u8]) -> String {
  format!("{:032x}", xxhash_rust::xxh3::xxh3_128(data))
}

/// A content hash (xxh128, 32 hex digits) as S3's `XXHASH128` checksum: base64 of its 16 bytes, most significant
/// first (Python's `xxhash.xxh3_128().digest()`).
pub(crate) fn xxh128_base64(hash: &str) -> crate::engine::Result<String> {
  (hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
    .then(|| u128::from_str_radix(hash, 16).ok())
    .flatten()
    .map(|v| aws_smithy_types::base64::encode(v.to_be_bytes()))
    .ok_or_else(|| crate::engine::Error::invalid_value(format!("'{hash}' is not an xxh128 content hash")))
}

/// xxh128 of a file, streamed in 1 MiB reads (blocking: call it on the blocking pool).
pub fn hash_file(path: &Path) -> std::io::Result<String> {
  hash_open_file(&std::fs::File::open(path)?, &mut |_| true)
}

/// xxh128 of an open file from its current position, streamed in 1 MiB reads. `on_chunk` hears each chunk's
/// length; returning `false` stops the hashing with `ErrorKind::Interrupted` (a cancel).
pub fn hash_open_file(mut file: &std::fs::File, on_chunk: &mut dyn FnMut(u64) -> bool) -> std::io::Result<String> {
  let mut hasher = xxhash_rust::xxh3::Xxh3::new();
  let mut buf = vec![0u8; 1 << 20];
  loop {
    let n = file.read(&mut buf)?;
    if n == 0 {
      return Ok(format!("{:032x}", hasher.digest128()));
    }
    hasher.update(&buf[..n]);
    if !on_chunk(n as u64) {
      return Err(std::io::Error::from(std::io::ErrorKind::Interrupted));
    }
  }
}

/// A manifest's microseconds as a time.
pub fn time_from_micros(micros: i64) -> SystemTime {
  match micros >= 0 {
    true => UNIX_EPOCH + std::time::Duration::from_micros(micros as u64),
    false => UNIX_EPOCH - std::time::Duration::from_micros(micros.unsigned_abs()),
  }
}

/// A modification time in manifest microseconds, rounded down as Deadline Cloud's `st_mtime_ns // 1000` rounds
/// (before the epoch: negative, and a sub-microsecond part takes it one further from zero).
pub fn mtime_micros(t: SystemTime) -> i64 {
  match t.duration_since(UNIX_EPOCH) {
    Ok(d) => d.as_micros() as i64,
    Err(e) => {
      let d = e.duration();
      -(d.as_micros() as i64) - i64::from(d.as_nanos() % 1000 != 0)
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn entry(path: &str, hash: &str, size: u64, mtime: i64) -> ManifestEntry {
    ManifestEntry {
      path: path.to_owned(),
      hash: hash.to_owned(),
      size,
      mtime,
    }
  }

  /// Printed by Python 3.11's json.dumps(m, sort_keys=True, separators=(",", ":")) with the paths sorted by
  /// path.encode("utf-16_be"), from the same entries (given here out of order). The emoji sorts before U+FF5E
  /// in UTF-16 (a surrogate, 0xD83D) though after it in UTF-8: the case a UTF-8 sort gets wrong.
  const FIXTURE: &str = r#"{"hashAlg":"xxh128","manifestVersion":"2023-03-03","paths":[{"hash":"00000000000000000000000000000002","mtime":4,"path":"Z/upper.txt","size":4},{"hash":"00000000000000000000000000000001","mtime":3,"path":"a \"quoted\" \\name\t.txt","size":3},{"hash":"df8d09e93f874900a99b8775cc15b6c7","mtime":1700000000123456,"path":"scenes/shot_010.blend","size":11},{"hash":"99aa06d3014798d86001c324468d497f","mtime":1700000001000000,"path":"tex/caf\u00e9.png","size":0},{"hash":"fedcba9876543210fedcba9876543210","mtime":2,"path":"tex/\ud83d\ude00.exr","size":7},{"hash":"0123456789abcdef0123456789abcdef","mtime":1,"path":"tex/\uff5ewave.exr","size":5}],"totalSize":30}"#;

  #[test]
  fn mtimes_round_down_like_deadline_before_1970_too() {
    use std::time::Duration;
    // Python: st_mtime_ns // 1000, i.e. floor.
    assert_eq!(mtime_micros(UNIX_EPOCH + Duration::from_nanos(1_999)), 1);
    assert_eq!(mtime_micros(UNIX_EPOCH - Duration::from_nanos(1_500)), -2);
    assert_eq!(mtime_micros(UNIX_EPOCH - Duration::from_nanos(1)), -1);
    assert_eq!(mtime_micros(UNIX_EPOCH - Duration::from_micros(3)), -3);
    assert_eq!(mtime_micros(UNIX_EPOCH), 0);
  }

  #[test]
  fn encodes_byte_for_byte_like_the_reference() {
    let entries = vec![
      entry(
        "scenes/shot_010.blend",
        "df8d09e93f874900a99b8775cc15b6c7",
        11,
        1_700_000_000_123_456,
      ),
      entry(
        "tex/café.png",
        "99aa06d3014798d86001c324468d497f",
        0,
        1_700_000_001_000_000,
      ),
      entry("tex/\u{ff5e}wave.exr", "0123456789abcdef0123456789abcdef", 5, 1),
      entry("tex/\u{1F600}.exr", "fedcba9876543210fedcba9876543210", 7, 2),
      entry("a \"quoted\" \\name\t.txt", "00000000000000000000000000000001", 3, 3),
      entry("Z/upper.txt", "00000000000000000000000000000002", 4, 4),
    ];
    assert_eq!(encode(&entries), FIXTURE);
    assert_eq!(
      encode(&[]),
      r#"{"hashAlg":"xxh128","manifestVersion":"2023-03-03","paths":[],"totalSize":0}"#
    );
  }

  #[test]
  fn decodes_what_it_encodes_and_refuses_what_it_cannot_use() {
    let entries = decode(FIXTURE).unwrap();
    assert_eq!(entries.len(), 6);
    assert_eq!(encode(&entries), FIXTURE, "decode then encode is the identity");
    let bad = |text: &str| decode(text).unwrap_err();
    assert!(bad("{}").contains("not a manifest"));
    assert!(
      bad(r#"{"hashAlg":"xxh128","manifestVersion":"2025-01-01","paths":[],"totalSize":0}"#).contains("2025-01-01")
    );
    assert!(bad(r#"{"hashAlg":"md5","manifestVersion":"2023-03-03","paths":[],"totalSize":0}"#).contains("md5"));
    let one = |path: &str, hash: &str| {
      format!(
        r#"{{"hashAlg":"xxh128","manifestVersion":"2023-03-03","paths":[{{"hash":"{hash}","mtime":1,"path":"{path}","size":1}}],"totalSize":1}}"#
      )
    };
    assert!(bad(&one("a", "xyz")).contains("32 hex"));
    assert!(bad(&one("/etc/passwd", "00000000000000000000000000000000")).contains("relative"));
    let twice = r#"{"hashAlg":"xxh128","manifestVersion":"2023-03-03","paths":[{"hash":"00000000000000000000000000000000","mtime":1,"path":"a","size":1},{"hash":"00000000000000000000000000000000","mtime":1,"path":"a","size":1}],"totalSize":2}"#;
    assert!(bad(twice).contains("more than once"));
  }

  #[test]
  fn control_characters_and_del_escape_as_python_does() {
    let mut s = String::new();
    push_json_string(&mut s, "\u{1}\u{1f}\u{7f}\u{8}\u{c}\r\n/~");
    // Python: print(json.dumps("\x01\x1f\x7f\b\f\r\n/~")) prints "\u0001\u001f\u007f\b\f\r\n/~"
    assert_eq!(s, r#""\u0001\u001f\u007f\b\f\r\n/~""#);
  }

  #[test]
  fn a_content_hash_is_sent_as_its_16_bytes_in_base64() {
    // Python: base64.b64encode(xxhash.xxh3_128(b"hello world").digest())
    assert_eq!(
      xxh128_base64("df8d09e93f874900a99b8775cc15b6c7").unwrap(),
      "340J6T+HSQCpm4d1zBW2xw=="
    );
    assert_eq!(
      xxh128_base64("00000000000000000000000000000001").unwrap(),
      "AAAAAAAAAAAAAAAAAAAAAQ=="
    );
    for bad in [
      "",
      "xyz",
      "df8d09e93f874900a99b8775cc15b6c",
      "+f8d09e93f874900a99b8775cc15b6c7",
    ] {
      assert!(xxh128_base64(bad).is_err(), "{bad}");
    }
  }

  #[test]
  fn xxh128_matches_the_reference() {
    // Python: xxhash.xxh3_128_hexdigest(b"") and (b"hello world")
    assert_eq!(hash_bytes(b""), "99aa06d3014798d86001c324468d497f");
    assert_eq!(hash_bytes(b"hello world"), "df8d09e93f874900a99b8775cc15b6c7");
    let mut tmp = tempfile::NamedTempFile::new().unwrap();
    let data: Vec<u8> = (0..3_000_001u32).map(|i| (i % 253) as u8).collect();
    std::io::Write::write_all(&mut tmp, &data).unwrap();
    assert_eq!(hash_file(tmp.path()).unwrap(), hash_bytes(&data), "streamed = whole");
  }

  #[test]
  fn mtimes_are_microseconds() {
    let t = UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456);
    assert_eq!(mtime_micros(t), 1_700_000_000_123_456);
    assert_eq!(mtime_micros(UNIX_EPOCH - std::time::Duration::from_micros(5)), -5);
  }
}

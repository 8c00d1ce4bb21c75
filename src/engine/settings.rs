//! The tunable settings and where they come from: explicit options override the config file, which overrides
//! the defaults. The config file is the original system's INI file: a `[settings]` section with keys such as
//! `s3_max_pool_connections = 50`.

use std::path::{Path, PathBuf};

use super::config::ClientConfig;
use super::error::{Error, Result};

/// The config file's section.
pub const SECTION: &str = "settings";

/// Environment variable naming the config file when the client options do not.
pub const CONFIG_ENV: &str = "S3_FERRY_CONFIG";

/// Settings that may be given explicitly or in the config file; `None` = not given here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
  /// `s3_max_pool_connections`
  pub max_pool_connections: Option<u64>,
  /// `upload_workers`
  pub upload_workers: Option<u64>,
  /// `download_workers`
  pub download_workers: Option<u64>,
  /// `part_size` (bytes)
  pub part_size: Option<u64>,
  /// `multipart_threshold` (bytes)
  pub multipart_threshold: Option<u64>,
  /// `small_file_threshold_multiplier`
  pub small_file_threshold_multiplier: Option<u64>,
  /// `max_attempts`
  pub max_attempts: Option<u64>,
  /// `connect_timeout_ms`
  pub connect_timeout_ms: Option<u64>,
  /// `read_timeout_ms`
  pub read_timeout_ms: Option<u64>,
  /// `s3_max_bandwidth` (bytes per second)
  pub max_bandwidth: Option<u64>,
  /// `threads`: the engine's runtime worker threads (process-wide; read when the addon loads).
  pub threads: Option<u64>,
}

/// Where a config-file key's value goes.
type Field = fn(&mut Settings) -> &mut Option<u64>;

/// Config-file keys and the settings they set. The first three are the original system's names.
const KEYS: &[(&str, Field)] = &[
  ("s3_max_pool_connections", |s| &mut s.max_pool_connections),
  ("small_file_threshold_multiplier", |s| {
    &mut s.small_file_threshold_multiplier
  }),
  ("s3_max_bandwidth", |s| &mut s.max_bandwidth),
  ("upload_workers", |s| &mut s.upload_workers),
  ("download_workers", |s| &mut s.download_workers),
  ("part_size", |s| &mut s.part_size),
  ("multipart_threshold", |s| &mut s.multipart_threshold),
  ("max_attempts", |s| &mut s.max_attempts),
  ("connect_timeout_ms", |s| &mut s.connect_timeout_ms),
  ("read_timeout_ms", |s| &mut s.read_timeout_ms),
  ("threads", |s| &mut s.threads),
];

impl Settings {
  /// Field by field: `self` where given, else `fallback`.
  pub fn or(self, fallback: Settings) -> Settings {
    Settings {
      max_pool_connections: self.max_pool_connections.or(fallback.max_pool_connections),
      upload_workers: self.upload_workers.or(fallback.upload_workers),
      download_workers: self.download_workers.or(fallback.download_workers),
      part_size: self.part_size.or(fallback.part_size),
      multipart_threshold: self.multipart_threshold.or(fallback.multipart_threshold),
      small_file_threshold_multiplier: self
        .small_file_threshold_multiplier
        .or(fallback.small_file_threshold_multiplier),
      max_attempts: self.max_attempts.or(fallback.max_attempts),
      connect_timeout_ms: self.connect_timeout_ms.or(fallback.connect_timeout_ms),
      read_timeout_ms: self.read_timeout_ms.or(fallback.read_timeout_ms),
      max_bandwidth: self.max_bandwidth.or(fallback.max_bandwidth),
      threads: self.threads.or(fallback.threads),
    }
  }

  /// Writes the given settings into `config`, leaving its other values (the defaults) alone.
  pub fn apply(&self, config: &mut ClientConfig) {
    let clamp = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    if let Some(v) = self.max_pool_connections {
      config.max_pool_connections = clamp(v);
    }
    if let Some(v) = self.upload_workers {
      config.upload_workers = Some(clamp(v));
    }
    if let Some(v) = self.download_workers {
      config.download_workers = Some(clamp(v));
    }
    if let Some(v) = self.part_size {
      config.part_size = v;
    }
    if let Some(v) = self.multipart_threshold {
      config.multipart_threshold = v;
    }
    if let Some(v) = self.small_file_threshold_multiplier {
      config.small_file_threshold_multiplier = clamp(v);
    }
    if let Some(v) = self.max_attempts {
      config.max_attempts = u32::try_from(v).unwrap_or(u32::MAX);
    }
    if let Some(v) = self.max_bandwidth {
      config.max_bandwidth = Some(v);
    }
    if let Some(v) = self.connect_timeout_ms {
      config.connect_timeout_ms = v;
    }
    if let Some(v) = self.read_timeout_ms {
      config.read_timeout_ms = v;
    }
  }
}

/// The config file in force: `explicit` (the `configFile` option), else `$S3_FERRY_CONFIG`, else none.
pub fn config_file_path(explicit: Option<&Path>) -> Option<PathBuf> {
  explicit.map(Path::to_path_buf).or_else(|| {
    std::env::var_os(CONFIG_ENV)
      .filter(|v| !v.is_empty())
      .map(PathBuf::from)
  })
}

/// Reads the `[settings]` section of an INI file. A file that was named but cannot be read is an error (the
/// caller asked for it); unknown keys are ignored (the file may configure other tools too); a value that is
/// not a positive integer is `ERR_INVALID_ARG_VALUE` naming the file, the section and the key.
pub fn read_config_file(path: &Path) -> Result<Settings> {
  let text = std::fs::read_to_string(path).map_err(|e| Error::io("read config file", path, e))?;
  parse_settings(&text, path)
}

/// Parses the subset of Python's `configparser` format that such files use: `[section]` headers, `key = value`
/// or `key: value` (keys case-insensitive), whole-line comments starting with `#` or `;`, and indented
/// continuation lines.
fn parse_settings(text: &str, path: &Path) -> Result<Settings> {
  let mut section: Option<&str> = None;
  let mut entries: Vec<(String, String, usize)> = Vec::new(); // key, value, line, within [settings]
  let mut last_key_in_settings = false;
  for (i, raw) in text.lines().enumerate() {
    let line_no = i + 1;
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
      continue;
    }
    if raw.starts_with([' ', '\t']) && last_key_in_settings {
      let entry = entries.last_mut().expect("a key precedes its continuation");
      entry.1.push('\n');
      entry.1.push_str(line);
      continue;
    }
    if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
      section = Some(name.trim());
      last_key_in_settings = false;
      continue;
    }
    let Some(sep) = line.find(['=', ':']) else {
      return Err(Error::invalid_value(format!(
        "{}: line {line_no} is neither a [section] header nor a key = value pair: '{line}'",
        path.display()
      )));
    };
    if section.is_none() {
      return Err(Error::invalid_value(format!(
        "{}: line {line_no} comes before any [section] header",
        path.display()
      )));
    }
    last_key_in_settings = section == Some(SECTION);
    if last_key_in_settings {
      let key = line[..sep].trim().to_ascii_lowercase();
      entries.push((key, line[sep + 1..].trim().to_owned(), line_no));
    }
  }
  let mut settings = Settings::default();
  for (key, value, line_no) in entries {
    if let Some((_, field)) = KEYS.iter().find(|(name, _)| *name == key) {
      let parsed = value.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(|| {
        Error::invalid_value(format!(
          "{}: [{SECTION}] {key} (line {line_no}) must be a positive integer, got '{value}'",
          path.display()
        ))
      })?;
      *field(&mut settings) = Some(parsed);
    }
  }
  Ok(settings)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn reads_the_settings_section_like_configparser() {
    let text = "\
# the original system's file
[defaults]
s3_max_pool_connections = 7

[settings]
S3_Max_Pool_Connections = 64
small_file_threshold_multiplier: 4
; a comment
s3_max_bandwidth=1000000
unrelated_key = anything at all
";
    let s = parse_settings(text, Path::new("/etc/x.ini")).unwrap();
    assert_eq!(s.max_pool_connections, Some(64));
    assert_eq!(s.small_file_threshold_multiplier, Some(4));
    assert_eq!(s.max_bandwidth, Some(1_000_000));
    assert_eq!(s.part_size, None);
  }

  #[test]
  fn malformed_values_name_the_file_section_and_key() {
    for bad in ["0", "-3", "fifty", "5.5", ""] {
      let text = format!("[settings]\ns3_max_pool_connections = {bad}\n");
      let e = parse_settings(&text, Path::new("/cfg/s3.ini")).unwrap_err();
      assert_eq!(e.code(), "ERR_INVALID_ARG_VALUE");
      let m = e.to_string();
      assert!(
        m.contains("/cfg/s3.ini") && m.contains("[settings]") && m.contains("s3_max_pool_connections"),
        "{m}"
      );
    }
    let e = parse_settings("s3_max_pool_connections = 5\n", Path::new("/f")).unwrap_err();
    assert!(e.to_string().contains("before any [section]"));
    // A continuation line makes the value multi-line, which is not an integer.
    let e = parse_settings("[settings]\npart_size = 8\n  388608\n", Path::new("/f")).unwrap_err();
    assert!(e.to_string().contains("part_size"));
  }

  #[test]
  fn explicit_beats_file_beats_default() {
    let explicit = Settings {
      max_pool_connections: Some(10),
      ..Default::default()
    };
    let file = Settings {
      max_pool_connections: Some(64),
      small_file_threshold_multiplier: Some(4),
      ..Default::default()
    };
    let mut config = ClientConfig::default();
    explicit.or(file).apply(&mut config);
    assert_eq!(config.max_pool_connections, 10);
    assert_eq!(config.small_file_threshold_multiplier, 4);
    assert_eq!(config.part_size, ClientConfig::default().part_size);
  }

  #[test]
  fn a_named_file_that_is_missing_is_an_error() {
    let e = read_config_file(Path::new("/nonexistent/s3-ferry.ini")).unwrap_err();
    assert_eq!(e.code(), "ENOENT");
  }
}

//! Client configuration: defaults (with where they come from), validation, and the derived worker counts.

use super::error::{Error, Result};

/// 1 MiB.
pub const MIB: u64 = 1024 * 1024;

/// The connection pool of the original transfer layer started smaller and produced "connection pool is full"
/// warnings; 50 is where it settled (`[settings] s3_max_pool_connections`).
pub const DEFAULT_MAX_POOL_CONNECTIONS: usize = 50;

/// 8 MiB parts: the AWS CLI / s3transfer default, and what the original system used. Large enough that a 1 GiB
/// file is 128 requests, small enough that 50 parts in flight stay within ~400 MiB.
pub const DEFAULT_PART_SIZE: u64 = 8 * MIB;

/// Files up to this size go as one PutObject / GetObject. Same as the part size, as in s3transfer.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 8 * MIB;

/// The original system called files up to `multiplier × part size` "small" and derived upload workers from it.
pub const DEFAULT_SMALL_FILE_THRESHOLD_MULTIPLIER: usize = 20;

/// s3transfer's per-file request concurrency (`max_request_concurrency` of one transfer): a file keeps at most
/// this many requests in flight. Also the original system's UPLOAD/DOWNLOAD_MAX_CONCURRENCY.
pub const MAX_REQUESTS_PER_FILE: usize = 10;

/// Files up to this size move through memory in one piece: an upload reads the file whole in the trip to the
/// blocking pool that opens it, a download writes, renames and is done in one trip. One trip per file instead of
/// three each way, the largest cost per small file after the request itself; 50 in flight hold at most 50 MiB.
pub const IN_MEMORY_MAX: u64 = MIB;

/// The SDK's standard retry mode with five attempts: S3 asks clients to retry 500/503 with backoff, and three
/// attempts (the SDK default) are often not enough for SlowDown bursts on a busy prefix.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// How long a TCP (and TLS) connection may take before the attempt fails and is retried. S3 answers in
/// milliseconds; ten seconds covers a congested link without leaving a dead endpoint hanging.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;

/// How long the network may be silent during an attempt (nothing sent, nothing received) before it fails and is
/// retried. boto3's socket read timeout is 60 s; S3 sends response headers or data well within 30 s, and a render
/// node should not sit on a dead connection for a minute. Time spent waiting on the bandwidth cap or the disk
/// does not count.
pub const DEFAULT_READ_TIMEOUT_MS: u64 = 30_000;

/// S3's hard limits.
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// The largest part S3 accepts.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
/// The most parts one multipart upload may have.
pub const MAX_PARTS: u64 = 10_000;
/// The largest object S3 stores (5 TiB), and so the largest file an upload accepts.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * MIB;
/// The largest single PutObject S3 accepts: `multipartThreshold` may not exceed it.
pub const MAX_PUT_SIZE: u64 = 5 * 1024 * MIB;
/// The longest key S3 accepts, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// When to send request checksums on uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumMode {
  /// Send a checksum with every upload (aws-chunked trailer), and ask for full-object checksums on multipart
  /// uploads. AWS S3 verifies and stores it; some S3-compatible stores reject the trailer.
  WhenSupported,
  /// Only when the operation requires one. The default for custom endpoints.
  WhenRequired,
}

/// The checksum sent with uploads (when the policy sends one) and stored by S3 with the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChecksumAlgorithm {
  /// CRC64/NVME: what S3 itself computes for objects stored without a checksum, so the most common stored
  /// checksum; 64 bits; hardware-accelerated (carry-less multiply).
  #[default]
  Crc64Nvme,
  /// CRC32C (Castagnoli): hardware-accelerated (SSE4.2 / ARMv8 CRC).
  Crc32c,
  /// CRC32 (ISO-HDLC): the AWS SDKs' default.
  Crc32,
}

/// Static credentials given explicitly by the caller.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StaticCredentials {
  /// Access key id.
  pub access_key_id: String,
  /// Secret access key. Never printed.
  pub secret_access_key: String,
  /// Session token for temporary credentials. Never printed.
  pub session_token: Option<String>,
}

impl StaticCredentials {
  /// The first field that cannot go into a request header (the signature's scope, the session token header): one
  /// with a space, a control or a non-ASCII character makes the request unbuildable. Names it, never its value.
  pub(crate) fn unsendable_field(&self) -> Option<&'static str> {
    let fields = [
      ("accessKeyId", Some(&self.access_key_id)),
      ("secretAccessKey", Some(&self.secret_access_key)),
      ("sessionToken", self.session_token.as_ref()),
    ];
    fields
      .into_iter()
      .find(|(_, value)| value.is_some_and(|v| !v.bytes().all(|b| b.is_ascii_graphic())))
      .map(|(name, _)| name)
  }
}

impl std::fmt::Debug for StaticCredentials {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("StaticCredentials")
      .field("access_key_id", &self.access_key_id)
      .finish_non_exhaustive()
  }
}

/// Largest pool, worker count and multiplier: far past any useful value, far below what the request semaphore
/// and the arithmetic on them can hold.
pub const MAX_COUNT: u64 = 10_000;
/// Largest `maxAttempts`.
pub const MAX_ATTEMPTS: u64 = 100;
/// Longest connect and read timeout: an hour.
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// Largest `maxBandwidth`: the largest integer a JavaScript number holds exactly (about 9 PB/s).
pub const MAX_BANDWIDTH: u64 = (1 << 53) - 1;

/// `value`, when given, is between 1 and `max`; the error names the option and the value.
fn in_range(name: &str, value: Option<u64>, max: u64) -> Result<()> {
  match value {
    Some(v) if v == 0 || v > max => Err(Error::invalid_value(format!(
      "{name} must be a positive integer up to {max}, got {v}"
    ))),
    _ => Ok(()),
  }
}

/// Everything a client is built from. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientConfig {
  /// AWS region; default: `AWS_REGION` / `AWS_DEFAULT_REGION`, the profile's region, else `us-east-1`.
  pub region: Option<String>,
  /// Custom endpoint URL (an S3-compatible store).
  pub endpoint: Option<String>,
  /// Path-style addressing (`http://host/bucket/key`), which most S3-compatible stores need.
  pub force_path_style: bool,
  /// Explicit credentials; default: the standard AWS chain.
  pub credentials: Option<StaticCredentials>,
  /// A source asked for credentials before they expire, instead of `credentials`.
  pub credential_source: Option<super::credentials::CredentialSource>,
  /// Send requests unsigned (public buckets); no credentials are looked for.
  pub anonymous: bool,
  /// Named profile for the standard chain.
  pub profile: Option<String>,
  /// Hard cap on open connections and requests in flight for the whole client.
  pub max_pool_connections: usize,
  /// Upload workers; `None` derives them from the pool.
  pub upload_workers: Option<usize>,
  /// Download workers; `None` derives them from the pool.
  pub download_workers: Option<usize>,
  /// Multipart part size in bytes.
  pub part_size: u64,
  /// Files larger than this use multipart upload / ranged download.
  pub multipart_threshold: u64,
  /// See [`DEFAULT_SMALL_FILE_THRESHOLD_MULTIPLIER`].
  pub small_file_threshold_multiplier: usize,
  /// Attempts per request, first included.
  pub max_attempts: u32,
  /// Connect timeout in milliseconds.
  pub connect_timeout_ms: u64,
  /// Idle read timeout in milliseconds (see [`DEFAULT_READ_TIMEOUT_MS`]).
  pub read_timeout_ms: u64,
  /// Which checksum uploads send and downloads expect to find.
  pub checksum_algorithm: ChecksumAlgorithm,
  /// Request checksum policy; `None` picks `WhenRequired` for custom endpoints, else `WhenSupported`.
  pub checksum: Option<ChecksumMode>,
  /// Bytes per second for all transfers of the client together (uploads and downloads); `None` = no cap.
  pub max_bandwidth: Option<u64>,
  /// Directory of the local cache (file hashes, keys seen in S3, multipart uploads to resume); `None`: no cache.
  pub cache_dir: Option<std::path::PathBuf>,
  /// Also share Deadline Cloud's caches in this directory (see `deadline_cache`); needs `cache_dir`.
  pub deadline_cache_dir: Option<std::path::PathBuf>,
}

impl Default for ClientConfig {
  fn default() -> Self {
    ClientConfig {
      region: None,
      endpoint: None,
      force_path_style: false,
      credentials: None,
      credential_source: None,
      anonymous: false,
      profile: None,
      max_pool_connections: DEFAULT_MAX_POOL_CONNECTIONS,
      upload_workers: None,
      download_workers: None,
      part_size: DEFAULT_PART_SIZE,
      multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
      small_file_threshold_multiplier: DEFAULT_SMALL_FILE_THRESHOLD_MULTIPLIER,
      max_attempts: DEFAULT_MAX_ATTEMPTS,
      connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
      read_timeout_ms: DEFAULT_READ_TIMEOUT_MS,
      checksum: None,
      checksum_algorithm: ChecksumAlgorithm::default(),
      max_bandwidth: None,
      cache_dir: None,
      deadline_cache_dir: None,
    }
  }
}

impl ClientConfig {
  /// Checks every value; the error names the option and the value.
  pub fn validate(&self) -> Result<()> {
    // Every source (options, the config file, code) ends here, so the ranges are enforced here: a pool of
    // 2^61 would overflow the request semaphore, a timeout of 2^64 ms the clock's arithmetic.
    let counts = [
      ("maxPoolConnections", Some(self.max_pool_connections as u64)),
      ("uploadWorkers", self.upload_workers.map(|w| w as u64)),
      ("downloadWorkers", self.download_workers.map(|w| w as u64)),
      (
        "smallFileThresholdMultiplier",
        Some(self.small_file_threshold_multiplier as u64),
      ),
    ];
    for (name, value) in counts {
      in_range(name, value, MAX_COUNT)?;
    }
    in_range("maxAttempts", Some(u64::from(self.max_attempts)), MAX_ATTEMPTS)?;
    in_range("connectTimeoutMs", Some(self.connect_timeout_ms), MAX_TIMEOUT_MS)?;
    in_range("readTimeoutMs", Some(self.read_timeout_ms), MAX_TIMEOUT_MS)?;
    in_range("maxBandwidth", self.max_bandwidth, MAX_BANDWIDTH)?;
    if let Some(region) = &self.region {
      if region.is_empty() || !region.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid_value(format!(
          "region must be letters, digits and punctuation (no spaces or control characters), got {region:?}"
        )));
      }
    }
    if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
      return Err(Error::invalid_value(format!(
        "partSize must be between 5 MiB ({MIN_PART_SIZE}) and 5 GiB ({MAX_PART_SIZE}) bytes, got {}",
        self.part_size
      )));
    }
    if !(MIN_PART_SIZE..=MAX_PUT_SIZE).contains(&self.multipart_threshold) {
      return Err(Error::invalid_value(format!(
        "multipartThreshold must be between 5 MiB ({MIN_PART_SIZE}) and 5 GiB ({MAX_PUT_SIZE}) bytes (S3's largest PutObject), got {}",
        self.multipart_threshold
      )));
    }
    if let Some(endpoint) = &self.endpoint {
      if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(Error::invalid_value(format!(
          "endpoint must be an http:// or https:// URL, got '{endpoint}'"
        )));
      }
    }
    let given = [
      (
        "credentials",
        self.credentials.is_some() || self.credential_source.is_some(),
      ),
      ("profile", self.profile.is_some()),
    ];
    if let (true, Some((name, _))) = (self.anonymous, given.iter().find(|(_, g)| *g)) {
      return Err(Error::invalid_value(format!(
        "anonymous sends unsigned requests; it cannot be used with {name}"
      )));
    }
    if let Some(c) = &self.credentials {
      if c.access_key_id.is_empty() || c.secret_access_key.is_empty() {
        return Err(Error::invalid_value(
          "credentials need a non-empty accessKeyId and secretAccessKey",
        ));
      }
      if let Some(name) = c.unsendable_field() {
        return Err(Error::invalid_value(format!(
          "credentials.{name} must be printable ASCII without spaces (it has a space, a control or a non-ASCII character)"
        )));
      }
    }
    Ok(())
  }

  /// Upload workers: the original's `pool / min(small_file_threshold_multiplier, UPLOAD_MAX_CONCURRENCY)`,
  /// at least 1. With the defaults, 50 / min(20, 10) = 5.
  pub fn effective_upload_workers(&self) -> usize {
    self.upload_workers.unwrap_or_else(|| {
      (self.max_pool_connections / self.small_file_threshold_multiplier.min(MAX_REQUESTS_PER_FILE)).max(1)
    })
  }

  /// Download workers: the original's `pool / DOWNLOAD_MAX_CONCURRENCY`, at least 1. Default 50 / 10 = 5.
  pub fn effective_download_workers(&self) -> usize {
    self
      .download_workers
      .unwrap_or_else(|| (self.max_pool_connections / MAX_REQUESTS_PER_FILE).max(1))
  }

  /// The checksum policy in force.
  pub fn effective_checksum(&self) -> ChecksumMode {
    self.checksum.unwrap_or(if self.endpoint.is_some() {
      ChecksumMode::WhenRequired
    } else {
      ChecksumMode::WhenSupported
    })
  }

  /// The part size for a file of `size` bytes: `part_size`, grown (to a whole MiB) so no file needs more than
  /// 10,000 parts.
  pub fn part_size_for(&self, size: u64) -> u64 {
    let min_for_limit = size.div_ceil(MAX_PARTS);
    if min_for_limit <= self.part_size {
      self.part_size
    } else {
      min_for_limit.div_ceil(MIB) * MIB
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn derived_workers_follow_the_original_system() {
    let c = ClientConfig::default();
    assert_eq!(c.effective_upload_workers(), 5);
    assert_eq!(c.effective_download_workers(), 5);
    let c = ClientConfig {
      max_pool_connections: 7,
      ..Default::default()
    };
    assert_eq!(c.effective_upload_workers(), 1);
    assert_eq!(c.effective_download_workers(), 1);
    let c = ClientConfig {
      max_pool_connections: 100,
      small_file_threshold_multiplier: 4,
      ..Default::default()
    };
    assert_eq!(c.effective_upload_workers(), 25);
    assert_eq!(c.effective_download_workers(), 10);
    let c = ClientConfig {
      upload_workers: Some(3),
      ..Default::default()
    };
    assert_eq!(c.effective_upload_workers(), 3);
  }

  #[test]
  fn part_size_grows_to_stay_under_ten_thousand_parts() {
    let c = ClientConfig::default();
    assert_eq!(c.part_size_for(1024 * MIB), 8 * MIB);
    let huge = 200 * 1024 * MIB; // 200 GiB needs 20.48 MiB parts -> 21 MiB
    let p = c.part_size_for(huge);
    assert_eq!(p, 21 * MIB);
    assert!(huge.div_ceil(p) <= MAX_PARTS);
  }

  #[test]
  fn validation_names_the_option() {
    let bad = ClientConfig {
      part_size: MIB,
      ..Default::default()
    };
    let e = bad.validate().unwrap_err();
    assert_eq!(e.code(), "ERR_INVALID_ARG_VALUE");
    assert!(e.to_string().contains("partSize"));
    let bad = ClientConfig {
      max_pool_connections: 0,
      ..Default::default()
    };
    assert!(bad.validate().unwrap_err().to_string().contains("maxPoolConnections"));
    let bad = ClientConfig {
      endpoint: Some("ftp://x".into()),
      ..Default::default()
    };
    assert!(bad.validate().unwrap_err().to_string().contains("endpoint"));
    assert!(ClientConfig::default().validate().is_ok());
  }

  #[test]
  fn ranges_hold_for_every_source() {
    let bad = [
      ClientConfig {
        max_pool_connections: 1 << 61,
        ..Default::default()
      },
      ClientConfig {
        read_timeout_ms: u64::MAX,
        ..Default::default()
      },
      ClientConfig {
        max_attempts: u32::MAX,
        ..Default::default()
      },
      ClientConfig {
        max_bandwidth: Some(u64::MAX),
        ..Default::default()
      },
      ClientConfig {
        download_workers: Some(10_001),
        ..Default::default()
      },
    ];
    for config in bad {
      let e = config.validate().unwrap_err();
      assert_eq!(e.code(), "ERR_INVALID_ARG_VALUE");
      assert!(e.to_string().contains("must be a positive integer up to"), "{e}");
    }
    let region = ClientConfig {
      region: Some("eu\u{7}".into()),
      ..Default::default()
    };
    assert!(region.validate().unwrap_err().to_string().starts_with("region must be"));
    let secret = ClientConfig {
      credentials: Some(StaticCredentials {
        access_key_id: "AKIA".into(),
        secret_access_key: "sec ret".into(),
        session_token: None,
      }),
      ..Default::default()
    };
    let e = secret.validate().unwrap_err().to_string();
    assert!(
      e.starts_with("credentials.secretAccessKey must be") && !e.contains("sec ret"),
      "{e}"
    );
  }

  #[test]
  fn checksum_default_is_safe_for_custom_endpoints() {
    assert_eq!(
      ClientConfig::default().effective_checksum(),
      ChecksumMode::WhenSupported
    );
    let c = ClientConfig {
      endpoint: Some("http://127.0.0.1:9000".into()),
      ..Default::default()
    };
    assert_eq!(c.effective_checksum(), ChecksumMode::WhenRequired);
  }

  #[test]
  fn credentials_debug_hides_secrets() {
    let c = StaticCredentials {
      access_key_id: "AKID".into(),
      secret_access_key: "very-secret".into(),
      session_token: Some("tok".into()),
    };
    let s = format!("{c:?}");
    assert!(s.contains("AKID") && !s.contains("very-secret") && !s.contains("tok"));
  }
}

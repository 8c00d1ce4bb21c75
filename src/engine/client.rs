//! The engine's client: one S3 client and one connection pool, shared by every call made on it.

use std::sync::Arc;
use std::time::Duration;

use aws_config::identity::IdentityCache;
use aws_config::meta::region::RegionProviderChain;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::retry::{RetryPartition, TokenBucket};
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_smithy_http_client::pool::{Client as PoolClient, ConnectionPool};
use aws_smithy_http_client::tls;
use aws_smithy_types::retry::RetrySpec;
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};

use super::cache::Cache;
use super::config::{ChecksumMode, ClientConfig};
use super::credentials::{Chain, Refreshing};
use super::error::{Error, Result};
use super::log::{RepeatedHeaders, RequestLog};
use super::scheduler::blocking;
use super::throttle::Bandwidth;
use super::timeout::IdleTimeoutClient;

/// First backoff after a throttling error (503 SlowDown): at most this long, then doubling.
const THROTTLED_INITIAL_BACKOFF: Duration = Duration::from_secs(1);

/// First backoff after a transient error (500, a reset connection, a timeout).
const TRANSIENT_INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// Idle connections are kept this long for reuse between calls.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The instance-metadata service answers within milliseconds where it exists; off EC2 (a desktop, an offline
/// machine) the SDK's default of 1 s × retries stalls the first request. One quick attempt is enough.
const IMDS_TIMEOUT: Duration = Duration::from_millis(250);

/// A transfer client. Cheap to share (`Arc`); its connection pool and request cap are shared by all calls.
pub struct Engine {
  config: ClientConfig,
  s3: OnceCell<aws_sdk_s3::Client>,
  /// One permit per request in flight, across every call on this client: `maxPoolConnections` is a hard cap.
  requests: Semaphore,
  /// The client's bandwidth cap, shared by all its calls.
  bandwidth: Option<Arc<Bandwidth>>,
  /// The local cache, opened on first use (`None` inside: none configured, or it could not be opened).
  cache: OnceCell<Option<Arc<Cache>>>,
}

impl std::fmt::Debug for Engine {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("Engine")
      .field("config", &self.config)
      .finish_non_exhaustive()
  }
}

impl Engine {
  /// Validates the configuration. The S3 client and the credentials are set up on first use, so creating a
  /// client never blocks and never touches the network.
  pub fn new(config: ClientConfig) -> Result<Arc<Self>> {
    config.validate()?;
    Ok(Arc::new(Engine {
      requests: Semaphore::new(config.max_pool_connections),
      bandwidth: config.max_bandwidth.map(|b| Arc::new(Bandwidth::new(b))),
      config,
      s3: OnceCell::new(),
      cache: OnceCell::new(),
    }))
  }

  /// The configuration in force.
  pub fn config(&self) -> &ClientConfig {
    &self.config
  }

  /// The S3 client, built on first use.
  pub(crate) async fn s3(&self) -> Result<&aws_sdk_s3::Client> {
    self.s3.get_or_try_init(|| build_s3(&self.config)).await
  }

  /// The local cache, opened on first use. A cache that cannot be opened (an unwritable directory, a corrupt
  /// file) is logged and the client runs without one: it only ever saves work.
  pub(crate) async fn cache(&self) -> Option<Arc<Cache>> {
    let dir = self.config.cache_dir.clone()?;
    self
      .cache
      .get_or_init(|| async move {
        let deadline = self.config.deadline_cache_dir.clone();
        let opened = blocking(move || {
          let mut cache =
            Cache::open(&dir).map_err(|e| Error::invalid_value(format!("cache '{}': {e}", dir.display())))?;
          if let Some(d) = deadline {
            cache.share_with_deadline(&d);
          }
          Ok(cache)
        })
        .await;
        match opened {
          Ok(cache) => Some(Arc::new(cache)),
          Err(e) => {
            tracing::warn!(target: "s3_ferry::cache", error = %e, "running without the cache");
            None
          }
        }
      })
      .await
      .clone()
  }

  /// Where this client's objects live, as the cache tells servers apart: endpoint (or AWS region) and bucket.
  pub(crate) fn cache_scope(&self, bucket: &str) -> String {
    match &self.config.endpoint {
      Some(endpoint) => format!("{endpoint} {bucket}"),
      None => format!("aws:{} {bucket}", self.config.region.as_deref().unwrap_or("")),
    }
  }

  /// Waits for one of the client's request slots. Hold it until the response body has been read.
  pub(crate) async fn request_slot(&self) -> SemaphorePermit<'_> {
    self
      .requests
      .acquire()
      .await
      .expect("the request semaphore is never closed")
  }

  /// The limiter for a call: its own cap if it has one, else the client's.
  pub(crate) fn throttle_for(&self, control: &super::Control) -> Option<Arc<Bandwidth>> {
    match control.max_bandwidth {
      Some(bps) => Some(Arc::new(Bandwidth::new(bps))),
      None => self.bandwidth.clone(),
    }
  }
}

/// Standard retry mode (exponential backoff with full jitter, capped at 20 s; no retry quota, see `build_s3`), with
/// two starting points: a dropped connection or a 500 is usually gone at once, so those retries start within
/// 100 ms; a 503 SlowDown asks the client to slow down, so throttling retries start within 1 s and double from
/// there. (`RetrySpec` is how the SDK itself separates the two; it is marked SDK-internal, and pinned by
/// Cargo.lock.)
fn retry_config(max_attempts: u32) -> RetryConfig {
  RetryConfig::standard()
    .with_max_attempts(max_attempts)
    .with_initial_backoff(THROTTLED_INITIAL_BACKOFF)
    .with_retry_spec(RetrySpec::v2_0().with_non_throttling_initial_backoff(TRANSIENT_INITIAL_BACKOFF))
}

async fn build_s3(cfg: &ClientConfig) -> Result<aws_sdk_s3::Client> {
  // The pool's own per-origin cap keeps sockets ≤ pool even while requests are being retried; the semaphore in
  // `Engine` caps requests across origins (virtual-hosted buckets are distinct hosts).
  let pool = ConnectionPool::builder()
    .max_connections_per_host(cfg.max_pool_connections)
    .tcp_nodelay(true)
    .idle_timeout(IDLE_TIMEOUT)
    .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
    .build_https()
    .map_err(|e| Error::invalid_value(format!("cannot build the connection pool: {e}")))?;
  let http = PoolClient::new(&pool).map_err(|e| Error::invalid_value(format!("cannot build the HTTP client: {e}")))?;
  let http = IdleTimeoutClient::new(http, Duration::from_millis(cfg.read_timeout_ms));

  let region = match &cfg.region {
    Some(r) => Region::new(r.clone()),
    None => {
      let mut profile_region = aws_config::profile::ProfileFileRegionProvider::builder();
      if let Some(p) = &cfg.profile {
        profile_region = profile_region.profile_name(p);
      }
      // No instance-metadata lookup for the region: an S3 transfer works with any region for custom endpoints,
      // and us-east-1 is S3's global default.
      RegionProviderChain::first_try(aws_config::environment::region::EnvironmentVariableRegionProvider::new())
        .or_else(profile_region.build())
        .or_else(Region::from_static("us-east-1"))
        .region()
        .await
        .unwrap_or(Region::from_static("us-east-1"))
    }
  };

  let mut loader = aws_config::defaults(BehaviorVersion::latest())
    .http_client(http)
    .region(region.clone())
    .retry_config(retry_config(cfg.max_attempts))
    // The engine's idle read timeout (timeout.rs) already fails a silent body; the SDK's stalled-stream monitor
    // would wrap every body again and sample its throughput on every chunk.
    .stalled_stream_protection(aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled())
    .timeout_config(
      TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
        .build(),
    );
  if let Some(p) = &cfg.profile {
    loader = loader.profile_name(p);
  }
  loader = match (&cfg.credentials, &cfg.credential_source) {
    _ if cfg.anonymous => loader.no_credentials(),
    (Some(c), _) => loader.credentials_provider(Credentials::new(
      c.access_key_id.clone(),
      c.secret_access_key.clone(),
      c.session_token.clone(),
      None,
      "s3-ferry",
    )),
    // Cached and refreshed ahead of expiry by `Refreshing` itself; the SDK's cache would hold them until 10 s
    // before they expire.
    (None, Some(source)) => loader
      .credentials_provider(Refreshing::new(source.clone()))
      .identity_cache(IdentityCache::no_cache()),
    (None, None) => {
      let imds = aws_config::imds::Client::builder()
        .connect_timeout(IMDS_TIMEOUT)
        .read_timeout(IMDS_TIMEOUT)
        .max_attempts(1)
        .build();
      let conf = ProviderConfig::default().with_region(Some(region));
      loader.credentials_provider(Chain::new(conf, cfg.profile.clone(), imds))
    }
  };
  let shared = loader.load().await;

  let calc = match cfg.effective_checksum() {
    ChecksumMode::WhenSupported => RequestChecksumCalculation::WhenSupported,
    ChecksumMode::WhenRequired => RequestChecksumCalculation::WhenRequired,
  };
  let mut s3 = aws_sdk_s3::config::Builder::from(&shared)
    .interceptor(RequestLog)
    .interceptor(RepeatedHeaders)
    // No retry quota: the SDK's token bucket, once an outage has spent it, denies every retry until enough
    // requests succeed, so a long-lived app's calls after the network returns failed on their first error. Each
    // request still makes at most `maxAttempts` with backoff, and the pool caps requests in flight.
    .retry_partition(
      RetryPartition::custom("s3-ferry")
        .token_bucket(TokenBucket::unlimited())
        .build(),
    )
    .force_path_style(cfg.force_path_style)
    .request_checksum_calculation(calc)
    // Whatever the upload policy, a GET asks for the stored checksum and the SDK verifies every whole-object
    // response that carries one; stores that do not know the header ignore it. (Ranged parts are verified by
    // the download itself, against the full-object checksum.)
    .response_checksum_validation(ResponseChecksumValidation::WhenSupported);
  if let Some(endpoint) = &cfg.endpoint {
    s3 = s3.endpoint_url(endpoint);
  }
  Ok(aws_sdk_s3::Client::from_conf(s3.build()))
}

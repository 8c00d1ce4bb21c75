//! Where a client's credentials come from, besides static keys: a source the caller provides (in the binding, a
//! JavaScript function such as `fromIni()` of `@aws-sdk/credential-providers`), cached and asked again ahead of
//! expiry; and the standard AWS chain, tried provider by provider so a failure names every one and why it failed.

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials};
use aws_credential_types::Credentials;
use futures_util::future::BoxFuture;

use super::config::StaticCredentials;

/// Credentials from a source, with when they stop working.
#[derive(Debug, Clone)]
pub struct Provided {
  pub credentials: StaticCredentials,
  /// `None`: they do not expire (asked for once).
  pub expiration: Option<SystemTime>,
}

/// A source of credentials that may expire: asked once, then again before they do.
pub trait FetchCredentials: Send + Sync + 'static {
  /// New credentials, or why there are none (the message names the failure; never a secret).
  fn fetch(&self) -> BoxFuture<'static, Result<Provided, String>>;
}

/// A shared source; compared by identity (the same source is the same client configuration).
#[derive(Clone)]
pub struct CredentialSource(pub Arc<dyn FetchCredentials>);

impl PartialEq for CredentialSource {
  fn eq(&self, other: &Self) -> bool {
    Arc::ptr_eq(&self.0, &other.0)
  }
}

impl Eq for CredentialSource {}

impl std::hash::Hash for CredentialSource {
  fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
    (Arc::as_ptr(&self.0) as *const () as usize).hash(state)
  }
}

impl std::fmt::Debug for CredentialSource {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.write_str("CredentialSource(..)")
  }
}

/// How long before expiry credentials are asked for again: 5 minutes, as the AWS SDK for JavaScript does, or half
/// their lifetime when they live shorter than 10 minutes.
const REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// A source that does not settle within this fails the request with `ERR_CREDENTIALS`.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// After a failed fetch, the source is asked again after this long (not on every request): meanwhile requests use
/// the credentials in hand while they work, or get the same error.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// Credentials are not used in their last 15 s (or last quarter, when they live shorter than a minute): a request
/// signed then could reach S3 after they expire.
const USABLE_MARGIN: Duration = Duration::from_secs(15);

/// A failed fetch: every request until `until` that has no usable credentials gets the same error.
struct Failed {
  message: String,
  until: SystemTime,
}

#[derive(Clone)]
struct Cached {
  credentials: Credentials,
  /// Ask again from then on (`None`: never), in the background while they are still usable.
  refresh_at: Option<SystemTime>,
  /// Not used from then on (`None`: always usable).
  usable_until: Option<SystemTime>,
}

#[derive(Default)]
struct State {
  cached: Option<Cached>,
  failed: Option<Failed>,
  /// A background refresh is under way.
  refreshing: bool,
  /// Fetches started, and the newest whose result was kept: a fetch that ends after a newer one (a background
  /// refresh overtaken by a request's own fetch) is dropped, so older credentials never replace newer ones.
  started: u64,
  kept: u64,
}

impl State {
  /// Keeps a fetch's result unless a newer fetch's is already kept.
  fn keep(&mut self, generation: u64, result: &Result<Cached, String>) {
    if generation <= self.kept {
      return;
    }
    self.kept = generation;
    match result {
      Ok(fresh) => {
        self.cached = Some(fresh.clone());
        self.failed = None;
      }
      Err(message) => {
        self.failed = Some(Failed {
          message: message.clone(),
          until: SystemTime::now() + RETRY_AFTER_FAILURE,
        })
      }
    }
  }
}

struct Inner {
  source: CredentialSource,
  state: tokio::sync::Mutex<State>,
}

/// The SDK's view of a [`CredentialSource`]: cached, and refreshed ahead of expiry in the background, so requests
/// never wait on a refresh while the credentials in hand still work; with none usable, one fetch at a time, which
/// concurrent requests wait for. The SDK's own identity cache is off for such a client (it would keep credentials
/// until 10 s before expiry).
pub(crate) struct Refreshing {
  inner: Arc<Inner>,
}

impl std::fmt::Debug for Refreshing {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.write_str("Refreshing(..)")
  }
}

impl Inner {
  /// Asks the source, checks what it gave and works out when to refresh and when to stop using it.
  async fn fetch(&self) -> Result<Cached, String> {
    let fetched = match tokio::time::timeout(FETCH_TIMEOUT, self.source.0.fetch()).await {
      Ok(result) => result,
      Err(_) => Err(format!(
        "the credentials function did not settle within {} s",
        FETCH_TIMEOUT.as_secs()
      )),
    };
    let now = SystemTime::now();
    let p = check(fetched?, now)?;
    let lifetime = p.expiration.map(|exp| exp.duration_since(now).unwrap_or_default());
    let c = &p.credentials;
    tracing::debug!(target: "s3_ferry::credentials", expires_in_s = ?lifetime.map(|d| d.as_secs()),
      "credentials fetched");
    Ok(Cached {
      credentials: Credentials::new(
        c.access_key_id.clone(),
        c.secret_access_key.clone(),
        c.session_token.clone(),
        p.expiration,
        "s3-ferry-credentials-function",
      ),
      refresh_at: p
        .expiration
        .zip(lifetime)
        .map(|(exp, l)| exp - REFRESH_AHEAD.min(l / 2)),
      usable_until: p
        .expiration
        .zip(lifetime)
        .map(|(exp, l)| exp - USABLE_MARGIN.min(l / 4)),
    })
  }
}

impl Refreshing {
  pub(crate) fn new(source: CredentialSource) -> Self {
    Refreshing {
      inner: Arc::new(Inner {
        source,
        state: tokio::sync::Mutex::new(State::default()),
      }),
    }
  }

  async fn resolve(&self) -> Result<Credentials, CredentialsError> {
    let mut state = self.inner.state.lock().await;
    let now = SystemTime::now();
    let retry_allowed = state.failed.as_ref().is_none_or(|f| now >= f.until);
    if let Some(c) = &state.cached {
      if c.refresh_at.is_none_or(|t| now < t) {
        return Ok(c.credentials.clone());
      }
      if c.usable_until.is_none_or(|t| now < t) {
        let credentials = c.credentials.clone();
        if !state.refreshing && retry_allowed {
          state.refreshing = true;
          state.started += 1;
          let (inner, generation) = (self.inner.clone(), state.started);
          tokio::spawn(async move {
            let result = inner.fetch().await;
            if let Err(message) = &result {
              tracing::warn!(target: "s3_ferry::credentials", error = %message,
                "refreshing credentials failed; using the current ones while they last");
            }
            let mut state = inner.state.lock().await;
            state.refreshing = false;
            state.keep(generation, &result);
          });
        }
        return Ok(credentials);
      }
    }
    if let (false, Some(f)) = (retry_allowed, &state.failed) {
      return Err(CredentialsError::provider_error(f.message.clone()));
    }
    // Nothing usable: fetch now, holding the lock, so concurrent requests wait for this one fetch.
    state.started += 1;
    let generation = state.started;
    let result = self.inner.fetch().await;
    state.keep(generation, &result);
    result
      .map(|fresh| fresh.credentials)
      .map_err(CredentialsError::provider_error)
  }
}

/// Provided credentials that can sign a request.
fn check(p: Provided, now: SystemTime) -> Result<Provided, String> {
  let c = &p.credentials;
  if c.access_key_id.is_empty() || c.secret_access_key.is_empty() {
    return Err("the credentials function returned no accessKeyId or secretAccessKey".into());
  }
  if let Some(name) = c.unsendable_field() {
    return Err(format!(
      "the credentials function returned a {name} that is not printable ASCII without spaces"
    ));
  }
  if p.expiration.is_some_and(|e| e <= now) {
    return Err("the credentials function returned credentials that have already expired".into());
  }
  Ok(p)
}

impl ProvideCredentials for Refreshing {
  fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
  where
    Self: 'a,
  {
    future::ProvideCredentials::new(self.resolve())
  }
}

/// The standard AWS chain (environment, shared files and profile with SSO and processes, web identity,
/// container, instance metadata), tried in the SDK's order; when none gives credentials, the error names each
/// provider and why it gave none (the SDK's chain names only the last, once the instance metadata lookup times
/// out).
#[derive(Debug)]
pub(crate) struct Chain {
  conf: ProviderConfig,
  profile: Option<String>,
  rest: Vec<(&'static str, Box<dyn ProvideCredentials>)>,
}

impl Chain {
  pub(crate) fn new(conf: ProviderConfig, profile: Option<String>, imds: aws_config::imds::Client) -> Chain {
    let rest: Vec<(&'static str, Box<dyn ProvideCredentials>)> = vec![
      (
        "web identity token",
        Box::new(
          aws_config::web_identity_token::WebIdentityTokenCredentialsProvider::builder()
            .configure(&conf)
            .build(),
        ),
      ),
      (
        "container (ECS/EKS)",
        Box::new(
          aws_config::ecs::EcsCredentialsProvider::builder()
            .configure(&conf)
            .build(),
        ),
      ),
      (
        "instance metadata (EC2)",
        Box::new(
          aws_config::imds::credentials::ImdsCredentialsProvider::builder()
            .imds_client(imds)
            .configure(&conf)
            .build(),
        ),
      ),
    ];
    Chain { conf, profile, rest }
  }

  async fn resolve(&self) -> Result<Credentials, CredentialsError> {
    let mut tried: Vec<String> = Vec::new();
    let env = aws_config::environment::credentials::EnvironmentVariableCredentialsProvider::new();
    match env.provide_credentials().await {
      Ok(c) => return Ok(c),
      Err(e @ CredentialsError::CredentialsNotLoaded(_)) => {
        tried.push(format!("environment (AWS_ACCESS_KEY_ID): {}", reason(&e)))
      }
      Err(e) => return Err(CredentialsError::provider_error(format!("environment: {}", reason(&e)))),
    }
    // Built for each resolution: the SDK's profile provider reports its file errors only once, then "already
    // taken" (successful credentials are cached by the SDK, so this runs again only after a failure).
    let mut profile = aws_config::profile::ProfileFileCredentialsProvider::builder().configure(&self.conf);
    if let Some(p) = &self.profile {
      profile = profile.profile_name(p);
    }
    match profile.build().provide_credentials().await {
      Ok(c) => return Ok(c),
      Err(e @ CredentialsError::CredentialsNotLoaded(_)) => match &self.profile {
        // A profile asked for by name that does not exist: nothing else should be tried.
        Some(name) if profile_missing(&e, name) => {
          return Err(CredentialsError::not_loaded(format!(
            "the profile '{name}' does not exist in the shared AWS files ({} and {})",
            shared_file("AWS_CONFIG_FILE", "config"),
            shared_file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
          )))
        }
        _ => tried.push(format!(
          "profile '{}' ({}, {}): {}",
          self.profile.as_deref().unwrap_or("default"),
          shared_file("AWS_CONFIG_FILE", "config"),
          shared_file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
          reason(&e)
        )),
      },
      // A profile that is there and fails (an expired SSO session, a failing credential_process) is the answer.
      Err(e) => {
        return Err(CredentialsError::provider_error(format!(
          "profile '{}': {}",
          self.profile.as_deref().unwrap_or("default"),
          reason(&e)
        )))
      }
    }
    // As the SDK's chain: a provider that is not set up passes to the next; one that is set up and fails (STS
    // refusing a web identity, a container endpoint erroring) is the answer, so a transfer never runs as another
    // identity by falling through.
    for (name, provider) in &self.rest {
      match provider.provide_credentials().await {
        Ok(c) => return Ok(c),
        Err(e @ CredentialsError::CredentialsNotLoaded(_)) => tried.push(format!("{name}: {}", reason(&e))),
        Err(e) => return Err(CredentialsError::provider_error(format!("{name}: {}", reason(&e)))),
      }
    }
    Err(CredentialsError::not_loaded(format!(
      "no credentials found; tried {}",
      tried.join("; ")
    )))
  }
}

impl ProvideCredentials for Chain {
  fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
  where
    Self: 'a,
  {
    future::ProvideCredentials::new(self.resolve())
  }
}

/// Why a provider gave no credentials: its innermost explanation ("environment variable not set"), else its own
/// summary ("the credential provider was not enabled").
fn reason(e: &CredentialsError) -> String {
  let mut parts = Vec::new();
  let mut source = e.source();
  while let Some(s) = source {
    parts.push(s.to_string());
    source = s.source();
  }
  match parts.is_empty() {
    true => match e {
      CredentialsError::CredentialsNotLoaded(_) => "not configured".into(),
      other => other.to_string(),
    },
    false => parts.join(": "),
  }
}

/// The profile provider's "this profile is not defined" about `name` itself (not about a `source_profile` it
/// names). A profile that exists without keys, or no shared files at all, is not this: the chain goes on.
fn profile_missing(e: &CredentialsError, name: &str) -> bool {
  reason(e).contains(&format!("profile `{name}` was not defined"))
}

/// Where the SDK reads a shared file: the environment variable's path, else `~/.aws/<name>`.
fn shared_file(var: &str, name: &str) -> String {
  std::env::var(var).unwrap_or_else(|_| format!("~/.aws/{name}"))
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::sync::atomic::{AtomicUsize, Ordering};

  struct Counting {
    calls: AtomicUsize,
    lifetime: Duration,
    fail_after: usize,
  }

  impl FetchCredentials for Arc<Counting> {
    fn fetch(&self) -> BoxFuture<'static, Result<Provided, String>> {
      let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
      let (lifetime, fail) = (self.lifetime, n > self.fail_after);
      Box::pin(async move {
        if fail {
          return Err("provider says no".into());
        }
        Ok(Provided {
          credentials: StaticCredentials {
            access_key_id: format!("AKID{n}"),
            secret_access_key: "secret".into(),
            session_token: None,
          },
          expiration: Some(SystemTime::now() + lifetime),
        })
      })
    }
  }

  fn source(lifetime: Duration, fail_after: usize) -> (Arc<Counting>, Refreshing) {
    let c = Arc::new(Counting {
      calls: AtomicUsize::new(0),
      lifetime,
      fail_after,
    });
    (c.clone(), Refreshing::new(CredentialSource(Arc::new(c))))
  }

  #[tokio::test]
  async fn cached_until_half_their_short_lifetime_then_refreshed_in_the_background() {
    let (counter, r) = source(Duration::from_millis(1200), usize::MAX);
    let a = r.resolve().await.unwrap();
    let b = r.resolve().await.unwrap();
    assert_eq!((a.access_key_id(), b.access_key_id()), ("AKID1", "AKID1"));
    assert_eq!(counter.calls.load(Ordering::SeqCst), 1);
    // Past half their life (600 ms), before their last quarter (900 ms): served at once, refreshed behind.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(r.resolve().await.unwrap().access_key_id(), "AKID1");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(r.resolve().await.unwrap().access_key_id(), "AKID2");
    assert_eq!(counter.calls.load(Ordering::SeqCst), 2);
  }

  #[tokio::test]
  async fn a_failed_refresh_keeps_working_credentials_and_fails_without_them() {
    let (counter, r) = source(Duration::from_millis(1200), 1);
    r.resolve().await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    // The refresh (behind) fails; the first credentials still serve until their last quarter.
    assert_eq!(r.resolve().await.unwrap().access_key_id(), "AKID1");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(r.resolve().await.unwrap().access_key_id(), "AKID1");
    assert_eq!(
      counter.calls.load(Ordering::SeqCst),
      2,
      "not asked again on every request"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // None usable, and the failure is recent: the same error, without asking again.
    let e = r.resolve().await.unwrap_err();
    assert_eq!(reason(&e), "provider says no");
    assert_eq!(counter.calls.load(Ordering::SeqCst), 2);
  }

  #[tokio::test]
  async fn expired_or_unusable_credentials_are_refused() {
    let now = SystemTime::now();
    let p = |id: &str, exp: Option<SystemTime>| Provided {
      credentials: StaticCredentials {
        access_key_id: id.into(),
        secret_access_key: "s".into(),
        session_token: None,
      },
      expiration: exp,
    };
    assert!(check(p("A", Some(now - Duration::from_secs(1))), now)
      .unwrap_err()
      .contains("already expired"));
    assert!(check(p("", None), now).unwrap_err().contains("no accessKeyId"));
    assert!(check(p("A\n", None), now)
      .unwrap_err()
      .contains("accessKeyId that is not printable"));
    assert!(check(p("A", None), now).is_ok());
  }
}

//! Request logs on demand. The engine emits `tracing` events; nothing is printed unless the binding installs a
//! subscriber (`S3_FERRY_LOG=debug`). One line per request attempt: method, host, path (bucket and key,
//! percent-encoded), part number, HTTP status, attempt number and duration. Never headers or query strings, so
//! never credentials, session tokens or signatures.

use std::cell::Cell;
use std::future::Future;
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
  BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// The `tracing` target of the per-request lines.
pub const REQUEST_TARGET: &str = "s3_ferry::request";

tokio::task_local! {
  /// Attempts made by the request being awaited in [`counting`].
  static ATTEMPTS: Cell<u32>;
}

/// Awaits one SDK request (a `send()` future) and says how many attempts it took, first included, so an error
/// can tell that retries were exhausted.
pub(crate) async fn counting<F: Future>(request: F) -> (F::Output, u32) {
  ATTEMPTS
    .scope(Cell::new(0), async {
      let out = request.await;
      (out, ATTEMPTS.with(Cell::get))
    })
    .await
}

/// What is known of an attempt when it is sent (the request itself is gone by the time it finishes).
#[derive(Debug, Clone)]
struct AttemptInfo {
  started: Instant,
  method: String,
  host: String,
  path: String,
  part: Option<String>,
}

impl Storable for AttemptInfo {
  type Storer = StoreReplace<Self>;
}

/// Logs every request attempt at DEBUG on `s3_ferry::request`, when that level is enabled, and counts attempts
/// for [`counting`].
#[derive(Debug)]
pub(crate) struct RequestLog;

impl Intercept for RequestLog {
  fn name(&self) -> &'static str {
    "S3FerryRequestLog"
  }

  fn read_before_transmit(
    &self,
    context: &BeforeTransmitInterceptorContextRef<'_>,
    _runtime_components: &RuntimeComponents,
    cfg: &mut ConfigBag,
  ) -> Result<(), BoxError> {
    if !tracing::enabled!(target: REQUEST_TARGET, tracing::Level::DEBUG) {
      return Ok(());
    }
    let request = context.request();
    let uri = request.uri();
    let (rest, query) = uri.split_once('?').unwrap_or((uri, ""));
    let without_scheme = rest.split_once("://").map_or(rest, |(_, r)| r);
    let (host, path) = without_scheme.split_at(without_scheme.find('/').unwrap_or(without_scheme.len()));
    let part = query
      .split('&')
      .find_map(|kv| kv.strip_prefix("partNumber="))
      .map(str::to_owned);
    cfg.interceptor_state().store_put(AttemptInfo {
      started: Instant::now(),
      method: request.method().to_owned(),
      host: host.to_owned(),
      path: if path.is_empty() {
        "/".to_owned()
      } else {
        path.to_owned()
      },
      part,
    });
    Ok(())
  }

  fn read_after_attempt(
    &self,
    context: &FinalizerInterceptorContextRef<'_>,
    _runtime_components: &RuntimeComponents,
    cfg: &mut ConfigBag,
  ) -> Result<(), BoxError> {
    let attempt = cfg.load::<RequestAttempts>().map(|a| a.attempts());
    if let Some(n) = attempt {
      // Outside `counting` (no scope) there is nothing to record.
      let _ = ATTEMPTS.try_with(|c| c.set(n));
    }
    let Some(info) = cfg.load::<AttemptInfo>() else {
      return Ok(());
    };
    let status = context.response().map(|r| r.status().as_u16());
    let ms = (info.started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
    tracing::debug!(
      target: REQUEST_TARGET,
      method = %info.method,
      host = %info.host,
      path = %info.path,
      part = info.part.as_deref(),
      status,
      attempt,
      ms,
      "request"
    );
    Ok(())
  }
}

/// Folds an `x-amz-*` response header repeated with one identical value into one. SeaweedFS 4.x sends
/// `x-amz-server-side-encryption-customer-key-MD5` twice on every read of an SSE-C object, and the SDK refuses a
/// repeated single-value header, so without this no SSE-C object could be read from it. Repeats with different
/// values are left for the SDK to refuse.
#[derive(Debug)]
pub(crate) struct RepeatedHeaders;

impl Intercept for RepeatedHeaders {
  fn name(&self) -> &'static str {
    "S3FerryRepeatedHeaders"
  }

  fn modify_before_deserialization(
    &self,
    context: &mut BeforeDeserializationInterceptorContextMut<'_>,
    _runtime_components: &RuntimeComponents,
    _cfg: &mut ConfigBag,
  ) -> Result<(), BoxError> {
    let headers = context.response_mut().headers_mut();
    let mut folded: Vec<(String, String)> = Vec::new();
    for (name, _) in headers.iter() {
      if !name.starts_with("x-amz-") || folded.iter().any(|(n, _)| n == name) {
        continue;
      }
      let mut values = headers.get_all(name);
      let first = values.next().unwrap_or_default();
      let mut count = 1;
      let mut same = true;
      for v in values {
        count += 1;
        same &= v == first;
      }
      if count > 1 && same {
        folded.push((name.to_owned(), first.to_owned()));
      }
    }
    for (name, value) in folded {
      headers.insert(name, value);
    }
    Ok(())
  }
}

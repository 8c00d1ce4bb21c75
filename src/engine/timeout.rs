//! The read timeout: an attempt fails when the network has been silent for `readTimeoutMs`, however long the
//! transfer itself takes.
//!
//! The SDK's own `read_timeout` bounds the whole wait for the response headers, which includes sending the
//! request body: any fixed value either kills a slow 8 MiB part under a bandwidth cap or waits minutes on a dead
//! connection. This wrapper around the HTTP client measures silence instead:
//! - while a request is being sent, every chunk the transport takes counts as activity; time spent waiting for
//!   our own body (a disk read, the bandwidth cap) does not count;
//! - after the body is sent, the response headers must arrive within the timeout;
//! - a response body fails when no bytes arrive for the timeout while it is being read (time the reader spends
//!   elsewhere, such as writing to disk or waiting for the cap, does not count).
//!
//! A silent request fails as a timeout, which the SDK retries; a silent response body fails as a broken body,
//! which the download fetches again from where it stopped.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
  HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// An HTTP client whose attempts fail after `idle` without network activity.
#[derive(Debug)]
pub(crate) struct IdleTimeoutClient {
  inner: SharedHttpClient,
  idle: Duration,
}

impl IdleTimeoutClient {
  pub(crate) fn new(inner: impl HttpClient + 'static, idle: Duration) -> Self {
    IdleTimeoutClient {
      inner: SharedHttpClient::new(inner),
      idle,
    }
  }
}

impl HttpClient for IdleTimeoutClient {
  fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
    SharedHttpConnector::new(IdleTimeoutConnector {
      inner: self.inner.http_connector(settings, components),
      idle: self.idle,
    })
  }
}

#[derive(Debug)]
struct IdleTimeoutConnector {
  inner: SharedHttpConnector,
  idle: Duration,
}

/// Milliseconds on a process-wide clock, so activity fits in an atomic.
fn now_ms() -> u64 {
  static EPOCH: OnceLock<Instant> = OnceLock::new();
  EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// When the request last moved, and whether it is waiting for its own body rather than for the network.
#[derive(Debug, Default)]
struct Activity {
  last_ms: AtomicU64,
  producing: AtomicBool,
}

impl Activity {
  fn touch(&self) {
    self.last_ms.store(now_ms(), Ordering::Relaxed);
  }
}

impl HttpConnector for IdleTimeoutConnector {
  fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
    let idle = self.idle;
    let activity = Arc::new(Activity::default());
    activity.touch();
    let body = request.take_body();
    *request.body_mut() = SdkBody::from_body_1_x(WatchedRequestBody {
      inner: body,
      activity: activity.clone(),
    });
    let call = self.inner.call(request);
    HttpConnectorFuture::new(async move {
      tokio::pin!(call);
      loop {
        let last = activity.last_ms.load(Ordering::Relaxed);
        let left = (last + idle.as_millis() as u64).saturating_sub(now_ms());
        let deadline = Instant::now() + Duration::from_millis(left);
        tokio::select! {
          response = &mut call => {
            return response.map(|r| r.map(|body| SdkBody::from_body_1_x(IdleResponseBody { inner: body, idle, timer: None })));
          }
          _ = tokio::time::sleep_until(deadline) => {
            if activity.producing.load(Ordering::Relaxed) {
              activity.touch();
            } else if activity.last_ms.load(Ordering::Relaxed) == last {
              return Err(ConnectorError::timeout(silence(idle, "waiting for the server")));
            }
          }
        }
      }
    })
  }
}

fn silence(idle: Duration, doing: &str) -> BoxError {
  format!("no data for {} ms {doing} (readTimeoutMs)", idle.as_millis()).into()
}

/// The request body, reporting each chunk the transport takes as activity.
struct WatchedRequestBody {
  inner: SdkBody,
  activity: Arc<Activity>,
}

impl Body for WatchedRequestBody {
  type Data = Bytes;
  type Error = BoxError;

  fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    let polled = Pin::new(&mut self.inner).poll_frame(cx);
    let producing = polled.is_pending();
    self.activity.producing.store(producing, Ordering::Relaxed);
    self.activity.touch();
    polled
  }

  fn is_end_stream(&self) -> bool {
    self.inner.is_end_stream()
  }

  fn size_hint(&self) -> SizeHint {
    self.inner.size_hint()
  }
}

/// The response body, failing when the network is silent for `idle` while it is being read.
struct IdleResponseBody {
  inner: SdkBody,
  idle: Duration,
  /// Started at the first poll that found no data; cleared when data arrives.
  timer: Option<Pin<Box<Sleep>>>,
}

impl Body for IdleResponseBody {
  type Data = Bytes;
  type Error = BoxError;

  fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    match Pin::new(&mut self.inner).poll_frame(cx) {
      Poll::Ready(frame) => {
        self.timer = None;
        Poll::Ready(frame)
      }
      Poll::Pending => {
        let idle = self.idle;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        match timer.as_mut().poll(cx) {
          Poll::Ready(()) => Poll::Ready(Some(Err(silence(idle, "in the response body")))),
          Poll::Pending => Poll::Pending,
        }
      }
    }
  }

  fn is_end_stream(&self) -> bool {
    self.inner.is_end_stream()
  }

  fn size_hint(&self) -> SizeHint {
    self.inner.size_hint()
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use aws_smithy_runtime_api::http::StatusCode;

  /// A transport that reads the whole request body, then answers after `answer_after` (or never), with a body
  /// of two bytes sent `body_gap` apart.
  #[derive(Debug, Clone)]
  struct Transport {
    answer_after: Option<Duration>,
    body_gap: Duration,
  }

  impl HttpConnector for Transport {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
      let me = self.clone();
      HttpConnectorFuture::new(async move {
        let mut body = request.take_body();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
          frame.map_err(ConnectorError::io)?;
        }
        match me.answer_after {
          None => std::future::pending().await,
          Some(after) => tokio::time::sleep(after).await,
        }
        let body = SdkBody::from_body_1_x(SlowBody {
          chunks: 2,
          gap: me.body_gap,
          sleep: None,
        });
        Ok(aws_smithy_runtime_api::http::Response::new(
          StatusCode::try_from(200).unwrap(),
          body,
        ))
      })
    }
  }

  /// A body of `chunks` one-byte chunks, each produced `gap` after the previous one: a disk or a bandwidth cap
  /// that is slower than the timeout.
  struct SlowBody {
    chunks: u32,
    gap: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
  }

  impl Body for SlowBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
      if self.chunks == 0 {
        return Poll::Ready(None);
      }
      let gap = self.gap;
      let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(gap)));
      match sleep.as_mut().poll(cx) {
        Poll::Pending => Poll::Pending,
        Poll::Ready(()) => {
          self.sleep = None;
          self.chunks -= 1;
          Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
      }
    }
  }

  fn connector(transport: Transport) -> IdleTimeoutConnector {
    IdleTimeoutConnector {
      inner: SharedHttpConnector::new(transport),
      idle: Duration::from_millis(100),
    }
  }

  fn slow_request(chunks: u32, gap: Duration) -> HttpRequest {
    HttpRequest::new(SdkBody::from_body_1_x(SlowBody {
      chunks,
      gap,
      sleep: None,
    }))
  }

  async fn read_all(mut body: SdkBody) -> Result<usize, BoxError> {
    let mut n = 0;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
      n += frame?.into_data().map(|d| d.len()).unwrap_or(0);
    }
    Ok(n)
  }

  #[tokio::test(start_paused = true)]
  async fn waiting_for_our_own_body_is_not_silence() {
    // Five chunks 300 ms apart: 1.5 s of sending under a 100 ms timeout, then a prompt answer.
    let c = connector(Transport {
      answer_after: Some(Duration::from_millis(50)),
      body_gap: Duration::ZERO,
    });
    let response = c
      .call(slow_request(5, Duration::from_millis(300)))
      .await
      .expect("no timeout");
    assert_eq!(read_all(response.into_body()).await.unwrap(), 2);
  }

  #[tokio::test(start_paused = true)]
  async fn a_server_that_does_not_answer_times_out() {
    for answer_after in [None, Some(Duration::from_millis(150))] {
      let c = connector(Transport {
        answer_after,
        body_gap: Duration::ZERO,
      });
      let start = Instant::now();
      let err = c.call(slow_request(2, Duration::from_millis(300))).await.unwrap_err();
      assert!(err.is_timeout(), "{err:?}");
      // 600 ms of sending, then 100 ms of silence.
      assert_eq!(start.elapsed(), Duration::from_millis(700));
    }
  }

  #[tokio::test(start_paused = true)]
  async fn a_response_body_that_falls_silent_fails() {
    let c = connector(Transport {
      answer_after: Some(Duration::ZERO),
      body_gap: Duration::from_secs(3600),
    });
    let response = c.call(HttpRequest::empty()).await.expect("headers arrive");
    let err = read_all(response.into_body()).await.unwrap_err();
    assert!(err.to_string().contains("no data for 100 ms"), "{err}");
  }

  #[tokio::test(start_paused = true)]
  async fn a_reader_that_pauses_between_chunks_is_not_timed_out() {
    let c = connector(Transport {
      answer_after: Some(Duration::ZERO),
      body_gap: Duration::from_millis(60),
    });
    let mut body = c.call(HttpRequest::empty()).await.unwrap().into_body();
    for _ in 0..2 {
      let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
      assert!(frame.unwrap().is_ok());
      // The reader takes its time (writing to disk, the bandwidth cap) before asking for more.
      tokio::time::sleep(Duration::from_secs(5)).await;
    }
  }
}

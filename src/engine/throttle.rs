//! The bandwidth cap: one token bucket of bytes, shared by every request it governs (every call on a client, or
//! one call with its own `maxBandwidth`).
//!
//! A taker reserves its bytes at once, letting the bucket go into debt, and sleeps until the debt is paid; so
//! many concurrent requests share the rate fairly without a queue, any chunk size works with any rate, and a
//! cancelled waiter simply stops sleeping. The bucket holds at most a tenth of a second's worth, so after an idle
//! spell a transfer bursts at most that much (the cap allows a second's worth; a smaller burst keeps a 10 s
//! transfer within 1% of the cap).
//!
//! Hand-written rather than `governor`: its GCRA works in cells no larger than its burst, so a 512 KiB chunk under
//! a 100 KB/s cap would need splitting, and its async waits pull in another timer; these forty lines need neither.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How much an idle bucket may save up, as a fraction of a second's worth.
const BURST_SECONDS: f64 = 0.1;

/// A byte-rate limiter.
#[derive(Debug)]
pub struct Bandwidth {
  bytes_per_second: f64,
  bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
  tokens: f64,
  refilled: Instant,
}

impl Bandwidth {
  /// A limiter of `bytes_per_second` (> 0), starting empty so a transfer never begins with a burst.
  pub fn new(bytes_per_second: u64) -> Self {
    Bandwidth {
      bytes_per_second: bytes_per_second.max(1) as f64,
      bucket: Mutex::new(Bucket {
        tokens: 0.0,
        refilled: Instant::now(),
      }),
    }
  }

  /// Waits until `n` more bytes may pass.
  pub async fn take(&self, n: u64) {
    let wait = {
      let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
      let now = Instant::now();
      let earned = now.duration_since(b.refilled).as_secs_f64() * self.bytes_per_second;
      b.tokens = (b.tokens + earned).min(self.bytes_per_second * BURST_SECONDS);
      b.refilled = now;
      b.tokens -= n as f64;
      if b.tokens >= 0.0 {
        Duration::ZERO
      } else {
        Duration::from_secs_f64(-b.tokens / self.bytes_per_second)
      }
    };
    if !wait.is_zero() {
      tokio::time::sleep(wait).await;
    }
  }

  /// A chunk size that keeps progress smooth under this cap: about a sixteenth of a second's worth, between
  /// 16 KiB and `max`.
  pub fn chunk(&self, max: u64) -> u64 {
    ((self.bytes_per_second / 16.0) as u64).clamp(16 * 1024, max.max(16 * 1024))
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::sync::Arc;

  #[tokio::test(start_paused = true)]
  async fn concurrent_takers_share_the_rate() {
    let bw = Arc::new(Bandwidth::new(1_000_000));
    let start = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..4)
      .map(|_| {
        let bw = bw.clone();
        tokio::spawn(async move {
          for _ in 0..50 {
            bw.take(50_000).await; // 4 × 50 × 50 KB = 10 MB
          }
        })
      })
      .collect();
    for t in tasks {
      t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    // 10 MB at 1 MB/s: 10 s, less the one chunk each taker gets before waiting.
    assert!((9.7..=10.1).contains(&secs), "took {secs} s");
  }

  #[tokio::test(start_paused = true)]
  async fn an_idle_bucket_saves_at_most_a_tenth_of_a_second() {
    let bw = Bandwidth::new(1_000_000);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let start = tokio::time::Instant::now();
    bw.take(100_000).await; // the saved burst
    assert_eq!(start.elapsed(), Duration::ZERO);
    bw.take(1_000_000).await;
    assert!(start.elapsed() >= Duration::from_millis(999));
  }

  #[test]
  fn chunks_are_small_under_small_caps() {
    assert_eq!(Bandwidth::new(1_000_000).chunk(512 * 1024), 62_500);
    assert_eq!(Bandwidth::new(100_000).chunk(512 * 1024), 16 * 1024);
    assert_eq!(Bandwidth::new(1_000_000_000).chunk(512 * 1024), 512 * 1024);
  }
}

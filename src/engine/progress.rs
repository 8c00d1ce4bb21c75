//! Progress accounting shared by every task of one transfer call, and its coalesced reporting.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a call is doing. Plain uploads and downloads are in one phase throughout; content-addressed uploads and
/// manifest downloads hash and check first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Phase {
  /// Hashing local files (`hashed_*` counters move).
  Hashing = 0,
  /// Asking S3 which content it already has.
  Checking = 1,
  /// Sending (`transferred_bytes` moves).
  #[default]
  Uploading = 2,
  /// Fetching.
  Downloading = 3,
}

impl Phase {
  fn from_u8(v: u8) -> Phase {
    match v {
      0 => Phase::Hashing,
      1 => Phase::Checking,
      3 => Phase::Downloading,
      _ => Phase::Uploading,
    }
  }

  /// The name JavaScript sees.
  pub fn name(self) -> &'static str {
    match self {
      Phase::Hashing => "hashing",
      Phase::Checking => "checking",
      Phase::Uploading => "uploading",
      Phase::Downloading => "downloading",
    }
  }
}

/// One progress event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
  /// What the call is doing now.
  pub phase: Phase,
  /// Files hashed so far (read and hashed now, or found in the cache).
  pub hashed_files: u64,
  /// Bytes of the files hashed so far.
  pub hashed_bytes: u64,
  /// Bytes moved so far (never decreases; a retried part is not counted twice).
  pub transferred_bytes: u64,
  /// Bytes to move in all (grows as sizes are discovered for explicit download lists).
  pub total_bytes: u64,
  /// Files finished, zero-byte files included.
  pub completed_files: u64,
  /// Files in the call.
  pub total_files: u64,
  /// Files skipped (for uploads: symlinks and special files, which are not followed).
  pub skipped_files: u64,
  /// Bytes of the skipped files.
  pub skipped_bytes: u64,
  /// Recent throughput (about the last two seconds); the final event carries the call's average.
  pub bytes_per_second: f64,
}

/// What a finished call resolves to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
  /// The last phase the call was in.
  pub phase: Phase,
  /// Files hashed (content-addressed uploads, manifest downloads' existing files).
  pub hashed_files: u64,
  /// Bytes hashed.
  pub hashed_bytes: u64,
  /// Bytes of multipart uploads resumed: already on the server, verified, not sent again.
  pub resumed_bytes: u64,
  /// Files transferred.
  pub files: u64,
  /// Bytes transferred.
  pub bytes: u64,
  /// Files skipped.
  pub skipped_files: u64,
  /// Bytes skipped.
  pub skipped_bytes: u64,
  /// Wall time of the call.
  pub seconds: f64,
  /// `bytes / seconds`.
  pub bytes_per_second: f64,
}

/// Receives coalesced progress events. Called from engine tasks; must not block.
pub type ProgressSink = Arc<dyn Fn(Progress) + Send + Sync>;

/// The counters of one call. Cheap to update from any task.
#[derive(Debug)]
pub struct ProgressState {
  transferred_bytes: AtomicU64,
  total_bytes: AtomicU64,
  completed_files: AtomicU64,
  total_files: AtomicU64,
  skipped_files: AtomicU64,
  skipped_bytes: AtomicU64,
  hashed_files: AtomicU64,
  hashed_bytes: AtomicU64,
  resumed_bytes: AtomicU64,
  phase: AtomicU8,
  /// Set once the call knows its files (and, where it can, their bytes); no event goes out before.
  planned: AtomicBool,
  started: Instant,
}

impl ProgressState {
  /// Fresh counters; the clock starts now.
  pub fn new() -> Arc<Self> {
    Arc::new(ProgressState {
      transferred_bytes: AtomicU64::new(0),
      total_bytes: AtomicU64::new(0),
      completed_files: AtomicU64::new(0),
      total_files: AtomicU64::new(0),
      skipped_files: AtomicU64::new(0),
      skipped_bytes: AtomicU64::new(0),
      hashed_files: AtomicU64::new(0),
      hashed_bytes: AtomicU64::new(0),
      resumed_bytes: AtomicU64::new(0),
      phase: AtomicU8::new(Phase::Uploading as u8),
      planned: AtomicBool::new(false),
      started: Instant::now(),
    })
  }

  /// Sets the totals once the call's files are known (and, where they can be, their bytes). Progress events
  /// start only after this, so the first event already carries the totals.
  pub fn set_planned(&self, files: u64, bytes: u64) {
    self.total_files.fetch_add(files, Relaxed);
    self.total_bytes.fetch_add(bytes, Relaxed);
    self.planned.store(true, std::sync::atomic::Ordering::Release);
  }

  fn is_planned(&self) -> bool {
    self.planned.load(std::sync::atomic::Ordering::Acquire)
  }

  /// Adds bytes discovered later (the size of an object in an explicit download list).
  pub fn add_total_bytes(&self, bytes: u64) {
    self.total_bytes.fetch_add(bytes, Relaxed);
  }

  /// Records a skipped file.
  pub fn skip(&self, bytes: u64) {
    self.skipped_files.fetch_add(1, Relaxed);
    self.skipped_bytes.fetch_add(bytes, Relaxed);
  }

  /// A planned file is skipped after all (its destination exists): it leaves the totals for the skipped counts,
  /// so the finished counts still end at the totals.
  pub fn skip_planned(&self, bytes: u64) {
    self.total_files.fetch_sub(1, Relaxed);
    let _ = self
      .total_bytes
      .fetch_update(Relaxed, Relaxed, |t| Some(t.saturating_sub(bytes)));
    self.skip(bytes);
  }

  /// Enters a phase.
  pub fn set_phase(&self, phase: Phase) {
    self.phase.store(phase as u8, Relaxed);
  }

  /// Records bytes hashed (or a file's bytes whose hash was found in the cache).
  pub fn hashed(&self, bytes: u64) {
    self.hashed_bytes.fetch_add(bytes, Relaxed);
  }

  /// Records a file hashed (or whose hash was found in the cache).
  pub fn hashed_file(&self) {
    self.hashed_files.fetch_add(1, Relaxed);
  }

  /// Bytes already on the server (a resumed multipart upload's verified parts): they leave the totals, as
  /// skipped files do, and are reported as resumed.
  pub fn resumed(&self, bytes: u64) {
    self.resumed_bytes.fetch_add(bytes, Relaxed);
    let _ = self
      .total_bytes
      .fetch_update(Relaxed, Relaxed, |t| Some(t.saturating_sub(bytes)));
  }

  /// Records a finished file.
  pub fn file_done(&self) {
    self.completed_files.fetch_add(1, Relaxed);
  }

  fn add_bytes(&self, n: u64) {
    self.transferred_bytes.fetch_add(n, Relaxed);
  }

  /// The counters now; `bytes_per_second` is the average since the start.
  pub fn snapshot(&self) -> Progress {
    let transferred_bytes = self.transferred_bytes.load(Relaxed);
    Progress {
      phase: Phase::from_u8(self.phase.load(Relaxed)),
      hashed_files: self.hashed_files.load(Relaxed),
      hashed_bytes: self.hashed_bytes.load(Relaxed),
      transferred_bytes,
      total_bytes: self.total_bytes.load(Relaxed).max(transferred_bytes),
      completed_files: self.completed_files.load(Relaxed),
      total_files: self.total_files.load(Relaxed),
      skipped_files: self.skipped_files.load(Relaxed),
      skipped_bytes: self.skipped_bytes.load(Relaxed),
      bytes_per_second: rate(transferred_bytes, self.started.elapsed()),
    }
  }

  /// The summary of the call so far.
  pub fn summary(&self) -> Summary {
    let p = self.snapshot();
    let seconds = self.started.elapsed().as_secs_f64();
    Summary {
      phase: p.phase,
      hashed_files: p.hashed_files,
      hashed_bytes: p.hashed_bytes,
      resumed_bytes: self.resumed_bytes.load(Relaxed),
      files: p.completed_files,
      bytes: p.transferred_bytes,
      skipped_files: p.skipped_files,
      skipped_bytes: p.skipped_bytes,
      seconds,
      bytes_per_second: p.bytes_per_second,
    }
  }

  /// Byte accounting for one byte range (a part or a whole small file). Attempts of the same range share it.
  pub fn range(self: &Arc<Self>) -> RangeProgress {
    RangeProgress {
      state: self.clone(),
      high_water: Arc::new(AtomicU64::new(0)),
    }
  }
}

fn rate(bytes: u64, elapsed: Duration) -> f64 {
  let s = elapsed.as_secs_f64();
  if s > 0.0 {
    bytes as f64 / s
  } else {
    0.0
  }
}

/// Counts the bytes of one range as they move. Every attempt at the range reports its own position from 0;
/// only positions beyond the furthest one already reported add to the total, so a retry is not counted twice.
#[derive(Debug, Clone)]
pub struct RangeProgress {
  state: Arc<ProgressState>,
  high_water: Arc<AtomicU64>,
}

impl RangeProgress {
  /// This attempt has moved `position` bytes of the range.
  pub fn reached(&self, position: u64) {
    let previous = self.high_water.fetch_max(position, Relaxed);
    if position > previous {
      self.state.add_bytes(position - previous);
    }
  }
}

/// Emits coalesced events to `sink` every `interval` while `work` runs; the ticker stops with the work, so no
/// event is emitted after this returns. The final event is the caller's to send (it must reach JavaScript
/// before the promise settles, which only the binding can order).
pub async fn report_while<F: std::future::Future>(
  state: &ProgressState,
  sink: Option<&ProgressSink>,
  interval: Duration,
  work: F,
) -> F::Output {
  let Some(sink) = sink else { return work.await };
  tokio::pin!(work);
  let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(1)));
  ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
  // Recent-rate window: samples of (time, bytes) over about the last two seconds.
  let mut window: std::collections::VecDeque<(Instant, u64)> = std::collections::VecDeque::new();
  let mut last_sent: Option<Progress> = None;
  loop {
    tokio::select! {
      biased;
      out = &mut work => return out,
      _ = ticker.tick() => {
        if !state.is_planned() {
          continue;
        }
        let mut p = state.snapshot();
        let now = Instant::now();
        window.push_back((now, p.transferred_bytes));
        while window.len() > 2 && now.duration_since(window[0].0) > Duration::from_secs(2) {
          window.pop_front();
        }
        if let (Some(first), true) = (window.front(), window.len() > 1) {
          p.bytes_per_second = rate(p.transferred_bytes - first.1, now.duration_since(first.0));
        }
        let changed = last_sent.is_none_or(|l| {
          (l.phase, l.hashed_bytes, l.hashed_files, l.transferred_bytes, l.total_bytes)
            != (p.phase, p.hashed_bytes, p.hashed_files, p.transferred_bytes, p.total_bytes)
            || (l.completed_files, l.total_files, l.skipped_files) != (p.completed_files, p.total_files, p.skipped_files)
        });
        if changed {
          sink(p);
          last_sent = Some(p);
        }
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn retried_ranges_are_not_counted_twice() {
    let s = ProgressState::new();
    s.set_planned(1, 100);
    let r = s.range();
    r.reached(40);
    r.reached(10); // a retry starting over
    r.reached(40);
    assert_eq!(s.snapshot().transferred_bytes, 40);
    r.reached(100);
    assert_eq!(s.snapshot().transferred_bytes, 100);
    let other = s.range();
    other.reached(5);
    assert_eq!(s.snapshot().transferred_bytes, 105);
    assert_eq!(s.snapshot().total_bytes, 105, "total never below transferred");
  }

  #[tokio::test]
  async fn reporter_coalesces_and_stops_with_the_work() {
    let s = ProgressState::new();
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ev = events.clone();
    let sink: ProgressSink = Arc::new(move |p| ev.lock().unwrap().push(p));
    let r = s.range();
    let out = report_while(&s, Some(&sink), Duration::from_millis(5), async {
      tokio::time::sleep(Duration::from_millis(12)).await;
      s.set_planned(1, 10);
      for i in 1..=10 {
        r.reached(i);
        tokio::time::sleep(Duration::from_millis(3)).await;
      }
      7
    })
    .await;
    assert_eq!(out, 7);
    let n = events.lock().unwrap().len();
    assert!((2..10).contains(&n), "coalesced events: {n}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(events.lock().unwrap().len(), n, "no event after the work ends");
    let v = events.lock().unwrap();
    assert!(
      v.iter().all(|p| p.total_files == 1 && p.total_bytes == 10),
      "no event before the totals are known"
    );
    assert!(v.windows(2).all(|w| w[0].transferred_bytes <= w[1].transferred_bytes));
  }
}

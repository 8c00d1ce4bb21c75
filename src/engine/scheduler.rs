//! Runs the files of one call concurrently within a request budget, stops everything at the first failure (or
//! goes on to the end, when asked) or at cancellation, and waits for every file task to finish its own clean-up
//! before returning. Every file that failed is reported, with its key and path.
//!
//! The budget is `workers × MAX_REQUESTS_PER_FILE` request slots. A file takes as many slots as requests it
//! will keep in flight: 1 for a file sent or fetched in one request, up to 10 for a multipart file. So a job of
//! thousands of small files keeps the whole budget busy (50 one-request files at once with the defaults), while
//! big files are limited to `workers` at a time with 10 parts each, as in the original system.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::error::{Error, FileFailure, FileId, Result};

/// A spawned task that is aborted when its handle is dropped, so dropping a future that owns in-flight part
/// requests really stops them (a plain `JoinHandle` would let them run on in the background).
pub(crate) struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
  type Output = Result<T, JoinError>;
  fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
    Pin::new(&mut self.0).poll(cx)
  }
}

impl<T> Drop for AbortOnDrop<T> {
  fn drop(&mut self) {
    self.0.abort();
  }
}

/// Spawns `fut` so it runs on any runtime thread, aborted if the returned handle is dropped.
pub(crate) fn spawn_abortable<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> AbortOnDrop<T> {
  AbortOnDrop(tokio::spawn(fut))
}

/// Flattens a task's join result: a panic becomes an error instead of tearing down the process.
pub(crate) fn joined<T>(r: Result<Result<T>, JoinError>) -> Result<T> {
  match r {
    Ok(r) => r,
    Err(e) if e.is_cancelled() => Err(Error::Cancelled { summary: None }),
    Err(e) => match e.try_into_panic() {
      Ok(payload) => Err(Error::from_panic(&*payload)),
      Err(e) => Err(Error::Internal { message: e.to_string() }),
    },
  }
}

/// One unit of work: the file it moves, the request slots it needs, and the work.
pub(crate) struct Job<F> {
  pub file: FileId,
  pub weight: usize,
  pub run: F,
}

/// Runs every job, at most `budget` slots' worth at a time, in order of arrival (the semaphore is fair, so a
/// big file is not starved by the small ones behind it).
///
/// Each job gets the number of slots it holds and a token cancelled when the caller cancels or (unless
/// `keep_going`) when another job fails; it must stop promptly on it and clean up what it started. Returns
/// `Error::Files` with every job that failed (in the order they failed; siblings stopped by the first are not
/// failures), else `Cancelled` if `cancel` fired, else `Ok`.
pub(crate) async fn run_jobs<F, Fut>(
  jobs: impl IntoIterator<Item = Job<F>>,
  budget: Arc<Semaphore>,
  cancel: &CancellationToken,
  keep_going: bool,
) -> Result<()>
where
  F: FnOnce(CancellationToken, usize) -> Fut,
  Fut: Future<Output = Result<()>> + Send + 'static,
{
  let stop = cancel.child_token();
  let total = budget.available_permits().max(1);
  let mut tasks = JoinSet::new();
  let mut failures: Vec<FileFailure> = Vec::new();
  let note = |r: std::result::Result<(FileId, Result<()>), JoinError>, failures: &mut Vec<FileFailure>| {
    let (file, error) = match r {
      Ok((_, Ok(()))) => return,
      Ok((file, Err(e))) => (Some(file), e),
      Err(e) => (None, joined::<()>(Err(e)).expect_err("a join error is an error")),
    };
    // Cancellations caused by a sibling's failure (or by the caller) are not failures.
    if error.is_cancelled() {
      return;
    }
    // A task lost to a join error (not a panic: those are caught in the task) names no file.
    let file = file.unwrap_or_default();
    failures.push(FileFailure {
      key: file.key,
      path: file.path,
      error,
    });
    if !keep_going {
      stop.cancel();
    }
  };
  for job in jobs {
    let weight = job.weight.clamp(1, total) as u32;
    let permit = tokio::select! {
      biased;
      _ = stop.cancelled() => break,
      p = budget.clone().acquire_many_owned(weight) => p.expect("the budget semaphore is never closed"),
    };
    while let Some(r) = tasks.try_join_next() {
      note(r, &mut failures);
    }
    if stop.is_cancelled() {
      break;
    }
    // The scheduler, not the job, holds the slots until the job's future is done.
    let fut = (job.run)(stop.clone(), weight as usize);
    let file = job.file;
    tasks.spawn(async move {
      let _held: OwnedSemaphorePermit = permit;
      // A panic (a bug) fails this file with ERR_INTERNAL, naming it, instead of losing which file it was.
      let result = match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => Err(Error::from_panic(&*payload)),
      };
      (file, result)
    });
  }
  // Jobs observe `stop` and clean up before finishing; wait for all of them so nothing is left running or
  // half-written when the call settles.
  while let Some(r) = tasks.join_next().await {
    note(r, &mut failures);
  }
  // The caller's cancel wins: an abort is reported as one even after some files failed (with continueOnError).
  if cancel.is_cancelled() {
    return Err(Error::Cancelled { summary: None });
  }
  match failures.is_empty() {
    false => Err(Error::Files {
      failures,
      summary: None,
    }),
    true => Ok(()),
  }
}

/// Runs blocking file-system work off the runtime threads.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
  joined(tokio::task::spawn_blocking(f).await)
}

/// Runs `work` unless `cancel` fires first; dropping `work` drops (and so aborts) whatever it owns.
pub(crate) async fn or_cancelled<T>(cancel: &CancellationToken, work: impl Future<Output = Result<T>>) -> Result<T> {
  tokio::select! {
    biased;
    _ = cancel.cancelled() => Err(Error::Cancelled { summary: None }),
    r = work => r,
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
  use std::time::Duration;

  #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
  async fn small_jobs_fill_the_budget_and_big_ones_take_more() {
    let budget = Arc::new(Semaphore::new(50));
    let peak = Arc::new(AtomicUsize::new(0));
    let live = Arc::new(AtomicUsize::new(0));
    let jobs = (0..200).map(|_| {
      let (peak, live) = (peak.clone(), live.clone());
      Job {
        file: FileId::default(),
        weight: 1,
        run: move |_stop: CancellationToken, _slots: usize| async move {
          let n = live.fetch_add(1, SeqCst) + 1;
          peak.fetch_max(n, SeqCst);
          tokio::time::sleep(Duration::from_millis(5)).await;
          live.fetch_sub(1, SeqCst);
          Ok(())
        },
      }
    });
    run_jobs(jobs, budget.clone(), &CancellationToken::new(), false)
      .await
      .unwrap();
    assert_eq!(peak.load(SeqCst), 50, "one-request files use the whole budget");

    peak.store(0, SeqCst);
    let jobs = (0..20).map(|_| {
      let (peak, live) = (peak.clone(), live.clone());
      Job {
        file: FileId::default(),
        weight: 10,
        run: move |_stop: CancellationToken, _slots: usize| async move {
          let n = live.fetch_add(1, SeqCst) + 1;
          peak.fetch_max(n, SeqCst);
          tokio::time::sleep(Duration::from_millis(5)).await;
          live.fetch_sub(1, SeqCst);
          Ok(())
        },
      }
    });
    run_jobs(jobs, budget, &CancellationToken::new(), false).await.unwrap();
    assert_eq!(peak.load(SeqCst), 5, "ten-request files: workers (5) at a time");
  }

  #[tokio::test]
  async fn first_failure_stops_the_rest_and_everyone_cleans_up() {
    let budget = Arc::new(Semaphore::new(4));
    let started = Arc::new(AtomicUsize::new(0));
    let cleaned = Arc::new(AtomicUsize::new(0));
    let jobs = (0..100).map(|i| {
      let (started, cleaned) = (started.clone(), cleaned.clone());
      Job {
        file: FileId::new(format!("k{i}"), format!("/d/f{i}")),
        weight: 1,
        run: move |stop: CancellationToken, _slots: usize| async move {
          started.fetch_add(1, SeqCst);
          if i == 2 {
            return Err(Error::invalid_value("boom"));
          }
          let r = or_cancelled(&stop, async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
          })
          .await;
          cleaned.fetch_add(1, SeqCst);
          r
        },
      }
    });
    let err = run_jobs(jobs, budget, &CancellationToken::new(), false)
      .await
      .unwrap_err();
    assert_eq!(err.to_string(), "boom");
    let Error::Files { failures, .. } = &err else {
      panic!("{err:?}")
    };
    assert_eq!(failures.len(), 1, "siblings stopped by the failure are not failures");
    assert_eq!(
      (failures[0].key.as_str(), failures[0].path.to_str()),
      ("k2", Some("/d/f2"))
    );
    assert!(started.load(SeqCst) < 10, "queued jobs never start");
    assert_eq!(
      cleaned.load(SeqCst),
      started.load(SeqCst) - 1,
      "every started job finished its clean-up"
    );
  }

  #[tokio::test]
  async fn keep_going_runs_every_job_and_reports_every_failure() {
    let done = Arc::new(AtomicUsize::new(0));
    let jobs = (0..20).map(|i| {
      let done = done.clone();
      Job {
        file: FileId::new(format!("k{i}"), format!("f{i}")),
        weight: 1,
        run: move |_stop: CancellationToken, _slots: usize| async move {
          tokio::time::sleep(Duration::from_millis(2)).await;
          if i % 7 == 3 {
            return Err(Error::invalid_value(format!("bad {i}")));
          }
          done.fetch_add(1, SeqCst);
          Ok(())
        },
      }
    });
    let err = run_jobs(jobs, Arc::new(Semaphore::new(4)), &CancellationToken::new(), true)
      .await
      .unwrap_err();
    assert_eq!(done.load(SeqCst), 17, "every other job ran");
    let Error::Files { failures, .. } = &err else {
      panic!("{err:?}")
    };
    let mut keys: Vec<_> = failures.iter().map(|f| f.key.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["k10", "k17", "k3"]);
    assert_eq!(err.code(), "ERR_INVALID_ARG_VALUE", "the first failure's code");
    assert!(err.to_string().ends_with("(and 2 more files failed)"), "{err}");
  }

  #[tokio::test]
  async fn a_panicking_job_is_an_internal_error_not_a_crash() {
    let jobs = (0..3).map(|i| Job {
      file: FileId::new(format!("k{i}"), "p"),
      weight: 1,
      run: move |_stop: CancellationToken, _slots: usize| async move {
        if i == 1 {
          panic!("a bug in job {i}");
        }
        Ok(())
      },
    });
    let err = run_jobs(jobs, Arc::new(Semaphore::new(4)), &CancellationToken::new(), true)
      .await
      .unwrap_err();
    assert_eq!(err.code(), "ERR_INTERNAL");
    assert_eq!(err.key(), Some("k1"));
    assert!(err.to_string().starts_with("internal error: a bug in job 1"), "{err}");
  }

  #[tokio::test]
  async fn cancel_is_reported_as_cancelled() {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
      tokio::time::sleep(Duration::from_millis(20)).await;
      c.cancel();
    });
    let jobs = (0..10).map(|_| Job {
      file: FileId::default(),
      weight: 1,
      run: |stop: CancellationToken, _slots: usize| async move {
        or_cancelled(&stop, async {
          tokio::time::sleep(Duration::from_secs(30)).await;
          Ok(())
        })
        .await
      },
    });
    let t = std::time::Instant::now();
    let err = run_jobs(jobs, Arc::new(Semaphore::new(50)), &cancel, false)
      .await
      .unwrap_err();
    assert!(err.is_cancelled());
    assert!(t.elapsed() < Duration::from_secs(5));
  }
}

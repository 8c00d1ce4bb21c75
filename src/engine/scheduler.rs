//! Runs the files of one call concurrently within a request budget, stops everything at the first failure or
//! at cancellation, and waits for every file task to finish its own clean-up before returning.
//!
//! The budget is `workers × MAX_REQUESTS_PER_FILE` request slots. A file takes as many slots as requests it
//! will keep in flight: 1 for a file sent or fetched in one request, up to 10 for a multipart file. So a job of
//! thousands of small files keeps the whole budget busy (50 one-request files at once with the defaults), while
//! big files are limited to `workers` at a time with 10 parts each, as in the original system.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::error::{Error, Result};

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
    Err(e) => Err(Error::Io {
      op: "run task",
      path: Default::default(),
      source: std::io::Error::other(e.to_string()),
    }),
  }
}

/// One unit of work and the request slots it needs.
pub(crate) struct Job<F> {
  pub weight: usize,
  pub run: F,
}

/// Runs every job, at most `budget` slots' worth at a time, in order of arrival (the semaphore is fair, so a
/// big file is not starved by the small ones behind it).
///
/// Each job gets the number of slots it holds and a token cancelled when the caller cancels or when another job fails; it must stop promptly on
/// it and clean up what it started. Returns the first failure, else `Cancelled` if `cancel` fired, else `Ok`.
pub(crate) async fn run_jobs<F, Fut>(
  jobs: impl IntoIterator<Item = Job<F>>,
  budget: Arc<Semaphore>,
  cancel: &CancellationToken,
) -> Result<()>
where
  F: FnOnce(CancellationToken, usize) -> Fut,
  Fut: Future<Output = Result<()>> + Send + 'static,
{
  let stop = cancel.child_token();
  let total = budget.available_permits().max(1);
  let mut tasks = JoinSet::new();
  let mut failure: Option<Error> = None;
  let note = |r: Result<()>, failure: &mut Option<Error>| {
    if let Err(e) = r {
      // Cancellations caused by a sibling's failure are not news; the first real failure is.
      if !e.is_cancelled() && failure.is_none() {
        *failure = Some(e);
      }
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
      note(joined(r), &mut failure);
    }
    if stop.is_cancelled() {
      break;
    }
    // The scheduler, not the job, holds the slots until the job's future is done.
    let fut = (job.run)(stop.clone(), weight as usize);
    tasks.spawn(async move {
      let _held: OwnedSemaphorePermit = permit;
      fut.await
    });
  }
  // Jobs observe `stop` and clean up before finishing; wait for all of them so nothing is left running or
  // half-written when the call settles.
  while let Some(r) = tasks.join_next().await {
    note(joined(r), &mut failure);
  }
  match failure {
    Some(e) => Err(e),
    None if cancel.is_cancelled() => Err(Error::Cancelled { summary: None }),
    None => Ok(()),
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
    run_jobs(jobs, budget.clone(), &CancellationToken::new()).await.unwrap();
    assert_eq!(peak.load(SeqCst), 50, "one-request files use the whole budget");

    peak.store(0, SeqCst);
    let jobs = (0..20).map(|_| {
      let (peak, live) = (peak.clone(), live.clone());
      Job {
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
    run_jobs(jobs, budget, &CancellationToken::new()).await.unwrap();
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
    let err = run_jobs(jobs, budget, &CancellationToken::new()).await.unwrap_err();
    assert_eq!(err.to_string(), "boom");
    assert!(started.load(SeqCst) < 10, "queued jobs never start");
    assert_eq!(
      cleaned.load(SeqCst),
      started.load(SeqCst) - 1,
      "every started job finished its clean-up"
    );
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
    let err = run_jobs(jobs, Arc::new(Semaphore::new(50)), &cancel).await.unwrap_err();
    assert!(err.is_cancelled());
    assert!(t.elapsed() < Duration::from_secs(5));
  }
}

//! The engine's tokio runtime, set up when the addon loads. It is process-wide (napi-rs runs every future of
//! the addon on one runtime), so its size comes from the environment or the config file, not from a client:
//! `S3_FERRY_THREADS`, else `threads` in the config file's `[settings]` (`$S3_FERRY_CONFIG`), else the default.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Once, OnceLock};

use crate::engine::settings;

/// Environment variable for the runtime's worker threads.
pub const THREADS_ENV: &str = "S3_FERRY_THREADS";

/// Blocking-pool threads (file reads and writes). tokio's default of 512 is meant for servers; a transfer has at
/// most `maxPoolConnections` reads or writes pending, and 64 threads keep a fast disk busy.
const MAX_BLOCKING_THREADS: usize = 64;

/// Half the cores, at least 2 and at most 8: transfers are I/O-bound (kernel copies run on the blocking pool, not
/// on these threads), and a desktop app should not have every core taken by a background upload.
pub fn default_threads() -> usize {
  threads_for(std::thread::available_parallelism().map_or(2, |n| n.get()))
}

fn threads_for(cores: usize) -> usize {
  (cores / 2).clamp(2, 8)
}

/// The worker threads in force: the environment, else the config file, else the default. A malformed value is
/// reported on stderr and ignored (the addon must still load).
pub fn configured_threads() -> usize {
  if let Ok(v) = std::env::var(THREADS_ENV) {
    match v.trim().parse::<usize>() {
      Ok(n) if n > 0 => return n.min(256),
      _ => eprintln!("s3-ferry: ignoring {THREADS_ENV}='{v}': not a positive integer"),
    }
  }
  if let Some(path) = settings::config_file_path(None) {
    // A file that cannot be read or parsed is ignored here: the same error reaches the caller as
    // ERR_INVALID_ARG_VALUE when a client reads the file.
    if let Ok(s) = settings::read_config_file(&path) {
      if let Some(n) = s.threads {
        return (n as usize).min(256);
      }
    }
  }
  default_threads()
}

static INIT: Once = Once::new();
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// The worker threads of the runtime in use.
pub fn threads_in_use() -> usize {
  match THREADS.load(Relaxed) {
    0 => std::thread::available_parallelism().map_or(1, |n| n.get()), // napi's default runtime: one per core
    n => n,
  }
}

/// Environment variable that turns logging on: `error`, `warn`, `info` (one line per transfer), `debug` (plus one
/// line per request) or `trace` (plus the AWS SDK's own events).
pub const LOG_ENV: &str = "S3_FERRY_LOG";

/// Installs a stderr logger when `S3_FERRY_LOG` asks for one. Off by default.
fn init_logging() {
  use tracing_subscriber::filter::{LevelFilter, Targets};
  use tracing_subscriber::prelude::*;
  let Ok(value) = std::env::var(LOG_ENV) else { return };
  let level = match value.trim().to_ascii_lowercase().as_str() {
    "" | "off" | "0" => return,
    "error" => LevelFilter::ERROR,
    "warn" => LevelFilter::WARN,
    "info" => LevelFilter::INFO,
    "debug" | "1" | "true" => LevelFilter::DEBUG,
    "trace" => LevelFilter::TRACE,
    other => {
      eprintln!("s3-ferry: {LOG_ENV}='{other}' is not one of error, warn, info, debug, trace; logging at debug");
      LevelFilter::DEBUG
    }
  };
  let mut targets = Targets::new().with_target("s3_ferry", level);
  if level == LevelFilter::TRACE {
    targets = targets.with_target("aws", LevelFilter::DEBUG);
  }
  let layer = tracing_subscriber::fmt::layer()
    .with_writer(std::io::stderr)
    .with_ansi(false);
  // Another addon in the process may have set a global subscriber already; then ours stays out of the way.
  let _ = tracing_subscriber::registry()
    .with(layer.with_filter(targets))
    .try_init();
}

/// The engine's runtime: every transfer runs here, with the configured threads. It belongs to the addon, not
/// to napi, and lives as long as the process: napi shuts its own runtime down when the last JavaScript
/// environment goes away (a worker that was the only one to load the addon) and restarts a default one after,
/// which would cut a cancelled upload's AbortMultipartUpload short and lose the configured threads.
pub fn engine_runtime() -> &'static tokio::runtime::Runtime {
  static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
  RUNTIME.get_or_init(|| {
    let threads = configured_threads();
    let built = tokio::runtime::Builder::new_multi_thread()
      .enable_all()
      .worker_threads(threads)
      .max_blocking_threads(MAX_BLOCKING_THREADS)
      .thread_name("s3-ferry")
      // The SDK's request futures are deep; a debug build's stack frames are several times a release build's,
      // and a content-addressed download overflowed tokio's default 2 MiB there. 8 MiB is virtual memory for
      // a handful of threads.
      .thread_stack_size(8 * 1024 * 1024)
      .build();
    match built {
      Ok(rt) => {
        THREADS.store(threads, Relaxed);
        rt
      }
      Err(e) => {
        eprintln!("s3-ferry: building the runtime with {threads} threads failed ({e}); using tokio's defaults");
        tokio::runtime::Runtime::new().expect("a default tokio runtime")
      }
    }
  })
}

#[napi_derive::module_init]
fn init() {
  INIT.call_once(|| {
    init_logging();
    // napi's own runtime only awaits the engine's tasks (and napi pins the addon's image while it exists, so
    // the engine runtime's threads never outlive the code they run): one thread is plenty.
    if let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
      .enable_all()
      .worker_threads(1)
      .thread_name("s3-ferry-napi")
      .build()
    {
      napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
    engine_runtime();
  });
}

#[cfg(test)]
mod tests {
  #[test]
  fn half_the_cores_at_least_2_at_most_8() {
    let table: Vec<(usize, usize)> = [1, 2, 3, 4, 6, 8, 12, 16, 17, 64]
      .iter()
      .map(|&c| (c, super::threads_for(c)))
      .collect();
    assert_eq!(
      table,
      [
        (1, 2),
        (2, 2),
        (3, 2),
        (4, 2),
        (6, 3),
        (8, 4),
        (12, 6),
        (16, 8),
        (17, 8),
        (64, 8)
      ]
    );
  }
}

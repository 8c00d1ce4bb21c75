//! Request bodies read from disk as they are sent, so memory is bounded by the chunks in flight, never by the
//! file or part size. Progress is counted as the chunks leave.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use super::positional::PositionalIo;
use super::progress::RangeProgress;
use super::scheduler::{spawn_abortable, AbortOnDrop};
use super::throttle::Bandwidth;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Bytes read from disk per step. Two are in memory per body (one being sent, one being read ahead).
const CHUNK: u64 = 512 * 1024;

/// What a file looked like when its upload was planned. Every range checks it after reading its last chunk (one
/// `fstat`), so a file that changes while it is being sent fails the request before the server has the whole
/// body: a single PUT is never stored with a mix of old and new bytes.
#[derive(Debug)]
pub struct FileStamp {
  /// Size when planned.
  pub size: u64,
  /// Modification time when planned.
  pub modified: Option<SystemTime>,
  changed: AtomicBool,
}

impl FileStamp {
  /// The stamp of a planned file.
  pub fn new(size: u64, modified: Option<SystemTime>) -> Self {
    FileStamp {
      size,
      modified,
      changed: AtomicBool::new(false),
    }
  }

  /// Whether a body found the file changed (its request then failed for that reason, not the network's).
  pub fn changed(&self) -> bool {
    self.changed.load(Ordering::Relaxed)
  }

  fn check(&self, file: &std::fs::File, path: &std::path::Path) -> io::Result<()> {
    let meta = file.metadata()?;
    if meta.len() == self.size && meta.modified().ok() == self.modified {
      return Ok(());
    }
    Err(self.changed_error(path))
  }

  fn changed_error(&self, path: &std::path::Path) -> io::Error {
    self.changed.store(true, Ordering::Relaxed);
    io::Error::other(format!("'{}' changed while it was being uploaded", path.display()))
  }
}

/// A byte range of an open file, to send as a request body.
#[derive(Clone)]
pub struct FileRange {
  /// The open file (positional reads, so many ranges share one descriptor).
  pub file: Arc<std::fs::File>,
  /// For error messages.
  pub path: Arc<PathBuf>,
  /// First byte.
  pub offset: u64,
  /// Length in bytes.
  pub len: u64,
  /// The bandwidth cap in force, if any: each chunk waits for its bytes before it is read.
  pub throttle: Option<Arc<Bandwidth>>,
  /// The file as planned, checked when the range has been read.
  pub stamp: Arc<FileStamp>,
}

impl FileRange {
  /// A retryable body: every attempt starts again from the range's first byte, and `progress` counts each
  /// byte once however many attempts there are.
  pub fn into_byte_stream(self, progress: RangeProgress) -> ByteStream {
    ByteStream::new(SdkBody::retryable(move || {
      SdkBody::from_body_1_x(FileRangeBody {
        range: self.clone(),
        pos: 0,
        pending: None,
        progress: progress.clone(),
      })
    }))
  }
}

struct FileRangeBody {
  range: FileRange,
  pos: u64,
  /// The next chunk, being read (and, under a cap, waited for); dropping the body stops the wait.
  pending: Option<AbortOnDrop<io::Result<Bytes>>>,
  progress: RangeProgress,
}

impl FileRangeBody {
  fn start_read(&mut self) {
    if self.pending.is_none() && self.pos < self.range.len {
      let chunk = self.range.throttle.as_ref().map_or(CHUNK, |bw| bw.chunk(CHUNK));
      let n = chunk.min(self.range.len - self.pos) as usize;
      let at = self.range.offset + self.pos;
      let file = self.range.file.clone();
      let last = self.pos + n as u64 == self.range.len;
      let (stamp, path) = (self.range.stamp.clone(), self.range.path.clone());
      let read = move || {
        let mut buf = vec![0u8; n];
        match file.read_exact_at(&mut buf, at) {
          Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(stamp.changed_error(&path)),
          other => other?,
        }
        if last {
          stamp.check(&file, &path)?;
        }
        Ok(Bytes::from(buf))
      };
      self.pending = Some(match self.range.throttle.clone() {
        None => AbortOnDrop(tokio::task::spawn_blocking(read)),
        Some(bw) => spawn_abortable(async move {
          bw.take(n as u64).await;
          tokio::task::spawn_blocking(read).await.map_err(io::Error::other)?
        }),
      });
    }
  }
}

impl Body for FileRangeBody {
  type Data = Bytes;
  type Error = io::Error;

  fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
    if self.pos >= self.range.len {
      return Poll::Ready(None);
    }
    self.start_read();
    let handle = self.pending.as_mut().expect("a read is pending");
    let result = match Pin::new(handle).poll(cx) {
      Poll::Pending => return Poll::Pending,
      Poll::Ready(r) => r,
    };
    self.pending = None;
    match result {
      Ok(Ok(bytes)) => {
        self.pos += bytes.len() as u64;
        self.progress.reached(self.pos);
        // Read the next chunk while this one is on the wire.
        self.start_read();
        Poll::Ready(Some(Ok(Frame::data(bytes))))
      }
      Ok(Err(e)) => Poll::Ready(Some(Err(e))),
      Err(join) => Poll::Ready(Some(Err(io::Error::other(join)))),
    }
  }

  fn is_end_stream(&self) -> bool {
    self.pos >= self.range.len
  }

  fn size_hint(&self) -> SizeHint {
    SizeHint::with_exact(self.range.len - self.pos)
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::engine::progress::ProgressState;
  use std::io::Write;

  #[tokio::test]
  async fn streams_exactly_the_range_and_restarts_on_retry() {
    let mut tmp = tempfile::NamedTempFile::new().unwrap();
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    tmp.write_all(&data).unwrap();
    let range = FileRange {
      file: Arc::new(std::fs::File::open(tmp.path()).unwrap()),
      path: Arc::new(tmp.path().to_owned()),
      offset: 100_000,
      len: 1_500_000,
      throttle: None,
      stamp: stamp_of(tmp.path()),
    };
    let state = ProgressState::new();
    let stream = range.into_byte_stream(state.range());
    let again = stream.into_inner().try_clone().expect("retryable");
    let first = ByteStream::new(again.try_clone().unwrap())
      .collect()
      .await
      .unwrap()
      .into_bytes();
    assert_eq!(&first[..], &data[100_000..1_600_000]);
    let second = ByteStream::new(again).collect().await.unwrap().into_bytes();
    assert_eq!(first, second);
    assert_eq!(
      state.snapshot().transferred_bytes,
      1_500_000,
      "a retry is not counted twice"
    );
  }

  fn stamp_of(path: &std::path::Path) -> Arc<FileStamp> {
    let meta = std::fs::metadata(path).unwrap();
    Arc::new(FileStamp::new(meta.len(), meta.modified().ok()))
  }

  #[tokio::test]
  async fn a_file_that_shrinks_is_an_error() {
    let mut tmp = tempfile::NamedTempFile::new().unwrap();
    tmp.write_all(&[1u8; 1000]).unwrap();
    let stamp = stamp_of(tmp.path());
    let range = FileRange {
      file: Arc::new(std::fs::File::open(tmp.path()).unwrap()),
      path: Arc::new(tmp.path().to_owned()),
      offset: 0,
      len: 5000,
      throttle: None,
      stamp: stamp.clone(),
    };
    let err = range
      .into_byte_stream(ProgressState::new().range())
      .collect()
      .await
      .unwrap_err();
    assert!(format!("{err:?}").contains("changed while"), "{err:?}");
    assert!(stamp.changed());
  }

  #[tokio::test]
  async fn a_file_whose_mtime_changes_fails_before_its_last_chunk_is_sent() {
    let mut tmp = tempfile::NamedTempFile::new().unwrap();
    tmp.write_all(&[1u8; 1000]).unwrap();
    let stamp = stamp_of(tmp.path());
    let file = std::fs::File::options().write(true).open(tmp.path()).unwrap();
    file
      .set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1))
      .unwrap();
    let range = FileRange {
      file: Arc::new(std::fs::File::open(tmp.path()).unwrap()),
      path: Arc::new(tmp.path().to_owned()),
      offset: 0,
      len: 1000,
      throttle: None,
      stamp: stamp.clone(),
    };
    let mut stream = range.into_byte_stream(ProgressState::new().range());
    assert!(stream.next().await.unwrap().is_err(), "the only chunk is not sent");
    assert!(stamp.changed());
  }
}

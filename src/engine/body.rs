//! Request bodies read from disk as they are sent, so memory is bounded by the chunks in flight, never by the
//! file or part size. Progress is counted as the chunks leave.

use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::progress::RangeProgress;
use super::scheduler::{spawn_abortable, AbortOnDrop};
use super::throttle::Bandwidth;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Bytes read from disk per step. Two are in memory per body (one being sent, one being read ahead).
const CHUNK: u64 = 512 * 1024;

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
      let read = move || {
        let mut buf = vec![0u8; n];
        file.read_exact_at(&mut buf, at)?;
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
      Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Some(Err(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
          "'{}' became shorter while it was being uploaded",
          self.range.path.display()
        ),
      )))),
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

  #[tokio::test]
  async fn a_file_that_shrinks_is_an_error() {
    let mut tmp = tempfile::NamedTempFile::new().unwrap();
    tmp.write_all(&[1u8; 1000]).unwrap();
    let range = FileRange {
      file: Arc::new(std::fs::File::open(tmp.path()).unwrap()),
      path: Arc::new(tmp.path().to_owned()),
      offset: 0,
      len: 5000,
      throttle: None,
    };
    let err = range
      .into_byte_stream(ProgressState::new().range())
      .collect()
      .await
      .unwrap_err();
    assert!(
      err.to_string().contains("shorter") || format!("{err:?}").contains("shorter"),
      "{err:?}"
    );
  }
}

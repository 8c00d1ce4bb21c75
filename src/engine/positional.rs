//! Reads and writes at an offset, on every platform: the one place the engine touches platform file APIs.
//!
//! Parts of one file are read (uploads) and written (downloads) by several tasks at once through one shared
//! handle, so each access names its offset instead of moving a shared cursor. Unix has `pread`/`pwrite`
//! (`std::os::unix::fs::FileExt`); Windows has `seek_read`/`seek_write` (`std::os::windows::fs::FileExt`),
//! which take an offset too but also move the handle's cursor, which nothing here relies on.

use std::fs::File;
use std::io::{Error, ErrorKind, Result};

/// Positional I/O on a shared file handle.
pub(crate) trait PositionalIo {
  /// Reads up to `buf.len()` bytes at `offset`; `Ok(0)` at the end of the file.
  fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize>;
  /// Writes up to `buf.len()` bytes at `offset`.
  fn write_at(&self, buf: &[u8], offset: u64) -> Result<usize>;

  /// Fills `buf` from `offset`, or fails with `UnexpectedEof` if the file ends first.
  fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> Result<()> {
    while !buf.is_empty() {
      match self.read_at(buf, offset) {
        Ok(0) => return Err(Error::new(ErrorKind::UnexpectedEof, "the file ended before the range")),
        Ok(n) => {
          buf = &mut buf[n..];
          offset += n as u64;
        }
        Err(e) if e.kind() == ErrorKind::Interrupted => {}
        Err(e) => return Err(e),
      }
    }
    Ok(())
  }

  /// Writes all of `buf` at `offset`.
  fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> Result<()> {
    while !buf.is_empty() {
      match self.write_at(buf, offset) {
        Ok(0) => return Err(Error::new(ErrorKind::WriteZero, "the file accepted no bytes")),
        Ok(n) => {
          buf = &buf[n..];
          offset += n as u64;
        }
        Err(e) if e.kind() == ErrorKind::Interrupted => {}
        Err(e) => return Err(e),
      }
    }
    Ok(())
  }
}

#[cfg(unix)]
impl PositionalIo for File {
  fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
    std::os::unix::fs::FileExt::read_at(self, buf, offset)
  }
  fn write_at(&self, buf: &[u8], offset: u64) -> Result<usize> {
    std::os::unix::fs::FileExt::write_at(self, buf, offset)
  }
}

#[cfg(windows)]
impl PositionalIo for File {
  fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
    // std maps ReadFile's ERROR_HANDLE_EOF to `Ok(0)`, as pread reports the end.
    std::os::windows::fs::FileExt::seek_read(self, buf, offset)
  }
  fn write_at(&self, buf: &[u8], offset: u64) -> Result<usize> {
    std::os::windows::fs::FileExt::seek_write(self, buf, offset)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn reads_and_writes_land_at_their_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let f = std::fs::OpenOptions::new()
      .read(true)
      .write(true)
      .create_new(true)
      .open(&path)
      .unwrap();
    f.write_all_at(b"world", 6).unwrap();
    f.write_all_at(b"hello ", 0).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
    let mut buf = [0u8; 5];
    f.read_exact_at(&mut buf, 6).unwrap();
    assert_eq!(&buf, b"world");
    assert_eq!(f.read_at(&mut buf, 11).unwrap(), 0, "at the end");
    let e = f.read_exact_at(&mut buf, 8).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
  }
}

//! Checksums: the algorithm uploads send (and ask S3 to store for the whole object), and the verification of
//! downloads against the stored full-object checksum.
//!
//! A small object comes back in one GET, which the SDK verifies itself against the checksum in the response.
//! A large object comes back in ranges fetched in parallel; no ranged response carries a checksum, so the
//! download computes the CRC of each range as it writes it, joins them in order with `checksum_combine` (no
//! second pass over the file) and compares the result with the full-object checksum from a HEAD pinned to the
//! same ETag. Composite (per-part) checksums cannot be checked from ranges that do not match the original parts;
//! such objects are checked for size and ETag only.

use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::types::ChecksumType;
use crc_fast::{CrcAlgorithm, Digest};

use super::config::ChecksumAlgorithm;

impl ChecksumAlgorithm {
  /// Ours, for an algorithm the SDK names (a listing's `ChecksumAlgorithm`); `None` for the ones not used here.
  pub(crate) fn from_sdk(a: &aws_sdk_s3::types::ChecksumAlgorithm) -> Option<Self> {
    match a {
      aws_sdk_s3::types::ChecksumAlgorithm::Crc64Nvme => Some(ChecksumAlgorithm::Crc64Nvme),
      aws_sdk_s3::types::ChecksumAlgorithm::Crc32C => Some(ChecksumAlgorithm::Crc32c),
      aws_sdk_s3::types::ChecksumAlgorithm::Crc32 => Some(ChecksumAlgorithm::Crc32),
      _ => None,
    }
  }

  /// The SDK's name for it.
  pub(crate) fn sdk(self) -> aws_sdk_s3::types::ChecksumAlgorithm {
    match self {
      ChecksumAlgorithm::Crc64Nvme => aws_sdk_s3::types::ChecksumAlgorithm::Crc64Nvme,
      ChecksumAlgorithm::Crc32c => aws_sdk_s3::types::ChecksumAlgorithm::Crc32C,
      ChecksumAlgorithm::Crc32 => aws_sdk_s3::types::ChecksumAlgorithm::Crc32,
    }
  }

  fn crc(self) -> CrcAlgorithm {
    match self {
      ChecksumAlgorithm::Crc64Nvme => CrcAlgorithm::Crc64Nvme,
      ChecksumAlgorithm::Crc32c => CrcAlgorithm::Crc32Iscsi,
      ChecksumAlgorithm::Crc32 => CrcAlgorithm::Crc32IsoHdlc,
    }
  }

  /// The checksum's width in bytes, as S3 encodes it (big-endian, base64).
  fn bytes(self) -> usize {
    match self {
      ChecksumAlgorithm::Crc64Nvme => 8,
      ChecksumAlgorithm::Crc32c | ChecksumAlgorithm::Crc32 => 4,
    }
  }

  /// S3's header name, for messages.
  pub fn name(self) -> &'static str {
    match self {
      ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
      ChecksumAlgorithm::Crc32c => "CRC32C",
      ChecksumAlgorithm::Crc32 => "CRC32",
    }
  }

  /// S3's base64 of a CRC value.
  pub(crate) fn encode(self, value: u64) -> String {
    let be = value.to_be_bytes();
    aws_smithy_types::base64::encode(&be[8 - self.bytes()..])
  }

  fn decode(self, text: &str) -> Option<u64> {
    let raw = aws_smithy_types::base64::decode(text).ok()?;
    (raw.len() == self.bytes()).then(|| raw.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b)))
  }
}

/// A full-object checksum stored with an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FullObjectChecksum {
  pub algorithm: ChecksumAlgorithm,
  pub value: u64,
}

impl FullObjectChecksum {
  /// The full-object checksum a HEAD reported, if any (composite ones, `...-N`, are not full-object).
  pub fn from_head(head: &HeadObjectOutput) -> Option<Self> {
    if matches!(head.checksum_type(), Some(ChecksumType::Composite)) {
      return None;
    }
    [
      (ChecksumAlgorithm::Crc64Nvme, head.checksum_crc64_nvme()),
      (ChecksumAlgorithm::Crc32c, head.checksum_crc32_c()),
      (ChecksumAlgorithm::Crc32, head.checksum_crc32()),
    ]
    .into_iter()
    .find_map(|(algorithm, text)| {
      let text = text?;
      Some(FullObjectChecksum {
        algorithm,
        value: algorithm.decode(text)?,
      })
    })
  }
}

/// The CRC of one range as it is written.
pub(crate) struct RangeDigest {
  digest: Digest,
  len: u64,
}

impl RangeDigest {
  pub fn new(algorithm: ChecksumAlgorithm) -> Self {
    RangeDigest {
      digest: Digest::new(algorithm.crc()),
      len: 0,
    }
  }

  pub fn update(&mut self, data: &[u8]) {
    self.digest.update(data);
    self.len += data.len() as u64;
  }

  /// (offset is the caller's), length, CRC.
  pub fn finish(&self) -> (u64, u64) {
    (self.len, self.digest.finalize())
  }
}

/// Joins the CRCs of consecutive ranges, given as (offset, length, crc) in any order, into the CRC of the whole.
/// `None` when the ranges leave a gap or overlap (a bug, never a pass).
pub(crate) fn combine(algorithm: ChecksumAlgorithm, mut ranges: Vec<(u64, u64, u64)>) -> Option<u64> {
  ranges.sort_unstable_by_key(|r| r.0);
  let mut end = 0;
  let mut crc: Option<u64> = None;
  for (offset, len, value) in ranges {
    if offset != end {
      return None;
    }
    end += len;
    crc = Some(match crc {
      None => value,
      Some(so_far) => crc_fast::checksum_combine(algorithm.crc(), so_far, value, len),
    });
  }
  Some(crc.unwrap_or_else(|| Digest::new(algorithm.crc()).finalize()))
}

/// The CRC of a whole file, read from disk (for an object stored with another algorithm than the one computed
/// while it was written).
pub(crate) fn of_file(file: &std::fs::File, algorithm: ChecksumAlgorithm) -> std::io::Result<u64> {
  of_range(file, 0, u64::MAX, algorithm)
}

/// The CRC of `len` bytes of a file from `offset` (fewer if the file ends first), read from disk.
pub(crate) fn of_range(
  file: &std::fs::File,
  offset: u64,
  len: u64,
  algorithm: ChecksumAlgorithm,
) -> std::io::Result<u64> {
  use super::positional::PositionalIo;
  let mut digest = Digest::new(algorithm.crc());
  let mut buf = vec![0u8; 1 << 20];
  let mut done = 0;
  while done < len {
    let want = buf.len().min((len - done).min(usize::MAX as u64) as usize);
    let n = file.read_at(&mut buf[..want], offset + done)?;
    if n == 0 {
      break;
    }
    digest.update(&buf[..n]);
    done += n as u64;
  }
  Ok(digest.finalize())
}

/// When a body error is the SDK's own response-checksum mismatch: the algorithm's name and the expected and
/// actual values (base64, as S3 shows them).
pub(crate) fn sdk_mismatch(err: &(dyn std::error::Error + 'static)) -> Option<(&'static str, String, String)> {
  use aws_smithy_checksums::body::validate::Error as Validate;
  let mut cur = Some(err);
  while let Some(e) = cur {
    if let Some(Validate::ChecksumMismatch { expected, actual }) = e.downcast_ref::<Validate>() {
      let name = match expected.len() {
        8 => "CRC64NVME",
        4 => "CRC32/CRC32C",
        _ => "checksum",
      };
      return Some((
        name,
        aws_smithy_types::base64::encode(expected),
        aws_smithy_types::base64::encode(actual),
      ));
    }
    cur = e.source();
  }
  None
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn ranges_combine_to_the_crc_of_the_whole() {
    let data: Vec<u8> = (0..3_000_001u32)
      .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
      .collect();
    for algorithm in [
      ChecksumAlgorithm::Crc64Nvme,
      ChecksumAlgorithm::Crc32c,
      ChecksumAlgorithm::Crc32,
    ] {
      let whole = crc_fast::checksum(algorithm.crc(), &data);
      let mut ranges = Vec::new();
      // Uneven ranges, finished out of order as parallel parts would be.
      for (start, end) in [(2_000_000, 3_000_001), (0, 1_000_000), (1_000_000, 2_000_000)] {
        let mut d = RangeDigest::new(algorithm);
        for chunk in data[start..end].chunks(65_536) {
          d.update(chunk);
        }
        let (len, crc) = d.finish();
        ranges.push((start as u64, len, crc));
      }
      assert_eq!(combine(algorithm, ranges.clone()), Some(whole), "{algorithm:?}");
      ranges.remove(1);
      assert_eq!(combine(algorithm, ranges), None, "a gap is never a pass");
    }
  }

  #[test]
  fn s3_encodings_round_trip() {
    // Known values from SeaweedFS for 100,000 bytes of 7 (CRC32C) and S3's documented CRC32 of "" (0).
    let c = ChecksumAlgorithm::Crc32c;
    assert_eq!(c.encode(crc_fast::checksum(c.crc(), &[7u8; 100_000])), "tA2ilQ==");
    assert_eq!(ChecksumAlgorithm::Crc32.encode(0), "AAAAAA==");
    let n = ChecksumAlgorithm::Crc64Nvme;
    assert_eq!(n.encode(crc_fast::checksum(n.crc(), &[7u8; 100_000])), "T/VVH7sLjzc=");
    assert_eq!(
      n.decode("T/VVH7sLjzc="),
      Some(crc_fast::checksum(n.crc(), &[7u8; 100_000]))
    );
    assert_eq!(n.decode("tA2ilQ=="), None, "a 4-byte value is not a CRC64");
  }
}

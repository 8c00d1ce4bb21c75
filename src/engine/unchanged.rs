//! "Skip unchanged" (`skipUnchanged`): what the destination side of a transfer already has, and when a file
//! there counts as the same as its source. One listing of the destination prefix for tree transfers; a
//! HeadObject per file only for explicit lists.

use std::collections::HashMap;
use std::time::SystemTime;

use aws_sdk_s3::types::{EncodingType, Object};
use futures_util::{stream, StreamExt, TryStreamExt};

use super::client::Engine;
use super::error::{Error, Result};
use super::log::counting;
use super::object::{Bucket, ToBucket};

/// When a destination counts as unchanged, so the file is skipped (as `aws s3 sync` decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipUnchanged {
  /// Same size, and the destination is not older than the source (whole seconds, S3's precision): an
  /// upload skips a file whose object was stored at or after the file's mtime; a download skips a file whose
  /// mtime is at or after the object's `LastModified`.
  SizeAndTime,
  /// Same size, whatever the times (`--size-only`).
  Size,
}

/// A file's or an object's size and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
  pub size: u64,
  pub modified: Option<SystemTime>,
}

impl Stamp {
  /// An object's, from a listing.
  pub fn of_object(obj: &Object) -> Stamp {
    Stamp {
      size: obj.size().unwrap_or(0).max(0) as u64,
      modified: obj.last_modified().and_then(|t| SystemTime::try_from(*t).ok()),
    }
  }
}

impl SkipUnchanged {
  /// Whether `destination` is the same as `source` under this rule.
  pub fn unchanged(self, source: Stamp, destination: Stamp) -> bool {
    if source.size != destination.size {
      return false;
    }
    match self {
      SkipUnchanged::Size => true,
      SkipUnchanged::SizeAndTime => match (source.modified, destination.modified) {
        (Some(s), Some(d)) => whole_seconds(d) >= whole_seconds(s),
        _ => false,
      },
    }
  }
}

/// Seconds since the epoch, rounded down (before 1970 too).
fn whole_seconds(t: SystemTime) -> i64 {
  match t.duration_since(SystemTime::UNIX_EPOCH) {
    Ok(d) => d.as_secs() as i64,
    Err(e) => {
      let d = e.duration();
      -(d.as_secs() as i64) - i64::from(d.subsec_nanos() > 0)
    }
  }
}

impl Engine {
  /// Every object whose key starts with `prefix` (ListObjectsV2, paged), each page taking a slot of the pool.
  /// Keys are asked for URL-encoded (`encoding-type=url`, as boto3 and the AWS CLI ask): XML 1.0 cannot carry
  /// U+0001-U+001F or U+FFFE, so a raw listing garbles such keys; they are decoded here when the server says it
  /// encoded them.
  pub(super) async fn list_objects(&self, bucket: &Bucket, prefix: &str) -> Result<Vec<Object>> {
    let s3 = self.s3().await?;
    let mut pages = s3
      .list_objects_v2()
      .to(bucket)
      .prefix(prefix)
      .encoding_type(EncodingType::Url)
      .into_paginator()
      .send();
    let mut objects = Vec::new();
    loop {
      let (page, attempts) = {
        let _slot = self.request_slot().await;
        counting(pages.next()).await
      };
      let Some(page) = page else { break };
      let page =
        page.map_err(|e| Error::from_sdk("ListObjectsV2", bucket, Some(prefix), e).after_attempts(attempts))?;
      let encoded = page.encoding_type() == Some(&EncodingType::Url);
      for obj in page.contents() {
        let mut obj = obj.clone();
        if encoded {
          obj.key = obj.key.as_deref().map(url_decoded);
        }
        objects.push(obj);
      }
    }
    Ok(objects)
  }

  /// Size and `LastModified` of each key that exists (HeadObject; a 404 is an absent key), as many in flight as
  /// the pool allows.
  pub(super) async fn stamps_of(&self, bucket: &Bucket, keys: Vec<String>) -> Result<HashMap<String, Stamp>> {
    let s3 = self.s3().await?;
    let found: Vec<Option<(String, Stamp)>> = stream::iter(keys)
      .map(|key| async move {
        let _slot = self.request_slot().await;
        let (sent, attempts) = counting(s3.head_object().to(bucket).key(&key).send()).await;
        match sent {
          Ok(out) => {
            let stamp = Stamp {
              size: out.content_length().unwrap_or(0).max(0) as u64,
              modified: out.last_modified().and_then(|t| SystemTime::try_from(*t).ok()),
            };
            Ok(Some((key, stamp)))
          }
          Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
          // With a customer key, an object stored unencrypted (400) or under another key (403) is not this
          // upload's: it counts as changed, and is replaced.
          Err(e)
            if bucket.customer_key_md5().is_some()
              && e
                .raw_response()
                .is_some_and(|r| matches!(r.status().as_u16(), 400 | 403)) =>
          {
            Ok(None)
          }
          Err(e) => Err(Error::from_sdk("HeadObject", bucket, Some(&key), e).after_attempts(attempts)),
        }
      })
      .buffer_unordered(self.config().max_pool_connections.max(1))
      .try_collect()
      .await?;
    Ok(found.into_iter().flatten().collect())
  }
}

/// A key from a listing with `encoding-type=url`: `+` is a space, `%XX` a byte (a literal `+` comes as `%2B`).
/// A key that does not decode to UTF-8 (no conforming server sends one) is kept as listed; fetching it then
/// fails with the server's `NoSuchKey`.
fn url_decoded(key: &str) -> String {
  let spaced = key.replace('+', " ");
  match percent_encoding::percent_decode_str(&spaced).decode_utf8() {
    Ok(k) => k.into_owned(),
    Err(_) => key.to_owned(),
  }
}

/// The local file's size and mtime, if it is a regular file (following links, as writing to it would).
pub(super) fn local_stamp(path: &std::path::Path) -> Option<Stamp> {
  let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
  Some(Stamp {
    size: meta.len(),
    modified: meta.modified().ok(),
  })
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::time::Duration;

  fn at(secs: u64, nanos: u32) -> Stamp {
    Stamp {
      size: 10,
      modified: Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)),
    }
  }

  #[test]
  fn same_size_and_a_destination_not_older_is_unchanged() {
    let rule = SkipUnchanged::SizeAndTime;
    assert!(rule.unchanged(at(100, 0), at(100, 0)));
    assert!(
      rule.unchanged(at(100, 900_000_000), at(100, 0)),
      "S3 keeps whole seconds"
    );
    assert!(rule.unchanged(at(100, 0), at(160, 0)));
    assert!(
      !rule.unchanged(at(101, 0), at(100, 999_999_999)),
      "a source a second newer has changed"
    );
    assert!(
      !rule.unchanged(at(100, 0), Stamp { size: 11, ..at(200, 0) }),
      "another size has changed"
    );
    assert!(
      !rule.unchanged(
        at(100, 0),
        Stamp {
          modified: None,
          ..at(0, 0)
        }
      ),
      "no time: not known unchanged"
    );
  }

  #[test]
  fn size_only_ignores_times() {
    assert!(SkipUnchanged::Size.unchanged(at(500, 0), at(100, 0)));
    assert!(!SkipUnchanged::Size.unchanged(at(100, 0), Stamp { size: 9, ..at(100, 0) }));
  }

  #[test]
  fn listed_keys_are_url_decoded() {
    assert_eq!(url_decoded("p/a%01b.txt"), "p/a\u{1}b.txt");
    assert_eq!(url_decoded("p/sp+ace%2Bplus%25.txt"), "p/sp ace+plus%.txt");
    assert_eq!(url_decoded("p/%C3%A9%EF%BF%BE"), "p/é\u{FFFE}");
    assert_eq!(url_decoded("plain/key"), "plain/key");
    assert_eq!(
      url_decoded("bad%FF"),
      "bad%FF",
      "not UTF-8 once decoded: kept as listed"
    );
  }

  #[test]
  fn times_before_1970_round_down() {
    let before = SystemTime::UNIX_EPOCH - Duration::new(1, 500_000_000);
    assert_eq!(whole_seconds(before), -2);
    assert_eq!(whole_seconds(SystemTime::UNIX_EPOCH - Duration::from_secs(1)), -1);
  }
}

//! What a call's requests carry besides the key: the bucket with its expected owner and customer encryption key
//! (every request of the call), and how uploaded objects are stored (content headers, metadata, tags, storage
//! class, ACL, server-side encryption). Everything here is checked before any request is sent.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use aws_sdk_s3::operation::abort_multipart_upload::builders::AbortMultipartUploadFluentBuilder;
use aws_sdk_s3::operation::complete_multipart_upload::builders::CompleteMultipartUploadFluentBuilder;
use aws_sdk_s3::operation::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder;
use aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder;
use aws_sdk_s3::operation::head_object::builders::HeadObjectFluentBuilder;
use aws_sdk_s3::operation::list_objects_v2::builders::ListObjectsV2FluentBuilder;
use aws_sdk_s3::operation::list_parts::builders::ListPartsFluentBuilder;
use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::operation::upload_part::builders::UploadPartFluentBuilder;
use aws_sdk_s3::types::{ObjectCannedAcl, ServerSideEncryption, StorageClass};

use super::error::{Error, Result};

/// S3's limit on user-defined metadata: keys and values together, in bytes.
pub const MAX_METADATA_BYTES: usize = 2048;
/// S3's limits on object tags.
const MAX_TAGS: usize = 10;
const MAX_TAG_KEY_CHARS: usize = 128;
const MAX_TAG_VALUE_CHARS: usize = 256;

/// A customer-provided encryption key (SSE-C): 256 bits, sent with every request that reads or writes the
/// object's data. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomerKey {
  key_base64: String,
  md5_base64: String,
}

impl std::fmt::Debug for CustomerKey {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.write_str("CustomerKey(..)")
  }
}

impl CustomerKey {
  /// From the key's 32 bytes.
  pub fn new(key: &[u8], what: &str) -> Result<Self> {
    use md5::Digest;
    if key.len() != 32 {
      return Err(Error::invalid_value(format!(
        "{what} must be a 256-bit AES key (32 bytes), got {} bytes",
        key.len()
      )));
    }
    Ok(CustomerKey {
      key_base64: aws_smithy_types::base64::encode(key),
      md5_base64: aws_smithy_types::base64::encode(md5::Md5::digest(key)),
    })
  }

  /// From the base64 of the key's 32 bytes.
  pub fn from_base64(text: &str, what: &str) -> Result<Self> {
    let key = aws_smithy_types::base64::decode(text.trim()).map_err(|_| {
      Error::invalid_value(format!(
        "{what} is not base64 (give the key's 32 bytes, base64-encoded)"
      ))
    })?;
    CustomerKey::new(&key, what)
  }

  /// The key's MD5, base64 (what S3 reports as `SSECustomerKeyMD5`); not secret.
  pub fn md5_base64(&self) -> &str {
    &self.md5_base64
  }
}

/// The bucket of a call, and what every request to it carries.
#[derive(Debug, Clone)]
pub struct Bucket {
  name: Arc<str>,
  /// `x-amz-expected-bucket-owner`: the account that must own the bucket, else S3 refuses the request (403).
  owner: Option<Arc<str>>,
  /// SSE-C: the key the call's objects are (to be) encrypted with.
  customer_key: Option<Arc<CustomerKey>>,
}

impl Bucket {
  /// A bucket with nothing else sent.
  pub fn named(name: &str) -> Bucket {
    Bucket {
      name: Arc::from(name),
      owner: None,
      customer_key: None,
    }
  }

  /// With an expected owner (checked: a 12-digit AWS account id) and a customer key.
  pub fn new(name: &str, owner: Option<&str>, customer_key: Option<CustomerKey>) -> Result<Bucket> {
    if let Some(owner) = owner {
      validate_account_id(owner, "expectedBucketOwner")?;
    }
    Ok(Bucket {
      name: Arc::from(name),
      owner: owner.map(Arc::from),
      customer_key: customer_key.map(Arc::new),
    })
  }

  /// The bucket's name.
  pub fn name(&self) -> &str {
    &self.name
  }

  /// The customer key's MD5 (not secret), if the call has one.
  pub fn customer_key_md5(&self) -> Option<&str> {
    self.customer_key.as_deref().map(CustomerKey::md5_base64)
  }
}

impl std::fmt::Display for Bucket {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.write_str(&self.name)
  }
}

/// The name, wherever a `&str` is wanted (messages, cache scopes).
impl std::ops::Deref for Bucket {
  type Target = str;
  fn deref(&self) -> &str {
    &self.name
  }
}

/// An AWS account id: 12 digits.
pub fn validate_account_id(id: &str, what: &str) -> Result<()> {
  match id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
    true => Ok(()),
    false => Err(Error::invalid_value(format!(
      "{what} must be a 12-digit AWS account id, got '{}'",
      id.escape_debug()
    ))),
  }
}

/// A request builder that takes the call's bucket, with its expected owner and, where S3 takes one, its
/// customer key: every request of a call is made through this, so none can go without them.
pub(crate) trait ToBucket {
  /// This request, addressed to `bucket`.
  fn to(self, bucket: &Bucket) -> Self;
}

macro_rules! to_bucket {
  (owner only: $($plain:ty),*; with customer key: $($keyed:ty),*) => {
    $(impl ToBucket for $plain {
      fn to(self, bucket: &Bucket) -> Self {
        self.bucket(bucket.name()).set_expected_bucket_owner(bucket.owner.as_deref().map(str::to_owned))
      }
    })*
    $(impl ToBucket for $keyed {
      fn to(self, bucket: &Bucket) -> Self {
        let out = self.bucket(bucket.name()).set_expected_bucket_owner(bucket.owner.as_deref().map(str::to_owned));
        match &bucket.customer_key {
          None => out,
          Some(k) => out
            .sse_customer_algorithm("AES256")
            .sse_customer_key(k.key_base64.clone())
            .sse_customer_key_md5(k.md5_base64.clone()),
        }
      }
    })*
  };
}

to_bucket!(
  owner only: ListObjectsV2FluentBuilder, AbortMultipartUploadFluentBuilder;
  with customer key: PutObjectFluentBuilder, CreateMultipartUploadFluentBuilder, UploadPartFluentBuilder,
    CompleteMultipartUploadFluentBuilder, ListPartsFluentBuilder, HeadObjectFluentBuilder, GetObjectFluentBuilder
);

/// Server-side encryption with keys S3 manages (`AES256`) or KMS keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encryption {
  /// `AES256`, `aws:kms` or `aws:kms:dsse`.
  pub algorithm: Option<String>,
  /// The KMS key (id, ARN or alias) for `aws:kms` / `aws:kms:dsse`; default: the account's AWS managed key.
  pub kms_key_id: Option<String>,
  /// An S3 Bucket Key for `aws:kms` (fewer KMS requests).
  pub bucket_key_enabled: Option<bool>,
}

/// How uploaded objects are stored. Every field is optional: an unset field sends nothing (S3's default),
/// except the content type, which is guessed from the file's extension unless `guess_content_type` is off, and
/// is otherwise `application/octet-stream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSettings {
  /// `Content-Type`; default: guessed from the extension (`.png` → `image/png`), else
  /// `application/octet-stream`.
  pub content_type: Option<String>,
  /// Guess the content type from the file's extension when `content_type` is unset. Default `true`.
  pub guess_content_type: bool,
  pub cache_control: Option<String>,
  pub content_disposition: Option<String>,
  pub content_encoding: Option<String>,
  pub content_language: Option<String>,
  /// User-defined metadata (`x-amz-meta-<name>`), at most 2 KB in all.
  pub metadata: Option<BTreeMap<String, String>>,
  /// Object tags, at most 10.
  pub tagging: Option<BTreeMap<String, String>>,
  /// `STANDARD`, `STANDARD_IA`, `INTELLIGENT_TIERING`, `GLACIER_IR`, ...
  pub storage_class: Option<String>,
  /// A canned ACL: `private`, `public-read`, `bucket-owner-full-control`, ...
  pub acl: Option<String>,
  pub encryption: Encryption,
}

impl Default for ObjectSettings {
  fn default() -> Self {
    ObjectSettings {
      content_type: None,
      guess_content_type: true,
      cache_control: None,
      content_disposition: None,
      content_encoding: None,
      content_language: None,
      metadata: None,
      tagging: None,
      storage_class: None,
      acl: None,
      encryption: Encryption::default(),
    }
  }
}

impl ObjectSettings {
  /// These settings with `file`'s own (a field a file sets replaces the call's; metadata and tags as a whole).
  pub fn with(&self, file: &ObjectSettings) -> ObjectSettings {
    fn pick<T: Clone>(own: &Option<T>, base: &Option<T>) -> Option<T> {
      own.clone().or_else(|| base.clone())
    }
    ObjectSettings {
      content_type: pick(&file.content_type, &self.content_type),
      guess_content_type: self.guess_content_type && file.guess_content_type,
      cache_control: pick(&file.cache_control, &self.cache_control),
      content_disposition: pick(&file.content_disposition, &self.content_disposition),
      content_encoding: pick(&file.content_encoding, &self.content_encoding),
      content_language: pick(&file.content_language, &self.content_language),
      metadata: pick(&file.metadata, &self.metadata),
      tagging: pick(&file.tagging, &self.tagging),
      storage_class: pick(&file.storage_class, &self.storage_class),
      acl: pick(&file.acl, &self.acl),
      encryption: Encryption {
        algorithm: pick(&file.encryption.algorithm, &self.encryption.algorithm),
        kms_key_id: pick(&file.encryption.kms_key_id, &self.encryption.kms_key_id),
        bucket_key_enabled: pick(&file.encryption.bucket_key_enabled, &self.encryption.bucket_key_enabled),
      },
    }
  }

  /// Checks every field; `at` prefixes field names in messages (`files[3].`).
  pub fn validate(&self, at: &str) -> Result<()> {
    let headers = [
      ("contentType", &self.content_type),
      ("cacheControl", &self.cache_control),
      ("contentDisposition", &self.content_disposition),
      ("contentEncoding", &self.content_encoding),
      ("contentLanguage", &self.content_language),
      ("sseKmsKeyId", &self.encryption.kms_key_id),
    ];
    for (name, value) in headers {
      if let Some(v) = value {
        header_value(v, &format!("{at}{name}"))?;
      }
    }
    if let Some(metadata) = &self.metadata {
      let mut bytes = 0;
      let mut seen = std::collections::HashSet::new();
      for (name, value) in metadata {
        if !seen.insert(name.to_ascii_lowercase()) {
          return Err(Error::invalid_value(format!(
            "{at}metadata has '{}' twice (names are case-insensitive)",
            name.escape_debug()
          )));
        }
        if name.is_empty() || !name.bytes().all(is_token_byte) {
          return Err(Error::invalid_value(format!(
            "{at}metadata name '{}' is not a valid header name (letters, digits and !#$%&'*+-.^_`|~)",
            name.escape_debug()
          )));
        }
        header_value(value, &format!("{at}metadata['{name}']"))?;
        bytes += name.len() + value.len();
      }
      if bytes > MAX_METADATA_BYTES {
        return Err(Error::invalid_value(format!(
          "{at}metadata is {bytes} bytes (names and values); S3 takes at most {MAX_METADATA_BYTES}"
        )));
      }
    }
    if let Some(tags) = &self.tagging {
      if tags.len() > MAX_TAGS {
        return Err(Error::invalid_value(format!(
          "{at}tagging has {} tags; S3 takes at most {MAX_TAGS}",
          tags.len()
        )));
      }
      for (k, v) in tags {
        let (kc, vc) = (k.chars().count(), v.chars().count());
        if kc == 0 || kc > MAX_TAG_KEY_CHARS || vc > MAX_TAG_VALUE_CHARS {
          return Err(Error::invalid_value(format!(
            "{at}tagging '{}': tag keys are 1-{MAX_TAG_KEY_CHARS} characters and values at most {MAX_TAG_VALUE_CHARS}",
            k.escape_debug()
          )));
        }
      }
    }
    one_of(
      &self.storage_class,
      StorageClass::values(),
      &format!("{at}storageClass"),
    )?;
    one_of(&self.acl, ObjectCannedAcl::values(), &format!("{at}acl"))?;
    let sse = ["AES256", "aws:kms", "aws:kms:dsse"];
    one_of(&self.encryption.algorithm, &sse, &format!("{at}sse"))?;
    let kms = matches!(self.encryption.algorithm.as_deref(), Some("aws:kms" | "aws:kms:dsse"));
    if self.encryption.kms_key_id.is_some() && !kms {
      return Err(Error::invalid_value(format!(
        "{at}sseKmsKeyId needs sse 'aws:kms' or 'aws:kms:dsse'"
      )));
    }
    if self.encryption.bucket_key_enabled == Some(true) && self.encryption.algorithm.as_deref() != Some("aws:kms") {
      return Err(Error::invalid_value(format!(
        "{at}bucketKeyEnabled needs sse 'aws:kms' (S3 Bucket Keys do not apply to other encryption)"
      )));
    }
    Ok(())
  }

  /// The content type sent for `path`: the one set, else the extension's, else `application/octet-stream`
  /// (what the SDK sends on a PutObject without one; sent on CreateMultipartUpload too, so a file's type does
  /// not depend on its size).
  pub fn content_type_for(&self, path: &Path) -> String {
    let guessed = || match self.guess_content_type {
      true => mime_guess::from_path(path).first_raw(),
      false => None,
    };
    match &self.content_type {
      Some(t) => t.clone(),
      None => guessed().unwrap_or(OCTET_STREAM).to_owned(),
    }
  }

  /// The tags as S3 takes them in `x-amz-tagging`: a URL query string.
  fn tagging_query(&self) -> Option<String> {
    let tags = self.tagging.as_ref().filter(|t| !t.is_empty())?;
    let encode = |s: &str| percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string();
    Some(
      tags
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&"),
    )
  }

  /// Whether anything but the content type would be sent (a resumed multipart upload must have been created
  /// with the same settings).
  pub(crate) fn fingerprint(&self) -> Option<u64> {
    // Whether the type is guessed does not change what CreateMultipartUpload was sent for a given file beyond
    // its content type, which is left out as before (it follows the file's name, which the record already keys).
    let sent = ObjectSettings {
      guess_content_type: true,
      ..self.clone()
    };
    match sent == ObjectSettings::default() {
      true => None,
      // Hashed from the Debug text (field names and values), which stays the same across Rust versions.
      false => Some(xxhash_rust::xxh3::xxh3_64(format!("{sent:?}").as_bytes())),
    }
  }
}

const OCTET_STREAM: &str = "application/octet-stream";

/// What `tagging` must escape: everything but RFC 3986's unreserved characters.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
  .remove(b'-')
  .remove(b'.')
  .remove(b'_')
  .remove(b'~');

fn is_token_byte(b: u8) -> bool {
  b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A value S3 can take in a header: printable ASCII (and tabs). Other characters would be refused by the SDK or
/// mangled on the way.
fn header_value(value: &str, what: &str) -> Result<()> {
  match value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
    true => Ok(()),
    false => Err(Error::invalid_value(format!(
      "{what} must be printable ASCII (a header value); encode other characters first, e.g. filename*=UTF-8''... \
       for contentDisposition"
    ))),
  }
}

fn one_of(value: &Option<String>, allowed: &[&str], what: &str) -> Result<()> {
  match value {
    Some(v) if !allowed.contains(&v.as_str()) => Err(Error::invalid_value(format!(
      "{what} '{}' is not one of {}",
      v.escape_debug(),
      allowed.join(", ")
    ))),
    _ => Ok(()),
  }
}

/// A request that creates an object (PutObject, CreateMultipartUpload) and so takes its settings.
pub(crate) trait WithSettings {
  /// This request carrying `settings` for the file at `path`.
  fn with_settings(self, settings: &ObjectSettings, path: &Path) -> Self;
}

macro_rules! with_settings {
  ($($builder:ty),*) => {
    $(impl WithSettings for $builder {
      fn with_settings(self, s: &ObjectSettings, path: &Path) -> Self {
        self
          .content_type(s.content_type_for(path))
          .set_cache_control(s.cache_control.clone())
          .set_content_disposition(s.content_disposition.clone())
          .set_content_encoding(s.content_encoding.clone())
          .set_content_language(s.content_language.clone())
          .set_metadata(s.metadata.clone().map(|m| m.into_iter().collect()))
          .set_tagging(s.tagging_query())
          .set_storage_class(s.storage_class.as_deref().map(StorageClass::from))
          .set_acl(s.acl.as_deref().map(ObjectCannedAcl::from))
          .set_server_side_encryption(s.encryption.algorithm.as_deref().map(ServerSideEncryption::from))
          .set_ssekms_key_id(s.encryption.kms_key_id.clone())
          .set_bucket_key_enabled(s.encryption.bucket_key_enabled)
      }
    })*
  };
}

with_settings!(PutObjectFluentBuilder, CreateMultipartUploadFluentBuilder);

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn content_type_is_guessed_unless_set_or_off() {
    let s = ObjectSettings::default();
    assert_eq!(s.content_type_for(Path::new("a/b.png")), "image/png");
    assert_eq!(s.content_type_for(Path::new("a/b.unknownext")), OCTET_STREAM);
    let set = ObjectSettings {
      content_type: Some("text/x-scene".into()),
      ..Default::default()
    };
    assert_eq!(set.content_type_for(Path::new("b.png")), "text/x-scene");
    let off = ObjectSettings {
      guess_content_type: false,
      ..Default::default()
    };
    assert_eq!(off.content_type_for(Path::new("b.png")), OCTET_STREAM);
  }

  #[test]
  fn a_file_replaces_the_calls_fields() {
    let call = ObjectSettings {
      cache_control: Some("max-age=1".into()),
      metadata: Some([("a".to_owned(), "1".to_owned())].into()),
      ..Default::default()
    };
    let file = ObjectSettings {
      metadata: Some([("b".to_owned(), "2".to_owned())].into()),
      ..Default::default()
    };
    let merged = call.with(&file);
    assert_eq!(merged.cache_control.as_deref(), Some("max-age=1"));
    assert_eq!(merged.metadata, file.metadata);
  }

  #[test]
  fn bad_settings_are_refused_naming_the_field() {
    let bad = |s: ObjectSettings| s.validate("files[2].").unwrap_err().to_string();
    let e = bad(ObjectSettings {
      storage_class: Some("CHEAP".into()),
      ..Default::default()
    });
    assert!(
      e.starts_with("files[2].storageClass 'CHEAP' is not one of ") && e.contains("STANDARD_IA"),
      "{e}"
    );
    let e = bad(ObjectSettings {
      acl: Some("public".into()),
      ..Default::default()
    });
    assert!(e.starts_with("files[2].acl 'public'"), "{e}");
    let e = bad(ObjectSettings {
      metadata: Some([("k".to_owned(), "v".repeat(2048))].into()),
      ..Default::default()
    });
    assert!(e.contains("2049 bytes"), "{e}");
    let e = bad(ObjectSettings {
      encryption: Encryption {
        algorithm: Some("AES256".into()),
        kms_key_id: Some("alias/k".into()),
        ..Default::default()
      },
      ..Default::default()
    });
    assert!(e.contains("sseKmsKeyId needs"), "{e}");
    let e = bad(ObjectSettings {
      metadata: Some([("Job".to_owned(), "1".to_owned()), ("job".to_owned(), "2".to_owned())].into()),
      ..Default::default()
    });
    assert!(e.contains("metadata has 'job' twice"), "{e}");
    let e = bad(ObjectSettings {
      tagging: Some((0..11).map(|i| (format!("k{i}"), String::new())).collect()),
      ..Default::default()
    });
    assert!(e.contains("11 tags"), "{e}");
    let e = bad(ObjectSettings {
      cache_control: Some("a\nb".into()),
      ..Default::default()
    });
    assert!(e.starts_with("files[2].cacheControl must be printable ASCII"), "{e}");
  }

  #[test]
  fn customer_keys_are_32_bytes_and_never_printed() {
    let key = CustomerKey::new(&[7; 32], "sseCustomerKey").unwrap();
    assert_eq!(format!("{key:?}"), "CustomerKey(..)");
    assert_eq!(key.md5_base64().len(), 24);
    let e = CustomerKey::new(&[7; 16], "sseCustomerKey").unwrap_err().to_string();
    assert!(e.contains("got 16 bytes"), "{e}");
    assert!(CustomerKey::from_base64("not base64!", "k").is_err());
    assert!(Bucket::new("b", Some("12345"), None).is_err());
    assert!(Bucket::new("b", Some("123456789012"), None).is_ok());
  }

  #[test]
  fn tags_are_sent_as_a_query_string() {
    let s = ObjectSettings {
      tagging: Some([("k 1".to_owned(), "v&2".to_owned()), ("a".to_owned(), "b".to_owned())].into()),
      ..Default::default()
    };
    assert_eq!(s.tagging_query().as_deref(), Some("a=b&k%201=v%262"));
  }
}

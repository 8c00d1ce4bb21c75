//! Creating a bucket (`createBucket`, the CLI's `mb`), so the library and the command line alone can set up a
//! place to transfer to.

use std::sync::Arc;

use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};

use super::client::Engine;
use super::error::{Error, Result};
use super::log::counting;
use super::progress::{Phase, Summary};
use super::scheduler::or_cancelled;
use super::{validate_bucket, Control};

/// What `create_bucket` did.
#[derive(Debug, Clone)]
pub struct BucketCreated {
  /// `false`: the bucket existed already and is the caller's (nothing changed).
  pub created: bool,
  pub summary: Summary,
}

impl Engine {
  /// Creates `bucket` in the client's region (with the location constraint S3 needs outside `us-east-1`). One
  /// that exists and is the caller's is not an error (`created: false`); one that is someone else's is
  /// `BucketAlreadyExists`.
  pub async fn create_bucket(self: &Arc<Self>, bucket: String, control: Control) -> Result<BucketCreated> {
    validate_bucket(&bucket)?;
    let (bucket, cancel) = (&bucket, &control.cancel.clone());
    let work = |_progress| async move {
      let s3 = self.s3().await?;
      let region = s3.config().region().map(|r| r.as_ref().to_owned());
      // AWS needs the region as a location constraint outside us-east-1 (also through an explicit AWS endpoint);
      // other stores do not take one.
      let aws = self.config().endpoint.as_deref().is_none_or(is_aws_endpoint);
      let location = region.filter(|r| r != "us-east-1" && aws).map(|r| {
        CreateBucketConfiguration::builder()
          .location_constraint(BucketLocationConstraint::from(r.as_str()))
          .build()
      });
      let (sent, attempts) = or_cancelled(cancel, async {
        let _slot = self.request_slot().await;
        Ok(
          counting(
            s3.create_bucket()
              .bucket(bucket)
              .set_create_bucket_configuration(location)
              .send(),
          )
          .await,
        )
      })
      .await?;
      match sent.map_err(|e| Error::from_sdk("CreateBucket", bucket, None, e).after_attempts(attempts)) {
        Ok(_) => Ok(true),
        Err(e) if e.code() == "BucketAlreadyOwnedByYou" => Ok(false),
        // Some stores (SeaweedFS) answer BucketAlreadyExists for a bucket of the caller's own too: it is the
        // caller's when a HeadBucket is answered.
        Err(e) if e.code() == "BucketAlreadyExists" => {
          let _slot = self.request_slot().await;
          match s3.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(false),
            Err(_) => Err(e),
          }
        }
        Err(e) => Err(e),
      }
    };
    let (created, summary) = control.run(Phase::Uploading, work).await?;
    Ok(BucketCreated { created, summary })
  }
}

/// Whether an endpoint URL is AWS's own S3 (`https://s3.eu-west-1.amazonaws.com`, a FIPS or dual-stack name).
fn is_aws_endpoint(endpoint: &str) -> bool {
  let host = endpoint.split("://").nth(1).unwrap_or(endpoint);
  let host = host.split(['/', ':']).next().unwrap_or("");
  host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")
}

#[cfg(test)]
mod tests {
  #[test]
  fn aws_endpoints_are_told_apart() {
    assert!(super::is_aws_endpoint("https://s3.eu-west-1.amazonaws.com"));
    assert!(super::is_aws_endpoint("https://s3.cn-north-1.amazonaws.com.cn/"));
    assert!(!super::is_aws_endpoint("http://127.0.0.1:9000"));
    assert!(!super::is_aws_endpoint("https://minio.example.com"));
  }
}

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
      let location = region
        .filter(|r| r != "us-east-1" && self.config().endpoint.is_none())
        .map(|r| {
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
        Err(e) => Err(e),
      }
    };
    let (created, summary) = control.run(Phase::Uploading, work).await?;
    Ok(BucketCreated { created, summary })
  }
}

//! s3-ferry: fast S3 uploads and downloads for Node.js.
//!
//! Two rooms with one door: [`engine`] is plain tokio + aws-sdk-s3 and knows nothing of Node; `binding` is the
//! only napi code, turning JavaScript values into engine requests and engine results back into JavaScript.
#![deny(clippy::all)]
// The engine's one error type carries the bucket, key, path and S3 code it concerns (136 bytes): errors are rare
// and cold, and boxing them would only move those strings behind another allocation.
#![allow(clippy::result_large_err)]

mod binding;
pub mod engine;

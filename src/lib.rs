//! s3-ferry: fast S3 uploads and downloads for Node.js.
//!
//! Two rooms with one door: [`engine`] is plain tokio + aws-sdk-s3 and knows nothing of Node; `binding` is the
//! only napi code, turning JavaScript values into engine requests and engine results back into JavaScript.
#![deny(clippy::all)]

mod binding;
pub mod engine;

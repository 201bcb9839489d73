//! [`S3Store`]: any S3-compatible server through aws-sdk-s3.
//!
//! Tested against Garage (see `tests/tests/suite/object_store.rs`). What the
//! code does for servers that are not AWS:
//! - checksums only when an operation requires them, so streamed bodies go out
//!   as plain `Content-Length` bodies (no `aws-chunked` encoding);
//! - a complete request is checked against `ListParts` first (order, ETags,
//!   5 MiB minimum of non-final parts) because Garage does not refuse small
//!   parts, and the contract says both stores do;
//! - `DeleteObjects` per-key `NoSuchKey` errors count as deleted;
//! - `copy_part` checks the range against the source's size itself (servers
//!   clamp a range past the end) and streams ranges of small sources, which
//!   Garage (inline objects) and AWS (sources up to 5 MB) do not copy.

mod body;
mod copy;
mod errors;
mod listing;
mod parts;
mod setup;

pub use self::setup::{S3Settings, DEFAULT_TIMEOUT};

use std::{fmt, ops::Range, time::Duration};

use async_trait::async_trait;
use aws_sdk_s3::{
    primitives::ByteStream as SdkByteStream,
    types::{CompletedMultipartUpload, Delete, ObjectIdentifier},
    Client,
};
use chrono::{DateTime, Utc};

use self::{
    body::upload_body,
    errors::{delete_errors, map_sdk_error},
    parts::check_complete,
};
use super::{
    limits::check_part, validate_key, validate_prefix, ByteStream, CompletedPart, DeleteBatching,
    DownloadResponse, ListedObject, MultipartSession, ObjectMeta, ObjectStore, PresignedRequest,
    StoreError, StoredPart,
};

/// Most keys one `DeleteObjects` request may carry.
const DELETE_BATCH: usize = 1000;

/// An object store in one S3 bucket.
#[derive(Clone)]
pub struct S3Store {
    /// Requests without a body: each bounded by `CLAIMCHECK_S3_TIMEOUT`, all
    /// retries included, so a black-holed server cannot hang a caller.
    client: Client,
    /// Requests that stream a client's body (PutObject, UploadPart): no
    /// overall bound, since a 5 GiB part over a slow link takes long; a
    /// stalled body is caught by the idle timeout and stalled-stream
    /// protection instead.
    streaming: Client,
    /// Signs URLs for the public endpoint.
    presigner: Client,
    bucket: String,
    endpoint: Option<String>,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn served_by_api(&self) -> Option<&super::fs::FsStore> {
        None
    }

    fn delete_batching(&self) -> DeleteBatching {
        DeleteBatching::UpTo(DELETE_BATCH)
    }

    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        len: u64,
        content_type: &str,
    ) -> Result<(), StoreError> {
        validate_key(key)?;
        let (body, failure) = upload_body(body, len);
        let result = self
            .streaming
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(len as i64)
            .body(SdkByteStream::new(body))
            .send()
            .await;
        result
            .map(drop)
            .map_err(|e| failure.into_error("PutObject", e))
    }

    async fn create_multipart(&self, key: &str, content_type: &str) -> Result<String, StoreError> {
        validate_key(key)?;
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| map_sdk_error("CreateMultipartUpload", e))?;
        out.upload_id().map(str::to_owned).ok_or_else(|| {
            StoreError::Other("CreateMultipartUpload: no upload id in the answer".into())
        })
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        len: u64,
    ) -> Result<String, StoreError> {
        validate_key(key)?;
        check_part(part_number, len)?;
        let (body, failure) = upload_body(body, len);
        let result = self
            .streaming
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number as i32)
            .content_length(len as i64)
            .body(SdkByteStream::new(body))
            .send()
            .await;
        let out = result.map_err(|e| failure.into_error("UploadPart", e))?;
        out.e_tag()
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Other("UploadPart: no ETag in the answer".into()))
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<StoredPart>, StoreError> {
        validate_key(key)?;
        self.all_parts(key, upload_id).await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), StoreError> {
        validate_key(key)?;
        check_complete(parts, &self.all_parts(key, upload_id).await?)?;
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        aws_sdk_s3::types::CompletedPart::builder()
                            .part_number(p.part_number as i32)
                            .e_tag(&p.etag)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map_err(|e| map_sdk_error("CompleteMultipartUpload", e))?;
        Ok(())
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        let result = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        match result.map_err(|e| map_sdk_error("AbortMultipartUpload", e)) {
            Ok(_) | Err(StoreError::NoSuchUpload) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        let result = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        match result.map_err(|e| map_sdk_error("DeleteObject", e)) {
            Ok(_) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, StoreError)>, StoreError> {
        let mut failed = Vec::new();
        let mut valid = Vec::with_capacity(keys.len());
        for key in keys {
            match validate_key(key) {
                Ok(()) => valid.push(key),
                Err(e) => failed.push((key.clone(), e)),
            }
        }
        for batch in valid.chunks(DELETE_BATCH) {
            let objects = batch
                .iter()
                .map(|key| ObjectIdentifier::builder().key(key.as_str()).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Other(format!("DeleteObjects: {e}")))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| StoreError::Other(format!("DeleteObjects: {e}")))?;
            // An error here leaves earlier batches deleted: fine, since the
            // contract's `Err` means "retry them all" and deletes are idempotent.
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| map_sdk_error("DeleteObjects", e))?;
            failed.extend(delete_errors(batch, out.errors())?);
        }
        Ok(failed)
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        validate_key(key)?;
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| map_sdk_error("HeadObject", e))?;
        Ok(ObjectMeta {
            size: u64::try_from(out.content_length().unwrap_or_default()).unwrap_or_default(),
            etag: out.e_tag().map(str::to_owned),
        })
    }

    async fn get(&self, key: &str) -> Result<ByteStream, StoreError> {
        self.read_object(key).await
    }

    async fn copy_part(
        &self,
        src_key: &str,
        range: Range<u64>,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> Result<String, StoreError> {
        self.copy_range(src_key, range, key, upload_id, part_number)
            .await
    }

    async fn presign_upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        len: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        validate_key(key)?;
        check_part(part_number, len)?;
        let (config, expires_at) = Self::presigning_config(expires_in)?;
        let request = self
            .presigner
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number as i32)
            .content_length(
                i64::try_from(len).map_err(|_| StoreError::InvalidPart(format!("{len} bytes")))?,
            )
            .presigned(config)
            .await
            .map_err(|e| map_sdk_error("UploadPart (presign)", e))?;
        Ok(PresignedRequest {
            url: request.uri().to_owned(),
            method: "PUT",
            headers: request
                .headers()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            expires_at,
        })
    }

    async fn presign_get(
        &self,
        key: &str,
        expires_in: Duration,
        response: &DownloadResponse,
    ) -> Result<PresignedRequest, StoreError> {
        validate_key(key)?;
        let (config, expires_at) = Self::presigning_config(expires_in)?;
        let request = self
            .presigner
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_type(response.content_type())
            .response_content_disposition(response.content_disposition(key))
            .presigned(config)
            .await
            .map_err(|e| map_sdk_error("GetObject (presign)", e))?;
        Ok(PresignedRequest {
            url: request.uri().to_owned(),
            method: "GET",
            headers: request
                .headers()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            expires_at,
        })
    }

    async fn list_objects(
        &self,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<(Vec<ListedObject>, Option<String>), StoreError> {
        validate_prefix(prefix)?;
        self.objects_page(prefix, continuation).await
    }

    async fn list_multipart_uploads(
        &self,
        prefix: &str,
        older_than: DateTime<Utc>,
    ) -> Result<Vec<MultipartSession>, StoreError> {
        validate_prefix(prefix)?;
        self.sessions_before(prefix, older_than).await
    }
}

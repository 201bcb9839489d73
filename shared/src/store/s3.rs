//! [`S3Store`]: any S3-compatible server through aws-sdk-s3.
//!
//! Tested against Garage (see `tests/tests/suite/object_store.rs`). What the
//! code does for servers that are not AWS:
//! - checksums only when an operation requires them, so streamed bodies go out
//!   as plain `Content-Length` bodies (no `aws-chunked` encoding);
//! - a complete request is checked against `ListParts` first (order, ETags,
//!   5 MiB minimum of non-final parts) because Garage does not refuse small
//!   parts, and the contract says both stores do;
//! - `DeleteObjects` per-key `NoSuchKey` errors count as deleted.

mod body;
mod errors;

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use aws_sdk_s3::{
    config::{
        retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, Credentials, Region,
        RequestChecksumCalculation, ResponseChecksumValidation,
    },
    presigning::PresigningConfig,
    primitives::ByteStream as SdkByteStream,
    types::{CompletedMultipartUpload, Delete, ObjectIdentifier},
    Client,
};
use chrono::{DateTime, Utc};

use self::{body::upload_body, errors::map_sdk_error};
use super::{
    fs::check_part, signed_url::content_disposition, validate_key, validate_prefix, ByteStream,
    CompletedPart, ListedObject, MultipartSession, ObjectMeta, ObjectStore, PresignedRequest,
    StoreError, StoredPart, MIN_PART_SIZE,
};

/// Most keys one `DeleteObjects` request may carry.
const DELETE_BATCH: usize = 1000;

/// Where the bucket is and how to reach it.
#[derive(Clone, Default)]
pub struct S3Settings {
    /// The endpoint claimcheck talks to (`http://garage:3900`); `None` for AWS.
    pub endpoint: Option<String>,
    /// The endpoint presigned URLs name, as clients reach it (the signature
    /// covers the host); `None` for the same as `endpoint`.
    pub public_endpoint: Option<String>,
    /// The bucket.
    pub bucket: String,
    /// The signing region (Garage: whatever its `s3_region` says).
    pub region: String,
    /// Path-style addressing (`host/bucket/key`), needed for `host:port` endpoints.
    pub force_path_style: bool,
    /// Static credentials; both or neither. Neither: the default provider chain.
    pub access_key_id: Option<String>,
    /// See `access_key_id`.
    pub secret_access_key: Option<String>,
}

impl fmt::Debug for S3Settings {
    // The secret key must not reach the logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("public_endpoint", &self.public_endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("force_path_style", &self.force_path_style)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// An object store in one S3 bucket.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
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

impl S3Store {
    /// Builds the clients; makes no request (see [`S3Store::check`]).
    pub async fn new(settings: S3Settings) -> Result<S3Store, StoreError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            // Only a connect timeout: the SDK's read timeout covers sending the
            // request body too, and a 5 GiB part from a slow client takes long.
            // A stalled body is caught by the SDK's stalled stream protection.
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .build(),
            )
            .retry_config(RetryConfig::standard())
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        match (&settings.access_key_id, &settings.secret_access_key) {
            (Some(id), Some(secret)) => {
                loader = loader.credentials_provider(Credentials::new(
                    id,
                    secret,
                    None,
                    None,
                    "claimcheck-settings",
                ));
            }
            (None, None) => {}
            _ => {
                return Err(StoreError::Other(
                    "S3 access key id and secret access key must be set together".into(),
                ))
            }
        }
        let shared = loader.load().await;
        let client_for = |endpoint: Option<&String>| {
            let mut config = aws_sdk_s3::config::Builder::from(&shared)
                .force_path_style(settings.force_path_style)
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
            if let Some(endpoint) = endpoint {
                config = config.endpoint_url(endpoint);
            }
            Client::from_conf(config.build())
        };
        let public = settings
            .public_endpoint
            .as_ref()
            .or(settings.endpoint.as_ref());
        Ok(S3Store {
            client: client_for(settings.endpoint.as_ref()),
            presigner: client_for(public),
            bucket: settings.bucket,
            endpoint: settings.endpoint,
        })
    }

    /// Checks the bucket is reachable with these credentials (`HeadBucket`),
    /// for start-up and readiness checks.
    pub async fn check(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| map_sdk_error("HeadBucket", e))?;
        Ok(())
    }

    /// Every part of a session (`ListParts` pages of up to 1000).
    async fn all_parts(&self, key: &str, upload_id: &str) -> Result<Vec<StoredPart>, StoreError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
                .send()
                .await
                .map_err(|e| map_sdk_error("ListParts", e))?;
            for part in page.parts() {
                parts.push(StoredPart {
                    part_number: u32::try_from(part.part_number().unwrap_or_default())
                        .unwrap_or_default(),
                    size: u64::try_from(part.size().unwrap_or_default()).unwrap_or_default(),
                    etag: part.e_tag().unwrap_or_default().to_owned(),
                });
            }
            let next = page.next_part_number_marker().map(str::to_owned);
            // Stop on a server that says "truncated" without moving on.
            if page.is_truncated() != Some(true) || next.is_none() || next == marker {
                break;
            }
            marker = next;
        }
        parts.sort_by_key(|p| p.part_number);
        Ok(parts)
    }

    fn presigning_config(
        expires_in: Duration,
    ) -> Result<(PresigningConfig, DateTime<Utc>), StoreError> {
        let start = SystemTime::now();
        let config = PresigningConfig::builder()
            .start_time(start)
            .expires_in(expires_in)
            .build()
            .map_err(|e| StoreError::Other(format!("presigning: {e}")))?;
        let expires_at = DateTime::<Utc>::from(start + expires_in);
        Ok((config, expires_at))
    }
}

/// Checks a complete request against the parts the server holds, as S3 would:
/// ascending part numbers, each part present with that ETag, every part but the
/// last at least [`MIN_PART_SIZE`].
fn check_complete(requested: &[CompletedPart], stored: &[StoredPart]) -> Result<(), StoreError> {
    if requested.is_empty() {
        return Err(StoreError::InvalidPart(
            "a multipart upload needs at least one part".into(),
        ));
    }
    for (i, part) in requested.iter().enumerate() {
        let n = part.part_number;
        if i > 0 && requested[i - 1].part_number >= n {
            return Err(StoreError::InvalidPart(format!(
                "parts must be listed in ascending order: {} then {n}",
                requested[i - 1].part_number
            )));
        }
        let held = stored
            .binary_search_by_key(&n, |p| p.part_number)
            .map(|at| &stored[at])
            .map_err(|_| StoreError::InvalidPart(format!("part {n} was not uploaded")))?;
        if held.etag.trim_matches('"') != part.etag.trim_matches('"') {
            return Err(StoreError::InvalidPart(format!(
                "part {n}: ETag does not match"
            )));
        }
        if i + 1 < requested.len() && held.size < MIN_PART_SIZE {
            return Err(StoreError::InvalidPart(format!(
                "part {n} has {} bytes; every part but the last needs at least {MIN_PART_SIZE}",
                held.size
            )));
        }
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for S3Store {
    fn kind(&self) -> &'static str {
        "s3"
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
            .client
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
            .client
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
            for error in out.errors() {
                // Some servers (older Garage) report a missing key as an error;
                // for claimcheck a missing object is deleted.
                if error.code() == Some("NoSuchKey") {
                    continue;
                }
                let key = error.key().unwrap_or_default().to_owned();
                failed.push((
                    key,
                    errors::from_code("DeleteObjects", 200, error.code(), error.message()),
                ));
            }
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

    async fn presign_upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        validate_key(key)?;
        check_part(part_number, 0)?;
        let (config, expires_at) = Self::presigning_config(expires_in)?;
        let request = self
            .presigner
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number as i32)
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
        download_filename: Option<&str>,
    ) -> Result<PresignedRequest, StoreError> {
        validate_key(key)?;
        let (config, expires_at) = Self::presigning_config(expires_in)?;
        let request = self
            .presigner
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_response_content_disposition(download_filename.map(content_disposition))
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
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(1000)
            .set_continuation_token(continuation)
            .send()
            .await
            .map_err(|e| map_sdk_error("ListObjectsV2", e))?;
        let objects = page
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ListedObject {
                    key: o.key()?.to_owned(),
                    size: u64::try_from(o.size().unwrap_or_default()).unwrap_or_default(),
                })
            })
            .collect();
        let next = match page.is_truncated() {
            Some(true) => page.next_continuation_token().map(str::to_owned),
            _ => None,
        };
        Ok((objects, next))
    }

    async fn list_multipart_uploads(
        &self,
        prefix: &str,
        older_than: DateTime<Utc>,
    ) -> Result<Vec<MultipartSession>, StoreError> {
        validate_prefix(prefix)?;
        let mut sessions = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        // No paginator exists for this operation: follow the two markers.
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await
                .map_err(|e| map_sdk_error("ListMultipartUploads", e))?;
            for upload in page.uploads() {
                let (Some(key), Some(upload_id), Some(initiated)) =
                    (upload.key(), upload.upload_id(), upload.initiated())
                else {
                    continue;
                };
                let Some(initiated) =
                    DateTime::from_timestamp(initiated.secs(), initiated.subsec_nanos())
                else {
                    continue;
                };
                if initiated < older_than {
                    sessions.push(MultipartSession {
                        key: key.to_owned(),
                        upload_id: upload_id.to_owned(),
                        initiated,
                    });
                }
            }
            let next = (
                page.next_key_marker()
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned),
                page.next_upload_id_marker()
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned),
            );
            // Stop on a server that says "truncated" without moving on.
            if page.is_truncated() != Some(true)
                || next.0.is_none()
                || next == (key_marker.clone(), id_marker.clone())
            {
                break;
            }
            (key_marker, id_marker) = next;
        }
        Ok(sessions)
    }
}

/// Where an upload body leaves its source's error, so a failed upload reports
/// why the body failed (length mismatch, client gone) rather than the
/// transport error the SDK saw.
#[derive(Clone, Default)]
struct BodyFailure(Arc<Mutex<Option<std::io::Error>>>);

impl BodyFailure {
    fn record(&self, error: std::io::Error) {
        *self.0.lock().expect("body failure slot poisoned") = Some(error);
    }

    fn into_error<E>(
        self,
        op: &'static str,
        err: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> StoreError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match self.0.lock().expect("body failure slot poisoned").take() {
            Some(source_error) => super::into_store_error(source_error),
            None => map_sdk_error(op, err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(n: u32, size: u64, etag: &str) -> StoredPart {
        StoredPart {
            part_number: n,
            size,
            etag: etag.into(),
        }
    }

    fn req(n: u32, etag: &str) -> CompletedPart {
        CompletedPart {
            part_number: n,
            etag: etag.into(),
        }
    }

    #[test]
    fn complete_requests_are_checked_like_s3_does() {
        let big = MIN_PART_SIZE;
        let held = [
            stored(1, big, "\"a\""),
            stored(2, big, "\"b\""),
            stored(3, 10, "\"c\""),
        ];
        assert!(check_complete(&[req(1, "\"a\""), req(2, "b"), req(3, "\"c\"")], &held).is_ok());
        assert!(
            check_complete(&[req(1, "a"), req(3, "c")], &held).is_ok(),
            "gaps are fine"
        );
        let invalid = |parts: &[CompletedPart]| {
            matches!(
                check_complete(parts, &held),
                Err(StoreError::InvalidPart(_))
            )
        };
        assert!(invalid(&[]));
        assert!(invalid(&[req(2, "b"), req(1, "a")]), "order");
        assert!(invalid(&[req(1, "a"), req(1, "a")]), "duplicate");
        assert!(invalid(&[req(1, "x")]), "etag");
        assert!(invalid(&[req(4, "d")]), "missing");
        assert!(invalid(&[req(3, "c"), req(4, "d")]), "small non-final part");
    }

    #[test]
    fn settings_debug_hides_the_secret() {
        let settings = S3Settings {
            secret_access_key: Some("hunter2".into()),
            ..Default::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}

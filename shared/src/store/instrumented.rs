//! A decorator that gives every object-store call a span (so S3 calls show
//! up in traces) and a `claimcheck_store_request_duration_seconds` sample.

use std::{future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::{
    ByteStream, CompletedPart, DeleteBatching, DownloadResponse, ListedObject, MultipartSession,
    ObjectMeta, ObjectStore, PresignedRequest, StoreError, StoredPart,
};
use crate::metrics::Metrics;

/// Wraps a store; every call is traced and, with metrics, timed.
#[derive(Debug)]
pub struct Instrumented {
    inner: Arc<dyn ObjectStore>,
    metrics: Option<Metrics>,
}

impl Instrumented {
    /// Wraps `inner`. `metrics: None` traces only (for callers that time
    /// store calls themselves).
    pub fn wrap(inner: Arc<dyn ObjectStore>, metrics: Option<Metrics>) -> Arc<dyn ObjectStore> {
        Arc::new(Self { inner, metrics })
    }

    async fn call<T>(
        &self,
        op: &'static str,
        key: &str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let span = tracing::info_span!(
            "store.call",
            otel.name = %format!("{} {op}", self.inner.kind()),
            otel.kind = "client",
            store = self.inner.kind(),
            op,
            key,
            error = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let result = call.instrument(span.clone()).await;
        if let Err(e) = &result {
            span.record("error", tracing::field::display(e));
        }
        if let Some(metrics) = &self.metrics {
            metrics.observe_store(op, result.is_ok(), started.elapsed().as_secs_f64());
        }
        result
    }
}

#[async_trait]
impl ObjectStore for Instrumented {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn delete_batching(&self) -> DeleteBatching {
        self.inner.delete_batching()
    }

    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        len: u64,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.call("put", key, self.inner.put(key, body, len, content_type))
            .await
    }

    async fn create_multipart(&self, key: &str, content_type: &str) -> Result<String, StoreError> {
        self.call(
            "create_multipart",
            key,
            self.inner.create_multipart(key, content_type),
        )
        .await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        len: u64,
    ) -> Result<String, StoreError> {
        let call = self
            .inner
            .upload_part(key, upload_id, part_number, body, len);
        self.call("upload_part", key, call).await
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<StoredPart>, StoreError> {
        self.call("list_parts", key, self.inner.list_parts(key, upload_id))
            .await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), StoreError> {
        let call = self.inner.complete_multipart(key, upload_id, parts);
        self.call("complete_multipart", key, call).await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.call(
            "abort_multipart",
            key,
            self.inner.abort_multipart(key, upload_id),
        )
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.call("delete", key, self.inner.delete(key)).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, StoreError)>, StoreError> {
        let first = keys.first().map(String::as_str).unwrap_or_default();
        self.call("delete_many", first, self.inner.delete_many(keys))
            .await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        self.call("head", key, self.inner.head(key)).await
    }

    async fn presign_upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        len: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        let call = self
            .inner
            .presign_upload_part(key, upload_id, part_number, len, expires_in);
        self.call("presign_upload_part", key, call).await
    }

    async fn presign_get(
        &self,
        key: &str,
        expires_in: Duration,
        response: &DownloadResponse,
    ) -> Result<PresignedRequest, StoreError> {
        let call = self.inner.presign_get(key, expires_in, response);
        self.call("presign_get", key, call).await
    }

    async fn list_objects(
        &self,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<(Vec<ListedObject>, Option<String>), StoreError> {
        self.call(
            "list_objects",
            prefix,
            self.inner.list_objects(prefix, continuation),
        )
        .await
    }

    async fn list_multipart_uploads(
        &self,
        prefix: &str,
        older_than: DateTime<Utc>,
    ) -> Result<Vec<MultipartSession>, StoreError> {
        let call = self.inner.list_multipart_uploads(prefix, older_than);
        self.call("list_multipart_uploads", prefix, call).await
    }
}

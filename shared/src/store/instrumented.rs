//! The one decorator of object-store calls: every call gets a span (so S3
//! calls show up in traces) and one `claimcheck_store_request_duration_seconds`
//! sample, in the API and in the worker alike. The worker's decorator also
//! bounds each call ([`Instrumented::wrap_bounded`]): the bound sits inside
//! the timing, so a call that runs out of time is counted, as an error, once.

use std::{future::Future, ops::Range, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::{
    ByteStream, CompletedPart, DeleteBatching, DownloadResponse, ListedObject, MultipartSession,
    ObjectMeta, ObjectStore, PresignedRequest, StoreError, StoredPart,
};
use crate::metrics::Metrics;

/// Wraps a store; every call is traced, timed and, if asked, bounded.
#[derive(Debug)]
pub struct Instrumented {
    inner: Arc<dyn ObjectStore>,
    metrics: Metrics,
    timeout: Option<Duration>,
}

impl Instrumented {
    /// Wraps `inner` (a bare store: wrapping twice would count twice).
    pub fn wrap(inner: Arc<dyn ObjectStore>, metrics: Metrics) -> Arc<dyn ObjectStore> {
        Arc::new(Self {
            inner,
            metrics,
            timeout: None,
        })
    }

    /// [`wrap`](Self::wrap), and a call that takes longer than `timeout`
    /// fails with [`StoreError::Unavailable`]: the jobs' outer bound, so no
    /// loop waits on a black hole forever. The API has none: its requests
    /// are bounded by the S3 client's own timeouts and by the client.
    pub fn wrap_bounded(
        inner: Arc<dyn ObjectStore>,
        metrics: Metrics,
        timeout: Duration,
    ) -> Arc<dyn ObjectStore> {
        Arc::new(Self {
            inner,
            metrics,
            timeout: Some(timeout),
        })
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
        let call = call.instrument(span.clone());
        let result = match self.timeout {
            None => call.await,
            Some(bound) => tokio::time::timeout(bound, call).await.unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "{op}: no answer within {} s",
                    bound.as_secs_f64()
                )))
            }),
        };
        if let Err(e) = &result {
            span.record("error", tracing::field::display(e));
        }
        self.metrics
            .observe_store(op, result.is_ok(), started.elapsed().as_secs_f64());
        result
    }
}

#[async_trait]
impl ObjectStore for Instrumented {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn served_by_api(&self) -> Option<&super::fs::FsStore> {
        self.inner.served_by_api()
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

    /// Times (and bounds) finding the object, not reading it: the stream
    /// is the caller's to read at its own pace.
    async fn get(&self, key: &str) -> Result<ByteStream, StoreError> {
        self.call("get", key, self.inner.get(key)).await
    }

    async fn copy_part(
        &self,
        src_key: &str,
        range: Range<u64>,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> Result<String, StoreError> {
        let call = self
            .inner
            .copy_part(src_key, range, key, upload_id, part_number);
        self.call("copy_part", key, call).await
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

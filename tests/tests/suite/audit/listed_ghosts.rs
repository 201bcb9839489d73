//! The audit against a store that lists a session it no longer has, as a
//! replicated store does once a node that missed the session's end is back
//! (seen with Garage 2.5 in the fault suite's `garage_node` scenario).

use std::{ops::Range, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use claimcheck::{
    jobs::audit,
    store::{
        fs::FsStore, ByteStream, CompletedPart, DeleteBatching, DownloadResponse, ListedObject,
        MultipartSession, ObjectMeta, ObjectStore, PresignedRequest, StoreError, StoredPart,
    },
};
use claimcheck_tests::{
    db::TestDb,
    jobs::{context, fast_settings},
    stores::{s3_store, test_prefix},
};

/// Garage, listing one more session than it has.
#[derive(Debug)]
struct ListsAGhost {
    inner: Arc<dyn ObjectStore>,
    ghost: MultipartSession,
}

#[async_trait]
impl ObjectStore for ListsAGhost {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn delete_batching(&self) -> DeleteBatching {
        self.inner.delete_batching()
    }
    fn served_by_api(&self) -> Option<&FsStore> {
        self.inner.served_by_api()
    }
    async fn put(&self, key: &str, body: ByteStream, len: u64, ct: &str) -> Result<(), StoreError> {
        self.inner.put(key, body, len, ct).await
    }
    async fn create_multipart(&self, key: &str, ct: &str) -> Result<String, StoreError> {
        self.inner.create_multipart(key, ct).await
    }
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        n: u32,
        body: ByteStream,
        len: u64,
    ) -> Result<String, StoreError> {
        self.inner.upload_part(key, upload_id, n, body, len).await
    }
    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<StoredPart>, StoreError> {
        self.inner.list_parts(key, upload_id).await
    }
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), StoreError> {
        self.inner.complete_multipart(key, upload_id, parts).await
    }
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.inner.abort_multipart(key, upload_id).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, StoreError)>, StoreError> {
        self.inner.delete_many(keys).await
    }
    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        self.inner.head(key).await
    }
    async fn get(&self, key: &str) -> Result<ByteStream, StoreError> {
        self.inner.get(key).await
    }
    async fn copy_part(
        &self,
        src_key: &str,
        range: Range<u64>,
        key: &str,
        upload_id: &str,
        n: u32,
    ) -> Result<String, StoreError> {
        self.inner
            .copy_part(src_key, range, key, upload_id, n)
            .await
    }
    async fn presign_upload_part(
        &self,
        key: &str,
        upload_id: &str,
        n: u32,
        len: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        self.inner
            .presign_upload_part(key, upload_id, n, len, expires_in)
            .await
    }
    async fn presign_get(
        &self,
        key: &str,
        expires_in: Duration,
        response: &DownloadResponse,
    ) -> Result<PresignedRequest, StoreError> {
        self.inner.presign_get(key, expires_in, response).await
    }
    async fn list_objects(
        &self,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<(Vec<ListedObject>, Option<String>), StoreError> {
        self.inner.list_objects(prefix, continuation).await
    }
    async fn list_multipart_uploads(
        &self,
        prefix: &str,
        older_than: DateTime<Utc>,
    ) -> Result<Vec<MultipartSession>, StoreError> {
        let mut listed = self
            .inner
            .list_multipart_uploads(prefix, older_than)
            .await?;
        listed.push(self.ghost.clone());
        Ok(listed)
    }
}

#[tokio::test]
async fn the_audit_reports_orphan_sessions_the_store_has_not_those_it_only_lists() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let inner: Arc<dyn ObjectStore> = Arc::new(s3_store().await);
    // Behind the service's back: a session no claim knows, a real leak.
    let orphan_key = format!("{prefix}orphan");
    let orphan = inner
        .create_multipart(&orphan_key, "application/octet-stream")
        .await
        .unwrap();
    // And one that is listed only: an upload id of Garage's form it never issued.
    let ghost = MultipartSession {
        key: format!("{prefix}ghost"),
        upload_id: "ab".repeat(32),
        initiated: Utc::now() - chrono::Duration::hours(1),
    };
    assert!(matches!(
        inner.list_parts(&ghost.key, &ghost.upload_id).await,
        Err(StoreError::NoSuchUpload)
    ));
    let store = Arc::new(ListsAGhost { inner, ghost });
    let report = audit::audit(&context(&db, store, fast_settings(&prefix)))
        .await
        .unwrap();
    assert_eq!(report.sessions_scanned, 2);
    let reported: Vec<&str> = report
        .orphan_sessions
        .iter()
        .map(|s| s.upload_id.as_str())
        .collect();
    assert_eq!(reported, [orphan.as_str()], "{report}");
}

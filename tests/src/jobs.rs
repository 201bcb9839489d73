//! Helpers for the worker-fleet tests: job contexts with small, fast
//! settings, and claims, queue rows and objects planted straight into the
//! database and the store.

use std::{sync::Arc, time::Duration};

use claimcheck::db::Pool;
use claimcheck::{
    db::deletes::NewDelete,
    domain::DeleteReason,
    jobs::{JobContext, JobSettings},
    metrics::Metrics,
    store::ObjectStore,
};
use futures::StreamExt;
use uuid::Uuid;

use crate::{db::TestDb, stores::bytes_body};

/// Settings for single-step tests: no waiting anywhere (zero backoff, tiny
/// TTLs), small batches, everything under `prefix`.
pub fn fast_settings(prefix: &str) -> JobSettings {
    JobSettings {
        delete_batch: 100,
        delete_lease: Duration::from_secs(60),
        max_attempts: 3,
        webhook_max_attempts: 3,
        webhook_timeout: Duration::from_secs(2),
        event_retention: Duration::from_secs(3600),
        audit_retention: Duration::from_secs(3600),
        concurrency: 4,
        backoff_base: Duration::ZERO,
        backoff_max: Duration::ZERO,
        poll_interval: Duration::from_millis(200),
        sweep_interval: Duration::from_millis(200),
        sweep_batch: 500,
        claim_ttl: Duration::from_secs(60),
        unconsumed_ttl: Some(Duration::from_secs(3600)),
        orphan_grace: Duration::ZERO,
        reap_interval: Duration::from_secs(60),
        key_prefix: prefix.to_owned(),
        shutdown_timeout: Duration::from_secs(5),
        gauge_interval: Duration::from_secs(1),
        store_timeout: Duration::from_secs(60),
        stall_after: Duration::from_secs(60),
    }
}

/// A job context on `db` and `store` with fresh metrics.
pub fn context(db: &TestDb, store: Arc<dyn ObjectStore>, settings: JobSettings) -> JobContext {
    JobContext::new(db.pool.clone(), store, Metrics::new(), settings)
}

/// A claim planted by SQL.
#[derive(Debug, Clone)]
pub struct Planted {
    /// The claim id.
    pub id: Uuid,
    /// The object key.
    pub key: String,
}

/// A claim to plant by SQL, behind the upload service's back: owner
/// `owner-1`, 1 byte, no multipart session, expiring in a minute, unless
/// the builder says otherwise.
///
/// ```text
/// PlantClaim::pending(&key).size(100).session(&upload_id).expired().plant(&db).await;
/// ```
#[derive(Debug, Clone)]
pub struct PlantClaim {
    key: String,
    status: &'static str,
    size: i64,
    upload_id: Option<String>,
    expires_in_ms: f64,
}

impl PlantClaim {
    fn new(key: &str, status: &'static str) -> Self {
        Self {
            key: key.to_owned(),
            status,
            size: 1,
            upload_id: None,
            expires_in_ms: 60_000.0,
        }
    }

    /// A pending claim for `key`.
    pub fn pending(key: &str) -> Self {
        Self::new(key, "pending")
    }

    /// An uploaded claim for `key`.
    pub fn uploaded(key: &str) -> Self {
        Self::new(key, "uploaded")
    }

    /// Of `size` bytes.
    pub fn size(mut self, size: i64) -> Self {
        self.size = size;
        self
    }

    /// A chunked upload with this multipart session (one part).
    pub fn session(mut self, upload_id: &str) -> Self {
        self.upload_id = Some(upload_id.to_owned());
        self
    }

    /// Expired a second ago (by the database's clock).
    pub fn expired(self) -> Self {
        self.expires_in_ms(-1000.0)
    }

    /// Expiring `ms` milliseconds from the database's now (negative: past).
    pub fn expires_in_ms(mut self, ms: f64) -> Self {
        self.expires_in_ms = ms;
        self
    }

    /// Inserts it.
    pub async fn plant(self, db: &TestDb) -> Planted {
        let id = Uuid::now_v7();
        let (part_size, part_count) = match self.upload_id {
            Some(_) => (Some(self.size.max(1)), Some(1i32)),
            None => (None, None),
        };
        db.client()
            .await
            .execute(
                "INSERT INTO claimcheck.upload_claims
                   (id, object_key, upload_id, owner, filename, content_type, size, status,
                    part_size, part_count, expires_at, uploaded_at)
                 VALUES ($1, $2, $3, 'owner-1', 'f.bin', 'application/octet-stream', $4, $5,
                         $6, $7, now() + make_interval(secs => $8::float8 / 1000),
                         CASE WHEN $5 = 'uploaded' THEN now() END)",
                &[
                    &id,
                    &self.key,
                    &self.upload_id,
                    &self.size,
                    &self.status,
                    &part_size,
                    &part_count,
                    &self.expires_in_ms,
                ],
            )
            .await
            .expect("plant a claim");
        Planted { id, key: self.key }
    }
}

/// Puts a small object of `len` bytes at `key`.
pub async fn put_object(store: &dyn ObjectStore, key: &str, len: usize) {
    store
        .put(
            key,
            bytes_body(vec![b'x'; len]),
            len as u64,
            "application/octet-stream",
        )
        .await
        .expect("put a test object");
}

/// Puts a small object of `len` bytes at each of `keys`, 16 at a time.
pub async fn put_objects(store: &dyn ObjectStore, keys: &[String], len: usize) {
    futures::stream::iter(keys)
        .for_each_concurrent(16, |key| put_object(store, key, len))
        .await;
}

/// Opens a multipart session at `key` with one part of `len` bytes; returns
/// its upload id.
pub async fn open_session(store: &dyn ObjectStore, key: &str, len: usize) -> String {
    let upload_id = store
        .create_multipart(key, "application/octet-stream")
        .await
        .expect("open a multipart session");
    store
        .upload_part(key, &upload_id, 1, bytes_body(vec![1u8; len]), len as u64)
        .await
        .expect("upload a part");
    upload_id
}

/// A queue row that deletes `key` (reason `deleted`), aborting `upload_id`
/// first if given.
pub fn delete(key: &str, upload_id: Option<&str>) -> NewDelete {
    NewDelete {
        key: key.to_owned(),
        upload_id: upload_id.map(str::to_owned),
        reason: DeleteReason::Deleted,
    }
}

/// Queue rows that delete each of `keys` (reason `deleted`, no session).
pub fn deletes(keys: &[String]) -> Vec<NewDelete> {
    keys.iter().map(|k| delete(k, None)).collect()
}

/// Whether `key` exists in `store`.
pub async fn exists(store: &dyn ObjectStore, key: &str) -> bool {
    match store.head(key).await {
        Ok(_) => true,
        Err(claimcheck::store::StoreError::NotFound) => false,
        Err(e) => panic!("head {key}: {e}"),
    }
}

/// Upload ids of the multipart sessions under `prefix`.
pub async fn sessions(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    let later = chrono::Utc::now() + chrono::Duration::days(1);
    store
        .list_multipart_uploads(prefix, later)
        .await
        .expect("list multipart uploads")
        .into_iter()
        .map(|s| s.upload_id)
        .collect()
}

/// One `SELECT count(*) ...` (or any single bigint) answer.
/// Asserts every queue row is back in the queue, due now (`due` of them),
/// none leased, and that no hand-back counted as an attempt (`message`
/// says how they came back).
pub async fn assert_handed_back(db: &TestDb, due: i64, message: &str) {
    let queue = claimcheck::db::DeleteQueue::new(db.pool.clone());
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.leased, stats.due), (0, due), "{message}");
    assert_eq!(
        count(
            db,
            "SELECT max(attempts)::bigint FROM claimcheck.pending_deletes"
        )
        .await,
        0,
        "a handed-back lease does not count as an attempt"
    );
}

pub async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client()
        .await
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Installs a trigger that records every queue row removed in
/// `public.removed (id, object_key, attempts, dead)`: a row processed by two
/// workers was leased twice, and a queued delete is lost if its row is gone
/// without its object.
pub async fn record_removals(pool: &Pool) {
    pool.get()
        .await
        .expect("db connection")
        .batch_execute(
            "CREATE TABLE public.removed (id bigint, object_key text, attempts int, dead boolean);
             CREATE FUNCTION public.record_removal() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO public.removed
                   VALUES (OLD.id, OLD.object_key, OLD.attempts, OLD.dead_at IS NOT NULL);
                   RETURN NULL; END $$;
             CREATE TRIGGER record_removal AFTER DELETE ON claimcheck.pending_deletes
                 FOR EACH ROW EXECUTE FUNCTION public.record_removal();",
        )
        .await
        .expect("install the removal recorder");
}

/// Waits until the delete queue is empty (panics after `timeout`).
pub async fn wait_until_empty(db: &TestDb, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while count(db, "SELECT count(*) FROM claimcheck.pending_deletes").await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "queue not drained within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Files left under `dir`, ignoring the fs store's own `.tmp` and `.staging`.
pub fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            files.extend(walk_files(&path));
        } else {
            files.push(path);
        }
    }
    files
}

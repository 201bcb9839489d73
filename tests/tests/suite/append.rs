//! Appends at an offset (`Uploads::append`, what tus PATCH runs) against
//! PostgreSQL and Garage: chunks of any size across part boundaries, the
//! durable tail, offsets, checksums, cut-off bodies, one writer at a time.

mod concurrency;
mod deferred;
mod failures;

use std::{sync::Arc, time::Duration};

use claimcheck::{
    domain::ClaimStatus,
    store::{DownloadResponse, ObjectStore},
    uploads::{Append, Appended, StartResumable, Uploads},
};
use claimcheck_tests::{
    core::{uploads, MIB},
    db::TestDb,
    jobs::count,
    stores::{bytes_body, random_bytes, s3_store},
};
use uuid::Uuid;

/// A test's upload core over Garage, parts of 5 MiB (S3's least).
struct Appender {
    db: TestDb,
    up: Uploads,
    store: Arc<dyn ObjectStore>,
}

impl Appender {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let store: Arc<dyn ObjectStore> = Arc::new(s3_store().await);
        let up = uploads(&db, store.clone(), 5 * MIB);
        Self { db, up, store }
    }

    /// A new resumable upload of `size` bytes (`None`: declared later),
    /// appended to in parts of 5 MiB.
    async fn start_sized(&self, size: Option<u64>) -> Uuid {
        let start = StartResumable {
            filename: "a.bin".into(),
            content_type: "application/octet-stream".into(),
            size,
            ..StartResumable::default()
        };
        let started = self.up.start_resumable("o", start, None).await.unwrap();
        started.claim().id
    }

    async fn start(&self, size: u64) -> Uuid {
        self.start_sized(Some(size)).await
    }

    /// Appends `bytes` at `offset`, with its length declared.
    async fn append(&self, id: Uuid, offset: u64, bytes: &[u8]) -> Appended {
        let chunk = Append::new(offset, bytes_body(bytes.to_vec())).len(bytes.len() as u64);
        self.up.append("o", id, chunk).await.unwrap()
    }

    /// The offset, as progress and the one-read state agree on it.
    async fn offset(&self, id: Uuid) -> u64 {
        let offset = self.up.progress("o", id).await.unwrap().offset;
        assert_eq!(self.up.resumable("o", id).await.unwrap().offset, offset);
        offset
    }

    async fn tail_rows(&self, id: Uuid) -> i64 {
        let sql = format!("SELECT count(*) FROM claimcheck.upload_tails WHERE claim_id = '{id}'");
        count(&self.db, &sql).await
    }

    /// The object's bytes, read back from Garage.
    async fn object(&self, key: &str) -> Vec<u8> {
        let url = self
            .store
            .presign_get(key, Duration::from_secs(60), &DownloadResponse::default())
            .await
            .unwrap()
            .url;
        let res = reqwest::get(url).await.unwrap();
        assert!(res.status().is_success(), "{}", res.status());
        res.bytes().await.unwrap().to_vec()
    }
}

/// The offset after each append, as the appends' answers and progress say.
fn partial_offset(appended: &Appended) -> u64 {
    match appended {
        Appended::Partial { offset, .. } => *offset,
        Appended::Finished(c) => panic!("finished early: {c:?}"),
    }
}

#[tokio::test]
async fn chunks_of_any_size_across_part_boundaries_assemble_the_bytes_sent() {
    let t = Appender::new().await;
    let size = 11 * MIB + 3;
    let bytes = random_bytes(1, size);
    let id = t.start(size).await;
    // 1 byte, an odd size, a chunk that fills the first part exactly, one
    // that crosses the second boundary, and the rest in one.
    let cuts = [1, 778, 5 * MIB, 6 * MIB - 100, size];
    let mut offset = 0;
    for end in cuts {
        let end = end.min(size);
        let appended = t
            .append(id, offset, &bytes[offset as usize..end as usize])
            .await;
        offset = end;
        if end < size {
            assert_eq!(partial_offset(&appended), end);
            assert_eq!(t.offset(id).await, end, "progress after {end}");
            continue;
        }
        let Appended::Finished(claim) = appended else {
            panic!("the last chunk must finish: {appended:?}");
        };
        assert_eq!(claim.status, ClaimStatus::Uploaded);
        assert!(
            claim.sha256.as_deref().is_some_and(|s| s.ends_with("-3")),
            "{claim:?}"
        );
        assert_eq!(
            t.object(&claim.key).await,
            bytes,
            "the object is the bytes sent"
        );
    }
    // The short chunks were kept as a tail until a part took them; none is
    // left once the object is whole.
    assert_eq!(t.tail_rows(id).await, 0);
    assert_eq!(t.offset(id).await, size);
}

#[tokio::test]
async fn short_chunks_are_kept_as_a_tail_that_counts_in_the_offset() {
    let t = Appender::new().await;
    let id = t.start(5 * MIB + 10).await;
    let bytes = random_bytes(2, 5 * MIB + 10);
    let mut offset = 0;
    for len in [1u64, 1, 4096, 100_000] {
        let appended = t
            .append(id, offset, &bytes[offset as usize..(offset + len) as usize])
            .await;
        offset += len;
        assert_eq!(partial_offset(&appended), offset);
    }
    // One row per append, none rewritten: 1-byte appends stay cheap.
    assert_eq!(t.tail_rows(id).await, 4);
    assert_eq!(t.offset(id).await, offset);
    // Another process (a new core over the same database) sees the same
    // offset: it lives in PostgreSQL, not in a pod.
    let other = uploads(&t.db, t.store.clone(), 5 * MIB);
    assert_eq!(other.progress("o", id).await.unwrap().offset, offset);
    let rest = &bytes[offset as usize..];
    let chunk = Append::new(offset, bytes_body(rest.to_vec())).len(rest.len() as u64);
    let Appended::Finished(claim) = other.append("o", id, chunk).await.unwrap() else {
        panic!("the rest must finish the upload");
    };
    assert_eq!(t.object(&claim.key).await, bytes);
    assert_eq!(t.tail_rows(id).await, 0);
}

#[tokio::test]
async fn a_zero_byte_upload_finishes_with_an_empty_append() {
    let t = Appender::new().await;
    let id = t.start(0).await;
    let Appended::Finished(claim) = t.append(id, 0, b"").await else {
        panic!("an empty append finishes a 0-byte upload");
    };
    assert_eq!(claim.status, ClaimStatus::Uploaded);
    assert!(t.object(&claim.key).await.is_empty());
}

#[tokio::test]
async fn the_audit_reports_a_finished_upload_that_kept_a_tail() {
    let t = Appender::new().await;
    let id = t.start(10).await;
    let Appended::Finished(claim) = t.append(id, 0, &[5u8; 10]).await else {
        panic!("10 bytes finish a 10-byte upload");
    };
    let settings = claimcheck_tests::jobs::fast_settings(&claimcheck_tests::stores::test_prefix());
    let ctx = claimcheck_tests::jobs::context(&t.db, t.store.clone(), settings);
    let clean = claimcheck::jobs::audit::audit(&ctx).await.unwrap();
    assert!(clean.finished_with_tail.is_empty(), "{clean}");
    // Behind the service's back: a tail row on the finished upload.
    t.db.client()
        .await
        .execute(
            "INSERT INTO claimcheck.upload_tails (claim_id, start_offset, bytes)
             VALUES ($1, 0, '\\x01')",
            &[&claim.id],
        )
        .await
        .unwrap();
    let report = claimcheck::jobs::audit::audit(&ctx).await.unwrap();
    assert_eq!(report.finished_with_tail, vec![claim.id.to_string()]);
    assert!(!report.is_clean());
    assert!(
        report.to_string().contains("finished upload with a tail"),
        "{report}"
    );
}

#[tokio::test]
async fn chunks_of_5_mib_and_more_close_parts_of_their_own_without_the_tail() {
    let t = Appender::new().await;
    // Parts of 16 MiB, as in production; chunks of 5 MiB and up.
    let up = uploads(&t.db, t.store.clone(), 16 * MIB);
    let size = 23 * MIB + 5;
    let bytes = random_bytes(8, size);
    let start = StartResumable {
        filename: "a.bin".into(),
        content_type: "application/octet-stream".into(),
        size: Some(size),
        ..StartResumable::default()
    };
    let id = up
        .start_resumable("o", start, None)
        .await
        .unwrap()
        .claim()
        .id;
    let mut offset = 0u64;
    for (len, tail_rows, parts) in [
        (5 * MIB, 0, 1),
        (6 * MIB + 1, 0, 2),
        (MIB, 1, 2),
        (5 * MIB, 0, 3),
    ] {
        let chunk = bytes[offset as usize..(offset + len) as usize].to_vec();
        let appended = up
            .append("o", id, Append::new(offset, bytes_body(chunk)).len(len))
            .await
            .unwrap();
        offset += len;
        assert_eq!(partial_offset(&appended), offset);
        assert_eq!(t.tail_rows(id).await, tail_rows, "after {offset}");
        assert_eq!(
            up.progress("o", id).await.unwrap().parts.len(),
            parts,
            "after {offset}"
        );
    }
    let rest = bytes[offset as usize..].to_vec();
    let len = rest.len() as u64;
    let done = up
        .append("o", id, Append::new(offset, bytes_body(rest)).len(len))
        .await
        .unwrap();
    let Appended::Finished(claim) = done else {
        panic!("the rest finishes the upload");
    };
    assert_eq!(t.object(&claim.key).await, bytes);
}

//! Cases run against both stores.

use std::time::Duration;

use chrono::Utc;
use claimcheck::store::{CompletedPart, StoreError, MIN_PART_SIZE};
use claimcheck_tests::stores::{
    bytes_body, failing_body, random_body, random_sha256, random_sha256_concat, stalled_body,
    test_prefix,
};
use futures::{StreamExt, TryStreamExt};

use super::*;

mod concat;

pub(crate) use concat::*;

// ---- cases run against both stores ----------------------------------------

pub(crate) async fn put_streams_a_large_object(t: &Ctx) {
    let (key, len) = (t.key("large"), 64 * MIB + 12_345);
    t.put_random(&key, 1, len).await;
    assert_eq!(t.store.head(&key).await.unwrap().size, len);
    assert_eq!(t.read_back(&key).await, (len, random_sha256(1, len)));
}

pub(crate) async fn put_with_a_lying_length_leaves_nothing(t: &Ctx) {
    let key = t.key("liar");
    let short = t
        .store
        .put(&key, random_body(2, 1000), 2000, "text/plain")
        .await;
    assert!(
        matches!(
            short,
            Err(StoreError::LengthMismatch {
                expected: 2000,
                actual: 1000
            })
        ),
        "{short:?}"
    );
    t.assert_absent(&key).await;
    let long = t
        .store
        .put(&key, random_body(2, 3000), 2000, "text/plain")
        .await;
    assert!(
        matches!(long, Err(StoreError::LengthMismatch { expected: 2000, .. })),
        "{long:?}"
    );
    t.assert_absent(&key).await;
    // The declared length ends exactly on a chunk boundary (64 KiB chunks):
    // a store must not send or keep the first 64 KiB as if they were all.
    let long = t
        .store
        .put(&key, random_body(2, 128 * 1024), 64 * 1024, "text/plain")
        .await;
    assert!(
        matches!(long, Err(StoreError::LengthMismatch { .. })),
        "{long:?}"
    );
    t.assert_absent(&key).await;
    // A failed replacement leaves the old object whole.
    t.put_random(&key, 3, 5000).await;
    let bad = t
        .store
        .put(&key, random_body(4, 100), 200, "text/plain")
        .await;
    assert!(matches!(bad, Err(StoreError::LengthMismatch { .. })));
    assert_eq!(t.read_back(&key).await, (5000, random_sha256(3, 5000)));
}

pub(crate) async fn put_whose_source_fails_leaves_nothing(t: &Ctx) {
    let key = t.key("disconnected");
    let result = t
        .store
        .put(&key, failing_body(5, 300 * 1024), MIB, "text/plain")
        .await;
    match result {
        Err(StoreError::Body(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        other => panic!("expected a body error, got {other:?}"),
    }
    t.assert_absent(&key).await;
}

pub(crate) async fn cancelled_put_leaves_nothing(t: &Ctx) {
    let key = t.key("cancelled");
    let put = t
        .store
        .put(&key, stalled_body(6, 200 * 1024), MIB, "text/plain");
    assert!(tokio::time::timeout(Duration::from_millis(500), put)
        .await
        .is_err());
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.assert_absent(&key).await;
}

pub(crate) async fn multipart_with_parts_out_of_order(t: &Ctx) {
    let key = t.key("multi");
    let id = t
        .store
        .create_multipart(&key, "application/pdf")
        .await
        .unwrap();
    let sizes = [(1, 10, 5 * MIB), (2, 11, 5 * MIB), (3, 12, MIB + 123)];
    let p3 = t.part(&key, &id, 3, 12, MIB + 123).await;
    let p1 = t.part(&key, &id, 1, 10, 5 * MIB).await;
    let p2 = t.part(&key, &id, 2, 11, 5 * MIB).await;
    let listed = t.store.list_parts(&key, &id).await.unwrap();
    let summary: Vec<_> = listed.iter().map(|p| (p.part_number, p.size)).collect();
    assert_eq!(
        summary,
        sizes
            .iter()
            .map(|&(n, _, len)| (n, len))
            .collect::<Vec<_>>()
    );
    for (stored, given) in listed.iter().zip([&p1, &p2, &p3]) {
        assert_eq!(stored.etag.trim_matches('"'), given.etag.trim_matches('"'));
    }
    t.store
        .complete_multipart(&key, &id, &[p1, p2, p3])
        .await
        .unwrap();
    let total = 11 * MIB + 123;
    assert_eq!(t.store.head(&key).await.unwrap().size, total);
    let expected = random_sha256_concat(&sizes.map(|(_, seed, len)| (seed, len)));
    assert_eq!(t.read_back(&key).await, (total, expected));
    let open = t
        .store
        .list_multipart_uploads(&t.prefix, Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert!(open.is_empty(), "a completed session is gone: {open:?}");
}

pub(crate) async fn a_reuploaded_part_replaces_the_first(t: &Ctx) {
    let key = t.key("reupload");
    let id = t.store.create_multipart(&key, "text/plain").await.unwrap();
    let first = t.part(&key, &id, 1, 20, MIN_PART_SIZE).await;
    let second = t.part(&key, &id, 1, 21, MIN_PART_SIZE).await;
    assert_ne!(first.etag, second.etag);
    let last = t.part(&key, &id, 2, 22, 1000).await;
    let listed = t.store.list_parts(&key, &id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0].etag.trim_matches('"'),
        second.etag.trim_matches('"')
    );
    assert!(invalid_part(
        t.store
            .complete_multipart(&key, &id, &[first, last.clone()])
            .await
    ));
    t.store
        .complete_multipart(&key, &id, &[second, last])
        .await
        .unwrap();
    let expected = random_sha256_concat(&[(21, MIN_PART_SIZE), (22, 1000)]);
    assert_eq!(t.read_back(&key).await, (MIN_PART_SIZE + 1000, expected));
}

pub(crate) async fn complete_refuses_bad_part_lists(t: &Ctx) {
    let key = t.key("bad-complete");
    let id = t.store.create_multipart(&key, "text/plain").await.unwrap();
    let p1 = t.part(&key, &id, 1, 30, MIN_PART_SIZE).await;
    let p2 = t.part(&key, &id, 2, 31, 1024).await;
    let p3 = t.part(&key, &id, 3, 32, 1024).await;
    let wrong_etag = CompletedPart {
        part_number: 1,
        etag: "\"0123456789abcdef0123456789abcdef\"".into(),
    };
    let missing = CompletedPart {
        part_number: 4,
        etag: p3.etag.clone(),
    };
    let s = &t.store;
    assert!(
        invalid_part(
            s.complete_multipart(&key, &id, &[wrong_etag, p2.clone()])
                .await
        ),
        "wrong ETag"
    );
    assert!(
        invalid_part(
            s.complete_multipart(&key, &id, &[p1.clone(), missing])
                .await
        ),
        "missing part"
    );
    assert!(
        invalid_part(
            s.complete_multipart(&key, &id, &[p1.clone(), p2.clone(), p3])
                .await
        ),
        "small part 2"
    );
    assert!(
        invalid_part(
            s.complete_multipart(&key, &id, &[p2.clone(), p1.clone()])
                .await
        ),
        "order"
    );
    assert!(
        invalid_part(s.complete_multipart(&key, &id, &[]).await),
        "no parts"
    );
    t.assert_absent(&key).await;
    // The refusals left the session usable: a small *final* part is fine.
    s.complete_multipart(&key, &id, &[p1, p2]).await.unwrap();
    let expected = random_sha256_concat(&[(30, MIN_PART_SIZE), (31, 1024)]);
    assert_eq!(t.read_back(&key).await, (MIN_PART_SIZE + 1024, expected));
}

pub(crate) async fn abort_is_idempotent_and_ends_the_session(t: &Ctx) {
    let key = t.key("aborted");
    let id = t.store.create_multipart(&key, "text/plain").await.unwrap();
    let part = t.part(&key, &id, 1, 40, 1000).await;
    let other_key = t.key("other");
    let wrong_key = t
        .store
        .upload_part(&other_key, &id, 2, random_body(41, 10), 10)
        .await;
    assert!(
        matches!(wrong_key, Err(StoreError::NoSuchUpload)),
        "{wrong_key:?}"
    );
    t.store.abort_multipart(&key, &id).await.unwrap();
    t.store.abort_multipart(&key, &id).await.unwrap();
    let late = t
        .store
        .upload_part(&key, &id, 2, random_body(41, 10), 10)
        .await;
    assert!(matches!(late, Err(StoreError::NoSuchUpload)), "{late:?}");
    assert!(matches!(
        t.store.list_parts(&key, &id).await,
        Err(StoreError::NoSuchUpload)
    ));
    let complete = t.store.complete_multipart(&key, &id, &[part]).await;
    assert!(
        matches!(complete, Err(StoreError::NoSuchUpload)),
        "{complete:?}"
    );
    t.store
        .abort_multipart(&key, &"0".repeat(32))
        .await
        .unwrap();
    t.assert_absent(&key).await;
}

pub(crate) async fn deleting_a_missing_object_succeeds(t: &Ctx) {
    let key = t.key("gone");
    t.store.delete(&key).await.unwrap();
    t.put_random(&key, 50, 10).await;
    t.store.delete(&key).await.unwrap();
    t.assert_absent(&key).await;
    t.store.delete(&key).await.unwrap();
}

pub(crate) async fn head_of_a_missing_object_is_not_found(t: &Ctx) {
    t.assert_absent(&t.key("never")).await;
    t.put_random(&t.key("there"), 51, 777).await;
    assert_eq!(t.store.head(&t.key("there")).await.unwrap().size, 777);
    t.put_random(&t.key("empty"), 52, 0).await;
    assert_eq!(t.store.head(&t.key("empty")).await.unwrap().size, 0);
}

pub(crate) async fn many_objects_list_in_pages_and_delete_in_batches(t: &Ctx) {
    // `d/..` and `d-..` interleave: listing must follow bytewise key order.
    let keys: Vec<String> = (0..1500)
        .map(|i| t.key(&format!("{}{i:05}", if i % 2 == 0 { "d/" } else { "d-" })))
        .collect();
    let existing: Vec<&String> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 5 != 0)
        .map(|(_, k)| k)
        .collect();
    futures::stream::iter(&existing)
        .map(|key| t.store.put(key, bytes_body(&b"x"[..]), 1, "text/plain"))
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    let (first, token) = t.store.list_objects(&t.prefix, None).await.unwrap();
    assert_eq!(first.len(), 1000);
    let (second, end) = t
        .store
        .list_objects(&t.prefix, token.clone())
        .await
        .unwrap();
    assert!(
        token.is_some() && end.is_none(),
        "two pages: {token:?} then {end:?}"
    );
    let listed: Vec<&str> = first
        .iter()
        .chain(&second)
        .map(|o| o.key.as_str())
        .collect();
    let mut expected: Vec<&str> = existing.iter().map(|k| k.as_str()).collect();
    expected.sort_unstable();
    assert_eq!(listed, expected);
    assert!(first.iter().chain(&second).all(|o| o.size == 1));
    let (under, _) = t.store.list_objects(&t.key("d/"), None).await.unwrap();
    assert_eq!(under.len(), 600);

    let failed = t.store.delete_many(&keys).await.unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    let (left, _) = t.store.list_objects(&t.prefix, None).await.unwrap();
    assert!(left.is_empty(), "{} objects left", left.len());
    let failed = t
        .store
        .delete_many(&["../x".to_owned(), t.key("y")])
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert!(matches!(failed[0], (ref k, StoreError::InvalidKey(_)) if k == "../x"));
}

pub(crate) async fn list_multipart_uploads_by_age(t: &Ctx) {
    let key = t.key("session");
    let id = t.store.create_multipart(&key, "text/plain").await.unwrap();
    let later = Utc::now() + chrono::Duration::minutes(5);
    let found = t
        .store
        .list_multipart_uploads(&t.prefix, later)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].key.as_str(), found[0].upload_id.as_str()),
        (key.as_str(), id.as_str())
    );
    assert!(found[0].initiated <= Utc::now() + chrono::Duration::seconds(5));
    let earlier = Utc::now() - chrono::Duration::hours(1);
    assert!(t
        .store
        .list_multipart_uploads(&t.prefix, earlier)
        .await
        .unwrap()
        .is_empty());
    assert!(t
        .store
        .list_multipart_uploads(&test_prefix(), later)
        .await
        .unwrap()
        .is_empty());
    t.store.abort_multipart(&key, &id).await.unwrap();
    assert!(t
        .store
        .list_multipart_uploads(&t.prefix, later)
        .await
        .unwrap()
        .is_empty());
}

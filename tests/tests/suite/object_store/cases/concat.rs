//! Cases run against both stores: reading objects back (`get`) and storing
//! ranges of them as parts (`copy_part`), what tus concatenation builds on.

use std::ops::Range;

use claimcheck::store::{ByteStream, CompletedPart, StoreError};
use claimcheck_tests::stores::{random_sha256, random_sha256_ranges};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::super::{invalid_part, Ctx, MIB};

/// What a `get` stream held: its size, SHA-256 (hex), and how many chunks
/// it came in and the largest of them.
async fn drain(mut body: ByteStream) -> (u64, String, usize, usize) {
    let (mut size, mut hasher, mut chunks, mut largest) = (0, Sha256::new(), 0, 0);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("get stream");
        size += chunk.len() as u64;
        hasher.update(&chunk);
        chunks += 1;
        largest = largest.max(chunk.len());
    }
    (size, hex::encode(hasher.finalize()), chunks, largest)
}

/// The error of a `get` that should fail (a stream has no `Debug`).
async fn get_error(t: &Ctx, key: &str) -> StoreError {
    match t.store.get(key).await {
        Ok(_) => panic!("get of {key} should fail"),
        Err(e) => e,
    }
}

pub(crate) async fn get_streams_an_object_back(t: &Ctx) {
    let (key, len) = (t.key("read-back"), 12 * MIB + 4321);
    t.put_random(&key, 60, len).await;
    let (size, sha, chunks, largest) = drain(t.store.get(&key).await.unwrap()).await;
    assert_eq!((size, sha), (len, random_sha256(60, len)));
    // Streamed as read, never gathered whole: many chunks, none large.
    assert!(
        chunks > 12 && largest as u64 <= MIB,
        "{chunks} chunks, the largest {largest} bytes"
    );
    let empty = t.key("read-back-empty");
    t.put_random(&empty, 61, 0).await;
    let (size, ..) = drain(t.store.get(&empty).await.unwrap()).await;
    assert_eq!(size, 0);
}

pub(crate) async fn get_of_a_missing_object_is_not_found(t: &Ctx) {
    let gone = t.key("dir/gone");
    let e = get_error(t, &gone).await;
    assert!(matches!(e, StoreError::NotFound), "{e:?}");
    t.put_random(&gone, 62, 10).await;
    // A prefix of a key is no object (on `fs`: a directory).
    let e = get_error(t, &t.key("dir")).await;
    assert!(matches!(e, StoreError::NotFound), "{e:?}");
    t.store.delete(&gone).await.unwrap();
    let e = get_error(t, &gone).await;
    assert!(matches!(e, StoreError::NotFound), "{e:?}");
    let e = get_error(t, "../escape").await;
    assert!(matches!(e, StoreError::InvalidKey(_)), "{e:?}");
}

pub(crate) async fn copied_ranges_assemble_into_an_object(t: &Ctx) {
    // A key S3 wants URL-encoded in `x-amz-copy-source`.
    let (big, big_len) = (t.key("src/big one+é=1.bin"), 11 * MIB + 777);
    // Small enough that Garage keeps it inline (the S3 store streams it).
    let (small, small_len) = (t.key("src/small"), 1500);
    t.put_random(&big, 70, big_len).await;
    t.put_random(&small, 71, small_len).await;
    let key = t.key("concat");
    let id = t.store.create_multipart(&key, "text/plain").await.unwrap();
    // Two ranges of the big object, off chunk and block boundaries, as two
    // parts of at least 5 MiB; then a small last part from the other object.
    let copies: [(&str, u64, Range<u64>); 3] = [
        (&big, 70, 100..5 * MIB + 103),
        (&big, 70, 5 * MIB + 103..big_len),
        (&small, 71, 10..1000),
    ];
    let mut parts = Vec::new();
    for (n, (src, _, range)) in (1..).zip(&copies) {
        let etag = t
            .store
            .copy_part(src, range.clone(), &key, &id, n)
            .await
            .unwrap();
        parts.push(CompletedPart {
            part_number: n,
            etag,
        });
    }
    let listed = t.store.list_parts(&key, &id).await.unwrap();
    let sizes: Vec<u64> = listed.iter().map(|p| p.size).collect();
    assert_eq!(sizes, [5 * MIB + 3, 6 * MIB + 674, 990]);
    for (stored, given) in listed.iter().zip(&parts) {
        assert_eq!(stored.etag.trim_matches('"'), given.etag.trim_matches('"'));
    }
    t.store.complete_multipart(&key, &id, &parts).await.unwrap();
    let total = sizes.iter().sum();
    let ranges: Vec<(u64, Range<u64>)> = copies.iter().map(|(_, s, r)| (*s, r.clone())).collect();
    assert_eq!(
        t.read_back(&key).await,
        (total, random_sha256_ranges(&ranges))
    );
    // The sources are untouched.
    assert_eq!(
        t.read_back(&big).await,
        (big_len, random_sha256(70, big_len))
    );
    assert_eq!(t.store.head(&small).await.unwrap().size, small_len);
}

pub(crate) async fn copy_part_refuses_ranges_outside_the_source(t: &Ctx) {
    // One source the S3 store has the server copy, one it streams.
    let (big, big_len) = (t.key("src-big"), 6 * MIB + 5);
    let (small, small_len) = (t.key("src-small"), 2000);
    t.put_random(&big, 80, big_len).await;
    t.put_random(&small, 81, small_len).await;
    let key = t.key("refused");
    let id = t.store.create_multipart(&key, "text/plain").await.unwrap();
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 9..8;
    let refused = [
        (&big, big_len - 10..big_len + 1),
        (&big, big_len..big_len + 5),
        (&big, 7..7),
        (&big, reversed),
        (&small, 0..small_len + 1),
        (&small, small_len..small_len + 1),
    ];
    for (src, range) in refused {
        let result = t.store.copy_part(src, range.clone(), &key, &id, 1).await;
        assert!(invalid_part(result), "{src} {range:?}");
    }
    let missing = t.store.copy_part(&t.key("none"), 0..1, &key, &id, 1).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    for src in [&big, &small] {
        let unknown = t
            .store
            .copy_part(src, 0..1000, &key, &"0".repeat(32), 1)
            .await;
        assert!(
            matches!(unknown, Err(StoreError::NoSuchUpload)),
            "{unknown:?}"
        );
    }
    // Nothing was stored, nothing assembled.
    assert!(t.store.list_parts(&key, &id).await.unwrap().is_empty());
    t.assert_absent(&key).await;
    // The refusals left the session usable: the whole of both sources.
    let mut parts = Vec::new();
    for (n, (src, len)) in (1..).zip([(&big, big_len), (&small, small_len)]) {
        let etag = t.store.copy_part(src, 0..len, &key, &id, n).await.unwrap();
        parts.push(CompletedPart {
            part_number: n,
            etag,
        });
    }
    t.store.complete_multipart(&key, &id, &parts).await.unwrap();
    let expected = random_sha256_ranges(&[(80, 0..big_len), (81, 0..small_len)]);
    assert_eq!(t.read_back(&key).await, (big_len + small_len, expected));
    // A completed session takes no more parts, copied or not.
    let late = t.store.copy_part(&big, 0..MIB, &key, &id, 3).await;
    assert!(matches!(late, Err(StoreError::NoSuchUpload)), "{late:?}");
}

//! The core's progress query (`Uploads::progress`) against PostgreSQL and
//! Garage: the contiguous offset, and parts with their ETags and SHA-256,
//! also for parts sent straight to the store.

use std::sync::Arc;

use claimcheck::uploads::{InitMultipart, Progress};
use claimcheck_tests::{
    core::{uploads, MIB},
    db::TestDb,
    stores::{random_body, random_bytes, random_sha256, s3_store},
};

fn sizes(progress: &Progress) -> Vec<(u32, u64)> {
    progress
        .parts
        .iter()
        .map(|p| (p.part_number, p.size))
        .collect()
}

#[tokio::test]
async fn progress_counts_parts_from_one_up_to_the_first_gap() {
    let db = TestDb::new().await;
    let up = uploads(&db, Arc::new(s3_store().await), 5 * MIB);
    let init = InitMultipart {
        filename: "a.bin".into(),
        content_type: "application/octet-stream".into(),
        size: 12 * MIB,
        part_size: Some(5 * MIB),
        public: false,
    };
    let id = up.init_multipart("o", init, None).await.unwrap().claim().id;
    let empty = up.progress("o", id).await.unwrap();
    assert_eq!((empty.offset, empty.parts.len()), (0, 0));

    let put = |n: u32, len: u64| {
        let up = up.clone();
        async move {
            up.put_part("o", id, n, Some(len), None, random_body(n.into(), len))
                .await
                .unwrap()
        }
    };
    put(2, 5 * MIB).await;
    let gap = up.progress("o", id).await.unwrap();
    assert_eq!((gap.offset, sizes(&gap)), (0, vec![(2, 5 * MIB)]));

    put(1, 5 * MIB).await;
    let two = up.progress("o", id).await.unwrap();
    assert_eq!(two.offset, 10 * MIB);
    for p in &two.parts {
        assert_eq!(
            p.sha256.as_deref(),
            Some(random_sha256(p.part_number.into(), 5 * MIB).as_str())
        );
        assert!(!p.etag.is_empty(), "{p:?}");
    }

    // The last part straight to the store: read back from its ListParts,
    // with its ETag and no SHA-256 (the API never saw the bytes).
    let presigned = up.presign_part("o", id, 3).await.unwrap();
    let mut req = reqwest::Client::new().put(&presigned.url);
    for (name, value) in &presigned.headers {
        req = req.header(name, value);
    }
    let res = req.body(random_bytes(3, 2 * MIB)).send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let all = up.progress("o", id).await.unwrap();
    assert_eq!(all.offset, 12 * MIB);
    assert_eq!(sizes(&all), vec![(1, 5 * MIB), (2, 5 * MIB), (3, 2 * MIB)]);
    assert_eq!(all.parts[2].sha256, None);
    assert!(!all.parts[2].etag.is_empty());

    up.complete("o", id).await.unwrap();
    let done = up.progress("o", id).await.unwrap();
    assert_eq!((done.offset, done.parts.len()), (12 * MIB, 0));
    assert!(matches!(
        up.progress("someone-else", id).await,
        Err(claimcheck::uploads::UploadError::NotFound)
    ));
}

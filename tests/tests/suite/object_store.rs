//! The object store contract: every case runs against the filesystem store
//! and against S3 (Garage, from `scripts/test`), each on a fresh prefix.
//! A few cases exist for one store only (key escapes and signed URLs on `fs`,
//! presigned part uploads on `s3`).

use std::{path::PathBuf, time::Duration};

use bytes::Bytes;
use chrono::Utc;
use claimcheck::store::{
    fs::{SignatureError, UrlSigner},
    signed_url::content_disposition,
    CompletedPart, ObjectStore, StoreError, MIN_PART_SIZE,
};
use claimcheck_tests::stores::{
    bytes_body, failing_body, fs_store, random_body, random_bytes, random_sha256,
    random_sha256_concat, s3_store, stalled_body, test_prefix, FS_BASE_URL, FS_SIGNING_KEY,
};
use futures::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use sha2::{Digest, Sha256};

const MIB: u64 = 1024 * 1024;

/// A store under test, its prefix, and how to read an object back.
struct Ctx {
    store: Box<dyn ObjectStore>,
    prefix: String,
    /// The filesystem store's root (read-back reads the file).
    fs_root: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl Ctx {
    fn fs() -> Ctx {
        let (store, dir) = fs_store();
        Ctx {
            fs_root: Some(store.root().to_owned()),
            store: Box::new(store),
            prefix: test_prefix(),
            _dir: Some(dir),
        }
    }

    async fn s3() -> Ctx {
        Ctx {
            store: Box::new(s3_store().await),
            prefix: test_prefix(),
            fs_root: None,
            _dir: None,
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The stored object's size and SHA-256, read from the file (fs) or
    /// downloaded through a presigned URL (s3).
    async fn read_back(&self, key: &str) -> (u64, String) {
        if let Some(root) = &self.fs_root {
            let bytes = tokio::fs::read(root.join(key)).await.expect("object file");
            return (bytes.len() as u64, hex::encode(Sha256::digest(&bytes)));
        }
        let url = self
            .store
            .presign_get(key, Duration::from_secs(60), None)
            .await
            .unwrap();
        let response = http("GET", &url.url, &url.headers, Bytes::new()).await;
        assert_eq!(response.status(), 200, "GET of a presigned URL");
        let mut body = response.into_body();
        let (mut size, mut hasher) = (0, Sha256::new());
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("download body").into_data() {
                size += data.len() as u64;
                hasher.update(&data);
            }
        }
        (size, hex::encode(hasher.finalize()))
    }

    async fn assert_absent(&self, key: &str) {
        match self.store.head(key).await {
            Err(StoreError::NotFound) => {}
            other => panic!("{key} should not exist, head says {other:?}"),
        }
    }

    async fn put_random(&self, key: &str, seed: u64, len: u64) {
        self.store
            .put(key, random_body(seed, len), len, "application/octet-stream")
            .await
            .unwrap();
    }

    async fn part(&self, key: &str, id: &str, n: u32, seed: u64, len: u64) -> CompletedPart {
        let etag = self
            .store
            .upload_part(key, id, n, random_body(seed, len), len)
            .await
            .unwrap();
        CompletedPart {
            part_number: n,
            etag,
        }
    }
}

/// One plain HTTP/1.1 request.
async fn http(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Bytes,
) -> hyper::Response<hyper::body::Incoming> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    client
        .request(request.body(Full::new(body)).unwrap())
        .await
        .expect("HTTP request")
}

fn invalid_part<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::InvalidPart(_)))
}

// ---- cases run against both stores ----------------------------------------

async fn put_streams_a_large_object(t: &Ctx) {
    let (key, len) = (t.key("large"), 64 * MIB + 12_345);
    t.put_random(&key, 1, len).await;
    assert_eq!(t.store.head(&key).await.unwrap().size, len);
    assert_eq!(t.read_back(&key).await, (len, random_sha256(1, len)));
}

async fn put_with_a_lying_length_leaves_nothing(t: &Ctx) {
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

async fn put_whose_source_fails_leaves_nothing(t: &Ctx) {
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

async fn cancelled_put_leaves_nothing(t: &Ctx) {
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

async fn multipart_with_parts_out_of_order(t: &Ctx) {
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

async fn a_reuploaded_part_replaces_the_first(t: &Ctx) {
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

async fn complete_refuses_bad_part_lists(t: &Ctx) {
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

async fn abort_is_idempotent_and_ends_the_session(t: &Ctx) {
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

async fn deleting_a_missing_object_succeeds(t: &Ctx) {
    let key = t.key("gone");
    t.store.delete(&key).await.unwrap();
    t.put_random(&key, 50, 10).await;
    t.store.delete(&key).await.unwrap();
    t.assert_absent(&key).await;
    t.store.delete(&key).await.unwrap();
}

async fn head_of_a_missing_object_is_not_found(t: &Ctx) {
    t.assert_absent(&t.key("never")).await;
    t.put_random(&t.key("there"), 51, 777).await;
    assert_eq!(t.store.head(&t.key("there")).await.unwrap().size, 777);
    t.put_random(&t.key("empty"), 52, 0).await;
    assert_eq!(t.store.head(&t.key("empty")).await.unwrap().size, 0);
}

async fn many_objects_list_in_pages_and_delete_in_batches(t: &Ctx) {
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

async fn list_multipart_uploads_by_age(t: &Ctx) {
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

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod fs {
            $(#[tokio::test]
            async fn $case() {
                super::$case(&super::Ctx::fs()).await;
            })*
        }
        mod s3 {
            $(#[tokio::test]
            async fn $case() {
                super::$case(&super::Ctx::s3().await).await;
            })*
        }
    };
}

contract!(
    put_streams_a_large_object,
    put_with_a_lying_length_leaves_nothing,
    put_whose_source_fails_leaves_nothing,
    cancelled_put_leaves_nothing,
    multipart_with_parts_out_of_order,
    a_reuploaded_part_replaces_the_first,
    complete_refuses_bad_part_lists,
    abort_is_idempotent_and_ends_the_session,
    deleting_a_missing_object_succeeds,
    head_of_a_missing_object_is_not_found,
    many_objects_list_in_pages_and_delete_in_batches,
    list_multipart_uploads_by_age,
);

// ---- filesystem only -------------------------------------------------------

#[tokio::test]
async fn fs_keys_cannot_escape_the_root() {
    let outside = tempfile::tempdir().unwrap();
    let root = outside.path().join("root");
    let signer = UrlSigner::new(FS_BASE_URL.parse().unwrap(), FS_SIGNING_KEY).unwrap();
    let store = claimcheck::store::fs::FsStore::new(root.clone(), Some(signer)).unwrap();
    // An absolute key is tried inside our temp dir, never on a real system file.
    let absolute = outside
        .path()
        .join("absolute")
        .to_string_lossy()
        .into_owned();
    let bad = [
        "../x",
        "a/../../b",
        ".staging/x",
        ".tmp/x",
        "a/./b",
        absolute.as_str(),
        "",
    ];
    let invalid = |r: Result<(), StoreError>| matches!(r, Err(StoreError::InvalidKey(_)));
    for key in bad {
        assert!(
            invalid(store.put(key, random_body(60, 10), 10, "text/plain").await),
            "put {key:?}"
        );
        assert!(
            invalid(store.create_multipart(key, "text/plain").await.map(drop)),
            "create {key:?}"
        );
        assert!(invalid(store.head(key).await.map(drop)), "head {key:?}");
        assert!(invalid(store.delete(key).await), "delete {key:?}");
        assert!(
            invalid(
                store
                    .presign_get(key, Duration::from_secs(5), None)
                    .await
                    .map(drop)
            ),
            "{key:?}"
        );
        let id = store.create_multipart("ok", "text/plain").await.unwrap();
        assert!(invalid(
            store
                .upload_part(key, &id, 1, random_body(60, 10), 10)
                .await
                .map(drop)
        ));
    }
    assert!(matches!(
        store.head("/etc/passwd").await,
        Err(StoreError::InvalidKey(_))
    ));
    let outside_entries: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside_entries, ["root"], "nothing written beside the root");
    let mut inside: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    inside.sort();
    assert_eq!(inside, [".staging", ".tmp"]);
    assert_eq!(std::fs::read_dir(root.join(".tmp")).unwrap().count(), 0);
}

#[tokio::test]
async fn fs_download_urls_verify_and_expire() {
    let t = Ctx::fs();
    let key = t.key("report.pdf");
    t.put_random(&key, 70, 100).await;
    let name = "Rapport d'été \"final\".pdf";
    let signed = t
        .store
        .presign_get(&key, Duration::from_secs(120), Some(name))
        .await
        .unwrap();
    assert_eq!(signed.method, "GET");
    let url = url::Url::parse(&signed.url).unwrap();
    assert_eq!(url.path(), format!("/v1/files/{key}"));
    let signer = UrlSigner::new(FS_BASE_URL.parse().unwrap(), FS_SIGNING_KEY).unwrap();
    let now = Utc::now();
    assert_eq!(
        signer.verify(&key, url.query_pairs(), now),
        Ok(Some(name.to_owned()))
    );
    assert_eq!(
        signer.verify(&t.key("other"), url.query_pairs(), now),
        Err(SignatureError::Invalid)
    );
    let later = signed.expires_at + chrono::Duration::seconds(1);
    assert_eq!(
        signer.verify(&key, url.query_pairs(), later),
        Err(SignatureError::Expired)
    );
    let unsupported = t
        .store
        .presign_upload_part(&key, &"0".repeat(32), 1, Duration::from_secs(60))
        .await;
    assert!(matches!(
        unsupported,
        Err(StoreError::Unsupported { store: "fs", .. })
    ));
}

// ---- S3 only ----------------------------------------------------------------

#[tokio::test]
async fn s3_presigned_part_uploads_complete_through_the_store() {
    let t = Ctx::s3().await;
    let key = t.key("presigned");
    let id = t
        .store
        .create_multipart(&key, "application/octet-stream")
        .await
        .unwrap();
    let bodies = [(1, 80, MIN_PART_SIZE), (2, 81, 4096)];
    let mut parts = Vec::new();
    for (n, seed, len) in bodies {
        let signed = t
            .store
            .presign_upload_part(&key, &id, n, Duration::from_secs(300))
            .await
            .unwrap();
        assert_eq!(signed.method, "PUT");
        assert!(signed.expires_at > Utc::now() + chrono::Duration::seconds(290));
        let response = http(
            "PUT",
            &signed.url,
            &signed.headers,
            random_bytes(seed, len).into(),
        )
        .await;
        assert_eq!(response.status(), 200, "presigned PUT of part {n}");
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        parts.push(CompletedPart {
            part_number: n,
            etag,
        });
    }
    let listed = t.store.list_parts(&key, &id).await.unwrap();
    assert_eq!(
        listed.iter().map(|p| p.size).collect::<Vec<_>>(),
        [MIN_PART_SIZE, 4096]
    );
    t.store.complete_multipart(&key, &id, &parts).await.unwrap();
    let expected = random_sha256_concat(&bodies.map(|(_, seed, len)| (seed, len)));
    assert_eq!(t.read_back(&key).await, (MIN_PART_SIZE + 4096, expected));
}

#[tokio::test]
async fn s3_download_urls_name_the_file() {
    let t = Ctx::s3().await;
    let key = t.key("named");
    t.put_random(&key, 90, 2048).await;
    let name = "Rapport d'été \"final\".pdf";
    let signed = t
        .store
        .presign_get(&key, Duration::from_secs(60), Some(name))
        .await
        .unwrap();
    let response = http("GET", &signed.url, &signed.headers, Bytes::new()).await;
    assert_eq!(response.status(), 200);
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(disposition, content_disposition(name));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], &random_bytes(90, 2048)[..]);
}

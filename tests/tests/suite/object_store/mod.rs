//! The object store contract: every case runs against the filesystem store
//! and against S3 (Garage, from `scripts/test`), each on a fresh prefix.
//! A few cases exist for one store only (key escapes and signed URLs on `fs`,
//! presigned part uploads on `s3`).

use std::{path::PathBuf, time::Duration};

use bytes::Bytes;
use claimcheck::store::{CompletedPart, DownloadResponse, ObjectStore, StoreError};
use claimcheck_tests::stores::{fs_store, random_body, s3_store, test_prefix};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use sha2::{Digest, Sha256};

const MIB: u64 = 1024 * 1024;

/// A store under test, its prefix, and how to read an object back.
pub(crate) struct Ctx {
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
            .presign_get(key, Duration::from_secs(60), &DownloadResponse::default())
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
pub(crate) async fn http(
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

pub(crate) fn invalid_part<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::InvalidPart(_)))
}

mod cases;
mod fs_only;
mod s3_only;

use cases::*;

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
    get_streams_an_object_back,
    get_of_a_missing_object_is_not_found,
    copied_ranges_assemble_into_an_object,
    copy_part_refuses_ranges_outside_the_source,
);

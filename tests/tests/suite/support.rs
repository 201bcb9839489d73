//! Helpers the API suites share.

use claimcheck::store::ObjectStore;
use claimcheck_tests::app::{Store, TestApp};
use reqwest::Method;
use serde_json::Value;

/// A single-shot claim of 10 bytes for `owner`, pending for `ttl`, to give
/// the claim store.
pub fn new_claim(owner: &str, ttl: std::time::Duration) -> claimcheck::db::claims::NewClaim {
    let id = uuid::Uuid::now_v7();
    claimcheck::db::claims::NewClaim {
        id,
        key: claimcheck::domain::object_key("", false, id, "a.bin", chrono::Utc::now()),
        owner: owner.into(),
        filename: "a.bin".into(),
        content_type: "application/octet-stream".into(),
        size: 10,
        public: false,
        parts: None,
        ttl,
        resumable: None,
        fingerprint: "single a.bin".into(),
        releases: Vec::new(),
    }
}

/// The object store the app writes to, seen from the test.
pub async fn store_of(app: &TestApp) -> Box<dyn ObjectStore> {
    match app.store {
        Store::Fs => Box::new(
            claimcheck::store::fs::FsStore::new(
                app.fs_root.as_ref().unwrap().path().to_owned(),
                None,
            )
            .unwrap(),
        ),
        Store::S3 => Box::new(claimcheck_tests::stores::s3_store().await),
    }
}

pub async fn upload(
    app: &TestApp,
    name: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    app.req(Method::POST, &format!("/v1/uploads?filename={name}"))
        .header("Content-Type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

pub async fn problem(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    body
}

//! Helpers the API suites share.

use claimcheck::store::ObjectStore;
use claimcheck_tests::app::{Store, TestApp};
use reqwest::Method;
use serde_json::Value;
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

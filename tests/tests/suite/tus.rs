//! `/v1/tus` against the real binary: the tus 1.0 protocol over PostgreSQL
//! and Garage (and the filesystem store), across API processes.

mod clients;
mod errors;
mod pods;
mod protocol;

use claimcheck_tests::app::TestApp;
use reqwest::{Method, RequestBuilder, Response};

/// Parts of S3's least size, so that tests of a few MiB cross part
/// boundaries (the default is 16 MiB).
pub const FIVE_MIB_PARTS: (&str, &str) = ("CLAIMCHECK_PART_SIZE", "5MiB");

/// A tus request to `path` with Alice's token and `Tus-Resumable`.
pub fn tus(app: &TestApp, method: Method, path: &str) -> RequestBuilder {
    app.req(method, path).header("Tus-Resumable", "1.0.0")
}

/// A header's value as text.
pub fn hv<'a>(res: &'a Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `base64(value)`, for Upload-Metadata.
pub fn b64(value: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(value)
}

/// Creates an upload of `len` bytes; its path (`/v1/tus/{id}`).
pub async fn create(app: &TestApp, len: u64) -> String {
    let res = tus(app, Method::POST, "/v1/tus")
        .header("Upload-Length", len.to_string())
        .header(
            "Upload-Metadata",
            format!(
                "filename {},filetype {}",
                b64("a.bin"),
                b64("application/octet-stream")
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    hv(&res, "location").unwrap().to_owned()
}

/// PATCHes `bytes` at `offset`.
pub async fn patch(app: &TestApp, path: &str, offset: u64, bytes: Vec<u8>) -> Response {
    tus(app, Method::PATCH, path)
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", offset.to_string())
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// The offset `HEAD` reports.
pub async fn head_offset(app: &TestApp, path: &str) -> u64 {
    let res = tus(app, Method::HEAD, path).send().await.unwrap();
    assert_eq!(res.status(), 200, "HEAD {path}");
    hv(&res, "upload-offset").unwrap().parse().unwrap()
}

/// The upload's claim id, from its path.
pub fn claim_id(path: &str) -> String {
    path.rsplit('/').next().unwrap().to_owned()
}

/// The object of a finished upload, read straight from the store (Garage,
/// or the filesystem store's root).
pub async fn stored_object(app: &TestApp, path: &str) -> Vec<u8> {
    let claim = app
        .get_json(&format!("/v1/uploads/{}", claim_id(path)))
        .await;
    assert_eq!(claim["status"], "uploaded", "{claim}");
    let key = claim["key"].as_str().unwrap();
    if let Some(root) = &app.fs_root {
        return std::fs::read(root.path().join(key)).unwrap();
    }
    let store = claimcheck_tests::stores::S3Target::shared().store().await;
    let url = store
        .presign_get(key, std::time::Duration::from_secs(60), &Default::default())
        .await
        .unwrap()
        .url;
    reqwest::get(url)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

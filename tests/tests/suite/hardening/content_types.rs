//! Item 7: content types are parsed strictly (RFC 9110), XML is denied by
//! default, and download URLs of both stores answer with the object's stored
//! type and an `attachment` disposition unless browsers cannot run the type.

use claimcheck_tests::app::{Store, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::upload;

const SIGNING_KEY: &str = "hardening-test-signing-key-0123456789abcdef";

/// A multipart init with `content_type`; the status and the body.
async fn init_with(app: &TestApp, content_type: &str) -> (u16, Value) {
    let body = json!({"filename": "f.bin", "content_type": content_type, "size": 10});
    let res = app
        .req(Method::POST, "/v1/uploads/multipart")
        .json(&body)
        .send()
        .await
        .unwrap();
    super::status_and_body(res).await
}

#[tokio::test]
async fn malformed_and_denied_content_types_answer_415() {
    let app = TestApp::spawn_with(Store::Fs, &[("CLAIMCHECK_MAX_PENDING_PER_OWNER", "1000")]).await;
    // Sent as the Content-Type header of a single-shot upload (the HTTP layer
    // trims the header's own surrounding whitespace).
    for ct in [
        "text/html,x",
        "text/html ,x",
        "image/png, text/html",
        "TEXT/HTML",
        "Text/Html; charset=utf-8",
        "text/xml",
        "Application/XML",
        "text/xml; charset=utf-8",
        "text /html",
        "text/ html",
        "text/html;x",
        "text/plain; a=\"unterminated",
        "*/*",
        "image/*",
        "garbage",
        "/plain",
        "text/",
    ] {
        let res = upload(&app, "a.bin", ct, vec![1; 10]).await;
        let (status, body) = super::status_and_body(res).await;
        assert_eq!(status, 415, "header {ct:?}: {body}");
        assert_eq!(body["code"], "unsupported_media_type", "{ct:?}");
    }
    // Sent in the JSON of a multipart init, where nothing trims.
    for ct in [
        " text/html",
        "\ttext/xml",
        "\u{feff}text/html",
        "\u{a0}text/html",
        " image/png",
        "image/png ",
        "image/png\u{b}",
        "text/html,x",
        "text/html ,x",
        "application/xml",
        "TEXT/XML",
        "image/svg+xml",
    ] {
        let (status, body) = init_with(&app, ct).await;
        assert_eq!(status, 415, "json {ct:?}: {body}");
        assert_eq!(body["code"], "unsupported_media_type", "{ct:?}");
    }
    // Well-formed types are accepted and stored as their lowercase essence.
    for (ct, stored) in [
        ("text/plain; charset=utf-8", "text/plain"),
        ("text/plain ; charset=\"utf-8\"", "text/plain"),
        ("text/plain;", "text/plain"),
        ("Image/PNG", "image/png"),
        ("application/vnd.ms-excel", "application/vnd.ms-excel"),
    ] {
        let (status, body) = init_with(&app, ct).await;
        assert_eq!(status, 201, "{ct:?}: {body}");
        assert_eq!(body["content_type"], stored, "{ct:?}");
    }
    assert_eq!(
        app.sql_i64(
            "SELECT count(*) FROM claimcheck.upload_claims
              WHERE content_type LIKE '%xml%' OR content_type LIKE '%html%'"
        )
        .await,
        0
    );
}

/// What a download URL answered: `content-type`, `content-disposition`
/// (the key's last segment in it written `KEY`).
async fn download_headers(
    app: &TestApp,
    filename: &str,
    content_type: &str,
    download_filename: Option<&str>,
) -> (String, String) {
    let res = upload(app, filename, content_type, b"<b>x</b>".to_vec()).await;
    assert_eq!(res.status(), 201, "{content_type}");
    let claim: Value = res.json().await.unwrap();
    let key = claim["key"].as_str().unwrap();
    let consumed = app
        .req(Method::POST, "/v1/claims/consume")
        .json(&json!({"owner": "alice", "keys": [key]}))
        .send()
        .await
        .unwrap();
    assert_eq!(consumed.status(), 200);
    let mut request = json!({"key": key});
    if let Some(name) = download_filename {
        request["download_filename"] = json!(name);
    }
    let url: Value = app
        .req(Method::POST, "/v1/objects/url")
        .json(&request)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let res = reqwest::get(url["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(res.status(), 200, "{url}");
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    // Keys differ between the apps: name the key's segment alike.
    let segment = key.rsplit('/').next().unwrap();
    (
        header("content-type"),
        header("content-disposition").replace(segment, "KEY"),
    )
}

#[tokio::test]
async fn download_urls_of_both_stores_carry_the_type_and_agree_on_the_disposition() {
    // An operator who allows HTML uploads still never gets them rendered
    // from a download URL.
    let env = [
        ("CLAIMCHECK_DENIED_CONTENT_TYPES", "application/x-nothing"),
        ("CLAIMCHECK_URL_SIGNING_KEY", SIGNING_KEY),
    ];
    let s3 = TestApp::spawn_with(Store::S3, &env).await;
    let fs = TestApp::spawn_with(Store::Fs, &env).await;
    let cases = [
        // (filename, type, download_filename, disposition starts with)
        ("page.html", "text/html", None, "attachment"),
        ("page.bin", "text/html", None, "attachment"),
        ("pic.svg", "image/svg+xml", None, "attachment"),
        ("data.xml", "application/xml", None, "attachment"),
        ("blob.bin", "application/octet-stream", None, "attachment"),
        ("sheet.csv", "text/csv", Some("export.csv"), "attachment"),
        ("pic.png", "image/png", None, "inline"),
        ("pic.html", "image/png", Some("photo.png"), "inline"),
        ("doc.pdf", "application/pdf", None, "inline"),
        ("note.txt", "text/plain", None, "inline"),
        ("song.mp3", "audio/mpeg", None, "inline"),
        ("clip.mp4", "video/mp4", None, "inline"),
    ];
    for (filename, content_type, download_filename, disposition) in cases {
        let from_s3 = download_headers(&s3, filename, content_type, download_filename).await;
        let from_fs = download_headers(&fs, filename, content_type, download_filename).await;
        let case = format!("{filename} as {content_type}");
        assert_eq!(from_s3.0, content_type, "S3 type, {case}");
        assert!(
            from_s3.1.starts_with(disposition),
            "S3 disposition, {case}: {}",
            from_s3.1
        );
        if let Some(name) = download_filename {
            assert!(from_s3.1.contains(name), "{case}: {}", from_s3.1);
        }
        assert_eq!(from_fs, from_s3, "the stores agree, {case}");
    }
}

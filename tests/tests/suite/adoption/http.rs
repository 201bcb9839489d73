//! The adoption routes of the real API binary: consume (with retries),
//! registry reads, deletes and download URLs on both stores.

use claimcheck::tokens::Scope;
use claimcheck_tests::{
    app::{Store, TestApp},
    stores::random_bytes,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const SIGNING_KEY: &str = "adoption-test-signing-key-0123456789abcdef";

/// Uploads `bytes` as `name`; returns the object key.
async fn upload(app: &TestApp, name: &str, bytes: Vec<u8>) -> String {
    let res = app
        .req(Method::POST, &format!("/v1/uploads?filename={name}"))
        .header("Content-Type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let claim: Value = res.json().await.unwrap();
    claim["key"].as_str().unwrap().to_owned()
}

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.req(Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn json_of(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status);
    res.json().await.unwrap()
}

async fn consume(app: &TestApp, owner: &str, keys: &[&str]) -> reqwest::Response {
    post(
        app,
        "/v1/claims/consume",
        json!({"owner": owner, "keys": keys}),
    )
    .await
}

#[tokio::test]
async fn consume_names_a_pending_key_and_consumes_nothing() {
    let app = TestApp::spawn(Store::S3).await;
    let a = upload(&app, "a.txt", b"aaa".to_vec()).await;
    let b = upload(&app, "b.txt", b"bbb".to_vec()).await;
    let pending = app.init(6 << 20, None).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json_of(consume(&app, "alice", &[&a, &pending, &b]).await, 404).await;
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["missing"], json!([pending]));
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.objects").await,
        0
    );
    let body = json_of(consume(&app, "alice", &[&a, &b]).await, 200).await;
    assert_eq!(body["objects"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_consume_retry_returns_the_same_objects_but_not_to_another_owner() {
    let app = TestApp::spawn(Store::S3).await;
    let a = upload(&app, "one.txt", b"1".to_vec()).await;
    let b = upload(&app, "two.txt", b"22".to_vec()).await;
    let first = json_of(consume(&app, "alice", &[&b, &a, &a]).await, 200).await;
    let objects = first["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 2, "{first}");
    assert_eq!(objects[0]["owner"], "alice");
    let again = json_of(consume(&app, "alice", &[&a, &b]).await, 200).await;
    assert_eq!(again, first, "a retry answers with the same objects");

    let other = json_of(consume(&app, "mallory", &[&a, &b]).await, 404).await;
    let mut missing: Vec<&str> = other["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    missing.sort();
    let mut expected = [a.as_str(), b.as_str()];
    expected.sort();
    assert_eq!(missing, expected);
    // A retry that adds a key no one uploaded is no retry: both keys are
    // missing as claims (one is consumed already), and nothing changes.
    let body = json_of(consume(&app, "alice", &[&a, "nope"]).await, 404).await;
    let mut missing = vec![a.clone(), "nope".to_string()];
    missing.sort();
    assert_eq!(body["missing"], json!(missing));
}

#[tokio::test]
async fn objects_are_read_by_key_with_slashes_and_need_the_consume_scope() {
    let app = TestApp::spawn(Store::S3).await;
    let key = upload(&app, "Rapport final.pdf", b"%PDF".to_vec()).await;
    assert!(key.contains('/'));
    assert_eq!(
        app.req(Method::GET, &format!("/v1/objects/{key}"))
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "not consumed yet"
    );
    json_of(consume(&app, "alice", &[&key]).await, 200).await;
    let object = json_of(
        app.req(Method::GET, &format!("/v1/objects/{key}"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(object["key"], key.as_str());
    assert_eq!(object["filename"], "Rapport final.pdf");
    assert_eq!(object["size"], 4);
    assert!(object["consumed_at"].is_string());

    let uploader = app.token_for("bob", &[Scope::Upload]).await;
    let res = app
        .http
        .get(format!("{}/v1/objects/{key}", app.base))
        .bearer_auth(uploader)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn deletes_check_reasons_and_queue_every_key() {
    let app = TestApp::spawn(Store::S3).await;
    let key = upload(&app, "gone.txt", b"x".to_vec()).await;
    json_of(consume(&app, "alice", &[&key]).await, 200).await;
    let never = format!("{}priv/never/uploaded", app.prefix);
    for bad in [
        json!({"items": [{"key": key, "reason": "deleted"}, {"key": never, "reason": "unconsumed"}]}),
        json!({"items": [{"key": "../etc/passwd", "reason": "deleted"}]}),
        json!({"items": [{"key": key}]}),
    ] {
        let body = json_of(post(&app, "/v1/deletes", bad).await, 400).await;
        assert_eq!(body["code"], "invalid_request");
    }
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.pending_deletes")
            .await,
        0,
        "a refused request queues nothing"
    );
    let items = json!({"items": [
        {"key": key, "reason": "replaced"},
        {"key": never, "reason": "deleted"},
    ]});
    let body = json_of(post(&app, "/v1/deletes", items).await, 202).await;
    assert_eq!(body["queued"], 2);
    let rows = app
        .db
        .client()
        .await
        .query(
            "SELECT object_key, reason FROM claimcheck.pending_deletes ORDER BY reason",
            &[],
        )
        .await
        .unwrap();
    let rows: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        rows,
        [(never, "deleted".into()), (key.clone(), "replaced".into())]
    );
    assert_eq!(
        app.req(Method::GET, &format!("/v1/objects/{key}"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

/// Uploads, consumes and asks for a download URL; returns the key, the
/// bytes and the URL response.
async fn adopted_url(app: &TestApp, request: Value) -> (String, Vec<u8>, Value) {
    let bytes = random_bytes(5, 70_000);
    let key = upload(app, "data.bin", bytes.clone()).await;
    json_of(consume(app, "alice", &[&key]).await, 200).await;
    let mut request = request;
    request["key"] = json!(key);
    let url = json_of(post(app, "/v1/objects/url", request).await, 200).await;
    (key, bytes, url)
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.unwrap()
}

#[tokio::test]
async fn s3_download_urls_round_trip() {
    let app = TestApp::spawn(Store::S3).await;
    let request = json!({"expires_in": 120, "download_filename": "report été.bin"});
    let (_, bytes, url) = adopted_url(&app, request).await;
    let res = get(url["url"].as_str().unwrap()).await;
    assert_eq!(res.status(), 200);
    let disposition = res.headers()["content-disposition"].to_str().unwrap();
    assert!(
        disposition.contains("report%20%C3%A9t%C3%A9.bin"),
        "{disposition}"
    );
    assert_eq!(res.bytes().await.unwrap(), bytes);

    let unknown = json!({"key": format!("{}priv/nothing", app.prefix)});
    let body = json_of(post(&app, "/v1/objects/url", unknown).await, 404).await;
    assert_eq!(body["code"], "not_found");
    let too_long = json!({"key": "k", "expires_in": 8 * 24 * 3600});
    json_of(post(&app, "/v1/objects/url", too_long).await, 400).await;
}

#[tokio::test]
async fn fs_download_urls_are_served_with_range_and_refuse_tampering() {
    let app = TestApp::spawn_with(Store::Fs, &[("CLAIMCHECK_URL_SIGNING_KEY", SIGNING_KEY)]).await;
    let request = json!({"download_filename": "Q3 \"final\".bin"});
    let (key, bytes, url) = adopted_url(&app, request).await;
    let url = url["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{}/v1/files/{key}?", app.base)),
        "{url}"
    );

    let res = get(&url).await;
    assert_eq!(res.status(), 200);
    let headers = res.headers().clone();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(
        disposition.contains("Q3%20%22final%22.bin"),
        "{disposition}"
    );
    assert_eq!(res.bytes().await.unwrap(), bytes);

    let res = reqwest::Client::new()
        .get(&url)
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes 1000-1999/{}", bytes.len()).as_str()
    );
    assert_eq!(res.bytes().await.unwrap(), bytes[1000..2000]);

    // Any pod serves it: the key is shared, the host is not signed.
    let other = app.another().await;
    let res = get(&url.replacen(&app.base, &other.base, 1)).await;
    assert_eq!(res.status(), 200);

    let tampered = [
        url.replacen("sig=", "sig=A", 1),
        url.replacen("expires=", "expires=9", 1),
        url.replacen("filename=", "filename=x", 1),
        url.replacen(&key, &format!("{key}x"), 1),
        url.split('?').next().unwrap().to_owned(),
    ];
    for bad in tampered {
        let res = get(&bad).await;
        assert_eq!(res.status(), 403, "{bad}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "forbidden");
    }

    let short = json!({"key": key, "expires_in": 1});
    let expiring = json_of(post(&app, "/v1/objects/url", short).await, 200).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let res = get(expiring["url"].as_str().unwrap()).await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["detail"], "the download URL has expired");
}

#[tokio::test]
async fn fs_download_urls_name_the_public_url_and_need_a_signing_key() {
    let public = "https://files.example/cc/";
    let app = TestApp::spawn_with(
        Store::Fs,
        &[
            ("CLAIMCHECK_URL_SIGNING_KEY", SIGNING_KEY),
            ("CLAIMCHECK_API_PUBLIC_URL", public),
        ],
    )
    .await;
    let (key, bytes, url) = adopted_url(&app, json!({})).await;
    let url = url["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{public}v1/files/{key}?")),
        "{url}"
    );
    let res = get(&url.replacen(public, &format!("{}/", app.base), 1)).await;
    assert_eq!(res.bytes().await.unwrap(), bytes);

    let unsigned = TestApp::spawn(Store::Fs).await;
    let key = upload(&unsigned, "x.bin", b"x".to_vec()).await;
    json_of(consume(&unsigned, "alice", &[&key]).await, 200).await;
    let body = json_of(
        post(&unsigned, "/v1/objects/url", json!({"key": key})).await,
        503,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("CLAIMCHECK_URL_SIGNING_KEY"),
        "{body}"
    );
}

#[tokio::test]
async fn openapi_describes_the_adoption_routes() {
    let app = TestApp::spawn(Store::Fs).await;
    let doc: Value = reqwest::get(format!("{}/openapi.json", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, method) in [
        ("/v1/claims/consume", "post"),
        ("/v1/objects/{key}", "get"),
        ("/v1/deletes", "post"),
        ("/v1/objects/url", "post"),
        ("/v1/files/{key}", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    assert_eq!(
        doc["paths"]["/v1/files/{key}"]["get"]["security"],
        json!([{}]),
        "signed downloads take no bearer token"
    );
    assert!(doc["components"]["schemas"]["RegistryObject"].is_object());
}

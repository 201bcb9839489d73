//! Single-shot uploads, listing, discard, tokens and the error table,
//! against the real binary on both stores.

use claimcheck::{store::ObjectStore, tokens::Scope};
use claimcheck_tests::{
    app::{Store, TestApp},
    stores::{random_body, random_bytes, random_sha256},
};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The object store the app writes to, seen from the test.
async fn store_of(app: &TestApp) -> Box<dyn ObjectStore> {
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

async fn upload(
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

async fn problem(res: reqwest::Response, status: u16, code: &str) -> Value {
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

async fn single_shot_round_trip(store: Store) {
    let app = TestApp::spawn(store).await;
    let bytes = random_bytes(1, 300_000);
    let res = app
        .req(Method::POST, "/v1/uploads?filename=report.PDF")
        .header("Content-Type", "application/pdf")
        .header("X-Content-SHA256", random_sha256(1, 300_000))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert!(res.headers().contains_key("location"));
    let claim: Value = res.json().await.unwrap();
    assert_eq!(claim["status"], "uploaded");
    assert_eq!(claim["size"], 300_000);
    assert_eq!(claim["sha256"], random_sha256(1, 300_000));
    assert_eq!(claim["owner"], "alice");
    assert_eq!(claim["filename"], "report.PDF");
    let key = claim["key"].as_str().unwrap();
    assert!(
        key.starts_with(&format!("{}priv/", app.prefix)) && key.ends_with(".pdf"),
        "{key}"
    );
    assert_eq!(store_of(&app).await.head(key).await.unwrap().size, 300_000);

    let id = claim["id"].as_str().unwrap();
    let got: Value = app.get_json(&format!("/v1/uploads/{id}")).await;
    assert_eq!(got["key"], claim["key"]);
    let list: Value = app.get_json("/v1/uploads?status=uploaded").await;
    assert_eq!(list["items"][0]["id"], claim["id"]);

    // Discarding an unconsumed upload queues its object's delete.
    let res = app
        .req(Method::DELETE, &format!("/v1/uploads/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
            .await,
        0
    );
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.pending_deletes WHERE reason = 'discarded'")
            .await,
        1
    );
    let res = app
        .req(Method::GET, &format!("/v1/uploads/{id}"))
        .send()
        .await
        .unwrap();
    problem(res, 404, "not_found").await;
}

#[tokio::test]
async fn single_shot_round_trip_on_fs() {
    single_shot_round_trip(Store::Fs).await;
}

#[tokio::test]
async fn single_shot_round_trip_on_s3() {
    single_shot_round_trip(Store::S3).await;
}

#[tokio::test]
async fn checksum_mismatch_leaves_no_object_and_no_claim() {
    let app = TestApp::spawn(Store::S3).await;
    let res = app
        .req(Method::POST, "/v1/uploads?filename=a.bin")
        .header("Content-Type", "application/octet-stream")
        .header("X-Content-SHA256", "0".repeat(64))
        .body(random_bytes(2, 10_000))
        .send()
        .await
        .unwrap();
    problem(res, 422, "checksum_mismatch").await;
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
            .await,
        0
    );
    let store = store_of(&app).await;
    let (objects, _) = store.list_objects(&app.prefix, None).await.unwrap();
    assert!(objects.is_empty(), "{objects:?}");
}

#[tokio::test]
async fn streamed_upload_without_content_length_answers_411() {
    let app = TestApp::spawn(Store::Fs).await;
    let res = app
        .req(Method::POST, "/v1/uploads?filename=a.bin")
        .header("Content-Type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(random_body(3, 1000)))
        .send()
        .await
        .unwrap();
    problem(res, 411, "length_required").await;
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
            .await,
        0
    );
}

#[tokio::test]
async fn auth_scope_size_type_and_cap_errors() {
    let app = TestApp::spawn_with(
        Store::Fs,
        &[
            ("CLAIMCHECK_MAX_UPLOAD_SIZE", "1MiB"),
            ("CLAIMCHECK_MAX_PENDING_PER_OWNER", "2"),
        ],
    )
    .await;
    // 401: none, garbage, revoked.
    let res = app
        .http
        .get(format!("{}/v1/uploads", app.base))
        .send()
        .await
        .unwrap();
    problem(res, 401, "unauthorized").await;
    let res = app
        .http
        .get(format!("{}/v1/uploads", app.base))
        .bearer_auth("cc_nope")
        .send()
        .await
        .unwrap();
    problem(res, 401, "unauthorized").await;
    // 403: a consume-only token cannot upload.
    let consumer = app.token_for("svc", &[Scope::Consume]).await;
    let res = app
        .http
        .get(format!("{}/v1/uploads", app.base))
        .bearer_auth(&consumer)
        .send()
        .await
        .unwrap();
    problem(res, 403, "forbidden").await;
    // 413 before reading: Content-Length over the limit.
    problem(
        upload(&app, "a.bin", "application/octet-stream", vec![0; 2 << 20]).await,
        413,
        "too_large",
    )
    .await;
    // 415: stored XSS types are refused.
    problem(
        upload(&app, "a.svg", "image/svg+xml", vec![1; 10]).await,
        415,
        "unsupported_media_type",
    )
    .await;
    // 400: no filename.
    let res = app
        .req(Method::POST, "/v1/uploads")
        .header("Content-Type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    problem(res, 400, "invalid_request").await;
    // 429: the in-flight cap counts pending claims.
    for _ in 0..2 {
        app.init(1000, None).await;
    }
    let res = app
        .req(Method::POST, "/v1/uploads/multipart")
        .json(&serde_json::json!({"filename": "c.bin", "content_type": "application/octet-stream", "size": 10}))
        .send()
        .await
        .unwrap();
    problem(res, 429, "too_many_pending_uploads").await;
    // Malformed JSON is a 400 problem, not actix's plain text.
    let res = app
        .req(Method::POST, "/v1/uploads/multipart")
        .header("Content-Type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    problem(res, 400, "invalid_request").await;

    // Revoked tokens stop working.
    let admin = |m: Method, p: &str| {
        app.http
            .request(m, format!("{}{p}", app.base))
            .bearer_auth(&app.admin_token)
    };
    let minted: Value = admin(Method::POST, "/v1/tokens")
        .json(&serde_json::json!({"owner": "bob", "scopes": ["upload"], "expires_in": "1h"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bob = minted["token"].as_str().unwrap();
    assert!(bob.starts_with("cc_") && bob.len() == 46);
    let res = app
        .http
        .get(format!("{}/v1/uploads", app.base))
        .bearer_auth(bob)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let listed: Value = admin(Method::GET, "/v1/tokens")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !listed.to_string().contains(bob),
        "a listing never shows a secret"
    );
    let res = admin(
        Method::DELETE,
        &format!("/v1/tokens/{}", minted["id"].as_str().unwrap()),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 204);
    let res = app
        .http
        .get(format!("{}/v1/uploads", app.base))
        .bearer_auth(bob)
        .send()
        .await
        .unwrap();
    problem(res, 401, "unauthorized").await;
    // An upload token cannot mint tokens.
    let res = app.req(Method::GET, "/v1/tokens").send().await.unwrap();
    problem(res, 403, "forbidden").await;
}

#[tokio::test]
async fn another_owners_upload_is_not_found_on_every_endpoint() {
    let app = TestApp::spawn(Store::Fs).await;
    let claim = app.init(10 << 20, None).await;
    let id = claim["id"].as_str().unwrap();
    let mallory = app.token_for("mallory", &[Scope::Upload]).await;
    let as_mallory = |m: Method, p: String| {
        app.http
            .request(m, format!("{}{p}", app.base))
            .bearer_auth(&mallory)
    };
    for (method, path) in [
        (Method::GET, format!("/v1/uploads/{id}")),
        (Method::PUT, format!("/v1/uploads/{id}/parts/1")),
        (Method::POST, format!("/v1/uploads/{id}/parts/1/presign")),
        (Method::POST, format!("/v1/uploads/{id}/complete")),
        (Method::DELETE, format!("/v1/uploads/{id}")),
    ] {
        let res = as_mallory(method.clone(), path.clone())
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
            .await,
        1
    );
}

#[tokio::test]
async fn fifty_concurrent_inits_against_a_cap_of_ten() {
    let app = TestApp::spawn_with(Store::Fs, &[("CLAIMCHECK_MAX_PENDING_PER_OWNER", "10")]).await;
    let body = serde_json::json!({"filename": "c.bin", "content_type": "application/octet-stream", "size": 10});
    let sends = (0..50).map(|_| {
        app.req(Method::POST, "/v1/uploads/multipart")
            .json(&body)
            .send()
    });
    let statuses: Vec<u16> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        40,
        "{statuses:?}"
    );
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
            .await,
        10
    );
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_upload() {
    let app = TestApp::spawn(Store::Fs).await;
    let send = || {
        app.req(Method::POST, "/v1/uploads?filename=a.txt")
            .header("Content-Type", "text/plain")
            .header("Idempotency-Key", "k-1")
            .body("hello")
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    let res = send().await.unwrap();
    assert_eq!(res.status(), 200);
    let second: Value = res.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
            .await,
        1
    );
}

#[tokio::test]
async fn an_unreachable_store_answers_503_and_keeps_no_claim() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let app =
        TestApp::spawn_with(Store::S3, &[("CLAIMCHECK_S3_ENDPOINT", endpoint.as_str())]).await;
    let res = app
        .req(Method::POST, "/v1/uploads/multipart")
        .json(&serde_json::json!({"filename": "c.bin", "content_type": "application/octet-stream", "size": 10}))
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("retry-after"));
    problem(res, 503, "unavailable").await;
    let res = upload(&app, "a.bin", "application/octet-stream", vec![1; 1000]).await;
    problem(res, 503, "unavailable").await;
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
            .await,
        0
    );
    // Readiness follows PostgreSQL only, and reports the store.
    let ready: Value = app.get_json("/readyz").await;
    assert_eq!(ready["status"], "ready");
    assert!(
        ready["store"].as_str().unwrap().starts_with("unavailable"),
        "{ready}"
    );
}

#[tokio::test]
async fn openapi_describes_every_endpoint_and_the_problem_shape() {
    let app = TestApp::spawn(Store::Fs).await;
    let doc: Value = app.get_json("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/uploads",
        "/v1/uploads/multipart",
        "/v1/uploads/{id}",
        "/v1/uploads/{id}/parts/{n}",
        "/v1/uploads/{id}/parts/{n}/presign",
        "/v1/uploads/{id}/complete",
        "/v1/tokens",
        "/v1/tokens/{id}",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from /openapi.json"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"]["properties"]["code"].is_object());
}

#[tokio::test]
async fn cors_answers_configured_origins_only() {
    let app = TestApp::spawn_with(
        Store::Fs,
        &[("CLAIMCHECK_CORS_ORIGINS", "https://app.example")],
    )
    .await;
    let preflight = |origin: &'static str| {
        app.http
            .request(Method::OPTIONS, format!("{}/v1/uploads", app.base))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(!refused
        .headers()
        .contains_key("access-control-allow-origin"));
    let res = upload(&app, "a.txt", "text/plain", b"hi".to_vec()).await;
    assert_eq!(
        res.status(),
        201,
        "same-origin and non-browser clients are unaffected"
    );
}

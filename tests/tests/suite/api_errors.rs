//! The contract's error table through the real binary: authentication,
//! scopes, ownership, limits, the in-flight cap, an unreachable store.

use claimcheck::tokens::Scope;
use claimcheck_tests::app::{Store, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{problem, upload};

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
    let res = app.get_as(None, "/v1/uploads").await;
    problem(res, 401, "unauthorized").await;
    let res = app.get_as(Some("cc_nope"), "/v1/uploads").await;
    problem(res, 401, "unauthorized").await;
    // 403: a consume-only token cannot upload.
    let consumer = app.token_for("svc", &[Scope::Consume]).await;
    let res = app.get_as(Some(&consumer), "/v1/uploads").await;
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
    let res = app.get_as(Some(bob), "/v1/uploads").await;
    assert_eq!(res.status(), 200);
    let listed = app.admin_json(Method::GET, "/v1/tokens").await;
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
    let res = app.get_as(Some(bob), "/v1/uploads").await;
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
async fn an_unreachable_store_answers_503_and_keeps_no_claim() {
    // Nothing listens there, and no other test can take the port meanwhile.
    let down = claimcheck_tests::procs::RefusedPort::new();
    let endpoint = down.url();
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

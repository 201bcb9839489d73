//! Item 9: NUL characters and oversized strings answer 400 `invalid_request`
//! on every route that takes them, never a PostgreSQL error (500); so do
//! `limit` and `cursor` values that do not parse.

use claimcheck_tests::app::{Store, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use super::{send_as, status_and_body};

const SIGNING_KEY: &str = "hardening-test-signing-key-0123456789abcdef";

/// Asserts a 400 `invalid_request` answer.
async fn assert_400(res: reqwest::Response, what: &str) {
    let (status, body) = status_and_body(res).await;
    assert_eq!(status, 400, "{what}: {body}");
    assert_eq!(body["code"], "invalid_request", "{what}: {body}");
}

async fn post_json(app: &TestApp, token: &str, path: &str, body: &Value) -> reqwest::Response {
    send_as(
        app,
        Some(token),
        Method::POST,
        path,
        Some(&body.to_string()),
    )
    .await
}

/// A multipart init with `Idempotency-Key: key`.
async fn init_with_key(app: &TestApp, key: &str) -> reqwest::Response {
    app.req(Method::POST, "/v1/uploads/multipart")
        .header("Idempotency-Key", key)
        .json(&json!({"filename": "f.bin", "content_type": "text/plain", "size": 10}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn nul_and_oversized_strings_answer_400_on_every_route() {
    let app = TestApp::spawn_with(Store::Fs, &[("CLAIMCHECK_URL_SIGNING_KEY", SIGNING_KEY)]).await;
    let (token, admin) = (app.alice_token.clone(), app.admin_token.clone());
    let long = |n: usize| "a".repeat(n);
    let long_key = format!("{}priv/{}", app.prefix, long(2000));

    // Uploads: the multipart init body and the Idempotency-Key header.
    let init = |filename: &str, content_type: &str| json!({"filename": filename, "content_type": content_type, "size": 10});
    for (what, body) in [
        ("NUL content type", init("f.bin", "text/plain\0")),
        (
            "NUL content type parameter",
            init("f.bin", "text/plain; a=\"\0\""),
        ),
        (
            "long content type",
            init("f.bin", &format!("application/{}", long(300))),
        ),
        ("NUL filename", init("a\0b.txt", "text/plain")),
        ("long filename", init(&long(2000), "text/plain")),
    ] {
        assert_400(
            post_json(&app, &token, "/v1/uploads/multipart", &body).await,
            what,
        )
        .await;
    }
    assert_400(
        init_with_key(&app, &long(3000)).await,
        "3000-character Idempotency-Key",
    )
    .await;
    assert_400(
        init_with_key(&app, &long(256)).await,
        "256-character Idempotency-Key",
    )
    .await;
    assert_eq!(init_with_key(&app, &long(255)).await.status(), 201);
    let single = app
        .req(Method::POST, "/v1/uploads?filename=a.txt")
        .header("Content-Type", "text/plain")
        .header("Idempotency-Key", long(3000))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_400(single, "single-shot 3000-character Idempotency-Key").await;
    let single = app
        .req(Method::POST, "/v1/uploads?filename=a%00b.txt")
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_400(single, "single-shot NUL filename").await;

    // The list's query: limit and cursor must parse.
    let long_cursor = format!("cursor={}", long(5000));
    for query in [
        "limit=abc",
        "limit=99999999999999999999",
        "limit=0",
        "cursor=nope",
        "cursor=%00",
        long_cursor.as_str(),
        "status=pend%00ing",
    ] {
        let path = format!("/v1/uploads?{query}");
        let res = send_as(&app, Some(&token), Method::GET, &path, None).await;
        assert_400(res, query).await;
    }

    // Adoption: consume (owner, keys), deletes, objects/{key}, objects/url.
    for (what, body) in [
        ("NUL owner", json!({"owner": "al\0ice", "keys": ["k"]})),
        ("long owner", json!({"owner": long(300), "keys": ["k"]})),
        ("NUL key", json!({"owner": "alice", "keys": ["priv/a\0b"]})),
        ("long key", json!({"owner": "alice", "keys": [long_key]})),
    ] {
        assert_400(
            post_json(&app, &token, "/v1/claims/consume", &body).await,
            what,
        )
        .await;
    }
    for (what, key) in [("NUL", "priv/a\0b".to_owned()), ("long", long_key.clone())] {
        let body = json!({"items": [{"key": key, "reason": "deleted"}]});
        assert_400(post_json(&app, &token, "/v1/deletes", &body).await, what).await;
    }
    for (what, path) in [
        ("NUL in the path", "/v1/objects/priv/a%00b".to_owned()),
        ("long path", format!("/v1/objects/{long_key}")),
    ] {
        assert_400(
            send_as(&app, Some(&token), Method::GET, &path, None).await,
            what,
        )
        .await;
    }
    for (what, body) in [
        ("NUL key", json!({"key": "priv/a\0b"})),
        ("long key", json!({"key": long_key})),
        (
            "NUL download filename",
            json!({"key": "priv/a", "download_filename": "a\0b"}),
        ),
        (
            "long download filename",
            json!({"key": "priv/a", "download_filename": long(2000)}),
        ),
    ] {
        assert_400(
            post_json(&app, &token, "/v1/objects/url", &body).await,
            what,
        )
        .await;
    }

    // Token minting: owner and name.
    for (what, body) in [
        ("NUL owner", json!({"owner": "b\0b", "scopes": ["upload"]})),
        (
            "long owner",
            json!({"owner": long(300), "scopes": ["upload"]}),
        ),
        (
            "NUL name",
            json!({"owner": "bob", "scopes": ["upload"], "name": "x\0"}),
        ),
        (
            "long name",
            json!({"owner": "bob", "scopes": ["upload"], "name": long(300)}),
        ),
    ] {
        assert_400(post_json(&app, &admin, "/v1/tokens", &body).await, what).await;
    }

    let logs = app.logs.lock().unwrap().join("\n");
    assert!(!logs.contains("\"code\":\"internal\""), "a 500 was logged");
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.api_tokens WHERE owner = 'bob'")
            .await,
        0
    );
}

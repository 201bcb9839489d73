//! Item 15: a 503 and `/readyz` answer a generic message with the request
//! id, never the database's or the object store's error text (which goes to
//! the log, under the same request id).

use claimcheck_tests::{
    app::{Store, TestApp},
    procs::RefusedPort,
};
use reqwest::Method;
use serde_json::{json, Value};

use super::status_and_body;

/// Words of the errors tokio-postgres, the AWS SDK and the OS report when
/// a server cannot be reached.
const INTERNAL_TEXT: [&str; 10] = [
    "refused",
    "error connecting",
    "connect",
    "os error",
    "dispatch",
    "timed out",
    "127.0.0.1",
    "sql",
    "postgres",
    "io error",
];

/// Sends `req` with `X-Request-ID: id`; asserts a 503 whose body carries the
/// id and none of the internal text; returns the body.
async fn assert_generic_503(req: reqwest::RequestBuilder, id: &str, port: u16) -> Value {
    let res = req.header("X-Request-ID", id).send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], id);
    let (status, body) = status_and_body(res).await;
    assert_eq!(status, 503, "{body}");
    let text = body.to_string().to_lowercase();
    for word in INTERNAL_TEXT
        .iter()
        .map(|w| w.to_string())
        .chain([port.to_string()])
    {
        assert!(!text.contains(&word), "{word:?} in {body}");
    }
    assert!(text.contains(&id.to_lowercase()), "no request id in {body}");
    body
}

#[tokio::test]
async fn an_unreachable_database_is_not_described_to_clients() {
    let down = RefusedPort::new();
    let port = down.port();
    let url = format!("postgres://claimcheck:secret@127.0.0.1:{port}/claimcheck");
    let app = TestApp::spawn_with(Store::Fs, &[("DATABASE_URL", url.as_str())]).await;
    let body = assert_generic_503(app.req(Method::GET, "/v1/uploads"), "req-db-1", port).await;
    assert_eq!(body["code"], "unavailable");
    assert_eq!(body["request_id"], "req-db-1");
    let ready = app.http.get(format!("{}/readyz", app.base));
    let body = assert_generic_503(ready, "req-ready-1", port).await;
    assert_eq!(body["database"], "unavailable");
    // Without an id of its own, the request gets one, in the header and body.
    let res = app.req(Method::GET, "/v1/uploads").send().await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let (_, body) = status_and_body(res).await;
    assert_eq!(body["request_id"], id.as_str());
    // The detail is in the log, under the request id.
    let logs = app.logs.lock().unwrap().join("\n");
    assert!(
        logs.lines()
            .any(|l| l.contains("req-db-1") && l.to_lowercase().contains("connect")),
        "the log lacks the cause"
    );
}

#[tokio::test]
async fn an_unreachable_store_is_not_described_to_clients() {
    let down = RefusedPort::new();
    let (port, endpoint) = (down.port(), down.url());
    let app =
        TestApp::spawn_with(Store::S3, &[("CLAIMCHECK_S3_ENDPOINT", endpoint.as_str())]).await;
    let init = app
        .req(Method::POST, "/v1/uploads/multipart")
        .json(&json!({"filename": "c.bin", "content_type": "text/plain", "size": 10}));
    assert_generic_503(init, "req-s3-1", port).await;
    let single = app
        .req(Method::POST, "/v1/uploads?filename=a.txt")
        .header("Content-Type", "text/plain")
        .body("hello");
    assert_generic_503(single, "req-s3-2", port).await;
    // Readiness follows PostgreSQL (ready) and names the store's state only.
    let res = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    let (status, ready) = status_and_body(res).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["store"], "unavailable", "{ready}");
}

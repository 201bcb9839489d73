//! Operating the API: request ids, metrics by route template, OTLP traces
//! continuing an incoming `traceparent`, secrets kept out of logs, and the
//! admin queue endpoints.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use claimcheck_tests::app::{Store, TestApp};
use reqwest::Method;
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

#[tokio::test]
async fn request_ids_are_kept_or_minted_and_returned() {
    let app = TestApp::spawn(Store::Fs).await;
    let res = app
        .req(Method::GET, "/v1/uploads")
        .header("X-Request-Id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "req-42");
    let res = app.req(Method::GET, "/v1/uploads").send().await.unwrap();
    let minted = res.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(minted).is_ok(), "{minted}");
    // Errors carry it too.
    let res = app.get_as(None, "/v1/uploads").await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn metrics_use_route_templates_and_count_upload_bytes() {
    let app = TestApp::spawn(Store::Fs).await;
    let res = app
        .req(Method::POST, "/v1/uploads?filename=a.txt")
        .header("Content-Type", "text/plain")
        .body(vec![b'x'; 1234])
        .send()
        .await
        .unwrap();
    let claim: Value = res.json().await.unwrap();
    let id = claim["id"].as_str().unwrap();
    app.req(Method::GET, &format!("/v1/uploads/{id}"))
        .send()
        .await
        .unwrap();
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"claimcheck_http_requests_total{method="POST",route="/v1/uploads",status="201"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="/v1/uploads/{id}""#));
    assert!(!text.contains(id), "raw paths never become labels");
    assert!(text.contains("claimcheck_upload_bytes_total 1234"));
    assert!(text
        .contains(r#"claimcheck_store_request_duration_seconds_count{op="put",outcome="ok"} 1"#));
    for name in [
        "claimcheck_delete_queue_rows",
        "claimcheck_http_request_duration_seconds",
        "claimcheck_uploads_in_flight 0",
        "claimcheck_db_pool_connections",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
}

/// A minimal OTLP/HTTP receiver: answers every request 200 and keeps bodies.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 16 * 1024];
                // Read the head, then as many bytes as Content-Length says.
                loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if request.len() >= end + 4 + len {
                        kept.lock()
                            .unwrap()
                            .push(request[end + 4..end + 4 + len].to_vec());
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                            .await;
                        request.clear();
                    }
                }
            });
        }
    });
    (endpoint, bodies)
}

#[tokio::test]
async fn spans_are_exported_over_otlp_and_continue_the_callers_trace() {
    let (endpoint, bodies) = otlp_receiver().await;
    let app = TestApp::spawn_with(
        Store::Fs,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let res = app
        .req(Method::POST, "/v1/uploads?filename=a.txt")
        .header("Content-Type", "text/plain")
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .body("traced")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let raw_trace_id = hex::decode(trace_id).unwrap();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let exported = bodies.lock().unwrap().concat();
            let has = |needle: &[u8]| exported.windows(needle.len()).any(|w| w == needle);
            if has(&raw_trace_id)
                && has(b"POST /v1/uploads")
                && has(b"fs put")
                && has(b"db.mark_uploaded")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "the exported spans lack the caller's trace id, the request, the store call or the SQL statement"
    );
}

#[tokio::test]
async fn tokens_and_signatures_never_reach_the_logs() {
    let app = TestApp::spawn_with(Store::S3, &[("RUST_LOG", "debug")]).await;
    let claim = app.init(6 * 1024 * 1024, Some(5 * 1024 * 1024)).await;
    let id = claim["id"].as_str().unwrap();
    let presigned: Value = app
        .req(Method::POST, &format!("/v1/uploads/{id}/parts/1/presign"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = presigned["url"].as_str().unwrap();
    let signature = url
        .split("X-Amz-Signature=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    // An unauthenticated request with a bogus token, for good measure.
    app.get_as(Some("cc_secret-looking"), "/v1/uploads").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = app.logs.lock().unwrap().join("\n");
    assert!(logs.contains("request"), "the log was captured");
    assert!(!logs.contains(&app.alice_token), "a token was logged");
    assert!(
        !logs.contains("cc_secret-looking"),
        "a presented token was logged"
    );
    assert!(
        !logs.contains(signature),
        "a presigned signature was logged"
    );
}

#[tokio::test]
async fn admins_see_the_queue_and_retry_dead_rows() {
    let app = TestApp::spawn(Store::Fs).await;
    app.db
        .client()
        .await
        .batch_execute(
            "INSERT INTO claimcheck.pending_deletes (object_key, reason, dead_at, last_error, attempts)
             VALUES ('k/dead', 'deleted', now(), 'AccessDenied', 12), ('k/due', 'deleted', NULL, NULL, 0)",
        )
        .await
        .unwrap();
    let queue = app.admin_json(Method::GET, "/v1/admin/queue").await;
    assert_eq!(
        (
            queue["rows"]["dead"].as_i64(),
            queue["rows"]["due"].as_i64()
        ),
        (Some(1), Some(1)),
        "{queue}"
    );
    assert_eq!(queue["dead"][0]["row"]["last_error"], "AccessDenied");
    assert_eq!(
        app.req(Method::GET, "/v1/admin/queue")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let retried = app
        .admin_json(Method::POST, "/v1/admin/queue/dead/retry")
        .await;
    assert_eq!(retried["retried"], 1);
    let queue = app.admin_json(Method::GET, "/v1/admin/queue").await;
    assert_eq!(
        (
            queue["rows"]["dead"].as_i64(),
            queue["rows"]["due"].as_i64()
        ),
        (Some(0), Some(2))
    );
}

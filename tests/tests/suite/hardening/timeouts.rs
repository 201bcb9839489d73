//! Item 13 of the hardening issue: an S3 server that accepts connections
//! and never answers (a black hole) cannot hang the API or the worker.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use claimcheck::{
    jobs::{self, delete_worker, liveness::Loop},
    store::{
        s3::{S3Settings, S3Store},
        ObjectStore,
    },
};
use claimcheck_tests::{
    app::{Store, TestApp},
    db::TestDb,
    jobs::{context, delete, fast_settings},
    procs,
    stores::{test_prefix, S3Target},
};
use reqwest::Method;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// A server that accepts connections and never answers, as a URL.
fn black_hole() -> String {
    format!("http://127.0.0.1:{}", procs::black_hole())
}

fn store_at(endpoint: &str, timeout: Duration) -> S3Settings {
    S3Settings {
        endpoint: Some(endpoint.to_owned()),
        timeout: Some(timeout),
        ..S3Target::shared().settings()
    }
}

/// Every store call without a body gives up after `CLAIMCHECK_S3_TIMEOUT`.
#[tokio::test]
async fn s3_calls_without_a_body_give_up_after_the_timeout() {
    let store = S3Store::new(store_at(&black_hole(), Duration::from_secs(1)))
        .await
        .unwrap();
    let started = Instant::now();
    let results = [
        store.head("k").await.map(|_| ()),
        store.delete_many(&["k".to_owned()]).await.map(|_| ()),
        store.list_parts("k", "u").await.map(|_| ()),
        store.abort_multipart("k", "u").await,
        store.create_multipart("k", "text/plain").await.map(|_| ()),
        store.list_objects("", None).await.map(|_| ()),
        store.check().await,
    ];
    for result in &results {
        assert!(
            matches!(result, Err(claimcheck::store::StoreError::Unavailable(_))),
            "{result:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "7 calls of 1 s each took {:?}",
        started.elapsed()
    );
}

/// The API answers 503 (not a hung request) when S3 is a black hole.
#[tokio::test]
async fn the_api_answers_503_when_s3_never_answers() {
    let hole = black_hole();
    let app = TestApp::spawn_with(
        Store::S3,
        &[
            ("CLAIMCHECK_S3_ENDPOINT", &hole),
            ("CLAIMCHECK_S3_TIMEOUT", "2s"),
        ],
    )
    .await;
    let started = Instant::now();
    let res = app
        .req(Method::POST, "/v1/uploads/multipart")
        .json(&json!({"filename": "a.bin", "content_type": "application/octet-stream", "size": 10}))
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503, "{}", res.text().await.unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
            .await,
        0,
        "the claim of a session that never opened is dropped"
    );
}

/// The worker's own bound on a store call: a call that outlasts it fails
/// the row (deferred, retried later) instead of holding the loop; and a
/// loop held anyway shows in the readiness check.
#[tokio::test]
async fn a_worker_store_call_is_bounded_and_a_wedged_loop_is_seen() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    // The S3 client would wait a minute; the worker's bound is 1 s.
    let store: Arc<dyn ObjectStore> = Arc::new(
        S3Store::new(store_at(&black_hole(), Duration::from_secs(60)))
            .await
            .unwrap(),
    );
    let mut settings = fast_settings(&prefix);
    settings.store_timeout = Duration::from_secs(1);
    let ctx = context(&db, store.clone(), settings.clone());
    ctx.queue
        .enqueue(&[delete(&format!("{prefix}priv/k"), None)])
        .await
        .unwrap();
    let started = Instant::now();
    let outcome = delete_worker::run_once(&ctx).await.unwrap();
    assert_eq!((outcome.leased, outcome.deferred), (1, 1), "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let error = db
        .strings("SELECT last_error FROM claimcheck.pending_deletes")
        .await;
    assert!(error[0].contains("no answer within"), "{error:?}");

    // Without that bound the loop would sit on the call: readiness says so.
    settings.store_timeout = Duration::from_secs(600);
    settings.stall_after = Duration::from_secs(1);
    settings.backoff_max = Duration::ZERO;
    let ctx = context(&db, store, settings);
    db.client()
        .await
        .execute(
            "UPDATE claimcheck.pending_deletes SET next_attempt_at = now()",
            &[],
        )
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let loops = tokio::spawn(jobs::run(ctx.clone(), Some(db.url.clone()), cancel.clone()));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        ctx.liveness
            .stalled(Duration::from_secs(1))
            .contains(&Loop::Deletes),
        "the delete loop is wedged on the black hole"
    );
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), loops).await;
}

//! The S3 server (a Garage of the scenario's own) stopped for a few seconds
//! during uploads, and again during a drain; then started again.

use std::time::{Duration, Instant};

use claimcheck::tokens::Scope;
use claimcheck_tests::{
    db::TestDb,
    faults::{
        check_invariants, record_removals, removals_done, serial, settle_and_check, token,
        wait_for_empty_queue, wait_for_removals, ApiProcess, Caller, Clients, Outage, Pause,
        PrivateGarage,
    },
    jobs::{count, deletes, put_objects},
    procs::WorkerProcess,
    stores::{random_bytes, test_prefix},
};
use reqwest::Method;

const OUTAGE: Duration = Duration::from_secs(4);

/// Both scenarios' start: a Garage of their own, a database that records
/// the queue rows removed, a fresh prefix.
async fn start() -> (PrivateGarage, TestDb, String) {
    let garage = PrivateGarage::start();
    let db = TestDb::new().await;
    record_removals(&db.pool).await;
    (garage, db, test_prefix())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_down_during_uploads_answers_503_and_leaks_nothing() {
    let _serial = serial().await;
    let (garage, db, prefix) = start().await;
    let mut api = ApiProcess::spawn(&db.url, &garage.s3.env(&prefix)).await;
    let token = token(&db.pool, "alice", &[Scope::Upload, Scope::Consume]).await;
    let http = reqwest::Client::new();
    let pause = Pause {
        after_success: Duration::ZERO,
        after_failure: Duration::from_millis(100),
    };
    let clients = Clients::start(
        &Caller::new(&api.base, &token),
        8,
        pause,
        |api, c, i| async move {
            if c % 2 == 0 {
                // Single-shot, 512 KiB.
                return api
                    .req(Method::POST, "/v1/uploads?filename=a.bin")
                    .header("Content-Type", "application/octet-stream")
                    .body(random_bytes(c * 1000 + i, 512 * 1024))
                    .send()
                    .await;
            }
            // Chunked: init, one part, complete (each a request).
            let init = api
                .req(Method::POST, "/v1/uploads/multipart")
                .json(&serde_json::json!({"filename": "m.bin",
                    "content_type": "application/octet-stream", "size": 300_000}))
                .send()
                .await;
            let claim: serde_json::Value = match init {
                Ok(r) if r.status() == 201 => r.json().await.unwrap(),
                other => return other,
            };
            let id = claim["id"].as_str().unwrap();
            let part = api
                .req(Method::PUT, &format!("/v1/uploads/{id}/parts/1"))
                .body(random_bytes(c * 1000 + i, 300_000))
                .send()
                .await;
            match part {
                Ok(p) if p.status() == 200 => {
                    api.req(Method::POST, &format!("/v1/uploads/{id}/complete"))
                        .send()
                        .await
                }
                other => other,
            }
        },
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped_at = clients.elapsed();
    garage.stop();
    tokio::time::sleep(OUTAGE / 2).await;
    // Readiness follows PostgreSQL only: an S3 outage does not empty the pool of pods.
    let ready = http
        .get(format!("{}/readyz", api.base))
        .send()
        .await
        .unwrap();
    let ready_status = ready.status().as_u16();
    let ready_body = ready.text().await.unwrap();
    tokio::time::sleep(OUTAGE / 2).await;
    garage.start_again();
    let restarted_at = clients.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let answers = clients.stop().await;
    assert_eq!(ready_status, 200, "{ready_body}");
    let Outage {
        first: first_503,
        last: last_503,
        count: unavailable,
    } = Outage::seen_in(&answers);
    let ok_after = answers
        .iter()
        .filter(|a| a.ok() && a.at > restarted_at)
        .count();
    let first_ok_after = answers
        .iter()
        .find(|a| a.ok() && a.at > last_503)
        .map(|a| a.at);
    assert!(ok_after > 0, "uploads succeed again once S3 is back");
    assert!(api.alive() && api.panics().is_empty(), "{:?}", api.panics());

    let (settled, checked) = settle_and_check(&db.pool, &db.url, &garage.s3, &prefix).await;
    eprintln!(
        "FAULT s3-down-uploads: Garage stopped at {stopped_at:.1?} for {OUTAGE:?} (back at {restarted_at:.1?}); \
         {} answers: {} ok, {unavailable} x 503 unavailable from {first_503:.1?} to {last_503:.1?}, first success after at {:?}; \
         /readyz during the outage: {ready_status}; {settled}; \
         after: {} objects, all accounted for",
        answers.len(),
        answers.iter().filter(|a| a.ok()).count(),
        first_ok_after,
        checked.objects,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_down_during_a_drain_defers_rows_and_the_worker_finishes_once_it_is_back() {
    const ROWS: usize = 300;
    let _serial = serial().await;
    let (garage, db, prefix) = start().await;
    let keys: Vec<String> = (0..ROWS).map(|i| format!("{prefix}k{i}")).collect();
    put_objects(&*garage.s3.store().await, &keys, 10).await;
    let mut env = garage.s3.worker_env(&db.url, &prefix);
    env.extend([
        ("CLAIMCHECK_DELETE_BATCH", "5".to_owned()),
        ("CLAIMCHECK_DELETE_CONCURRENCY", "1".to_owned()),
        ("CLAIMCHECK_DELETE_BACKOFF_BASE", "500ms".to_owned()),
        ("CLAIMCHECK_DELETE_BACKOFF_MAX", "2s".to_owned()),
        ("CLAIMCHECK_POLL_INTERVAL", "200ms".to_owned()),
    ]);
    let mut worker = WorkerProcess::spawn(&env);
    worker.wait_for_log("worker started", Duration::from_secs(20));
    let items = deletes(&keys);
    // The drain runs (the first 50 rows), S3 goes away, 250 more rows
    // arrive while it is down.
    let queue = claimcheck::db::DeleteQueue::new(db.pool.clone());
    queue.enqueue(&items[..50]).await.unwrap();
    wait_for_removals(&db.url, 50).await;
    garage.stop();
    let done_at_stop = removals_done(&db.url).await;
    queue.enqueue(&items[50..]).await.unwrap();
    tokio::time::sleep(OUTAGE).await;
    let failed_rows = count(
        &db,
        "SELECT count(*) FROM claimcheck.pending_deletes WHERE last_error IS NOT NULL",
    )
    .await;
    let most_attempts = count(
        &db,
        "SELECT coalesce(max(attempts), 0)::bigint FROM claimcheck.pending_deletes",
    )
    .await;
    let dead = count(
        &db,
        "SELECT count(*) FROM claimcheck.pending_deletes WHERE dead_at IS NOT NULL",
    )
    .await;
    let done_in_outage = removals_done(&db.url).await - done_at_stop;
    garage.start_again();
    let back = Instant::now();
    wait_for_empty_queue(
        &db.url,
        &worker,
        Duration::from_secs(30),
        "the worker drains once S3 is back",
    )
    .await;
    let drained_in = back.elapsed();
    worker.terminate();
    assert_eq!(dead, 0, "nothing parked dead in a short outage");
    assert_eq!(done_in_outage, 0, "nothing is marked done while S3 is down");
    assert!(failed_rows > 0, "the outage was seen");
    let checked = check_invariants(&db.pool, &db.url, &garage.s3, &prefix).await;
    assert_eq!(checked.objects, 0);
    assert_eq!(checked.deletes_done, ROWS as i64);
    eprintln!(
        "FAULT s3-down-drain: {ROWS} rows, Garage stopped after {done_at_stop} were done, the other 250 queued during the {OUTAGE:?} outage: \
         {failed_rows} rows failed and were deferred (max attempts {most_attempts}), 0 dead, 0 done meanwhile; \
         the same worker drained the rest {drained_in:.1?} after S3 came back; bucket empty"
    );
}

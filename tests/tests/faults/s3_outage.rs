//! The S3 server (a Garage of the scenario's own) stopped for a few seconds
//! during uploads, and again during a drain; then started again.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use claimcheck::{db::deletes::NewDelete, domain::DeleteReason, tokens::Scope};
use claimcheck_tests::{
    db::TestDb,
    faults::{
        check_invariants, record_removals, serial, settle, settle_context, status_and_code, token,
        ApiProcess, PrivateGarage,
    },
    jobs::{count, put_object},
    procs::WorkerProcess,
    stores::{random_bytes, test_prefix},
};

const OUTAGE: Duration = Duration::from_secs(4);

#[derive(Debug, Clone)]
struct Answer {
    at: Duration,
    status: u16,
    code: Option<String>,
    retry_after: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_down_during_uploads_answers_503_and_leaks_nothing() {
    let _serial = serial().await;
    let garage = PrivateGarage::start();
    let db = TestDb::new().await;
    record_removals(&db.pool).await;
    let prefix = test_prefix();
    let mut api = ApiProcess::spawn(&db.url, &garage.s3.env(&prefix)).await;
    let token = token(&db.pool, "alice", &[Scope::Upload, Scope::Consume]).await;
    let http = reqwest::Client::new();
    let answers = Arc::new(Mutex::new(Vec::<Answer>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let clients: Vec<_> = (0..8u64)
        .map(|c| {
            let (http, base, token) = (http.clone(), api.base.clone(), token.clone());
            let (answers, stop) = (answers.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let res = if c % 2 == 0 {
                        // Single-shot, 512 KiB.
                        http.post(format!("{base}/v1/uploads?filename=a.bin"))
                            .bearer_auth(&token)
                            .header("Content-Type", "application/octet-stream")
                            .body(random_bytes(c * 1000 + i, 512 * 1024))
                            .send()
                            .await
                    } else {
                        // Chunked: init, one part, complete (each a request).
                        let init = http
                            .post(format!("{base}/v1/uploads/multipart"))
                            .bearer_auth(&token)
                            .json(&serde_json::json!({"filename": "m.bin",
                                "content_type": "application/octet-stream", "size": 300_000}))
                            .send()
                            .await;
                        match init {
                            Ok(r) if r.status() == 201 => {
                                let claim: serde_json::Value = r.json().await.unwrap();
                                let id = claim["id"].as_str().unwrap().to_owned();
                                let part = http
                                    .put(format!("{base}/v1/uploads/{id}/parts/1"))
                                    .bearer_auth(&token)
                                    .body(random_bytes(c * 1000 + i, 300_000))
                                    .send()
                                    .await;
                                match part {
                                    Ok(p) if p.status() == 200 => {
                                        http.post(format!("{base}/v1/uploads/{id}/complete"))
                                            .bearer_auth(&token)
                                            .send()
                                            .await
                                    }
                                    other => other,
                                }
                            }
                            other => other,
                        }
                    };
                    let res = res.expect("the API itself stays up");
                    let (status, code, retry_after) = status_and_code(res).await;
                    answers.lock().unwrap().push(Answer {
                        at: t0.elapsed(),
                        status,
                        code,
                        retry_after,
                    });
                    if status != 200 && status != 201 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped_at = t0.elapsed();
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
    let restarted_at = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(ready_status, 200, "{ready_body}");
    let answers = answers.lock().unwrap().clone();
    let bad: Vec<_> = answers
        .iter()
        .filter(|a| !matches!(a.status, 200 | 201))
        .filter(|a| {
            !(a.status == 503
                && a.code.as_deref() == Some("unavailable")
                && a.retry_after.is_some())
        })
        .collect();
    assert!(
        bad.is_empty(),
        "only 503 unavailable with Retry-After: {bad:?}"
    );
    let unavailable: Vec<_> = answers.iter().filter(|a| a.status == 503).collect();
    assert!(!unavailable.is_empty(), "the outage was seen");
    let first_503 = unavailable.first().unwrap().at;
    let last_503 = unavailable.last().unwrap().at;
    let ok_after = answers
        .iter()
        .filter(|a| a.status < 300 && a.at > restarted_at)
        .count();
    let first_ok_after = answers
        .iter()
        .find(|a| a.status < 300 && a.at > last_503)
        .map(|a| a.at);
    assert!(ok_after > 0, "uploads succeed again once S3 is back");
    assert!(api.alive() && api.panics().is_empty(), "{:?}", api.panics());

    let ctx = settle_context(&db.pool, garage.s3.store().await, &prefix);
    let settled = settle(&ctx).await;
    let checked = check_invariants(&db.pool, &db.url, &garage.s3, &prefix).await;
    eprintln!(
        "FAULT s3-down-uploads: Garage stopped at {stopped_at:.1?} for {OUTAGE:?} (back at {restarted_at:.1?}); \
         {} answers: {} ok, {} x 503 unavailable from {first_503:.1?} to {last_503:.1?}, first success after at {:?}; \
         /readyz during the outage: {ready_status}; settle {:.1?}: expired {}, recovered {}, drained {}, reaped {}; \
         after: {} objects, all accounted for",
        answers.len(),
        answers.iter().filter(|a| a.status < 300).count(),
        unavailable.len(),
        first_ok_after,
        settled.took,
        settled.expired,
        settled.recovered,
        settled.drained,
        settled.orphans_reaped,
        checked.objects,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_down_during_a_drain_defers_rows_and_the_worker_finishes_once_it_is_back() {
    const ROWS: usize = 300;
    let _serial = serial().await;
    let garage = PrivateGarage::start();
    let db = TestDb::new().await;
    record_removals(&db.pool).await;
    let prefix = test_prefix();
    let store = garage.s3.store().await;
    let keys: Vec<String> = (0..ROWS).map(|i| format!("{prefix}k{i}")).collect();
    for chunk in keys.chunks(25) {
        futures::future::join_all(chunk.iter().map(|k| put_object(&*store, k, 10))).await;
    }
    let mut env: Vec<(&str, String)> = vec![("DATABASE_URL", db.url.clone())];
    let s3_env = garage.s3.env(&prefix);
    env.extend(s3_env.iter().map(|(k, v)| (k.as_str(), v.clone())));
    env.extend([
        ("CLAIMCHECK_DELETE_BATCH", "5".to_owned()),
        ("CLAIMCHECK_DELETE_CONCURRENCY", "1".to_owned()),
        ("CLAIMCHECK_DELETE_BACKOFF_BASE", "500ms".to_owned()),
        ("CLAIMCHECK_DELETE_BACKOFF_MAX", "2s".to_owned()),
        ("CLAIMCHECK_POLL_INTERVAL", "200ms".to_owned()),
    ]);
    let mut worker = WorkerProcess::spawn(&env);
    worker.wait_for_log("worker started", Duration::from_secs(20));
    let items: Vec<NewDelete> = keys
        .iter()
        .map(|k| NewDelete {
            key: k.clone(),
            upload_id: None,
            reason: DeleteReason::Deleted,
        })
        .collect();
    // The drain runs (the first 50 rows), S3 goes away, 250 more rows
    // arrive while it is down.
    let queue = claimcheck::db::DeleteQueue::new(db.pool.clone());
    queue.enqueue(&items[..50]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&db, "SELECT count(*) FROM public.fault_removed").await < 50 {
        assert!(Instant::now() < deadline, "the drain runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    garage.stop();
    let done_at_stop = count(&db, "SELECT count(*) FROM public.fault_removed").await;
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
    let done_in_outage =
        count(&db, "SELECT count(*) FROM public.fault_removed").await - done_at_stop;
    garage.start_again();
    let back = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&db, "SELECT count(*) FROM claimcheck.pending_deletes").await > 0 {
        assert!(
            Instant::now() < deadline,
            "the worker drains once S3 is back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained_in = back.elapsed();
    worker.signal("TERM");
    assert!(worker.wait(Duration::from_secs(20)).success());
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

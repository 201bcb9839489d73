//! PostgreSQL (a cluster of the scenario's own) stopped for a few seconds
//! and started again, during uploads and during a drain: the API answers
//! 503 `unavailable` with Retry-After meanwhile and recovers without a
//! restart; so does the worker.

use std::time::{Duration, Instant};

use claimcheck::{jobs::delete_worker, tokens::Scope};
use claimcheck_tests::{
    faults::settle_context,
    faults::{
        check_invariants, count_on, record_removals, removals_done, serial, settle_and_check,
        status_and_code, token, wait_for_empty_queue, wait_for_removals, ApiProcess, Caller,
        Clients, Outage, Pause, PrivatePostgres, S3Target,
    },
    jobs::{deletes, put_objects},
    procs::WorkerProcess,
    stores::{random_bytes, test_prefix},
};
use reqwest::Method;

const OUTAGE: Duration = Duration::from_secs(3);

fn pool(url: &str) -> claimcheck::db::Pool {
    claimcheck::db::connect(url, 8).expect("pool")
}

/// Both scenarios' start: a cluster of their own that records the queue
/// rows removed, the shared Garage, a fresh prefix.
async fn start() -> (PrivatePostgres, S3Target, String) {
    let pg = PrivatePostgres::start().await;
    record_removals(&pool(&pg.url)).await;
    (pg, S3Target::shared(), test_prefix())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_during_uploads_answers_503_then_recovers() {
    let _serial = serial().await;
    let (pg, s3, prefix) = start().await;
    let token = token(&pool(&pg.url), "alice", &[Scope::Upload, Scope::Consume]).await;
    let mut env = s3.env(&prefix);
    // The chunked clients only start uploads: no cap in the way.
    env.push(("CLAIMCHECK_MAX_PENDING_PER_OWNER", "100000".into()));
    let mut api = ApiProcess::spawn(&pg.url, &env).await;
    let http = reqwest::Client::new();
    let pause = Pause {
        after_success: Duration::from_millis(50),
        after_failure: Duration::from_millis(50),
    };
    let clients = Clients::start(
        &Caller::new(&api.base, &token),
        6,
        pause,
        |api, c, i| async move {
            match c % 3 {
                0 | 1 => {
                    api.req(Method::POST, "/v1/uploads?filename=a.bin")
                        .header("Content-Type", "application/octet-stream")
                        .body(random_bytes(c * 1000 + i, 256 * 1024))
                        .send()
                        .await
                }
                _ => {
                    api.req(Method::POST, "/v1/uploads/multipart")
                        .json(&serde_json::json!({"filename": "m.bin",
                        "content_type": "application/octet-stream", "size": 1000}))
                        .send()
                        .await
                }
            }
        },
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped_at = clients.elapsed();
    pg.stop();
    tokio::time::sleep(OUTAGE / 2).await;
    let health = http
        .get(format!("{}/healthz", api.base))
        .send()
        .await
        .unwrap()
        .status();
    let ready = http
        .get(format!("{}/readyz", api.base))
        .send()
        .await
        .unwrap();
    let (ready_status, ready_code, _) = status_and_code(ready).await;
    tokio::time::sleep(OUTAGE / 2).await;
    pg.start_again();
    let restarted_at = clients.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let answers = clients.stop().await;
    let ready_after = http
        .get(format!("{}/readyz", api.base))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(health, 200, "liveness does not depend on PostgreSQL");
    assert_eq!(ready_status, 503, "readiness does: {ready_code:?}");
    assert_eq!(ready_after, 200, "ready again without a restart");
    assert!(api.alive(), "the same API process");
    assert!(api.panics().is_empty(), "{:?}", api.panics());

    let Outage {
        first: first_503,
        last: last_503,
        count: unavailable,
    } = Outage::seen_in(&answers);
    let first_ok_after = answers
        .iter()
        .find(|a| a.ok() && a.at > restarted_at)
        .map(|a| a.at)
        .expect("uploads succeed again without restarting the API");
    let ok_before = answers
        .iter()
        .filter(|a| a.ok() && a.at < stopped_at)
        .count();
    let ok_after = answers
        .iter()
        .filter(|a| a.ok() && a.at > restarted_at)
        .count();

    let (settled, checked) = settle_and_check(&pool(&pg.url), &pg.url, &s3, &prefix).await;
    eprintln!(
        "FAULT pg-restart-uploads: PostgreSQL stopped at {stopped_at:.1?} for {OUTAGE:?}, started again at \
         {restarted_at:.1?}; {} answers: {ok_before} ok before, {unavailable} x 503 unavailable (Retry-After) from \
         {first_503:.1?} to {last_503:.1?}, first success at {first_ok_after:.1?} ({:.0?} after the start), \
         {ok_after} ok after; /healthz {health} and /readyz {ready_status} during; {settled}; \
         after: {} objects, all accounted for",
        answers.len(),
        first_ok_after.saturating_sub(restarted_at),
        checked.objects,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_during_a_drain_the_same_worker_finishes() {
    const ROWS: usize = 300;
    let _serial = serial().await;
    let (pg, s3, prefix) = start().await;
    let keys: Vec<String> = (0..ROWS + 50).map(|i| format!("{prefix}k{i}")).collect();
    put_objects(&*s3.store().await, &keys, 10).await;
    let mut env = s3.worker_env(&pg.url, &prefix);
    env.extend([
        ("CLAIMCHECK_DELETE_BATCH", "5".to_owned()),
        ("CLAIMCHECK_DELETE_CONCURRENCY", "1".to_owned()),
        ("CLAIMCHECK_POLL_INTERVAL", "500ms".to_owned()),
        ("CLAIMCHECK_SWEEP_INTERVAL", "500ms".to_owned()),
        // A batch in hand records its outcome once the server is back (see
        // the next test), but a lease statement cut by the stop may have
        // committed unheard: such rows come back when this lease runs out.
        ("CLAIMCHECK_DELETE_LEASE", "3s".to_owned()),
    ]);
    let mut worker = WorkerProcess::spawn(&env);
    worker.wait_for_log("worker started", Duration::from_secs(20));
    claimcheck::db::DeleteQueue::new(pool(&pg.url))
        .enqueue(&deletes(&keys[..ROWS]))
        .await
        .unwrap();
    wait_for_removals(&pg.url, 20).await;
    let done_at_stop = removals_done(&pg.url).await;
    pg.stop();
    tokio::time::sleep(OUTAGE).await;
    assert!(worker.running(), "the worker rides out the outage");
    pg.start_again();
    let back = Instant::now();
    // New rows after the restart: the worker must notice them too (its
    // LISTEN connection was cut with the server).
    let setup = pool(&pg.url);
    let leased_at_start = count_on(
        &pg.url,
        "SELECT count(*) FROM claimcheck.pending_deletes WHERE leased_until > now()",
    )
    .await;
    claimcheck::db::DeleteQueue::new(setup.clone())
        .enqueue(&deletes(&keys[ROWS..]))
        .await
        .unwrap();
    wait_for_empty_queue(
        &pg.url,
        &worker,
        Duration::from_secs(30),
        "the same worker drains once PostgreSQL is back",
    )
    .await;
    let drained_in = back.elapsed();
    assert!(worker.running(), "the same worker process");
    let lines = worker.log_lines();
    let errors = lines
        .iter()
        .filter(|l| l.contains("\"level\":\"ERROR\"") || l.contains("\"level\":\"WARN\""))
        .count();
    worker.terminate();
    let checked = check_invariants(&setup, &pg.url, &s3, &prefix).await;
    assert_eq!(checked.objects, 0);
    assert_eq!(checked.deletes_done, (ROWS + 50) as i64);
    eprintln!(
        "FAULT pg-restart-drain: {ROWS} rows + 50 queued after the restart; PostgreSQL stopped after \
         {done_at_stop} were done, for {OUTAGE:?}; the same worker process drained everything \
         {drained_in:.1?} after the start ({leased_at_start} rows leased at the restart; \
         {errors} warnings/errors logged); 0 dead, bucket empty"
    );
}

/// The store work of a batch is done when PostgreSQL goes away: the worker
/// keeps trying to record the outcome while its lease lasts, so the rows are
/// done as soon as the server is back instead of waiting out the lease and
/// being deleted a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_in_hand_records_its_outcome_once_postgres_is_back() {
    let _serial = serial().await;
    let (pg, s3, prefix) = start().await;
    let store = s3.store().await;
    let keys: Vec<String> = (0..20).map(|i| format!("{prefix}held{i}")).collect();
    put_objects(&*store, &keys, 10).await;
    let setup = pool(&pg.url);
    let ctx = settle_context(&setup, store, &prefix);
    ctx.queue.enqueue(&deletes(&keys)).await.unwrap();
    let lease = ctx
        .queue
        .lease(100, Duration::from_secs(60), 12)
        .await
        .unwrap();
    assert_eq!(lease.rows.len(), keys.len());

    pg.stop();
    let step = tokio::spawn(async move { delete_worker::process(&ctx, &lease).await });
    tokio::time::sleep(OUTAGE).await;
    assert!(
        !step.is_finished(),
        "the outcome waits for the database while the lease lasts"
    );
    pg.start_again();
    let back = Instant::now();
    let outcome = step
        .await
        .unwrap()
        .expect("the outcome is recorded once PostgreSQL is back");
    let recorded_in = back.elapsed();
    assert_eq!(
        (outcome.done, outcome.lost, outcome.deferred),
        (keys.len(), 0, 0),
        "{outcome:?}"
    );
    let checked = check_invariants(&setup, &pg.url, &s3, &prefix).await;
    assert_eq!(checked.objects, 0);
    assert_eq!(
        checked.deletes_done,
        keys.len() as i64,
        "each row removed once"
    );
    eprintln!(
        "FAULT pg-restart-outcome: a leased batch of {} rows had its objects deleted while \
         PostgreSQL was down for {OUTAGE:?}; its outcome was recorded {recorded_in:.1?} after the \
         restart, with a 60 s lease",
        keys.len()
    );
}

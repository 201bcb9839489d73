//! PostgreSQL (a cluster of the scenario's own) stopped for a few seconds
//! and started again, during uploads and during a drain: the API answers
//! 503 `unavailable` with Retry-After meanwhile and recovers without a
//! restart; so does the worker.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use claimcheck::{db::deletes::NewDelete, domain::DeleteReason, tokens::Scope};
use claimcheck_tests::{
    faults::{
        check_invariants, record_removals, serial, settle, settle_context, status_and_code, token,
        ApiProcess, PrivatePostgres, S3Target,
    },
    jobs::put_object,
    procs::WorkerProcess,
    stores::{random_bytes, test_prefix},
};

const OUTAGE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
struct Answer {
    at: Duration,
    status: u16,
    code: Option<String>,
    retry_after: Option<String>,
}

fn pool(url: &str) -> deadpool_postgres::Pool {
    claimcheck::db::connect(url, 8).expect("pool")
}

async fn count(url: &str, sql: &str) -> i64 {
    pool(url)
        .get()
        .await
        .expect("connection")
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Whether `pid` is a live process (not a zombie).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(") ").next().and_then(|r| r.chars().next());
            !matches!(state, Some('Z' | 'X') | None)
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_during_uploads_answers_503_then_recovers() {
    let _serial = serial().await;
    let pg = PrivatePostgres::start().await;
    let s3 = S3Target::shared();
    let prefix = test_prefix();
    let setup = pool(&pg.url);
    record_removals(&setup).await;
    let token = token(&setup, "alice", &[Scope::Upload, Scope::Consume]).await;
    drop(setup);
    let mut env = s3.env(&prefix);
    // The chunked clients only start uploads: no cap in the way.
    env.push(("CLAIMCHECK_MAX_PENDING_PER_OWNER".into(), "100000".into()));
    let mut api = ApiProcess::spawn(&pg.url, &env).await;
    let http = reqwest::Client::new();
    let answers = Arc::new(Mutex::new(Vec::<Answer>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let clients: Vec<_> = (0..6u64)
        .map(|c| {
            let (http, base, token) = (http.clone(), api.base.clone(), token.clone());
            let (answers, stop) = (answers.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let res = match c % 3 {
                        0 | 1 => {
                            http.post(format!("{base}/v1/uploads?filename=a.bin"))
                                .bearer_auth(&token)
                                .header("Content-Type", "application/octet-stream")
                                .body(random_bytes(c * 1000 + i, 256 * 1024))
                                .send()
                                .await
                        }
                        _ => {
                            http.post(format!("{base}/v1/uploads/multipart"))
                                .bearer_auth(&token)
                                .json(&serde_json::json!({"filename": "m.bin",
                                "content_type": "application/octet-stream", "size": 1000}))
                                .send()
                                .await
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
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped_at = t0.elapsed();
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
    let restarted_at = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
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
    let first_ok_after = answers
        .iter()
        .find(|a| a.status < 300 && a.at > restarted_at)
        .map(|a| a.at)
        .expect("uploads succeed again without restarting the API");
    let ok_before = answers
        .iter()
        .filter(|a| a.status < 300 && a.at < stopped_at)
        .count();
    let ok_after = answers
        .iter()
        .filter(|a| a.status < 300 && a.at > restarted_at)
        .count();

    let db = pool(&pg.url);
    let ctx = settle_context(&db, s3.store().await, &prefix);
    let settled = settle(&ctx).await;
    let checked = check_invariants(&db, &pg.url, &s3, &prefix).await;
    eprintln!(
        "FAULT pg-restart-uploads: PostgreSQL stopped at {stopped_at:.1?} for {OUTAGE:?}, started again at \
         {restarted_at:.1?}; {} answers: {ok_before} ok before, {} x 503 unavailable (Retry-After) from \
         {first_503:.1?} to {last_503:.1?}, first success at {first_ok_after:.1?} ({:.0?} after the start), \
         {ok_after} ok after; /healthz {health} and /readyz {ready_status} during; settle {:.1?}: expired {}, \
         recovered {}, drained {}, reaped {}; after: {} objects, all accounted for",
        answers.len(),
        unavailable.len(),
        first_ok_after.saturating_sub(restarted_at),
        settled.took,
        settled.expired,
        settled.recovered,
        settled.drained,
        settled.orphans_reaped,
        checked.objects,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_during_a_drain_the_same_worker_finishes() {
    const ROWS: usize = 300;
    let _serial = serial().await;
    let pg = PrivatePostgres::start().await;
    let s3 = S3Target::shared();
    let prefix = test_prefix();
    let setup = pool(&pg.url);
    record_removals(&setup).await;
    let store = s3.store().await;
    let keys: Vec<String> = (0..ROWS + 50).map(|i| format!("{prefix}k{i}")).collect();
    for chunk in keys.chunks(25) {
        futures::future::join_all(chunk.iter().map(|k| put_object(&*store, k, 10))).await;
    }
    let items = |keys: &[String]| -> Vec<NewDelete> {
        keys.iter()
            .map(|k| NewDelete {
                key: k.clone(),
                upload_id: None,
                reason: DeleteReason::Deleted,
            })
            .collect()
    };
    let mut env: Vec<(&str, String)> = vec![("DATABASE_URL", pg.url.clone())];
    let s3_env = s3.env(&prefix);
    env.extend(s3_env.iter().map(|(k, v)| (k.as_str(), v.clone())));
    env.extend([
        ("CLAIMCHECK_DELETE_BATCH", "5".to_owned()),
        ("CLAIMCHECK_DELETE_CONCURRENCY", "1".to_owned()),
        ("CLAIMCHECK_POLL_INTERVAL", "500ms".to_owned()),
        ("CLAIMCHECK_SWEEP_INTERVAL", "500ms".to_owned()),
        // A batch in hand when the server went away cannot record its
        // outcome: its rows come back when the lease runs out.
        ("CLAIMCHECK_DELETE_LEASE", "3s".to_owned()),
    ]);
    let mut worker = WorkerProcess::spawn(&env);
    worker.wait_for_log("worker started", Duration::from_secs(20));
    claimcheck::db::DeleteQueue::new(setup.clone())
        .enqueue(&items(&keys[..ROWS]))
        .await
        .unwrap();
    drop(setup);
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&pg.url, "SELECT count(*) FROM public.fault_removed").await < 20 {
        assert!(Instant::now() < deadline, "the drain starts");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done_at_stop = count(&pg.url, "SELECT count(*) FROM public.fault_removed").await;
    pg.stop();
    tokio::time::sleep(OUTAGE).await;
    assert!(running(worker.pid()), "the worker rides out the outage");
    pg.start_again();
    let back = Instant::now();
    // New rows after the restart: the worker must notice them too (its
    // LISTEN connection was cut with the server).
    let setup = pool(&pg.url);
    let leased_at_start = count(
        &pg.url,
        "SELECT count(*) FROM claimcheck.pending_deletes WHERE leased_until > now()",
    )
    .await;
    claimcheck::db::DeleteQueue::new(setup.clone())
        .enqueue(&items(&keys[ROWS..]))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&pg.url, "SELECT count(*) FROM claimcheck.pending_deletes").await > 0 {
        assert!(
            Instant::now() < deadline,
            "the same worker drains once PostgreSQL is back (alive: {}); log:\n{}",
            running(worker.pid()),
            std::fs::read_link(format!("/proc/{}/fd/1", worker.pid()))
                .and_then(std::fs::read)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained_in = back.elapsed();
    assert!(running(worker.pid()), "the same worker process");
    let lines = worker.log_lines();
    let errors = lines
        .iter()
        .filter(|l| l.contains("\"level\":\"ERROR\"") || l.contains("\"level\":\"WARN\""))
        .count();
    worker.signal("TERM");
    assert!(worker.wait(Duration::from_secs(20)).success());
    let checked = check_invariants(&setup, &pg.url, &s3, &prefix).await;
    assert_eq!(checked.objects, 0);
    assert_eq!(checked.deletes_done, (ROWS + 50) as i64);
    eprintln!(
        "FAULT pg-restart-drain: {ROWS} rows + 50 queued after the restart; PostgreSQL stopped after \
         {done_at_stop} were done, for {OUTAGE:?}; the same worker process drained everything \
         {drained_in:.1?} after the start ({leased_at_start} rows still leased at the start came back after the 3 s lease; \
         {errors} warnings/errors logged); 0 dead, bucket empty"
    );
}

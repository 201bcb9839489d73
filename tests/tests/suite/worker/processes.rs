//! Real `claimcheck-worker` processes on a shared queue: a 4-process drain,
//! a worker facing a dead S3, kill -9 of a lease holder, and SIGTERM with
//! rows in hand.

use std::time::{Duration, Instant};

use claimcheck_tests::{
    db::TestDb,
    jobs::{
        assert_handed_back, count, delete, exists, put_object, record_removals, wait_until_empty,
        walk_files,
    },
    procs::{
        black_hole, closed_port, http_get, log_duration_secs, log_field, s3_worker_env,
        RefusedPort, WorkerProcess,
    },
    stores::{s3_store, test_prefix},
};

#[tokio::test(flavor = "multi_thread")]
async fn four_processes_drain_20000_rows_each_exactly_once() {
    const ROWS: usize = 20_000;
    let db = TestDb::new().await;
    record_removals(&db.pool).await;
    let root = tempfile::tempdir().unwrap();
    for dir in 0..100 {
        std::fs::create_dir_all(root.path().join(format!("d{dir}"))).unwrap();
    }
    for i in 0..ROWS {
        std::fs::write(root.path().join(format!("d{}/o{i}", i % 100)), b"x").unwrap();
    }
    let env = vec![
        ("DATABASE_URL", db.url.clone()),
        ("CLAIMCHECK_STORE", "fs".to_owned()),
        ("CLAIMCHECK_FS_ROOT", root.path().display().to_string()),
        ("CLAIMCHECK_DELETE_BATCH", "100".to_owned()),
        ("CLAIMCHECK_DB_POOL_SIZE", "4".to_owned()),
        // Far longer than the test: only LISTEN/NOTIFY can wake the workers.
        ("CLAIMCHECK_POLL_INTERVAL", "10m".to_owned()),
    ];
    let mut workers: Vec<_> = (0..4).map(|_| WorkerProcess::spawn(&env)).collect();
    for w in &workers {
        w.wait_for_log("worker started", Duration::from_secs(20));
    }
    let started = Instant::now();
    db.client()
        .await
        .execute(
            "INSERT INTO claimcheck.pending_deletes (object_key, reason)
             SELECT 'd' || (i % 100) || '/o' || i, 'deleted' FROM generate_series(0, $1::bigint - 1) AS i",
            &[&(ROWS as i64)],
        )
        .await
        .unwrap();
    wait_until_empty(&db, Duration::from_secs(120)).await;
    let took = started.elapsed();
    eprintln!(
        "4 worker processes drained {ROWS} rows in {took:.1?} ({:.0} rows/s)",
        ROWS as f64 / took.as_secs_f64()
    );
    for w in &workers {
        w.signal("TERM");
    }
    let mut done_by_process = Vec::new();
    for w in &mut workers {
        assert!(w.wait(Duration::from_secs(20)).success(), "SIGTERM exits 0");
        let done: i64 = w
            .events("delete batch")
            .iter()
            .filter_map(|l| log_field(l, "done"))
            .sum();
        done_by_process.push(done);
    }
    assert_eq!(
        done_by_process.iter().sum::<i64>(),
        ROWS as i64,
        "{done_by_process:?}"
    );
    assert!(
        done_by_process.iter().filter(|d| **d > 0).count() >= 2,
        "the work is shared: {done_by_process:?}"
    );
    let removed = count(&db, "SELECT count(DISTINCT id) FROM public.removed").await;
    let leased_twice = count(
        &db,
        "SELECT count(*) FROM public.removed WHERE attempts <> 1",
    )
    .await;
    assert_eq!(
        (removed, leased_twice),
        (ROWS as i64, 0),
        "each row leased and done once"
    );
    let left = walk_files(root.path());
    assert!(
        left.is_empty(),
        "every object deleted; left: {:?}",
        &left[..left.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_facing_a_dead_s3_backs_off_and_another_drains_once_it_is_back() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let store = s3_store().await;
    let keys: Vec<String> = (0..5).map(|i| format!("{prefix}k{i}")).collect();
    for key in &keys {
        put_object(&store, key, 3).await;
    }
    let tuning = [
        ("CLAIMCHECK_DELETE_BACKOFF_BASE", "1s".to_owned()),
        ("CLAIMCHECK_POLL_INTERVAL", "200ms".to_owned()),
    ];
    let down = RefusedPort::new();
    let mut env = s3_worker_env(&db.url, &prefix, Some(down.url()));
    env.extend(tuning.clone());
    let mut worker = WorkerProcess::spawn(&env);
    worker.wait_for_log("worker started", Duration::from_secs(20));
    let items: Vec<_> = keys.iter().map(|k| delete(k, None)).collect();
    let queue = claimcheck::db::DeleteQueue::new(db.pool.clone());
    queue.enqueue(&items).await.unwrap();
    let least_attempts = "SELECT min(attempts)::bigint FROM claimcheck.pending_deletes";
    let deadline = Instant::now() + Duration::from_secs(40);
    while count(&db, least_attempts).await < 3 {
        assert!(Instant::now() < deadline, "three failed attempts each");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.terminate();
    assert_eq!(
        queue.stats().await.unwrap().dead,
        0,
        "none dead before max attempts"
    );
    // Each attempt's delay lies in [base x 2^(n-1) / 2, base x 2^(n-1)].
    let failures = worker.events("delete failed; deferred");
    assert!(
        failures.len() >= 15,
        "5 rows x 3 attempts: {}",
        failures.len()
    );
    for line in failures {
        let attempts = log_field(&line, "attempts").unwrap() as i32;
        let delay = log_duration_secs(&line, "delay").unwrap();
        let full = f64::from(1u32 << (attempts - 1));
        assert!(
            delay >= full / 2.0 && delay <= full,
            "attempt {attempts}: {delay}s"
        );
        assert!(line.contains("unavailable"), "the error is kept: {line}");
    }

    let mut env = s3_worker_env(&db.url, &prefix, None);
    env.extend(tuning);
    let mut healed = WorkerProcess::spawn(&env);
    // Rows wait out their backoff (at most 8 s at the fourth attempt).
    wait_until_empty(&db, Duration::from_secs(30)).await;
    for key in &keys {
        assert!(!exists(&store, key).await, "{key} deleted once S3 is back");
    }
    healed.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_a_lease_holder_hands_its_rows_to_another_worker() {
    let db = TestDb::new().await;
    record_removals(&db.pool).await;
    let prefix = test_prefix();
    let store = s3_store().await;
    let keys: Vec<String> = (0..30).map(|i| format!("{prefix}k{i}")).collect();
    for key in &keys {
        put_object(&store, key, 3).await;
    }
    let lease = [
        ("CLAIMCHECK_DELETE_LEASE", "3s".to_owned()),
        ("CLAIMCHECK_POLL_INTERVAL", "500ms".to_owned()),
    ];
    // The first worker's store never answers: it holds its lease until killed.
    let mut env = s3_worker_env(
        &db.url,
        &prefix,
        Some(format!("http://127.0.0.1:{}", black_hole())),
    );
    env.extend(lease.clone());
    let mut stuck = WorkerProcess::spawn(&env);
    stuck.wait_for_log("worker started", Duration::from_secs(20));
    let items: Vec<_> = keys.iter().map(|k| delete(k, None)).collect();
    claimcheck::db::DeleteQueue::new(db.pool.clone())
        .enqueue(&items)
        .await
        .unwrap();
    let queue = claimcheck::db::DeleteQueue::new(db.pool.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while queue.stats().await.unwrap().leased < 30 {
        assert!(
            Instant::now() < deadline,
            "the first worker leases the rows"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stuck.signal("KILL");
    stuck.wait(Duration::from_secs(5));
    let killed_at = Instant::now();

    let mut env = s3_worker_env(&db.url, &prefix, None);
    env.extend(lease);
    let mut rescuer = WorkerProcess::spawn(&env);
    wait_until_empty(&db, Duration::from_secs(30)).await;
    assert!(
        killed_at.elapsed() >= Duration::from_secs(2),
        "rows come back only when the lease runs out"
    );
    for key in &keys {
        assert!(
            !exists(&store, key).await,
            "{key} deleted by the second worker"
        );
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM public.removed WHERE attempts = 2"
        )
        .await,
        30,
        "each row was leased by the dead worker, then done by the rescuer"
    );
    rescuer.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_hands_back_rows_in_hand_within_the_shutdown_timeout() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let mut env = s3_worker_env(
        &db.url,
        &prefix,
        Some(format!("http://127.0.0.1:{}", black_hole())),
    );
    env.push(("CLAIMCHECK_SHUTDOWN_TIMEOUT", "1s".to_owned()));
    let port = closed_port();
    env.push(("CLAIMCHECK_METRICS_LISTEN", format!("127.0.0.1:{port}")));
    let mut worker = WorkerProcess::spawn(&env);
    worker.wait_for_log("worker started", Duration::from_secs(20));
    let queue = claimcheck::db::DeleteQueue::new(db.pool.clone());
    let items: Vec<_> = (0..10)
        .map(|i| delete(&format!("{prefix}k{i}"), None))
        .collect();
    queue.enqueue(&items).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while queue.stats().await.unwrap().leased < 10 {
        assert!(Instant::now() < deadline, "the worker leases the rows");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = http_get(port, "/metrics");
    for name in [
        "claimcheck_delete_queue_rows{state=\"leased\"}",
        "claimcheck_deletes_total{outcome=\"done\",reason=\"unconsumed\"} 0",
        "claimcheck_sweeps_total{outcome=\"expired\"}",
        "claimcheck_db_pool_connections{state=\"idle\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
    assert!(http_get(port, "/readyz").contains("\"database\":\"ok\""));

    let signalled = Instant::now();
    worker.signal("TERM");
    assert!(worker.wait(Duration::from_secs(10)).success(), "exits 0");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "bounded by the timeout"
    );
    assert_handed_back(&db, 10, "rows handed back at once").await;
}

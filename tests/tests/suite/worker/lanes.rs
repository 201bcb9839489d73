//! A worker process keeps two batches in hand (its lanes), and SIGTERM
//! hands every one of them back within the shutdown timeout.

use std::time::{Duration, Instant};

use claimcheck_tests::{
    db::TestDb,
    jobs::{assert_handed_back, delete},
    procs::{black_hole, s3_worker_env, WorkerProcess},
    stores::test_prefix,
};

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_hands_back_the_batches_of_every_lane() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    // S3 never answers: every batch stays in hand until the shutdown.
    let mut env = s3_worker_env(
        &db.url,
        &prefix,
        Some(format!("http://127.0.0.1:{}", black_hole())),
    );
    env.push(("CLAIMCHECK_SHUTDOWN_TIMEOUT", "1s".to_owned()));
    env.push(("CLAIMCHECK_DELETE_BATCH", "100".to_owned()));
    let mut worker = WorkerProcess::spawn(&env);
    worker.wait_for_log("worker started", Duration::from_secs(20));
    let queue = claimcheck::db::DeleteQueue::new(db.pool.clone());
    let items: Vec<_> = (0..250)
        .map(|i| delete(&format!("{prefix}k{i}"), None))
        .collect();
    queue.enqueue(&items).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while queue.stats().await.unwrap().leased < 200 {
        assert!(
            Instant::now() < deadline,
            "two lanes lease a batch each: {:?}",
            queue.stats().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats.leased, stats.due),
        (200, 50),
        "two batches in hand, no more"
    );

    worker.signal("TERM");
    assert!(worker.wait(Duration::from_secs(10)).success(), "exits 0");
    assert_handed_back(&db, 250, "every lane's rows handed back").await;
}

//! `kill -9` of a worker in the middle of a lease, three times over, while
//! it drains 2,000 rows (real objects, multipart sessions, missing keys);
//! a last worker finishes. No row lost, none dead, every object gone.

use std::time::{Duration, Instant};

use claimcheck::{db::deletes::NewDelete, domain::DeleteReason};
use claimcheck_tests::{
    db::TestDb,
    faults::{check_invariants, record_removals, serial, wait_for_empty_queue, S3Target},
    jobs::{count, deletes, open_session, put_objects, sessions},
    procs::WorkerProcess,
    stores::test_prefix,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

const ROWS: usize = 2000;
const OBJECTS: usize = 150;
const SESSIONS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_workers_mid_lease_loses_no_delete() {
    let _serial = serial().await;
    let db = TestDb::new().await;
    record_removals(&db.pool).await;
    let prefix = test_prefix();
    let s3 = S3Target::shared();
    let store = s3.store().await;
    let objects: Vec<String> = (0..OBJECTS).map(|i| format!("{prefix}obj{i}")).collect();
    put_objects(&*store, &objects, 100).await;
    let mut items = deletes(&objects);
    for i in 0..SESSIONS {
        let key = format!("{prefix}session{i}");
        let upload_id = open_session(&*store, &key, 1000).await;
        items.push(NewDelete {
            key,
            upload_id: Some(upload_id),
            reason: DeleteReason::ClaimExpired,
        });
    }
    for i in items.len()..ROWS {
        items.push(NewDelete {
            key: format!("{prefix}missing{i}"),
            upload_id: None,
            reason: DeleteReason::Replaced,
        });
    }

    let mut env = s3.worker_env(&db.url, &prefix);
    env.extend([
        ("CLAIMCHECK_DELETE_BATCH", "20".to_owned()),
        ("CLAIMCHECK_DELETE_LEASE", "2s".to_owned()),
        // One DeleteObjects request per batch: a batch's keys spread over
        // more requests finish sooner, and a kill 0-300 ms after a lease
        // then more often finds the batch already done (nothing to hand
        // over, which fails the test without telling anything).
        ("CLAIMCHECK_DELETE_CONCURRENCY", "1".to_owned()),
        ("CLAIMCHECK_POLL_INTERVAL", "200ms".to_owned()),
        ("CLAIMCHECK_DB_POOL_SIZE", "4".to_owned()),
    ]);
    let queue = claimcheck::db::DeleteQueue::new(db.pool.clone());
    queue.enqueue(&items).await.unwrap();
    let started = Instant::now();

    let mut rng = StdRng::seed_from_u64(7);
    let mut leased_at_kill = Vec::new();
    for round in 0..3 {
        // The lease tokens earlier victims held: a lease with another token
        // is this worker's, the only one alive. (Counting leased rows
        // instead missed it when an earlier victim's 2 s lease ran out while
        // this worker started on a loaded machine.)
        let client = db.client().await;
        let earlier: Vec<uuid::Uuid> = client
            .query(
                "SELECT DISTINCT lease_token FROM claimcheck.pending_deletes
                  WHERE lease_token IS NOT NULL",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut worker = WorkerProcess::spawn(&env);
        let deadline = Instant::now() + Duration::from_secs(20);
        let its_lease = "SELECT count(*) FROM claimcheck.pending_deletes
                          WHERE leased_until > now() AND lease_token <> ALL($1)";
        while client
            .query_one(its_lease, &[&earlier])
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 0
        {
            assert!(
                Instant::now() < deadline,
                "round {round}: the worker leases rows"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        let stats = queue.stats().await.unwrap();
        worker.signal("KILL");
        worker.wait(Duration::from_secs(5));
        leased_at_kill.push(stats.leased);
    }
    let left_after_kills = count(&db, "SELECT count(*) FROM claimcheck.pending_deletes").await;
    let killed_after = started.elapsed();

    let mut finisher = WorkerProcess::spawn(&env);
    let finisher_started = Instant::now();
    wait_for_empty_queue(
        &db.url,
        &finisher,
        Duration::from_secs(60),
        "the last worker drains the queue",
    )
    .await;
    let drained_in = finisher_started.elapsed();
    finisher.terminate();

    let removed = count(&db, "SELECT count(DISTINCT id) FROM public.removed").await;
    let handed_over = count(
        &db,
        "SELECT count(*) FROM public.removed WHERE attempts >= 2",
    )
    .await;
    let max_attempts = count(
        &db,
        "SELECT coalesce(max(attempts), 0)::bigint FROM public.removed",
    )
    .await;
    assert_eq!(
        removed, ROWS as i64,
        "every row done exactly once, none dropped"
    );
    assert!(
        handed_over > 0,
        "rows leased by a killed worker came back to another: {leased_at_kill:?}"
    );
    assert!(
        sessions(&*store, &prefix).await.is_empty(),
        "sessions aborted"
    );
    let checked = check_invariants(&db.pool, &db.url, &s3, &prefix).await;
    assert_eq!(checked.objects, 0);
    eprintln!(
        "FAULT worker-kill: {ROWS} rows ({OBJECTS} objects, {SESSIONS} sessions); 3 workers killed \
         holding {leased_at_kill:?} leased rows, {left_after_kills} rows left after {killed_after:.1?}; \
         the last worker drained them in {drained_in:.1?}; {handed_over} rows were leased twice or more \
         (max attempts {max_attempts}); 0 dead, 0 lost, bucket empty"
    );
}

//! The delete queue's statements, run from many connections at once.

mod pipelined;

use std::{collections::HashSet, time::Duration};

use claimcheck::{
    db::{deletes::NewDelete, DeleteQueue},
    domain::DeleteReason,
};
use claimcheck_tests::db::TestDb;

const LONG: Duration = Duration::from_secs(600);

async fn fill(db: &TestDb, n: i64) {
    db.client()
        .await
        .execute(
            "INSERT INTO claimcheck.pending_deletes (object_key, reason)
             SELECT 'k/' || i, 'deleted' FROM generate_series(1, $1::bigint) AS i",
            &[&n],
        )
        .await
        .unwrap();
}

fn one(key: &str) -> Vec<NewDelete> {
    vec![NewDelete {
        key: key.into(),
        upload_id: Some("u-1".into()),
        reason: DeleteReason::ClaimExpired,
    }]
}

#[tokio::test]
async fn eight_connections_lease_every_row_exactly_once() {
    let db = TestDb::new().await;
    fill(&db, 10_000).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let queue = DeleteQueue::new(db.pool.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let lease = queue.lease(100, LONG, 12).await.unwrap();
                if lease.rows.is_empty() {
                    return mine;
                }
                assert!(lease.rows.len() <= 100, "a lease never exceeds its limit");
                mine.extend(lease.rows.into_iter().map(|r| r.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut workers_with_rows = 0;
    for task in tasks {
        let ids = task.await.unwrap();
        workers_with_rows += usize::from(!ids.is_empty());
        total += ids.len();
        seen.extend(ids);
    }
    assert_eq!(total, 10_000, "no row leased twice");
    assert_eq!(seen.len(), 10_000, "every row leased");
    assert!(workers_with_rows > 1, "SKIP LOCKED spreads the work");

    let queue = DeleteQueue::new(db.pool.clone());
    assert!(
        queue.lease(100, LONG, 12).await.unwrap().rows.is_empty(),
        "leased rows are invisible"
    );
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats.leased, stats.due, stats.deferred, stats.dead),
        (10_000, 0, 0, 0)
    );
}

#[tokio::test]
async fn a_lease_that_runs_out_makes_its_rows_visible_again() {
    let db = TestDb::new().await;
    let queue = DeleteQueue::new(db.pool.clone());
    queue.enqueue(&one("a")).await.unwrap();
    let first = queue
        .lease(10, Duration::from_millis(500), 12)
        .await
        .unwrap();
    assert_eq!(first.rows.len(), 1);
    assert_eq!(first.rows[0].attempts, 1);
    assert_eq!(first.rows[0].upload_id.as_deref(), Some("u-1"));
    assert!(queue.lease(10, LONG, 12).await.unwrap().rows.is_empty());

    tokio::time::sleep(Duration::from_millis(700)).await;
    let second = queue.lease(10, LONG, 12).await.unwrap();
    assert_eq!(second.rows.len(), 1, "the crashed worker's row comes back");
    assert_eq!(second.rows[0].attempts, 2, "attempts count leases");

    // The first holder's lease is over: its late outcome must not land.
    assert_eq!(
        queue.done(first.token, &[first.rows[0].id]).await.unwrap(),
        Vec::<i64>::new()
    );
    assert!(!queue
        .defer(first.token, first.rows[0].id, LONG, "late")
        .await
        .unwrap());
    assert!(!queue
        .park_dead(first.token, first.rows[0].id, "late")
        .await
        .unwrap());
    assert_eq!(
        queue
            .done(second.token, &[second.rows[0].id])
            .await
            .unwrap(),
        [second.rows[0].id]
    );
    assert_eq!(queue.stats().await.unwrap(), Default::default());
}

#[tokio::test]
async fn defer_hides_a_row_until_its_next_attempt_and_keeps_its_error() {
    let db = TestDb::new().await;
    let queue = DeleteQueue::new(db.pool.clone());
    queue.enqueue(&one("a")).await.unwrap();
    let lease = queue.lease(10, LONG, 12).await.unwrap();
    let id = lease.rows[0].id;
    assert!(queue
        .defer(lease.token, id, Duration::from_millis(400), "s3 down")
        .await
        .unwrap());
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.deferred, stats.leased, stats.due), (1, 0, 0));
    assert!(queue.lease(10, LONG, 12).await.unwrap().rows.is_empty());

    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(queue.stats().await.unwrap().due, 1);
    let again = queue.lease(10, LONG, 12).await.unwrap();
    assert_eq!(again.rows[0].attempts, 2);
    assert_eq!(again.rows[0].last_error.as_deref(), Some("s3 down"));
}

#[tokio::test]
async fn dead_rows_are_kept_and_can_be_retried() {
    let db = TestDb::new().await;
    let queue = DeleteQueue::new(db.pool.clone());
    queue.enqueue(&one("a")).await.unwrap();
    let lease = queue.lease(10, LONG, 12).await.unwrap();
    assert!(queue
        .park_dead(lease.token, lease.rows[0].id, "AccessDenied")
        .await
        .unwrap());
    assert!(
        queue.lease(10, LONG, 12).await.unwrap().rows.is_empty(),
        "dead rows are not leased"
    );
    let dead = queue.list_dead(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0.last_error.as_deref(), Some("AccessDenied"));
    assert_eq!(queue.stats().await.unwrap().dead, 1);

    assert_eq!(
        queue
            .retry_dead(None, &claimcheck::db::Actor::cli())
            .await
            .unwrap(),
        1
    );
    let back = queue.lease(10, LONG, 12).await.unwrap();
    assert_eq!(back.rows.len(), 1);
    assert_eq!(
        back.rows[0].attempts, 1,
        "a retried row starts counting again"
    );
}

#[tokio::test]
async fn a_row_whose_workers_keep_dying_ends_up_dead() {
    let db = TestDb::new().await;
    let queue = DeleteQueue::new(db.pool.clone());
    queue.enqueue(&one("poison")).await.unwrap();
    for attempt in 1..=3 {
        let lease = queue
            .lease(10, Duration::from_millis(100), 3)
            .await
            .unwrap();
        assert_eq!(lease.rows.len(), 1, "attempt {attempt}");
        tokio::time::sleep(Duration::from_millis(200)).await; // the worker "crashes"
    }
    assert!(queue.lease(10, LONG, 3).await.unwrap().rows.is_empty());
    let dead = queue.list_dead(10).await.unwrap();
    assert_eq!(dead.len(), 1, "parked, never dropped");
    assert!(dead[0]
        .0
        .last_error
        .as_deref()
        .unwrap()
        .contains("leased 3 times"));
}

#[tokio::test]
async fn release_hands_rows_back_without_counting_an_attempt() {
    let db = TestDb::new().await;
    let queue = DeleteQueue::new(db.pool.clone());
    queue.enqueue(&one("a")).await.unwrap();
    let lease = queue.lease(10, LONG, 12).await.unwrap();
    assert_eq!(
        queue
            .release(lease.token, &[lease.rows[0].id])
            .await
            .unwrap(),
        1
    );
    let again = queue.lease(10, LONG, 12).await.unwrap();
    assert_eq!(again.rows[0].attempts, 1);
}

#[tokio::test]
async fn stats_report_the_oldest_due_row() {
    let db = TestDb::new().await;
    let queue = DeleteQueue::new(db.pool.clone());
    db.client()
        .await
        .execute(
            "INSERT INTO claimcheck.pending_deletes (object_key, reason, next_attempt_at)
             VALUES ('old', 'deleted', now() - interval '90 seconds'), ('new', 'deleted', now())",
            &[],
        )
        .await
        .unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.due, 2);
    assert!(
        (90.0..100.0).contains(&stats.oldest_due_seconds),
        "{stats:?}"
    );
}

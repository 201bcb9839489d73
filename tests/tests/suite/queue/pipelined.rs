//! The delete worker's round trip per batch: a batch's done rows and the
//! next lease in one request ([`DeleteQueue::done_and_lease`]), and the
//! live-key check that rides on the lease, from many connections at once.

use std::{collections::HashMap, time::Duration};

use claimcheck::db::{deletes::LeaseTerms, DeleteQueue};
use claimcheck_tests::{
    db::TestDb,
    jobs::{count, record_removals, PlantClaim},
};

use super::{fill, LONG};

const TERMS: LeaseTerms = LeaseTerms {
    limit: 100,
    lease: LONG,
    max_attempts: 12,
};

/// Eight connections each lease a batch, then record it done and lease the
/// next in one round trip, until nothing is due: every row is leased once
/// and removed once by the lease that holds it, with its `object.deleted`
/// event; the lease flags exactly the live keys (a registry row's, an
/// uploaded claim's), whoever leased them.
#[tokio::test(flavor = "multi_thread")]
async fn eight_connections_record_done_and_lease_the_next_batch_in_one_round_trip() {
    const ROWS: i64 = 5_000;
    let db = TestDb::new().await;
    record_removals(&db.pool).await;
    fill(&db, ROWS).await;
    for i in 1..=20 {
        PlantClaim::uploaded(&format!("k/{i}")).plant(&db).await;
    }
    db.client()
        .await
        .execute(
            "INSERT INTO claimcheck.objects (object_key, owner, size, content_type, filename, public, created_at)
             SELECT 'k/' || i, 'owner-1', 1, 'text/plain', 'r.txt', false, now()
               FROM generate_series(21, 50) AS i",
            &[],
        )
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let queue = DeleteQueue::new(db.pool.clone());
        tasks.push(tokio::spawn(async move {
            let mut live = HashMap::new();
            let (mut leased, mut removed) = (0, 0);
            let mut lease = queue
                .lease(TERMS.limit, TERMS.lease, TERMS.max_attempts)
                .await
                .unwrap();
            while !lease.rows.is_empty() {
                leased += lease.rows.len();
                live.extend(lease.live.clone());
                let ids: Vec<i64> = lease.rows.iter().map(|r| r.id).collect();
                let both = queue
                    .done_and_lease(lease.token, &ids, TERMS)
                    .await
                    .unwrap();
                let gone = both.removed.unwrap();
                assert_eq!(gone.len(), ids.len(), "the lease's own rows all go");
                removed += gone.len();
                lease = both.next.unwrap();
            }
            (leased, removed, live)
        }));
    }
    let (mut leased, mut removed, mut live) = (0, 0, HashMap::new());
    for task in tasks {
        let (l, r, v) = task.await.unwrap();
        leased += l;
        removed += r;
        live.extend(v);
    }
    assert_eq!((leased, removed), (ROWS as usize, ROWS as usize));
    assert_eq!(live.len(), 50, "{live:?}");
    for i in 1..=50 {
        let expected = if i <= 20 {
            "an uploaded claim"
        } else {
            "a registry row"
        };
        assert_eq!(live[&format!("k/{i}")], expected);
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM public.removed WHERE attempts = 1 AND NOT dead"
        )
        .await,
        ROWS,
        "each row leased once, then removed"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(DISTINCT data->>'key') FROM claimcheck.events WHERE type = 'object.deleted'"
        )
        .await,
        ROWS,
        "one event per row"
    );
}

/// A done for a lease that ran out removes nothing of the rows another
/// lease holds now, and the lease that went with it still comes back.
#[tokio::test]
async fn a_done_whose_lease_ran_out_removes_nothing_and_its_next_lease_still_comes() {
    let db = TestDb::new().await;
    fill(&db, 150).await;
    let queue = DeleteQueue::new(db.pool.clone());
    let late = queue
        .lease(100, Duration::from_millis(100), 12)
        .await
        .unwrap();
    assert_eq!(late.rows.len(), 100);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let current = queue.lease(100, LONG, 12).await.unwrap();
    assert_eq!(
        current.rows.len(),
        100,
        "the late lease's rows are due again"
    );

    let ids: Vec<i64> = late.rows.iter().map(|r| r.id).collect();
    let both = queue.done_and_lease(late.token, &ids, TERMS).await.unwrap();
    assert!(both.removed.unwrap().is_empty(), "fenced by the token");
    let next = both.next.unwrap();
    assert_eq!(next.rows.len(), 50, "the rows no lease holds");
    assert_eq!(queue.stats().await.unwrap().leased, 150);
}

//! The per-owner count of pending claims (`claimcheck.owner_pending`, kept
//! by triggers, migration V8) that the in-flight cap reads instead of
//! counting: it must equal the real count after every kind of change, made
//! from many connections at once, multi-owner statements included (which
//! take the counters in owner order, so they never deadlock each other).

use std::{collections::BTreeMap, time::Duration};

use claimcheck::db::{
    claims::{Caps, NewClaim},
    ClaimStore,
};
use claimcheck_tests::db::TestDb;

const OWNERS: [&str; 5] = ["o-a", "o-b", "o-c", "o-d", "o-e"];

fn new_claim(owner: &str) -> NewClaim {
    crate::support::new_claim(owner, Duration::from_secs(3600))
}

/// `(owner, counter, real count)` for every owner either side knows.
async fn compare(db: &TestDb) -> Vec<(String, i64, i64)> {
    let rows = db
        .client()
        .await
        .query(
            "SELECT coalesce(p.owner, c.owner), coalesce(p.pending, 0), coalesce(c.n, 0)
               FROM claimcheck.owner_pending p
               FULL JOIN (SELECT owner, count(*) AS n FROM claimcheck.upload_claims
                           WHERE status = 'pending' GROUP BY owner) c ON c.owner = p.owner
              ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Many rows of several owners in one statement, from its own connection.
const INSERT_MANY: &str = "INSERT INTO claimcheck.upload_claims
        (id, object_key, owner, filename, content_type, size, expires_at)
     SELECT gen_random_uuid(), 'bulk/' || gen_random_uuid(), o, 'b.bin',
            'application/octet-stream', 1, now() + interval '1 hour'
       FROM unnest($1::text[]) o, generate_series(1, 3)";
/// Pending claims of several owners in one statement (as the sweeper drops
/// expired ones).
const DELETE_MANY: &str = "DELETE FROM claimcheck.upload_claims WHERE id IN (
        SELECT id FROM claimcheck.upload_claims WHERE status = 'pending'
         ORDER BY random() LIMIT 12 FOR UPDATE SKIP LOCKED)";
/// One pending claim marked uploaded (as complete does).
const MARK_ONE: &str = "UPDATE claimcheck.upload_claims
        SET status = 'uploaded', uploaded_at = now()
      WHERE id = (SELECT id FROM claimcheck.upload_claims WHERE status = 'pending'
                   ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED)";

#[tokio::test]
async fn the_pending_count_follows_every_change_from_many_connections() {
    let db = TestDb::new().await;
    let store = ClaimStore::new(db.pool.clone());
    let caps = Caps {
        max_pending: 1_000_000,
        quotas: Default::default(),
    };
    let mut tasks = Vec::new();
    // Starts through the store (admit_claim), 4 connections.
    for t in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                let owner = OWNERS[(t + i) % OWNERS.len()];
                store.create(&new_claim(owner), &caps).await.unwrap();
            }
        }));
    }
    // Multi-owner inserts, deletes and single marks, 2 connections each;
    // owner lists in different orders, so an unordered counter update would
    // deadlock sooner or later.
    for t in 0..6 {
        let client = db.client().await;
        tasks.push(tokio::spawn(async move {
            let mut owners: Vec<String> = OWNERS.iter().map(|o| o.to_string()).collect();
            if t % 2 == 1 {
                owners.reverse();
            }
            for _ in 0..40 {
                match t / 2 {
                    0 => client.execute(INSERT_MANY, &[&owners]).await,
                    1 => client.execute(DELETE_MANY, &[]).await,
                    _ => client.execute(MARK_ONE, &[]).await,
                }
                .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let after = compare(&db).await;
    assert_eq!(after.len(), OWNERS.len(), "{after:?}");
    for (owner, counter, real) in &after {
        assert_eq!(counter, real, "{owner}: {after:?}");
    }
    let total: i64 = after.iter().map(|(_, _, real)| real).sum();
    assert!(total > 0, "some claims are still pending: {after:?}");

    // The cap reads the counter: an owner at its cap is refused exactly there.
    let counts: BTreeMap<String, i64> = after.into_iter().map(|(o, c, _)| (o, c)).collect();
    let at_cap = Caps {
        max_pending: counts["o-a"] as u32,
        quotas: Default::default(),
    };
    assert!(store.create(&new_claim("o-a"), &at_cap).await.is_err());
    let one_more = Caps {
        max_pending: at_cap.max_pending + 1,
        ..at_cap
    };
    store.create(&new_claim("o-a"), &one_more).await.unwrap();
    assert!(store.create(&new_claim("o-a"), &one_more).await.is_err());

    // TRUNCATE (tests, benchmarks) empties the counters with the claims.
    db.client()
        .await
        .batch_execute("TRUNCATE claimcheck.upload_claims CASCADE")
        .await
        .unwrap();
    assert!(compare(&db).await.is_empty());
}

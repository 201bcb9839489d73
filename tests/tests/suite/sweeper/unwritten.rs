//! The sweeper asks the store only about claims whose object something may
//! have written (`upload_claims.may_have_object`, migration V9): a
//! multipart claim that no complete or append ever locked is swept without
//! a HEAD, every other claim is still asked about, and a writer locking a
//! claim while the sweeper takes it unasked never loses it.

use std::{collections::HashSet, sync::Arc, time::Duration};

use claimcheck::{
    db::claims::{ObjectWritten, WriterLock},
    domain::{ClaimStatus, DeleteReason},
    jobs::sweeper,
    store::ObjectStore,
};
use claimcheck_tests::{
    db::TestDb,
    jobs::{context, fast_settings, put_object, PlantClaim},
    stores::{s3_store, test_prefix},
};
use uuid::Uuid;

async fn may_have_object(db: &TestDb, id: Uuid) -> Option<bool> {
    db.client()
        .await
        .query_one(
            "SELECT may_have_object FROM claimcheck.upload_claims WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

/// Store calls the context's decorator timed for `op` (a HEAD is `head`).
fn store_calls(metrics: &str, op: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("claimcheck_store_request_duration_seconds_count")
                && l.contains(&format!("op=\"{op}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The trigger of migration V9 on each kind of claim: a multipart claim
/// starts unwritten; a single-shot claim (no session) and a concatenation's
/// final upload start possibly written; a writer lock makes a claim
/// possibly written for good (its release does not undo it, nor does a
/// write of the column).
#[tokio::test]
async fn the_database_records_what_may_have_written_each_claims_object() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let multipart = PlantClaim::pending(&format!("{prefix}mp"))
        .session("u-1")
        .plant(&db)
        .await;
    let single = PlantClaim::pending(&format!("{prefix}single"))
        .plant(&db)
        .await;
    let concat = PlantClaim::pending(&format!("{prefix}final"))
        .session("u-2")
        .plant(&db)
        .await;
    // A final upload is inserted as one (the trigger reads the new row).
    db.client()
        .await
        .execute(
            "DELETE FROM claimcheck.upload_claims WHERE id = $1",
            &[&concat.id],
        )
        .await
        .unwrap();
    db.client()
        .await
        .execute(
            "INSERT INTO claimcheck.upload_claims
               (id, object_key, upload_id, owner, filename, content_type, size, status,
                part_size, part_count, expires_at, protocol, concat)
             VALUES ($1, $2, 'u-2', 'owner-1', 'f.bin', 'application/octet-stream', 1,
                     'pending', 1, 1, now() + interval '1 minute', 'tus', 'final')",
            &[&concat.id, &concat.key],
        )
        .await
        .unwrap();
    assert_eq!(may_have_object(&db, multipart.id).await, Some(false));
    assert_eq!(may_have_object(&db, single.id).await, Some(true));
    assert_eq!(may_have_object(&db, concat.id).await, Some(true));

    let ctx = context(
        &db,
        Arc::new(s3_store().await) as Arc<dyn ObjectStore>,
        fast_settings(&prefix),
    );
    let WriterLock::Acquired(token) = ctx
        .claims
        .lock_writer(multipart.id, Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("the lock is free")
    };
    assert_eq!(may_have_object(&db, multipart.id).await, Some(true));
    ctx.claims.unlock_writer(multipart.id, token).await.unwrap();
    assert_eq!(may_have_object(&db, multipart.id).await, Some(true));
    db.client()
        .await
        .execute(
            "UPDATE claimcheck.upload_claims SET may_have_object = false WHERE id = $1",
            &[&multipart.id],
        )
        .await
        .unwrap();
    assert_eq!(
        may_have_object(&db, multipart.id).await,
        Some(true),
        "never goes back"
    );
}

/// An untouched multipart claim is swept with no store call: even an
/// object planted at its key (which no real upload could have made) is not
/// taken for its own. A single-shot claim is still asked about, and
/// recovered when its object is whole.
#[tokio::test]
async fn an_untouched_multipart_claim_is_swept_without_asking_the_store() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let store: Arc<dyn ObjectStore> = Arc::new(s3_store().await);
    let ctx = context(&db, store.clone(), fast_settings(&prefix));
    let untouched = format!("{prefix}untouched.bin");
    put_object(&*store, &untouched, 100).await;
    let swept = PlantClaim::pending(&untouched)
        .size(100)
        .session("u-untouched")
        .expired()
        .plant(&db)
        .await;
    let single = format!("{prefix}single.bin");
    put_object(&*store, &single, 42).await;
    let recovered = PlantClaim::pending(&single)
        .size(42)
        .expired()
        .plant(&db)
        .await;
    let listed = ctx.claims.list_expired_pending(10).await.unwrap();
    let verdicts: HashSet<(Uuid, ObjectWritten)> =
        listed.iter().map(|e| (e.claim.id, e.object)).collect();
    assert_eq!(
        verdicts,
        HashSet::from([
            (swept.id, ObjectWritten::Never),
            (recovered.id, ObjectWritten::Maybe)
        ])
    );

    let outcome = sweeper::sweep_once(&ctx).await.unwrap();
    assert_eq!((outcome.expired, outcome.recovered), (1, 1), "{outcome:?}");
    assert!(ctx.claims.get(swept.id).await.unwrap().is_none());
    let claim = ctx.claims.get(recovered.id).await.unwrap().unwrap();
    assert_eq!(claim.status, ClaimStatus::Uploaded);
    assert_eq!(
        store_calls(&ctx.metrics.render(), "head"),
        1,
        "one HEAD: the single-shot claim's"
    );
}

/// Writers lock claims (and let go at once, as a complete that died and
/// whose lock ran out) from four connections while a sweeper takes the same
/// claims without asking the store: a claim any writer locked is never
/// swept unasked, and every other claim is swept.
#[tokio::test(flavor = "multi_thread")]
async fn writers_locking_claims_the_sweeper_takes_unasked_never_lose_one() {
    const CLAIMS: usize = 300;
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let store: Arc<dyn ObjectStore> = Arc::new(s3_store().await);
    let ctx = context(&db, store, fast_settings(&prefix));
    let mut ids = Vec::with_capacity(CLAIMS);
    for i in 0..CLAIMS {
        let planted = PlantClaim::pending(&format!("{prefix}c{i:04}"))
            .session(&format!("u-{i}"))
            .expired()
            .plant(&db)
            .await;
        ids.push(planted.id);
    }
    let mut writers = Vec::new();
    for w in 0..4usize {
        let (claims, mut order) = (ctx.claims.clone(), ids.clone());
        // Each writer in its own order, so they meet the sweeper everywhere.
        order.rotate_left(w * CLAIMS / 4);
        if w % 2 == 1 {
            order.reverse();
        }
        writers.push(tokio::spawn(async move {
            let mut locked = Vec::new();
            for id in order {
                if let WriterLock::Acquired(token) = claims
                    .lock_writer(id, Duration::from_secs(60))
                    .await
                    .unwrap()
                {
                    claims.unlock_writer(id, token).await.unwrap();
                    locked.push(id);
                }
            }
            locked
        }));
    }
    let sweeper = {
        let (claims, ids) = (ctx.claims.clone(), ids.clone());
        tokio::spawn(async move {
            let mut swept = Vec::new();
            for chunk in ids.chunks(10) {
                let taken = claims
                    .expire_with(&[], chunk, ClaimStatus::Pending, DeleteReason::ClaimExpired)
                    .await
                    .unwrap();
                swept.extend(taken.into_iter().map(|c| c.id));
            }
            swept
        })
    };
    let swept: HashSet<Uuid> = sweeper.await.unwrap().into_iter().collect();
    let mut locked = HashSet::new();
    for writer in writers {
        locked.extend(writer.await.unwrap());
    }
    assert!(
        locked.is_disjoint(&swept),
        "a locked claim was swept unasked: {:?}",
        locked.intersection(&swept).collect::<Vec<_>>()
    );
    let all: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(&locked | &swept, all, "each claim was locked or swept");
    for id in &locked {
        assert_eq!(may_have_object(&db, *id).await, Some(true));
    }
    let queued: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM claimcheck.pending_deletes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued as usize, swept.len(), "one delete per swept claim");
}

/// The path a real start takes: the claim is inserted first and its session
/// recorded after (`set_upload_id`); recording the session writes nothing,
/// so the claim stays untouched until a writer locks it. A single-shot
/// claim (no part layout) starts possibly written.
#[tokio::test]
async fn a_claim_started_by_the_api_path_is_untouched_until_a_writer_locks_it() {
    let db = TestDb::new().await;
    let claims = claimcheck::db::ClaimStore::new(db.pool.clone());
    let caps = claimcheck::db::claims::Caps {
        max_pending: 100,
        quotas: Default::default(),
    };
    let hour = Duration::from_secs(3600);
    let chunked = claimcheck::db::claims::NewClaim {
        parts: Some((10, 1)),
        ..crate::support::new_claim("owner-1", hour)
    };
    let chunked = claims.create(&chunked, &caps).await.unwrap();
    assert_eq!(may_have_object(&db, chunked.id).await, Some(false));
    assert!(claims.set_upload_id(chunked.id, "u-api").await.unwrap());
    assert_eq!(
        may_have_object(&db, chunked.id).await,
        Some(false),
        "recording the session writes no object"
    );
    let single = claims
        .create(&crate::support::new_claim("owner-1", hour), &caps)
        .await
        .unwrap();
    assert_eq!(may_have_object(&db, single.id).await, Some(true));
}

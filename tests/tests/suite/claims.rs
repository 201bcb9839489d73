//! The claim store's conditional statements racing each other: create under
//! the per-owner cap, mark-uploaded, consume and the sweeper's delete.

use std::{sync::Arc, time::Duration};

use claimcheck::{
    db::{
        claims::{Caps, CreateError, Transition},
        objects::ConsumeError,
        Adopter, ClaimStore, DeleteQueue, ObjectRegistry, Quota,
    },
    domain::{ClaimStatus, DeleteReason},
};
use claimcheck_tests::db::TestDb;

use crate::support::new_claim;
use uuid::Uuid;

const DAY: Duration = Duration::from_secs(86_400);

/// A cap of `max_pending` and no quotas.
fn caps(max_pending: u32) -> Caps {
    Caps {
        max_pending,
        quotas: Default::default(),
    }
}

async fn queued_keys(db: &TestDb) -> Vec<String> {
    db.strings("SELECT object_key FROM claimcheck.pending_deletes ORDER BY 1")
        .await
}

async fn registry_keys(db: &TestDb) -> Vec<String> {
    db.strings("SELECT object_key FROM claimcheck.objects ORDER BY 1")
        .await
}

#[tokio::test]
async fn fifty_concurrent_creates_never_overshoot_a_cap_of_ten() {
    let db = TestDb::new().await;
    let store = ClaimStore::new(db.pool.clone());
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.create(&new_claim("owner-1", DAY), &caps(10)).await })
        })
        .collect();
    let (mut created, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(CreateError::Refused(r)) if r.quota == Quota::Pending && r.limit == 10 => {
                refused += 1
            }
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!((created, refused), (10, 40));
    assert_eq!(store.count_pending_by_owner("owner-1").await.unwrap(), 10);
    // Another owner is not affected by owner-1's cap.
    store
        .create(&new_claim("owner-2", DAY), &caps(10))
        .await
        .unwrap();
}

#[tokio::test]
async fn mark_uploaded_tells_the_loser_what_happened() {
    let db = TestDb::new().await;
    let store = ClaimStore::new(db.pool.clone());
    let claim = store.create(&new_claim("o", DAY), &caps(10)).await.unwrap();
    assert_eq!(claim.status, ClaimStatus::Pending);
    assert!(store.set_upload_id(claim.id, "mp-1").await.unwrap());
    assert!(
        !store.set_upload_id(claim.id, "mp-2").await.unwrap(),
        "a session is set once"
    );

    let Transition::Done(done) = store
        .mark_uploaded(claim.id, Some("ab"), None)
        .await
        .unwrap()
    else {
        panic!("the first complete wins");
    };
    assert_eq!(
        (done.status, done.expires_at),
        (ClaimStatus::Uploaded, None)
    );
    assert!(matches!(
        store.mark_uploaded(claim.id, Some("ab"), None).await.unwrap(),
        Transition::AlreadyDone(c) if c == done
    ));
    assert_eq!(
        store
            .mark_uploaded(Uuid::now_v7(), None, None)
            .await
            .unwrap(),
        Transition::NotFound
    );

    let expired = store
        .create(&new_claim("o", Duration::from_millis(1)), &caps(10))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(matches!(
        store.mark_uploaded(expired.id, None, None).await.unwrap(),
        Transition::Expired(_)
    ));
    assert!(
        !store.touch(expired.id, DAY).await.unwrap(),
        "an expired claim is not revived"
    );
}

/// Claims expire one after the other while completes and sweepers run at
/// once: every claim ends either uploaded (its complete won, nothing queued)
/// or swept (one queue row carrying its session, its complete lost).
#[tokio::test]
async fn mark_uploaded_races_two_sweepers_with_one_winner_per_claim() {
    let db = TestDb::new().await;
    let store = ClaimStore::new(db.pool.clone());
    let mut ids = Vec::new();
    for i in 0..120u64 {
        let c = store
            .create(&new_claim("o", DAY), &caps(1000))
            .await
            .unwrap();
        store.set_upload_id(c.id, &format!("mp-{i}")).await.unwrap();
        ids.push(c.id);
    }
    // Deadlines 10 ms apart from now on, set in one statement, so a slow
    // machine creating the claims does not expire them all before the race.
    db.client()
        .await
        .execute(
            "UPDATE claimcheck.upload_claims c
                SET expires_at = now() + make_interval(secs => 0.05 + 0.01 * o.n)
               FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM claimcheck.upload_claims) o
              WHERE c.id = o.id",
            &[],
        )
        .await
        .unwrap();
    let ids = Arc::new(ids);
    let sweepers: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut swept = Vec::new();
                for _ in 0..150 {
                    let expired = store.list_expired(ClaimStatus::Pending, 50).await.unwrap();
                    let expired: Vec<Uuid> = expired.iter().map(|c| c.id).collect();
                    let done = store
                        .expire(&expired, ClaimStatus::Pending, DeleteReason::ClaimExpired)
                        .await
                        .unwrap();
                    swept.extend(done.into_iter().map(|c| c.id));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                swept
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let completer = {
        let (store, ids) = (store.clone(), ids.clone());
        tokio::spawn(async move {
            let mut won = Vec::new();
            // Latest deadline first: the completer surely wins the first
            // ones it tries and the sweepers the earliest, however slow the
            // machine; the claims in between are the race.
            for id in ids.iter().rev() {
                if let Transition::Done(_) =
                    store.mark_uploaded(*id, None, Some(DAY)).await.unwrap()
                {
                    won.push(*id);
                }
            }
            won
        })
    };
    let won = completer.await.unwrap();
    let mut swept = Vec::new();
    for s in sweepers {
        swept.extend(s.await.unwrap());
    }
    // Whatever is left has expired by now: a last sweep settles it.
    let left: Vec<Uuid> = store
        .list_expired(ClaimStatus::Pending, 1000)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    let last = store
        .expire(&left, ClaimStatus::Pending, DeleteReason::ClaimExpired)
        .await
        .unwrap();
    swept.extend(last.into_iter().map(|c| c.id));

    assert!(
        !won.is_empty() && !swept.is_empty(),
        "both sides won some: {} / {}",
        won.len(),
        swept.len()
    );
    assert_eq!(won.len() + swept.len(), ids.len(), "one winner per claim");
    for id in &won {
        assert!(!swept.contains(id), "a completed claim was swept");
        assert_eq!(
            store.get(*id).await.unwrap().unwrap().status,
            ClaimStatus::Uploaded
        );
    }
    assert_eq!(
        queued_keys(&db).await.len(),
        swept.len(),
        "one queue row per swept claim"
    );
    let queue = DeleteQueue::new(db.pool.clone());
    let lease = queue.lease(1000, DAY, 12).await.unwrap();
    assert!(lease
        .rows
        .iter()
        .all(|r| r.upload_id.is_some() && r.reason == DeleteReason::ClaimExpired));
}

/// Uploaded claims past their unconsumed TTL, consumed and swept at once:
/// each ends in exactly one place, the registry or the delete queue.
#[tokio::test]
async fn consume_races_the_unconsumed_sweep_with_one_winner_per_claim() {
    let db = TestDb::new().await;
    let store = ClaimStore::new(db.pool.clone());
    let mut keys = Vec::new();
    for _ in 0..100 {
        let c = store
            .create(&new_claim("o", DAY), &caps(1000))
            .await
            .unwrap();
        store
            .mark_uploaded(c.id, None, Some(Duration::ZERO))
            .await
            .unwrap();
        keys.push(c.key);
    }
    let consumer = {
        let (url, keys) = (db.url.clone(), keys.clone());
        tokio::spawn(async move {
            let mut client = claimcheck_tests::db::connect(&url).await;
            let mut consumed = Vec::new();
            for key in keys {
                let mut tx = client.transaction().await.unwrap();
                match ObjectRegistry::consume_in(
                    &mut tx,
                    &Adopter::default(),
                    "o",
                    std::slice::from_ref(&key),
                )
                .await
                {
                    Ok(objects) => {
                        assert_eq!(objects.len(), 1);
                        tx.commit().await.unwrap();
                        consumed.push(key);
                    }
                    Err(ConsumeError::Missing(missing)) => assert_eq!(missing, [key]),
                    Err(e) => panic!("{e}"),
                }
            }
            consumed
        })
    };
    let sweeper = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut swept = Vec::new();
            loop {
                let batch = store.list_expired(ClaimStatus::Uploaded, 7).await.unwrap();
                if batch.is_empty() {
                    return swept;
                }
                let ids: Vec<Uuid> = batch.iter().map(|c| c.id).collect();
                let done = store
                    .expire(&ids, ClaimStatus::Uploaded, DeleteReason::Unconsumed)
                    .await
                    .unwrap();
                swept.extend(done.into_iter().map(|c| c.key));
            }
        })
    };
    let mut consumed = consumer.await.unwrap();
    let mut swept = sweeper.await.unwrap();
    consumed.sort();
    swept.sort();
    assert_eq!(consumed.len() + swept.len(), 100, "one winner per claim");
    assert_eq!(registry_keys(&db).await, consumed);
    assert_eq!(queued_keys(&db).await, swept);
}

#[tokio::test]
async fn consume_is_all_or_nothing_and_names_what_is_missing() {
    let db = TestDb::new().await;
    let store = ClaimStore::new(db.pool.clone());
    let uploaded = store.create(&new_claim("o", DAY), &caps(10)).await.unwrap();
    store
        .mark_uploaded(uploaded.id, Some("ff"), None)
        .await
        .unwrap();
    let pending = store.create(&new_claim("o", DAY), &caps(10)).await.unwrap();
    let theirs = store
        .create(&new_claim("someone-else", DAY), &caps(10))
        .await
        .unwrap();
    store.mark_uploaded(theirs.id, None, None).await.unwrap();

    let mut client = db.client().await;
    let mut tx = client.transaction().await.unwrap();
    let keys = vec![
        uploaded.key.clone(),
        pending.key.clone(),
        theirs.key.clone(),
        "nope".into(),
    ];
    let Err(ConsumeError::Missing(mut missing)) =
        ObjectRegistry::consume_in(&mut tx, &Adopter::default(), "o", &keys).await
    else {
        panic!("consume must refuse");
    };
    missing.sort();
    let mut expected = vec![pending.key.clone(), theirs.key.clone(), "nope".to_string()];
    expected.sort();
    assert_eq!(missing, expected);
    // The caller's transaction is still usable, and nothing was consumed.
    let objects = ObjectRegistry::consume_in(
        &mut tx,
        &Adopter::default(),
        "o",
        &[uploaded.key.clone(), uploaded.key.clone()],
    )
    .await
    .unwrap();
    assert_eq!(objects.len(), 1, "keys are de-duplicated");
    assert_eq!(objects[0].sha256.as_deref(), Some("ff"));
    tx.rollback().await.unwrap();
    assert!(
        store.get(uploaded.id).await.unwrap().is_some(),
        "a rollback leaves the claim"
    );
    assert!(registry_keys(&db).await.is_empty());
}

#[tokio::test]
async fn two_transactions_consuming_one_key_have_one_winner() {
    let db = TestDb::new().await;
    let store = ClaimStore::new(db.pool.clone());
    let c = store.create(&new_claim("o", DAY), &caps(10)).await.unwrap();
    store.mark_uploaded(c.id, None, None).await.unwrap();
    let (mut a, mut b) = (db.client().await, db.client().await);
    let mut ta = a.transaction().await.unwrap();
    ObjectRegistry::consume_in(
        &mut ta,
        &Adopter::default(),
        "o",
        std::slice::from_ref(&c.key),
    )
    .await
    .unwrap();
    let key = c.key.clone();
    // b blocks on a's row lock until a commits, then finds the claim gone.
    let b_task = tokio::spawn(async move {
        let mut tb = b.transaction().await.unwrap();
        let r = ObjectRegistry::consume_in(&mut tb, &Adopter::default(), "o", &[key]).await;
        tb.commit().await.unwrap();
        r.map(|o| o.len())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    ta.commit().await.unwrap();
    let result = b_task.await.unwrap();
    assert!(matches!(result, Err(ConsumeError::Missing(m)) if m == [c.key.clone()]));
    assert_eq!(registry_keys(&db).await, [c.key]);
}

#[tokio::test]
async fn schedule_delete_moves_a_registry_row_to_the_queue() {
    let db = TestDb::new().await;
    let store = ClaimStore::new(db.pool.clone());
    let c = store.create(&new_claim("o", DAY), &caps(10)).await.unwrap();
    store.mark_uploaded(c.id, None, None).await.unwrap();
    let mut client = db.client().await;
    let mut tx = client.transaction().await.unwrap();
    ObjectRegistry::consume_in(
        &mut tx,
        &Adopter::default(),
        "o",
        std::slice::from_ref(&c.key),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let registry = ObjectRegistry::new(db.pool.clone());
    assert_eq!(
        registry.get(&c.key).await.unwrap().unwrap().filename,
        "a.bin"
    );
    let tx = client.transaction().await.unwrap();
    ObjectRegistry::schedule_delete_in(&tx, &Adopter::default(), &c.key, DeleteReason::Deleted)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(registry.get(&c.key).await.unwrap().is_none());
    assert_eq!(queued_keys(&db).await, [c.key]);

    let tx = client.transaction().await.unwrap();
    let refused = ObjectRegistry::schedule_delete_in(
        &tx,
        &Adopter::default(),
        "x",
        DeleteReason::ClaimExpired,
    )
    .await;
    assert!(
        refused.is_err(),
        "business code queues only replaced/deleted"
    );
}

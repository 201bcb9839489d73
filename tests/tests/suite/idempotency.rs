//! Idempotency keys at the claim store, where `claimcheck.admit_claim`
//! (migration V8) judges them under the owner's lock: concurrent retries of
//! one start make one claim, and a key older than 24 hours is free again.

use std::time::Duration;

use claimcheck::db::{
    claims::{Caps, CreateError, Created, NewClaim},
    ClaimStore,
};
use claimcheck_tests::db::TestDb;

/// A claim of `owner-i` for a request with this fingerprint.
fn new_claim(fingerprint: &str) -> NewClaim {
    NewClaim {
        fingerprint: fingerprint.into(),
        ..crate::support::new_claim("owner-i", Duration::from_secs(3600))
    }
}

fn caps() -> Caps {
    Caps {
        max_pending: 100,
        quotas: Default::default(),
    }
}

#[tokio::test]
async fn twenty_concurrent_retries_of_one_start_make_one_claim() {
    let db = TestDb::new().await;
    let store = ClaimStore::new(db.pool.clone());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_idempotent(&new_claim("same"), &caps(), Some("key-1"))
                    .await
            })
        })
        .collect();
    let (mut new, mut existing) = (Vec::new(), Vec::new());
    for task in tasks {
        match task.await.unwrap().unwrap() {
            Created::New(c) => new.push(c.id),
            Created::Existing(c) => existing.push(c.id),
        }
    }
    assert_eq!(new.len(), 1, "one start creates: {new:?}");
    assert_eq!(existing.len(), 19);
    assert!(
        existing.iter().all(|id| *id == new[0]),
        "all answer the first"
    );
    let claims = db
        .strings("SELECT id::text FROM claimcheck.upload_claims")
        .await;
    assert_eq!(claims, [new[0].to_string()]);

    // Another request with the key is refused, and creates nothing.
    let other = store
        .create_idempotent(&new_claim("other"), &caps(), Some("key-1"))
        .await;
    assert!(matches!(other, Err(CreateError::KeyReused)), "{other:?}");

    // A day later the key is free: a new claim, the old one loses its key.
    db.client()
        .await
        .execute(
            "UPDATE claimcheck.upload_claims SET created_at = now() - interval '25 hours'",
            &[],
        )
        .await
        .unwrap();
    let again = store
        .create_idempotent(&new_claim("other"), &caps(), Some("key-1"))
        .await
        .unwrap();
    let Created::New(again) = again else {
        panic!("a new claim: {again:?}")
    };
    let keyed = db
        .strings("SELECT id::text FROM claimcheck.upload_claims WHERE idempotency_key = 'key-1'")
        .await;
    assert_eq!(keyed, [again.id.to_string()]);
}

//! The claim sweeper, one sweep at a time, against Garage.

use std::{collections::HashSet, sync::Arc, time::Duration};

mod unwritten;

use claimcheck::{
    db::claims::{Transition, WriterLock},
    domain::ClaimStatus,
    jobs::{audit, delete_worker, sweeper},
    store::{CompletedPart, ObjectStore},
};
use claimcheck_tests::{
    db::TestDb,
    jobs::{context, count, exists, fast_settings, put_object, sessions, PlantClaim},
    stores::{bytes_body, fs_store, s3_store, test_prefix},
};

async fn s3() -> Arc<dyn ObjectStore> {
    Arc::new(s3_store().await)
}

/// Opens a session on `key` with one 100-byte part; returns the upload id
/// and the part's ETag.
async fn session_with_a_part(store: &dyn ObjectStore, key: &str) -> (String, String) {
    let upload_id = store
        .create_multipart(key, "application/octet-stream")
        .await
        .unwrap();
    let etag = store
        .upload_part(key, &upload_id, 1, bytes_body(vec![7u8; 100]), 100)
        .await
        .unwrap();
    (upload_id, etag)
}

#[tokio::test]
async fn an_expired_multipart_claim_ends_with_no_session_no_parts_no_claim_on_s3() {
    expired_multipart_claim_case(s3().await).await;
}

// Garage drops a key's unfinished uploads with the object, so only the
// filesystem store shows whether the worker really aborts the session.
#[tokio::test]
async fn an_expired_multipart_claim_ends_with_no_session_no_parts_no_claim_on_fs() {
    let (store, _dir) = fs_store();
    expired_multipart_claim_case(Arc::new(store)).await;
}

async fn expired_multipart_claim_case(store: Arc<dyn ObjectStore>) {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let ctx = context(&db, store.clone(), fast_settings(&prefix));
    let key = format!("{prefix}expired.bin");
    let (upload_id, etag) = session_with_a_part(&*store, &key).await;
    let claim = PlantClaim::pending(&key)
        .size(100)
        .session(&upload_id)
        .expired()
        .plant(&db)
        .await;
    db.client()
        .await
        .execute(
            "INSERT INTO claimcheck.upload_parts (claim_id, part_number, size, etag)
             VALUES ($1, 1, 100, $2)",
            &[&claim.id, &etag],
        )
        .await
        .unwrap();
    // Not yet expired: left alone.
    let fresh = PlantClaim::pending(&format!("{prefix}fresh"))
        .size(5)
        .plant(&db)
        .await;

    let outcome = sweeper::sweep_once(&ctx).await.unwrap();
    assert_eq!((outcome.expired, outcome.recovered), (1, 0), "{outcome:?}");
    assert!(ctx.claims.get(claim.id).await.unwrap().is_none());
    assert!(ctx.claims.get(fresh.id).await.unwrap().is_some());
    assert_eq!(
        count(&db, "SELECT count(*) FROM claimcheck.upload_parts").await,
        0
    );
    let row = db
        .client()
        .await
        .query_one(
            "SELECT object_key, upload_id, reason FROM claimcheck.pending_deletes",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), key);
    assert_eq!(row.get::<_, Option<String>>(1), Some(upload_id));
    assert_eq!(row.get::<_, String>(2), "claim_expired");

    assert_eq!(delete_worker::drain(&ctx).await.unwrap().done, 1);
    assert!(
        sessions(&*store, &prefix).await.is_empty(),
        "session aborted"
    );
    let report = audit::audit(&ctx).await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert!(ctx
        .metrics
        .render()
        .contains("claimcheck_sweeps_total{outcome=\"expired\"} 1"));
}

#[tokio::test]
async fn two_sweepers_at_once_sweep_each_claim_once() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let store = s3().await;
    let mut settings = fast_settings(&prefix);
    settings.sweep_batch = 50;
    db.client()
        .await
        .execute(
            "INSERT INTO claimcheck.upload_claims
               (id, object_key, owner, filename, content_type, size, expires_at)
             SELECT gen_random_uuid(), $1 || 'k' || i, 'o', 'f', 'text/plain', 1, now() - interval '1 s'
               FROM generate_series(1, 600) AS i",
            &[&prefix],
        )
        .await
        .unwrap();
    let (a, b) = (
        context(&db, store.clone(), settings.clone()),
        context(&db, store, settings),
    );
    let (ra, rb) = tokio::join!(sweeper::sweep_once(&a), sweeper::sweep_once(&b));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.expired + rb.expired, 600, "{ra:?} {rb:?}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM claimcheck.upload_claims").await,
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(DISTINCT object_key) FROM claimcheck.pending_deletes"
        )
        .await,
        600
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM claimcheck.pending_deletes").await,
        600
    );
}

#[tokio::test]
async fn a_sweep_works_through_the_whole_backlog() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let mut settings = fast_settings(&prefix);
    settings.sweep_batch = 100;
    let ctx = context(&db, s3().await, settings);
    db.client()
        .await
        .execute(
            "INSERT INTO claimcheck.upload_claims
               (id, object_key, owner, filename, content_type, size, status, expires_at, uploaded_at)
             SELECT gen_random_uuid(), $1 || 'u' || i, 'o', 'f', 'text/plain', 1,
                    'uploaded', now() - interval '1 s', now() - interval '1 day'
               FROM generate_series(1, 250) AS i",
            &[&prefix],
        )
        .await
        .unwrap();
    let outcome = sweeper::sweep_once(&ctx).await.unwrap();
    assert_eq!(
        outcome.unconsumed, 250,
        "one sweep, three batches: {outcome:?}"
    );
}

#[tokio::test]
async fn a_completed_but_unmarked_claim_is_recovered_not_swept() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let store = s3().await;
    let ctx = context(&db, store.clone(), fast_settings(&prefix));
    // The store finished, the process died before the database heard of it.
    let whole = format!("{prefix}whole.bin");
    put_object(&*store, &whole, 42).await;
    let recovered = PlantClaim::pending(&whole)
        .size(42)
        .expired()
        .plant(&db)
        .await;
    // Same for a multipart upload: its object exists only after a complete,
    // which takes the claim's writer lock first (this one died holding it;
    // the lock has run out since).
    let mp = format!("{prefix}mp.bin");
    let (upload_id, etag) = session_with_a_part(&*store, &mp).await;
    let recovered_mp = PlantClaim::pending(&mp)
        .size(100)
        .session(&upload_id)
        .expired()
        .plant(&db)
        .await;
    let lock = ctx
        .claims
        .lock_writer(recovered_mp.id, Duration::from_millis(1))
        .await
        .unwrap();
    assert!(matches!(lock, WriterLock::Acquired(_)), "{lock:?}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    store
        .complete_multipart(
            &mp,
            &upload_id,
            &[CompletedPart {
                part_number: 1,
                etag,
            }],
        )
        .await
        .unwrap();
    // An object of another size is not this upload: swept.
    let torn = format!("{prefix}torn.bin");
    put_object(&*store, &torn, 10).await;
    let swept = PlantClaim::pending(&torn)
        .size(99)
        .expired()
        .plant(&db)
        .await;

    let outcome = sweeper::sweep_once(&ctx).await.unwrap();
    assert_eq!((outcome.recovered, outcome.expired), (2, 1), "{outcome:?}");
    for id in [recovered.id, recovered_mp.id] {
        let claim = ctx.claims.get(id).await.unwrap().expect("claim kept");
        assert_eq!(claim.status, ClaimStatus::Uploaded);
        assert!(
            claim.expires_at.unwrap() > chrono::Utc::now(),
            "unconsumed TTL"
        );
    }
    assert!(ctx.claims.get(swept.id).await.unwrap().is_none());
    delete_worker::drain(&ctx).await.unwrap();
    assert!(exists(&*store, &whole).await && exists(&*store, &mp).await);
    assert!(!exists(&*store, &torn).await);
    let report = audit::audit(&ctx).await.unwrap();
    assert!(report.is_clean(), "{report}");
}

#[tokio::test]
async fn unconsumed_uploads_are_swept_after_their_ttl_unless_it_is_zero() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let store = s3().await;
    let key = format!("{prefix}unconsumed.bin");
    put_object(&*store, &key, 3).await;
    PlantClaim::uploaded(&key)
        .size(3)
        .expired()
        .plant(&db)
        .await;

    let mut keep = fast_settings(&prefix);
    keep.unconsumed_ttl = None;
    let keeping = context(&db, store.clone(), keep);
    assert_eq!(sweeper::sweep_once(&keeping).await.unwrap().unconsumed, 0);

    let ctx = context(&db, store.clone(), fast_settings(&prefix));
    assert_eq!(sweeper::sweep_once(&ctx).await.unwrap().unconsumed, 1);
    let reason: String = db
        .client()
        .await
        .query_one("SELECT reason FROM claimcheck.pending_deletes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reason, "unconsumed");
    delete_worker::drain(&ctx).await.unwrap();
    assert!(!exists(&*store, &key).await);
    assert!(audit::audit(&ctx).await.unwrap().is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweeper_racing_complete_leaves_one_winner_and_no_orphan() {
    const CLAIMS: usize = 12;
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let store = s3().await;
    let ctx = context(&db, store.clone(), fast_settings(&prefix));
    let mut sessions_made = Vec::new();
    for i in 0..CLAIMS {
        let key = format!("{prefix}race{i}");
        sessions_made.push((key.clone(), session_with_a_part(&*store, &key).await));
    }
    // Claim i expires 150 + 25i ms from now and its complete starts 60i ms
    // from now: the first few completes win, the later ones meet a sweeper
    // that has already (or is just about to) take the claim.
    let start = tokio::time::Instant::now();
    let mut uploads = Vec::new();
    for (i, (key, (upload_id, etag))) in sessions_made.into_iter().enumerate() {
        let expires_in = 150.0 + 25.0 * i as f64 - start.elapsed().as_millis() as f64;
        let claim = PlantClaim::pending(&key)
            .size(100)
            .session(&upload_id)
            .expires_in_ms(expires_in)
            .plant(&db)
            .await;
        uploads.push((claim, upload_id, etag));
    }
    let completer = {
        let (ctx, uploads) = (ctx.clone(), uploads.clone());
        tokio::spawn(async move {
            let mut marked = HashSet::new();
            for (i, (claim, upload_id, etag)) in uploads.into_iter().enumerate() {
                tokio::time::sleep_until(start + Duration::from_millis(60 * i as u64)).await;
                let part = CompletedPart {
                    part_number: 1,
                    etag,
                };
                ctx.store
                    .complete_multipart(&claim.key, &upload_id, &[part])
                    .await
                    .unwrap();
                if let Transition::Done(_) = ctx
                    .claims
                    .mark_uploaded(claim.id, None, None)
                    .await
                    .unwrap()
                {
                    marked.insert(claim.id);
                }
            }
            marked
        })
    };
    let sweeping = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            for _ in 0..50 {
                sweeper::sweep_once(&ctx).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let marked = completer.await.unwrap();
    sweeping.await.unwrap();
    // Whatever is still pending expires now; then everything queued drains.
    tokio::time::sleep(Duration::from_millis(200)).await;
    sweeper::sweep_once(&ctx).await.unwrap();
    delete_worker::drain(&ctx).await.unwrap();

    let mut kept_count = 0;
    for (claim, _, _) in &uploads {
        let kept = ctx.claims.get(claim.id).await.unwrap();
        kept_count += usize::from(kept.is_some());
        let object = exists(&*store, &claim.key).await;
        match kept {
            Some(c) => {
                assert_eq!(c.status, ClaimStatus::Uploaded, "{}", claim.key);
                assert!(object, "an uploaded claim keeps its object: {}", claim.key);
            }
            None => {
                assert!(!marked.contains(&claim.id), "a marked claim is never swept");
                assert!(!object, "a swept claim's object is deleted: {}", claim.key);
            }
        }
    }
    eprintln!(
        "race: {kept_count} of {CLAIMS} claims uploaded (complete or recovery won), {} marked by complete",
        marked.len()
    );
    assert!(
        sessions(&*store, &prefix).await.is_empty(),
        "no session left"
    );
    let report = audit::audit(&ctx).await.unwrap();
    assert!(report.is_clean(), "{report}");
}

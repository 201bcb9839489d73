//! Bucket hygiene against Garage: the orphan reaper, and the audit (as a
//! library call and as the `claimcheck-worker audit` command).

mod listed_ghosts;

use std::{sync::Arc, time::Duration};

use claimcheck::{
    db::deletes::NewDelete,
    domain::DeleteReason,
    jobs::{audit, reaper},
    store::ObjectStore,
};
use claimcheck_tests::{
    db::TestDb,
    jobs::{context, fast_settings, put_object, sessions, PlantClaim},
    procs::{plain_stdout, run_worker_command, s3_worker_env},
    stores::{s3_store, test_prefix},
};

#[tokio::test]
async fn the_reaper_aborts_unknown_sessions_and_leaves_known_and_young_ones() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let store: Arc<dyn ObjectStore> = Arc::new(s3_store().await);
    let mut settings = fast_settings(&prefix);
    settings.claim_ttl = Duration::from_millis(1);
    let ctx = context(&db, store.clone(), settings.clone());
    let ct = "application/octet-stream";
    // Behind the service's back: no claim, no queue row.
    let orphan = store
        .create_multipart(&format!("{prefix}orphan"), ct)
        .await
        .unwrap();
    let live_key = format!("{prefix}live");
    let live = store.create_multipart(&live_key, ct).await.unwrap();
    PlantClaim::pending(&live_key)
        .size(10)
        .session(&live)
        .plant(&db)
        .await;
    let queued_key = format!("{prefix}queued");
    let queued = store.create_multipart(&queued_key, ct).await.unwrap();
    ctx.queue
        .enqueue(&[NewDelete {
            key: queued_key,
            upload_id: Some(queued.clone()),
            reason: DeleteReason::ClaimExpired,
        }])
        .await
        .unwrap();
    // Sessions must be older than claim TTL + grace; S3 dates have seconds.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // With an hour of grace, nothing is old enough yet.
    let mut patient = settings;
    patient.orphan_grace = Duration::from_secs(3600);
    let waiting = context(&db, store.clone(), patient);
    assert_eq!(reaper::reap_once(&waiting).await.unwrap().aborted, 0);

    let outcome = reaper::reap_once(&ctx).await.unwrap();
    assert_eq!((outcome.examined, outcome.aborted), (3, 1), "{outcome:?}");
    let mut left = sessions(&*store, &prefix).await;
    left.sort();
    let mut expected = vec![live, queued];
    expected.sort();
    assert_eq!(
        left, expected,
        "the orphan {orphan} is gone, the others stay"
    );
    assert!(ctx
        .metrics
        .render()
        .contains("claimcheck_orphans_aborted_total 1"));
}

#[tokio::test]
async fn the_audit_finds_every_planted_inconsistency_and_nothing_else() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let store: Arc<dyn ObjectStore> = Arc::new(s3_store().await);
    let ctx = context(&db, store.clone(), fast_settings(&prefix));
    let k = |name: &str| format!("{prefix}{name}");

    // Consistent: each object accounted for once, a pending claim without
    // its object yet, a session its claim knows.
    put_object(&*store, &k("claimed"), 3).await;
    PlantClaim::uploaded(&k("claimed")).size(3).plant(&db).await;
    put_object(&*store, &k("queued"), 3).await;
    ctx.queue
        .enqueue(&[NewDelete {
            key: k("queued"),
            upload_id: None,
            reason: DeleteReason::Deleted,
        }])
        .await
        .unwrap();
    put_object(&*store, &k("live"), 3).await;
    insert_registry_row(&db, &k("live")).await;
    let upload = store
        .create_multipart(&k("pending"), "text/plain")
        .await
        .unwrap();
    PlantClaim::pending(&k("pending"))
        .size(3)
        .session(&upload)
        .plant(&db)
        .await;
    let clean = audit::audit(&ctx).await.unwrap();
    assert!(clean.is_clean(), "{clean}");
    let ok = run_worker_command(&s3_worker_env(&db.url, &prefix, None), &["audit"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    // Planted: one of each kind.
    put_object(&*store, &k("leaked"), 3).await;
    insert_registry_row(&db, &k("lost")).await;
    PlantClaim::uploaded(&k("vanished"))
        .size(3)
        .plant(&db)
        .await;
    let orphan = store
        .create_multipart(&k("orphan"), "text/plain")
        .await
        .unwrap();

    let report = audit::audit(&ctx).await.unwrap();
    assert_eq!(report.unaccounted_objects, vec![k("leaked")]);
    assert_eq!(report.registry_without_object, vec![k("lost")]);
    assert_eq!(report.claims_without_object, vec![k("vanished")]);
    let orphans: Vec<_> = report
        .orphan_sessions
        .iter()
        .map(|s| &s.upload_id)
        .collect();
    assert_eq!(orphans, vec![&orphan]);
    assert_eq!((report.objects_scanned, report.sessions_scanned), (4, 2));

    let failed = run_worker_command(&s3_worker_env(&db.url, &prefix, None), &["audit"]);
    assert_eq!(failed.status.code(), Some(1), "the command exits non-zero");
    let printed = plain_stdout(&failed).join("\n");
    for expected in [
        format!("object not accounted for: {}", k("leaked")),
        format!("registry row without object: {}", k("lost")),
        format!("uploaded claim without object: {}", k("vanished")),
        format!("multipart session without claim: {}", k("orphan")),
    ] {
        assert!(
            printed.contains(&expected),
            "`{expected}` missing from:\n{printed}"
        );
    }

    // Repaired, the audit is clean again.
    store.delete(&k("leaked")).await.unwrap();
    store.abort_multipart(&k("orphan"), &orphan).await.unwrap();
    store.abort_multipart(&k("pending"), &upload).await.unwrap();
    db.client()
        .await
        .batch_execute(&format!(
            "DELETE FROM claimcheck.objects WHERE object_key = '{0}lost';
             DELETE FROM claimcheck.upload_claims WHERE object_key = '{0}vanished';",
            prefix
        ))
        .await
        .unwrap();
    let report = audit::audit(&ctx).await.unwrap();
    assert!(report.is_clean(), "{report}");
}

async fn insert_registry_row(db: &TestDb, key: &str) {
    db.client()
        .await
        .execute(
            "INSERT INTO claimcheck.objects
               (object_key, owner, size, content_type, filename, public, created_at)
             VALUES ($1, 'owner-1', 3, 'text/plain', 'f.txt', false, now())",
            &[&key],
        )
        .await
        .unwrap();
}

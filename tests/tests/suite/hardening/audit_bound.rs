//! Item 16 of the hardening issue: the audit holds one listing page and one
//! database chunk at a time, whatever the bucket's size.

use std::sync::Arc;

use claimcheck::{jobs::audit, store::ObjectStore};
use claimcheck_tests::{
    db::TestDb,
    jobs::{context, fast_settings, put_objects, PlantClaim},
    stores::{fs_store, test_prefix},
};

/// 2,600 objects over three listing pages, each with its registry row, and
/// registry rows and an uploaded claim whose objects are missing, placed
/// before, between and after the pages: the audit finds exactly those,
/// holding at most a page and a chunk (2,000 keys) at once.
#[tokio::test]
async fn the_audit_merges_page_by_page_in_bounded_memory() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let (store, _dir) = fs_store();
    let store: Arc<dyn ObjectStore> = Arc::new(store);
    let ctx = context(&db, store.clone(), fast_settings(&prefix));
    let keys: Vec<String> = (0..2600)
        .map(|i| format!("{prefix}priv/b/{i:05}"))
        .collect();
    put_objects(&*store, &keys, 1).await;
    // Missing objects: before the first key, inside the second page, after
    // the last key ("a" < "b" < "c" bytewise; "-" sorts before digits).
    let missing = [
        format!("{prefix}priv/a/first"),
        format!("{prefix}priv/b/01500-"),
        format!("{prefix}priv/c/last"),
    ];
    let registry: Vec<&String> = keys.iter().chain(&missing).collect();
    db.client()
        .await
        .execute(
            "INSERT INTO claimcheck.objects (object_key, owner, size, content_type, filename, public, created_at)
             SELECT k, 'o', 1, 'application/octet-stream', 'f', false, now() FROM unnest($1::text[]) AS k",
            &[&registry],
        )
        .await
        .unwrap();
    let claim_without_object = format!("{prefix}priv/b/00999-");
    PlantClaim::uploaded(&claim_without_object).plant(&db).await;

    let report = audit::audit(&ctx).await.unwrap();
    assert_eq!(report.objects_scanned, 2600);
    assert_eq!(report.registry_without_object, missing);
    assert_eq!(report.claims_without_object, [claim_without_object]);
    assert!(report.unaccounted_objects.is_empty(), "{report}");
    assert!(
        report.peak_keys_held <= 2000,
        "held {} keys at once",
        report.peak_keys_held
    );
}

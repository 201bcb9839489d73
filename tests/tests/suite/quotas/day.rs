//! Daily quotas count per UTC day, from one row per owner and day: a new
//! day starts from zero (yesterday's rows are planted, nobody sleeps), and
//! old rows are pruned with the audit log's retention.

use claimcheck::jobs::retention;
use claimcheck_tests::{
    app::{Store, TestApp},
    jobs::{context, fast_settings},
    stores::fs_store,
};
use serde_json::json;

use super::{assert_refused, set_quota, show_quota, Owner, Start};

#[tokio::test]
async fn yesterdays_usage_does_not_count_today() {
    let app = TestApp::spawn(Store::Fs).await;
    let owner = Owner::new(&app, "daily").await;
    set_quota(
        &app,
        &owner.name,
        json!({"daily_uploads": 2, "daily_bytes": 1000}),
    )
    .await;
    let db = app.db.client().await;
    // Yesterday (UTC) the owner used everything, and more.
    db.execute(
        "INSERT INTO claimcheck.owner_daily_usage (owner, day, uploads, bytes)
         VALUES ($1, (now() AT TIME ZONE 'UTC')::date - 1, 50, 50000)",
        &[&owner.name],
    )
    .await
    .unwrap();
    assert_eq!(owner.start(&app, Start::Multipart, 600).await.status(), 201);
    assert_refused(
        owner.start(&app, Start::Tus, 401).await,
        "daily_bytes",
        1000,
        600,
    )
    .await;
    assert_eq!(owner.start(&app, Start::Tus, 400).await.status(), 201);
    assert_refused(
        owner.start(&app, Start::Single, 1).await,
        "daily_uploads",
        2,
        2,
    )
    .await;
    let today: (i64, i64) = db
        .query_one(
            "SELECT uploads, bytes FROM claimcheck.owner_daily_usage
              WHERE owner = $1 AND day = (now() AT TIME ZONE 'UTC')::date",
            &[&owner.name],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(today, (2, 1000), "refusals are not counted");
    let shown = show_quota(&app, &owner.name).await;
    assert_eq!(shown["usage"]["daily_uploads"], 2, "{shown}");

    // Tomorrow, as far as the counters go: today's row becomes yesterday's.
    db.execute(
        "UPDATE claimcheck.owner_daily_usage SET day = day - 1 WHERE owner = $1",
        &[&owner.name],
    )
    .await
    .unwrap();
    assert_eq!(owner.start(&app, Start::Single, 10).await.status(), 201);
}

#[tokio::test]
async fn old_daily_rows_and_audit_rows_are_pruned() {
    let app = TestApp::spawn(Store::Fs).await;
    let db = app.db.client().await;
    db.execute(
        "INSERT INTO claimcheck.owner_daily_usage (owner, day, uploads, bytes) VALUES
           ('old', (now() AT TIME ZONE 'UTC')::date - 400, 1, 1),
           ('new', (now() AT TIME ZONE 'UTC')::date - 2, 1, 1)",
        &[],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO claimcheck.audit_log (at, actor, action, target) VALUES
           (now() - interval '400 days', 'cli', 'token.minted', 'old'),
           (now() - interval '2 days', 'cli', 'token.minted', 'new')",
        &[],
    )
    .await
    .unwrap();
    let (store, _dir) = fs_store();
    let mut settings = fast_settings(&app.prefix);
    settings.audit_retention = std::time::Duration::from_secs(365 * 86_400);
    let ctx = context(&app.db, std::sync::Arc::new(store), settings);
    let pruned = retention::prune_once(&ctx).await.unwrap();
    assert_eq!(pruned.usage_rows, 1);
    assert!(pruned.audit_rows >= 1, "{pruned:?}");
    let left = app
        .sql_i64("SELECT count(*) FROM claimcheck.audit_log WHERE target = 'old'")
        .await;
    assert_eq!(left, 0);
    let kept = app
        .sql_i64("SELECT count(*) FROM claimcheck.audit_log WHERE target = 'new'")
        .await;
    assert_eq!(kept, 1);
    let usage = app
        .sql_i64("SELECT count(*) FROM claimcheck.owner_daily_usage WHERE owner IN ('old', 'new')")
        .await;
    assert_eq!(usage, 1);
}

/// A deferred size holds the size limit until declared, and counts its
/// bytes against the day it is declared on.
#[tokio::test]
async fn a_deferred_size_counts_when_declared() {
    let app = TestApp::spawn_with(Store::Fs, &[("CLAIMCHECK_MAX_UPLOAD_SIZE", "1000")]).await;
    let owner = Owner::new(&app, "deferred").await;
    set_quota(&app, &owner.name, json!({"bytes": 1500})).await;
    let res = app
        .http
        .post(format!("{}/v1/tus", app.base))
        .bearer_auth(&owner.token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Defer-Length", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let path = res.headers()["location"].to_str().unwrap().to_owned();
    let shown = show_quota(&app, &owner.name).await;
    assert_eq!(shown["usage"]["bytes"], 1000, "the limit is held: {shown}");
    assert_eq!(shown["usage"]["daily_bytes"], 0, "{shown}");
    assert_refused(
        owner.start(&app, Start::Multipart, 501).await,
        "bytes",
        1500,
        1000,
    )
    .await;

    let res = app
        .http
        .patch(format!("{}{path}", app.base))
        .bearer_auth(&owner.token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "0")
        .header("Upload-Length", "10")
        .header("Content-Type", "application/offset+octet-stream")
        .body(vec![5u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let shown = show_quota(&app, &owner.name).await;
    assert_eq!(shown["usage"]["bytes"], 10, "{shown}");
    assert_eq!(shown["usage"]["daily_bytes"], 10, "{shown}");
    assert_eq!(
        owner.start(&app, Start::Multipart, 1000).await.status(),
        201
    );
}

//! Each quota refuses each kind of start past it, answers what it is, and
//! lets nothing be created.

use claimcheck_tests::app::{Store, TestApp};
use serde_json::json;

use super::{assert_refused, count, set_quota, show_quota, Owner, Start};

const STARTS: [Start; 3] = [Start::Single, Start::Multipart, Start::Tus];

#[tokio::test]
async fn the_byte_quota_refuses_every_kind_of_start_past_it() {
    let app = TestApp::spawn(Store::Fs).await;
    for (i, start) in STARTS.into_iter().enumerate() {
        let owner = Owner::new(&app, &format!("bytes-{i}")).await;
        set_quota(&app, &owner.name, json!({"bytes": 1000})).await;
        assert_eq!(
            owner.start(&app, start, 600).await.status(),
            201,
            "{start:?}"
        );
        let refused = owner.start(&app, start, 401).await;
        let body = assert_refused(refused, "bytes", 1000, 600).await;
        assert_eq!(body["requested"], 401);
        assert_eq!(owner.claims(&app).await, 1, "{start:?}: nothing created");
        // Exactly what is left fits.
        assert_eq!(
            owner.start(&app, start, 400).await.status(),
            201,
            "{start:?}"
        );
        assert_eq!(owner.claims(&app).await, 2);
        let shown = show_quota(&app, &owner.name).await;
        assert_eq!(shown["usage"]["bytes"], 1000, "{shown}");
        assert_eq!(shown["limits"]["bytes"], 1000);
    }
    // The refusals were announced and counted.
    let announced = app
        .sql_i64("SELECT count(*) FROM claimcheck.events WHERE type = 'quota.exceeded'")
        .await;
    assert_eq!(announced, 3);
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("claimcheck_quota_refusals_total{quota=\"bytes\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_daily_quotas_refuse_every_kind_of_start_past_them() {
    let app = TestApp::spawn_with(Store::Fs, &[("CLAIMCHECK_DAILY_UPLOADS", "2")]).await;
    for (i, start) in STARTS.into_iter().enumerate() {
        // The configured default: 2 uploads a day.
        let owner = Owner::new(&app, &format!("uploads-{i}")).await;
        for _ in 0..2 {
            assert_eq!(owner.start(&app, start, 10).await.status(), 201);
        }
        assert_refused(owner.start(&app, start, 10).await, "daily_uploads", 2, 2).await;
        assert_eq!(owner.claims(&app).await, 2, "{start:?}: nothing created");

        // An override of bytes per day.
        let owner = Owner::new(&app, &format!("daily-bytes-{i}")).await;
        set_quota(
            &app,
            &owner.name,
            json!({"daily_bytes": 100, "daily_uploads": 0}),
        )
        .await;
        for _ in 0..3 {
            assert_eq!(owner.start(&app, start, 30).await.status(), 201);
        }
        assert_refused(owner.start(&app, start, 11).await, "daily_bytes", 100, 90).await;
        assert_eq!(owner.start(&app, start, 10).await.status(), 201);
        assert_eq!(owner.claims(&app).await, 4, "{start:?}");
        let shown = show_quota(&app, &owner.name).await;
        assert_eq!(shown["usage"]["daily_bytes"], 100, "{shown}");
        assert_eq!(shown["usage"]["daily_uploads"], 4, "{shown}");
        assert_eq!(
            shown["limits"]["daily_uploads"], 0,
            "lifted by the override"
        );
    }
}

#[tokio::test]
async fn the_in_flight_cap_is_counted_as_the_pending_quota() {
    let app = TestApp::spawn_with(Store::Fs, &[("CLAIMCHECK_MAX_PENDING_PER_OWNER", "1")]).await;
    let owner = Owner::new(&app, "pending").await;
    assert_eq!(owner.start(&app, Start::Multipart, 10).await.status(), 201);
    let res = owner.start(&app, Start::Tus, 10).await;
    assert_eq!(res.status(), 429);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "too_many_pending_uploads");
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("claimcheck_quota_refusals_total{quota=\"pending\"} 1"));
    // The cap is no quota event.
    let announced = app
        .sql_i64("SELECT count(*) FROM claimcheck.events WHERE type = 'quota.exceeded'")
        .await;
    assert_eq!(announced, 0);
}

/// tus concatenation: partials count their bytes but not as uploads; the
/// final counts as the upload, and holds the partials' bytes once.
#[tokio::test]
async fn a_tus_final_upload_counts_once_and_is_checked_too() {
    let app = TestApp::spawn(Store::Fs).await;
    let owner = Owner::new(&app, "concat").await;
    set_quota(&app, &owner.name, json!({"bytes": 200, "daily_uploads": 1})).await;
    let mut partials = Vec::new();
    for _ in 0..2 {
        partials.push(partial(&app, &owner, 100).await);
    }
    let shown = show_quota(&app, &owner.name).await;
    assert_eq!(
        shown["usage"]["daily_uploads"], 0,
        "partials are no uploads: {shown}"
    );
    assert_eq!(shown["usage"]["bytes"], 200);

    // A lowered byte quota refuses the final: it would hold 200 bytes.
    set_quota(&app, &owner.name, json!({"bytes": 199})).await;
    let refused = final_upload(&app, &owner, &partials).await;
    assert_refused(refused, "bytes", 199, 0).await;
    assert_eq!(owner.claims(&app).await, 2, "the partials stay, no final");

    // At 200 it fits: the partials' bytes are not counted twice.
    set_quota(&app, &owner.name, json!({"bytes": 200})).await;
    assert_eq!(final_upload(&app, &owner, &partials).await.status(), 201);
    let shown = show_quota(&app, &owner.name).await;
    assert_eq!(shown["usage"]["daily_uploads"], 1, "{shown}");
    assert_eq!(
        shown["usage"]["daily_bytes"], 200,
        "the partials' bytes, once"
    );

    // The final was today's one upload.
    let again = partial(&app, &owner, 0).await;
    assert_refused(
        final_upload(&app, &owner, &[again]).await,
        "daily_uploads",
        1,
        1,
    )
    .await;
    assert_eq!(count(&app, "objects", &owner.name).await, 0);
}

/// A finished partial upload of `len` bytes; its path.
async fn partial(app: &TestApp, owner: &Owner, len: usize) -> String {
    let res = app
        .http
        .post(format!("{}/v1/tus", app.base))
        .bearer_auth(&owner.token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", len.to_string())
        .header("Upload-Concat", "partial")
        .header("Content-Type", "application/offset+octet-stream")
        .body(vec![1u8; len])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "partial");
    res.headers()["location"].to_str().unwrap().to_owned()
}

async fn final_upload(app: &TestApp, owner: &Owner, partials: &[String]) -> reqwest::Response {
    app.http
        .post(format!("{}/v1/tus", app.base))
        .bearer_auth(&owner.token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Concat", format!("final;{}", partials.join(" ")))
        .send()
        .await
        .unwrap()
}

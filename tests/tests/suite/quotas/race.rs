//! The byte quota holds under concurrent starts from several pods: each
//! owner's starts pass the check one at a time (the owner's advisory lock,
//! held by the creating transaction), so exactly what fits is admitted.

use claimcheck_tests::app::{Store, TestApp};
use futures::future::join_all;
use serde_json::json;

use super::{set_quota, show_quota, Owner, Start};

#[tokio::test]
async fn fifty_concurrent_starts_from_two_pods_admit_exactly_what_fits() {
    let a = TestApp::spawn(Store::Fs).await;
    let b = a.another().await;
    let owner = Owner::new(&a, "racer").await;
    // 10 starts of 1,000 bytes fit, whichever kind and pod they come in by.
    set_quota(&a, &owner.name, json!({"bytes": 10_000})).await;
    let starts = (0..50).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let kind = [Start::Multipart, Start::Tus, Start::Single][i % 3];
        owner.start(app, kind, 1000)
    });
    let answers = join_all(starts).await;
    let mut admitted = 0;
    let mut refused = 0;
    for res in answers {
        match res.status().as_u16() {
            201 => admitted += 1,
            429 => {
                let body: serde_json::Value = res.json().await.unwrap();
                assert_eq!(body["code"], "quota_exceeded");
                assert_eq!(body["usage"], 10_000, "refused only when full: {body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", res.text().await.unwrap()),
        }
    }
    assert_eq!((admitted, refused), (10, 40));
    assert_eq!(owner.claims(&a).await, 10);
    let shown = show_quota(&b, &owner.name).await;
    assert_eq!(shown["usage"]["bytes"], 10_000, "{shown}");
    assert_eq!(shown["usage"]["daily_uploads"], 10);
}

#[tokio::test]
async fn owner_show_prints_limits_overrides_and_usage() {
    let app = TestApp::spawn_with(Store::Fs, &[("CLAIMCHECK_DAILY_UPLOADS", "7")]).await;
    let owner = Owner::new(&app, "shown").await;
    set_quota(&app, &owner.name, json!({"bytes": 4096})).await;
    assert_eq!(owner.start(&app, Start::Single, 100).await.status(), 201);
    let out = std::process::Command::new(claimcheck_tests::binary("claimcheck-api"))
        .env("DATABASE_URL", &app.db.url)
        .env("CLAIMCHECK_DAILY_UPLOADS", "7")
        .env("RUST_LOG", "warn")
        .args(["owner", "show", "shown"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["owner"], "shown");
    assert_eq!(
        shown["limits"],
        json!({"bytes": 4096, "daily_bytes": 0, "daily_uploads": 7})
    );
    assert_eq!(shown["overrides"]["bytes"], 4096);
    assert_eq!(shown["overrides"]["daily_uploads"], serde_json::Value::Null);
    assert_eq!(shown["usage"]["bytes"], 100);
    assert_eq!(shown["usage"]["daily_uploads"], 1);
}

#[tokio::test]
async fn quota_overrides_are_validated() {
    let app = TestApp::spawn(Store::Fs).await;
    let put = |body: serde_json::Value, owner: &'static str| {
        app.http
            .put(format!("{}/v1/admin/owners/{owner}/quota", app.base))
            .bearer_auth(&app.admin_token)
            .json(&body)
            .send()
    };
    for body in [
        json!({}),
        json!({"bytes": -1}),
        json!({"byte": 5}),
        json!({"bytes": "5GiB"}),
        json!({"daily_uploads": 9_300_000_000_000_000_000u64}),
    ] {
        let res = put(body.clone(), "v").await.unwrap();
        assert_eq!(res.status(), 400, "{body}");
    }
    let res = app
        .http
        .put(format!("{}/v1/admin/owners/v/quota", app.base))
        .bearer_auth(&app.alice_token)
        .json(&json!({"bytes": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Nothing was set, and nothing recorded.
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.owner_quotas")
            .await,
        0
    );
    let changes = app
        .sql_i64("SELECT count(*) FROM claimcheck.audit_log WHERE action = 'quota.changed'")
        .await;
    assert_eq!(changes, 0);
    // Then one that is fine, and back to the default.
    assert_eq!(put(json!({"bytes": 1}), "v").await.unwrap().status(), 200);
    let back: serde_json::Value = put(json!({"bytes": null}), "v")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        back["overrides"]["bytes"],
        serde_json::Value::Null,
        "{back}"
    );
}

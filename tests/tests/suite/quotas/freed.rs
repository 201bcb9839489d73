//! Quota is freed the moment a delete is queued, and when the sweeper takes
//! an expired claim.

use std::sync::Arc;

use claimcheck::jobs::sweeper;
use claimcheck_tests::{
    app::{Store, TestApp},
    jobs::{context, fast_settings},
};
use reqwest::Method;
use serde_json::{json, Value};

use super::{assert_refused, set_quota, Owner, Start};
use crate::support::store_of;

#[tokio::test]
async fn a_queued_delete_frees_the_objects_bytes() {
    let app = TestApp::spawn(Store::Fs).await;
    let owner = Owner::new(&app, "deleter").await;
    set_quota(&app, &owner.name, json!({"bytes": 1000})).await;
    let res = owner.start(&app, Start::Single, 1000).await;
    assert_eq!(res.status(), 201);
    let key = res.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_refused(
        owner.start(&app, Start::Single, 1).await,
        "bytes",
        1000,
        1000,
    )
    .await;

    // Consumed, the object still counts: it is the owner's.
    let consume = app
        .http
        .post(format!("{}/v1/claims/consume", app.base))
        .bearer_auth(&owner.token)
        .json(&json!({"owner": owner.name, "keys": [key]}))
        .send()
        .await
        .unwrap();
    assert_eq!(consume.status(), 200);
    assert_refused(
        owner.start(&app, Start::Multipart, 1).await,
        "bytes",
        1000,
        1000,
    )
    .await;

    let deleted = app
        .req(Method::POST, "/v1/deletes")
        .json(&json!({"items": [{"key": key, "reason": "deleted"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 202);
    // Before any worker ran: queued is enough.
    assert_eq!(
        owner.start(&app, Start::Multipart, 1000).await.status(),
        201
    );
}

#[tokio::test]
async fn an_expired_claim_frees_its_bytes_when_swept() {
    let app = TestApp::spawn(Store::Fs).await;
    let owner = Owner::new(&app, "expirer").await;
    set_quota(&app, &owner.name, json!({"bytes": 500})).await;
    assert_eq!(owner.start(&app, Start::Tus, 500).await.status(), 201);
    assert_refused(owner.start(&app, Start::Tus, 1).await, "bytes", 500, 500).await;

    app.db
        .client()
        .await
        .execute(
            "UPDATE claimcheck.upload_claims SET expires_at = now() - interval '1 second'
              WHERE owner = $1",
            &[&owner.name],
        )
        .await
        .unwrap();
    // Expired but not swept: still held (the sweeper has not taken it).
    assert_refused(owner.start(&app, Start::Tus, 1).await, "bytes", 500, 500).await;
    let store: Arc<dyn claimcheck::store::ObjectStore> = Arc::from(store_of(&app).await);
    let ctx = context(&app.db, store, fast_settings(&app.prefix));
    let swept = sweeper::sweep_once(&ctx).await.unwrap();
    assert_eq!(swept.expired, 1, "{swept:?}");
    assert_eq!(owner.start(&app, Start::Tus, 500).await.status(), 201);
}

//! Owner-bound consume tokens: every consume-scope endpoint answers 404
//! for another owner's claims and objects, and works for the token's own;
//! `Files::for_owners` holds Rust callers to the same rule.

use claimcheck::{
    files::{ConsumeError, Files, ScheduleError},
    tokens::Scope,
};
use claimcheck_tests::app::{Store, TestApp};
use reqwest::{Method, Response};
use serde_json::{json, Value};

/// An uploaded claim of `owner` (through a token of its own); its key.
async fn uploaded(app: &TestApp, owner: &str) -> String {
    let token = app.token_for(owner, &[Scope::Upload]).await;
    let res = app
        .http
        .post(format!("{}/v1/uploads?filename=a.bin", app.base))
        .bearer_auth(&token)
        .header("Content-Type", "application/octet-stream")
        .body(vec![3u8; 100])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn call(app: &TestApp, token: &str, method: Method, path: &str, body: Value) -> Response {
    let req = app
        .http
        .request(method.clone(), format!("{}{path}", app.base))
        .bearer_auth(token);
    let req = if method == Method::GET {
        req
    } else {
        req.json(&body)
    };
    req.send().await.unwrap()
}

/// Mints a consume token bound to `owners` over HTTP.
async fn bound_token(app: &TestApp, owners: &[&str]) -> String {
    let res = app
        .http
        .post(format!("{}/v1/tokens", app.base))
        .bearer_auth(&app.admin_token)
        .json(&json!({"owner": "svc-a", "scopes": ["consume"], "owners": owners}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let minted: Value = res.json().await.unwrap();
    assert_eq!(minted["owners"], json!(owners));
    minted["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_bound_token_gets_404_for_other_owners_and_works_for_its_own() {
    let app = TestApp::spawn(Store::Fs).await;
    let token = bound_token(&app, &["carol"]).await;
    let (theirs, mine) = (uploaded(&app, "dan").await, uploaded(&app, "carol").await);

    // Consume: another owner's claims are missing, named as such.
    let res = call(
        &app,
        &token,
        Method::POST,
        "/v1/claims/consume",
        json!({"owner": "dan", "keys": [theirs]}),
    )
    .await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.json::<Value>().await.unwrap()["missing"],
        json!([theirs])
    );
    // Consumed by an unbound token, the object is dan's registry row ...
    let unbound = app.token_for("svc-b", &[Scope::Consume]).await;
    let res = call(
        &app,
        &unbound,
        Method::POST,
        "/v1/claims/consume",
        json!({"owner": "dan", "keys": [theirs]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    // ... which the bound token neither sees, signs nor deletes.
    let object = format!("/v1/objects/{theirs}");
    assert_eq!(
        call(&app, &token, Method::GET, &object, json!(null))
            .await
            .status(),
        404
    );
    let res = call(
        &app,
        &token,
        Method::POST,
        "/v1/objects/url",
        json!({"key": theirs}),
    )
    .await;
    assert_eq!(res.status(), 404);
    let res = call(
        &app,
        &token,
        Method::POST,
        "/v1/deletes",
        json!({"items": [{"key": theirs, "reason": "deleted"}]}),
    )
    .await;
    assert_eq!(res.status(), 404);
    // Nor another owner's pending-or-uploaded claim (404, not 409).
    let dans_claim = uploaded(&app, "dan").await;
    let res = call(
        &app,
        &token,
        Method::POST,
        "/v1/deletes",
        json!({"items": [{"key": dans_claim, "reason": "deleted"}]}),
    )
    .await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.pending_deletes")
            .await,
        0
    );
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.objects WHERE owner = 'dan'")
            .await,
        1
    );

    // Its own owner's: everything works.
    let res = call(
        &app,
        &token,
        Method::POST,
        "/v1/claims/consume",
        json!({"owner": "carol", "keys": [mine]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        call(
            &app,
            &token,
            Method::GET,
            &format!("/v1/objects/{mine}"),
            json!(null)
        )
        .await
        .status(),
        200
    );
    let res = call(
        &app,
        &token,
        Method::POST,
        "/v1/objects/url",
        json!({"key": mine}),
    )
    .await;
    assert!(
        res.status() == 200 || res.status() == 503,
        "{}",
        res.status()
    );
    let res = call(
        &app,
        &token,
        Method::POST,
        "/v1/deletes",
        json!({"items": [{"key": mine, "reason": "deleted"}]}),
    )
    .await;
    assert_eq!(res.status(), 202);
    // And the unbound token still acts for everyone.
    let res = call(
        &app,
        &unbound,
        Method::POST,
        "/v1/deletes",
        json!({"items": [{"key": theirs, "reason": "deleted"}]}),
    )
    .await;
    assert_eq!(res.status(), 202);
}

#[tokio::test]
async fn bound_tokens_are_minted_by_the_cli_and_refused_when_malformed() {
    let app = TestApp::spawn(Store::Fs).await;
    let out = std::process::Command::new(claimcheck_tests::binary("claimcheck-api"))
        .env("DATABASE_URL", &app.db.url)
        .args([
            "token", "create", "--owner", "svc", "--scopes", "consume", "--owners", "x,y",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let raw = stdout.lines().last().unwrap().trim().to_owned();
    let info = app
        .sql_i64(
            "SELECT cardinality(owners)::bigint FROM claimcheck.api_tokens WHERE owner = 'svc'",
        )
        .await;
    assert_eq!(info, 2);
    let key = uploaded(&app, "z").await;
    let res = call(
        &app,
        &raw,
        Method::POST,
        "/v1/claims/consume",
        json!({"owner": "z", "keys": [key]}),
    )
    .await;
    assert_eq!(res.status(), 404);
    for owners in [json!([]), json!([""]), json!(["a\u{0}b"])] {
        let res = app
            .http
            .post(format!("{}/v1/tokens", app.base))
            .bearer_auth(&app.admin_token)
            .json(&json!({"owner": "svc", "scopes": ["consume"], "owners": owners}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{owners}");
    }
}

#[tokio::test]
async fn files_for_owners_holds_rust_callers_to_the_same_rule() {
    let app = TestApp::spawn(Store::Fs).await;
    let theirs = uploaded(&app, "erin").await;
    let mut client = claimcheck_tests::db::connect(&app.db.url).await;
    let mut tx = client.transaction().await.unwrap();
    let refused = Files::new(&mut tx)
        .for_owners(["frank"])
        .consume("erin", std::slice::from_ref(&theirs))
        .await;
    assert!(
        matches!(refused, Err(ConsumeError::Missing(ref k)) if k == std::slice::from_ref(&theirs)),
        "{refused:?}"
    );
    // Consumed by an unbound caller, then a bound delete is refused (a
    // refused delete aborts its transaction, as the SQL function's error
    // does: that one is rolled back).
    Files::new(&mut tx)
        .consume("erin", std::slice::from_ref(&theirs))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = client.transaction().await.unwrap();
    let refused = Files::new(&mut tx)
        .for_owners(["frank"])
        .delete(std::slice::from_ref(&theirs))
        .await;
    assert!(
        matches!(refused, Err(ScheduleError::NotFound(_))),
        "{refused:?}"
    );
    tx.rollback().await.unwrap();
    let mut tx = client.transaction().await.unwrap();
    Files::new(&mut tx)
        .for_owners(["erin"])
        .delete(std::slice::from_ref(&theirs))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.pending_deletes")
            .await,
        1
    );
}

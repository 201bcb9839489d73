//! The audit log (issue 16): one row for each security-relevant action,
//! with its actor, in the action's own transaction; refused
//! authentications counted per token prefix and minute; the admin listing
//! with filters and a cursor.

use claimcheck::tokens::Scope;
use claimcheck_tests::app::{Store, TestApp};
use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};

/// The audit rows of `action`, newest first, through the admin API.
async fn rows(app: &TestApp, query: &str) -> Vec<Value> {
    let page = app
        .admin_json(Method::GET, &format!("/v1/admin/audit?{query}"))
        .await;
    page["items"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{page}"))
}

async fn one(app: &TestApp, action: &str) -> Value {
    let found = rows(app, &format!("action={action}")).await;
    assert_eq!(found.len(), 1, "{action}: {found:?}");
    found[0].clone()
}

fn is_token(row: &Value, owner: &str) {
    assert_eq!(row["actor"], "token", "{row}");
    assert_eq!(row["actor_owner"], owner, "{row}");
    assert!(row["actor_token_id"].is_string(), "{row}");
    assert!(row["request_id"].is_string(), "{row}");
}

#[tokio::test]
async fn every_action_is_recorded_with_its_actor() {
    let app = TestApp::spawn(Store::Fs).await;
    let admin = |m: Method, p: &str| {
        app.http
            .request(m, format!("{}{p}", app.base))
            .bearer_auth(&app.admin_token)
    };
    // Tokens: minted and revoked over HTTP by the admin token.
    let minted: Value = admin(Method::POST, "/v1/tokens")
        .json(&json!({"owner": "svc", "scopes": ["consume"], "owners": ["alice"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = minted["id"].as_str().unwrap();
    let row = one(&app, "token.minted&actor=ops").await;
    is_token(&row, "ops");
    assert_eq!(row["target"], id);
    assert_eq!(row["detail"]["owners"], json!(["alice"]));
    let res = admin(Method::DELETE, &format!("/v1/tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(one(&app, "token.revoked").await["target"], id);
    // The setup's tokens were minted from the command line's code path.
    assert!(rows(&app, "action=token.minted&actor=cli").await.len() >= 2);

    // Consume and delete over HTTP, by alice's token.
    let res = crate::support::upload(&app, "a.txt", "text/plain", b"hi".to_vec()).await;
    let key = res.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .req(Method::POST, "/v1/claims/consume")
        .json(&json!({"owner": "alice", "keys": [key]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let row = one(&app, "objects.consumed").await;
    is_token(&row, "alice");
    assert_eq!(row["target"], "alice");
    assert_eq!(row["detail"]["keys"], json!([key]));
    let res = app
        .req(Method::POST, "/v1/deletes")
        .json(&json!({"items": [{"key": key, "reason": "replaced"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let row = one(&app, "delete.scheduled").await;
    is_token(&row, "alice");
    assert_eq!(row["target"], key);
    assert_eq!(row["detail"]["reason"], "replaced");
    assert_eq!(row["detail"]["owner"], "alice");

    // Through the SQL function: actor `sql`, the session's role; a consume
    // rolled back leaves no row (the same transaction).
    let res = crate::support::upload(&app, "b.txt", "text/plain", b"b".to_vec()).await;
    let key = res.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut db = app.db.client().await;
    let tx = db.transaction().await.unwrap();
    tx.query(
        "SELECT * FROM claimcheck.consume_claims('alice', ARRAY[$1])",
        &[&key],
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        rows(&app, "action=objects.consumed&actor=sql").await.len(),
        0
    );
    db.query(
        "SELECT * FROM claimcheck.consume_claims('alice', ARRAY[$1])",
        &[&key],
    )
    .await
    .unwrap();
    let row = one(&app, "objects.consumed&actor=sql").await;
    assert_eq!(row["actor_owner"], "postgres", "the database role: {row}");
    assert!(row["actor_token_id"].is_null());

    // Dead delete rows retried, webhooks changed, quotas changed.
    db.execute("UPDATE claimcheck.pending_deletes SET dead_at = now()", &[])
        .await
        .unwrap();
    let res = admin(Method::POST, "/v1/admin/queue/dead/retry")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(one(&app, "deletes.dead_retried").await["detail"]["rows"], 1);
    let hook: Value = admin(Method::POST, "/v1/admin/webhooks")
        .json(&json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hook_id = hook["id"].as_str().unwrap();
    assert_eq!(one(&app, "webhook.created").await["target"], hook_id);
    let res = admin(Method::DELETE, &format!("/v1/admin/webhooks/{hook_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        one(&app, "webhook.deleted").await["detail"]["url"],
        "http://127.0.0.1:9/hook"
    );
    let res = admin(Method::PUT, "/v1/admin/owners/alice/quota")
        .json(&json!({"bytes": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let row = one(&app, "quota.changed").await;
    assert_eq!(row["target"], "alice");
    assert_eq!(row["detail"]["before"]["bytes"], Value::Null);
    assert_eq!(row["detail"]["after"]["bytes"], 5);

    // Append-only.
    let err = db
        .execute("UPDATE claimcheck.audit_log SET action = 'x'", &[])
        .await
        .unwrap_err();
    let message = err
        .as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_default();
    assert!(message.contains("append-only"), "{err:?}");
}

#[tokio::test]
async fn the_listing_filters_and_pages_with_a_cursor() {
    let app = TestApp::spawn(Store::Fs).await;
    for i in 0..5 {
        app.token_for(&format!("o{i}"), &[Scope::Upload]).await;
    }
    let mut seen = Vec::new();
    let mut query = "action=token.minted&limit=2".to_owned();
    loop {
        let page = app
            .admin_json(Method::GET, &format!("/v1/admin/audit?{query}"))
            .await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|r| r["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("action=token.minted&limit=2&cursor={c}"),
            None => break,
        }
    }
    // The setup's two tokens and these five, newest first, each once.
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");
    let future = rows(&app, "since=2999-01-01T00:00:00Z").await;
    assert!(future.is_empty());
    for bad in ["limit=0", "limit=1001", "cursor=abc", "since=yesterday"] {
        let res = app
            .http
            .get(format!("{}/v1/admin/audit?{bad}", app.base))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }
    let res = app.get_as(Some(&app.alice_token), "/v1/admin/audit").await;
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn a_thousand_refused_authentications_make_a_handful_of_rows() {
    let mut app = TestApp::spawn(Store::Fs).await;
    let bad = format!("cc_{}", "A".repeat(43));
    let requests = (0..1000).map(|_| app.get_as(Some(&bad), "/v1/uploads"));
    for res in join_all(requests).await {
        assert_eq!(res.status(), 401);
    }
    // An expired token's uses are counted per token.
    let expired = app.token_for("late", &[Scope::Upload]).await;
    app.db.client().await
        .execute("UPDATE claimcheck.api_tokens SET expires_at = now() - interval '1 s' WHERE owner = 'late'", &[])
        .await.unwrap();
    for _ in 0..3 {
        assert_eq!(
            app.get_as(Some(&expired), "/v1/uploads").await.status(),
            401
        );
    }
    // Counts are written when their minute is over, and at shutdown.
    app.terminate().await;
    let db = app.db.client().await;
    let refused = db
        .query(
            "SELECT target, (detail->>'count')::bigint, actor FROM claimcheck.audit_log
              WHERE action = 'auth.refused'",
            &[],
        )
        .await
        .unwrap();
    assert!(
        (1..=2).contains(&refused.len()),
        "one row a minute: {}",
        refused.len()
    );
    let total: i64 = refused.iter().map(|r| r.get::<_, i64>(1)).sum();
    assert_eq!(total, 1000);
    assert!(refused
        .iter()
        .all(|r| r.get::<_, &str>(0) == "cc_AAAAA" && r.get::<_, &str>(2) == "anonymous"));
    let late = db
        .query_one(
            "SELECT sum((detail->>'count')::bigint)::bigint, min(actor_owner)
               FROM claimcheck.audit_log WHERE action = 'token.expired_used'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(late.get::<_, Option<i64>>(0), Some(3));
    assert_eq!(late.get::<_, Option<&str>>(1), Some("late"));
}

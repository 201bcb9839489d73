//! Operating webhooks: the admin API (secrets shown once), the CLI, and an
//! upload through the API arriving at a receiver.

use claimcheck::jobs::webhooks;
use claimcheck_tests::{
    app::{Store, TestApp},
    procs::{plain_stdout, run_worker_command},
};
use reqwest::Method;
use serde_json::json;

use super::{insert_events, jobs, receiver::Receiver};

#[tokio::test]
async fn admins_register_list_retry_and_remove_endpoints_and_uploads_arrive() {
    let app = TestApp::spawn(Store::Fs).await;
    let hook = Receiver::always(200).await;
    let post = |body: serde_json::Value, token: &str| {
        app.http
            .post(format!("{}/v1/admin/webhooks", app.base))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let res = post(
        json!({"url": hook.url, "events": ["upload.completed"]}),
        &app.alice_token,
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 403, "admin scope only");
    for bad in [
        json!({"url": "ftp://x.example/", "events": ["*"]}),
        json!({"url": "not a url", "events": ["*"]}),
        json!({"url": hook.url, "events": []}),
        json!({"url": hook.url, "events": ["upload.exploded"]}),
        json!({"url": hook.url, "events": ["*"], "extra": 1}),
    ] {
        assert_eq!(
            post(bad.clone(), &app.admin_token).await.unwrap().status(),
            400,
            "{bad}"
        );
    }
    let res = post(
        json!({"url": hook.url, "events": ["upload.completed"], "description": "billing"}),
        &app.admin_token,
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    let created: serde_json::Value = res.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let listed = app.admin_json(Method::GET, "/v1/admin/webhooks").await;
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(
        listed[0].get("secret").is_none(),
        "the secret is shown once: {listed}"
    );
    let shown = app
        .admin_json(Method::GET, &format!("/v1/admin/webhooks/{id}"))
        .await;
    assert_eq!(shown["description"], "billing");

    // An upload through the API: its completion reaches the receiver.
    let res = app
        .req(Method::POST, "/v1/uploads?filename=a.txt")
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let (ctx, http) = jobs(&app.db, |_| {});
    let outcome = webhooks::drain(&ctx, &http).await.unwrap();
    assert_eq!(
        outcome.done, 1,
        "only upload.completed was asked for: {outcome:?}"
    );
    let got = hook.received();
    let event = got[0].json();
    assert_eq!(
        (event["type"].as_str(), event["owner"].as_str()),
        (Some("upload.completed"), Some("alice"))
    );
    assert_eq!(event["data"]["status"], "uploaded");
    assert_eq!(event["data"]["size"], 5);
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&got[0].body, &got[0].headers)
        .unwrap();

    let retried = app
        .admin_json(Method::POST, &format!("/v1/admin/webhooks/{id}/retry"))
        .await;
    assert_eq!(retried["retried"], 0);
    let gone = app
        .http
        .delete(format!("{}/v1/admin/webhooks/{id}", app.base))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    let again = app
        .http
        .delete(format!("{}/v1/admin/webhooks/{id}", app.base))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn the_cli_lists_and_retries_dead_deliveries() {
    let app = TestApp::spawn(Store::Fs).await;
    let hook = Receiver::always(500).await;
    super::register(&app.db, &hook.url, &["*"]).await;
    insert_events(&app.db, 1).await;
    let (ctx, http) = jobs(&app.db, |s| s.webhook_max_attempts = 1);
    assert_eq!(webhooks::drain(&ctx, &http).await.unwrap().dead, 1);
    let env = [("DATABASE_URL", app.db.url.clone())];
    let stats = plain_stdout(&run_worker_command(&env, &["webhooks", "stats"]));
    assert!(stats.contains(&"dead 1".to_owned()), "{stats:?}");
    let dead = plain_stdout(&run_worker_command(&env, &["webhooks", "dead", "--retry"]));
    assert!(
        dead[0].contains(&hook.url) && dead[0].contains("status=500"),
        "{dead:?}"
    );
    assert_eq!(dead.last().map(String::as_str), Some("retried 1"));
    let out = run_worker_command(&env, &["webhooks", "stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (stats["dead"].as_i64(), stats["due"].as_i64()),
        (Some(0), Some(1))
    );
}

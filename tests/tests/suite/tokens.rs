//! Tokens: minted by either binary's `token` subcommand, expired, revoked,
//! and their last use recorded at most once a minute.

use claimcheck::{
    db::Actor,
    tokens::{parse_scopes, NewToken, TokenStore},
};
use claimcheck_tests::{
    app::{Store, TestApp},
    binary,
};

async fn run(bin: &str, app: &TestApp, args: &[&str]) -> String {
    let out = tokio::process::Command::new(binary(bin))
        .args(args)
        .env("DATABASE_URL", &app.db.url)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn both_binaries_mint_list_and_revoke_tokens() {
    let app = TestApp::spawn(Store::Fs).await;
    let out = run(
        "claimcheck-worker",
        &app,
        &[
            "token", "create", "--owner", "carol", "--scopes", "upload", "--name", "cli",
        ],
    )
    .await;
    let token = out.lines().last().unwrap().to_owned();
    assert!(token.starts_with("cc_") && token.len() == 46, "{out}");
    let uploads = app.get_as(Some(&token), "/v1/uploads").await;
    assert_eq!(uploads.status(), 200);

    let listed = run("claimcheck-api", &app, &["token", "list"]).await;
    assert!(
        listed.contains("\"carol\"") && !listed.contains(&token),
        "{listed}"
    );
    let id = listed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["owner"] == "carol")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    run("claimcheck-api", &app, &["token", "revoke", &id]).await;
    let uploads = app.get_as(Some(&token), "/v1/uploads").await;
    assert_eq!(uploads.status(), 401);
}

#[tokio::test]
async fn expired_tokens_are_refused_and_use_is_recorded_once_a_minute() {
    let app = TestApp::spawn(Store::Fs).await;
    let store = TokenStore::new(app.db.pool.clone());
    let minted = store
        .create(
            &NewToken::new("dave", parse_scopes("upload").unwrap()),
            &Actor::cli(),
        )
        .await
        .unwrap();
    let get = || {
        app.http
            .get(format!("{}/v1/uploads", app.base))
            .bearer_auth(&minted.token)
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);
    let last_used = || async {
        app.db
            .client()
            .await
            .query_one(
                "SELECT last_used_at FROM claimcheck.api_tokens WHERE owner = 'dave'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, chrono::DateTime<chrono::Utc>>(0)
    };
    let first = last_used().await;
    assert_eq!(get().await.unwrap().status(), 200);
    let second = last_used().await;
    assert_eq!(
        first, second,
        "a second use within the minute writes nothing"
    );

    app.db
        .client()
        .await
        .execute("UPDATE claimcheck.api_tokens SET expires_at = now() - interval '1 second' WHERE owner = 'dave'", &[])
        .await
        .unwrap();
    assert_eq!(get().await.unwrap().status(), 401);
}

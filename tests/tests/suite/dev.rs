//! `claimcheck-api dev`: the README's first command, on a database of the
//! test's own (the private-cluster path is what `scripts/dev` exercises).

use std::{process::Stdio, time::Duration};

use claimcheck_tests::{binary, db::TestDb};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn dev_serves_uploads_and_prints_a_working_token() {
    let db = TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(binary("claimcheck-api"))
        .arg("dev")
        .current_dir(dir.path())
        .env("DATABASE_URL", &db.url)
        .env("CLAIMCHECK_LISTEN", "127.0.0.1:0")
        .env("CLAIMCHECK_METRICS_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut base, mut token, mut page) = (None, None, None);
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("claimcheck dev server: ") {
                base = rest.split_whitespace().next().map(str::to_owned);
            }
            if let Some(t) = line.trim().strip_prefix("export CC_TOKEN=") {
                token = Some(t.to_owned());
            }
            if let Some(url) = line.strip_prefix("upload page: ") {
                page = Some(url.to_owned());
            }
            if base.is_some() && token.is_some() && page.is_some() {
                return;
            }
        }
    })
    .await
    .expect("dev announces itself within 30 s");
    let (base, token) = (base.unwrap(), token.unwrap());
    // The page's link carries the token in its fragment, which browsers
    // never send. Not built in this directory: / says how to build it.
    assert_eq!(page.unwrap(), format!("{base}/#token={token}"));
    let res = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.text().await.unwrap().contains("scripts/dev"));
    let res = reqwest::Client::new()
        .post(format!("{base}/v1/uploads?filename=hello.txt"))
        .bearer_auth(&token)
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let claim: serde_json::Value = res.json().await.unwrap();
    let key = claim["key"].as_str().unwrap();
    assert!(
        dir.path().join("data").join(key).is_file(),
        "dev stores objects under ./data"
    );
}

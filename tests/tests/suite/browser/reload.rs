//! A reload in the middle of an upload resumes it at the server's offset
//! (Golden Retriever restores the file list, the tus fingerprint Uppy
//! stored finds the upload) instead of starting over.

use claimcheck_tests::{
    app::{Store, TestApp},
    stores::random_bytes,
};
use serde_json::json;

use super::{assert_no_page_problems, web_dir, write_file, Script};
use crate::tus::{claim_id, stored_object, FIVE_MIB_PARTS};

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn a_reload_mid_upload_resumes_where_the_server_left_off() {
    let web = web_dir();
    let app = TestApp::spawn_with(Store::S3, &[FIVE_MIB_PARTS, ("CLAIMCHECK_WEB_DIR", &web)]).await;
    let dir = tempfile::tempdir().unwrap();
    let size = 20 * MIB + 3;
    let bytes = random_bytes(151, size);
    let file = write_file(dir.path(), "film.bin", &bytes);
    let result = Script::start(
        "reload.cjs",
        &json!({
            "url": format!("{}/#token={}", app.base, app.alice_token),
            "file": file,
        }),
    )
    .result()
    .await;
    assert_no_page_problems(&result["problems"], &[]);
    assert_eq!(result["errors"], json!([]));
    assert_eq!(
        result["ghost"], true,
        "Golden Retriever restored the file list"
    );

    let path = result["upload_url"].as_str().unwrap().to_owned();
    let upload = format!("{}{path}", app.base);
    let methods = |list: &serde_json::Value| -> Vec<(String, String, Option<u64>)> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["method"].as_str().unwrap().to_owned(),
                    r["url"].as_str().unwrap().to_owned(),
                    r["offset"].as_str().map(|o| o.parse().unwrap()),
                )
            })
            .collect()
    };
    let before = methods(&result["before"]);
    assert_eq!(before[0].0, "POST");
    let patched: Vec<Option<u64>> = before[1..].iter().map(|r| r.2).collect();
    assert_eq!(
        patched,
        [Some(0), Some(5 * MIB), Some(10 * MIB)],
        "held at 10 MiB"
    );

    // After the reload: no creation, a HEAD of the same upload, then PATCHes
    // from the offset the server had, to the end.
    let after = methods(&result["after"]);
    assert!(after.iter().all(|r| r.1 == upload), "{after:?}");
    assert_eq!(after[0].0, "HEAD", "{after:?}");
    let resumed_at = after[1].2.unwrap();
    assert!(
        (10 * MIB..size).contains(&resumed_at),
        "resumed at {resumed_at}, not from the start"
    );
    let claim = app
        .get_json(&format!("/v1/uploads/{}", claim_id(&path)))
        .await;
    assert_eq!(claim["status"], "uploaded", "{claim}");
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
            .await,
        1,
        "one upload, never restarted"
    );
    assert!(
        stored_object(&app, &path).await == bytes,
        "the stored bytes differ"
    );
}

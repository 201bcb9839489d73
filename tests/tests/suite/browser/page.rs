//! The upload page at `/`: three files through Uppy's tus plugin (one of
//! 30 MiB in 5 MiB chunks) end `uploaded` with their bytes in Garage, the
//! list below shows them, and refused files say why. Without a browser:
//! the page is off in `serve` unless set, and a missing build explains
//! itself.

use claimcheck_tests::{
    app::{Store, TestApp},
    stores::random_bytes,
};
use reqwest::Method;
use serde_json::json;

use super::{assert_no_page_problems, web_dir, write_file, Script};
use crate::tus::{stored_object, FIVE_MIB_PARTS};

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn the_page_uploads_three_files_with_uppy_and_lists_them() {
    let web = web_dir();
    let app = TestApp::spawn_with(
        Store::S3,
        &[
            FIVE_MIB_PARTS,
            ("CLAIMCHECK_WEB_DIR", &web),
            ("CLAIMCHECK_MAX_UPLOAD_SIZE", "31MiB"),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let accepted = [
        ("big.bin", random_bytes(141, 30 * MIB)),
        ("photo.jpg", random_bytes(142, MIB + 17)),
        ("notes.txt", b"notes from the browser test\n".to_vec()),
    ];
    let files: Vec<String> = accepted
        .iter()
        .map(|(name, bytes)| write_file(dir.path(), name, bytes))
        .collect();
    // Refused at creation, before a byte: a denied type (text/html is in
    // the default deny list) and a size over the limit (a sparse file: the
    // browser never reads it).
    let html = write_file(dir.path(), "page.html", b"<p>not here</p>");
    let huge = dir.path().join("huge.bin");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(32 * MIB)
        .unwrap();
    let result = Script::start(
        "page.cjs",
        &json!({
            "url": format!("{}/#token={}", app.base, app.alice_token),
            "files": files,
            "refused": [html, huge.display().to_string()],
            // `CLAIMCHECK_BROWSER_SCREENSHOT=docs/browser-upload-page.png`
            // renews the README's picture.
            "screenshot": std::env::var("CLAIMCHECK_BROWSER_SCREENSHOT").ok(),
        }),
    )
    .result()
    .await;

    let headers = &result["headers"];
    let csp = headers["content-security-policy"].as_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"));
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(result["fragment_left"], false, "the token left the URL");
    // The two refusals, logged by Chromium and by Uppy; nothing else.
    assert_no_page_problems(
        &result["problems"],
        &[
            "status of 413",
            "status of 415",
            "response code: 413",
            "response code: 415",
        ],
    );

    // The list shows the three, uploaded, with the server's SHA-256; the
    // claims and the bytes in the store agree.
    let rows = result["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "refused files made no claim: {rows:?}");
    for (name, bytes) in &accepted {
        let row = rows
            .iter()
            .find(|r| r["filename"] == *name)
            .unwrap_or_else(|| panic!("{name} listed: {rows:?}"));
        let id = row["id"].as_str().unwrap();
        let claim = app.get_json(&format!("/v1/uploads/{id}")).await;
        assert_eq!(claim["status"], "uploaded", "{claim}");
        assert_eq!(row["status"], "uploaded");
        assert_eq!(claim["size"], bytes.len());
        assert_eq!(row["sha256"], claim["sha256"]);
        assert!(
            &stored_object(&app, &format!("/v1/tus/{id}")).await == bytes,
            "{name}: the stored bytes differ"
        );
    }

    // The 30 MiB file went in six PATCHes of 5 MiB.
    let big = rows.iter().find(|r| r["filename"] == "big.bin").unwrap();
    let chunks: Vec<u64> = result["patches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["url"]
                .as_str()
                .unwrap()
                .ends_with(big["id"].as_str().unwrap())
        })
        .map(|p| {
            assert_eq!(p["status"], 204, "{p}");
            p["next"].as_u64().unwrap() - p["offset"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(chunks, vec![5 * MIB; 6]);

    // Each refusal is spelled out with the server's code.
    let messages: Vec<&str> = result["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "error")
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    for (name, code) in [
        ("page.html", "unsupported_media_type"),
        ("huge.bin", "too_large"),
    ] {
        assert!(
            messages
                .iter()
                .any(|m| m.contains(&format!("“{name}”")) && m.contains(code)),
            "{name}: {messages:?}"
        );
    }
}

#[tokio::test]
async fn serve_has_no_page_unless_set_and_a_missing_build_says_how_to_make_it() {
    let app = TestApp::spawn(Store::Fs).await;
    let res = app.http.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(res.status(), 404, "no page in serve by default");

    let missing = tempfile::tempdir().unwrap();
    let dir = missing.path().display().to_string();
    let app = TestApp::spawn_with(Store::Fs, &[("CLAIMCHECK_WEB_DIR", &dir)]).await;
    let res = app.http.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'self'"));
    let text = res.text().await.unwrap();
    assert!(
        text.contains("has not been built") && text.contains("npm ci"),
        "{text}"
    );
    // The API is unaffected.
    let res = app.req(Method::GET, "/v1/uploads").send().await.unwrap();
    assert_eq!(res.status(), 200);

    // A build is served with its types; nothing outside `assets/` is.
    let web = web_dir();
    let app = TestApp::spawn_with(Store::Fs, &[("CLAIMCHECK_WEB_DIR", &web)]).await;
    for (path, status, content_type) in [
        ("/", 200, "text/html; charset=utf-8"),
        ("/assets/app.js", 200, "text/javascript; charset=utf-8"),
        ("/assets/app.css", 200, "text/css; charset=utf-8"),
        ("/assets/..%2Findex.html", 404, "application/problem+json"),
        ("/index.html", 404, "application/problem+json"),
    ] {
        let res = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{path}");
        assert_eq!(res.headers()["content-type"], content_type, "{path}");
    }
}

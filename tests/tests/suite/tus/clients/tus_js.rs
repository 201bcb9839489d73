//! tus-js-client's Node build (`tests/clients/js/tus_js_upload.js`): four
//! parallel partial uploads and a final one (concatenation), a stream of
//! unknown length, and uploads aborted with `upload.abort()` (between
//! PATCHes, mid-PATCH, in parallel) then resumed by a new process from the
//! URL or from tus-js-client's URL storage.

use claimcheck_tests::app::{Store, TestApp};
use serde_json::Value;

use super::{
    super::{head_offset, FIVE_MIB_PARTS},
    assert_uploaded_and_consumable, patched_bytes, run, tus_js, upload_path, Sample, MIB,
};

/// The requests of a run that got an answer.
fn requests(out: &Value) -> &Vec<Value> {
    out["requests"]
        .as_array()
        .unwrap_or_else(|| panic!("no requests in {out}"))
}

/// A number the client printed (header values come as text).
fn number(v: &Value) -> u64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64())
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The PATCHes the server took (204): (offset sent, offset received).
fn patches(out: &Value) -> Vec<(u64, u64)> {
    requests(out)
        .iter()
        .filter(|r| r["method"] == "PATCH" && r["status"] == 204)
        .map(|r| (number(&r["offset_sent"]), number(&r["offset_received"])))
        .collect()
}

/// Checks that `patches` follow each other from `from` to `to`, none sent
/// twice; the bytes they carried.
fn assert_contiguous(patches: &[(u64, u64)], from: u64, to: u64) -> u64 {
    assert!(!patches.is_empty());
    assert_eq!(patches[0].0, from, "{patches:?}");
    for pair in patches.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "{patches:?}");
    }
    assert_eq!(patches.last().unwrap().1, to, "{patches:?}");
    patches.iter().map(|(a, b)| b - a).sum()
}

#[tokio::test]
async fn tus_js_client_uploads_four_parallel_partials_and_a_final_on_s3() {
    let app = TestApp::spawn_with(Store::S3, &[FIVE_MIB_PARTS]).await;
    let sample = Sample::new(71, 12 * MIB + 7);
    let mut command = tus_js(&app);
    command.arg("--file").arg(&sample.path).args([
        "--parallel",
        "4",
        "--chunk-size",
        &(2 * MIB + 1).to_string(),
    ]);
    let out = run(command).await;
    let posts: Vec<&Value> = requests(&out)
        .iter()
        .filter(|r| r["method"] == "POST")
        .collect();
    let partials = posts
        .iter()
        .filter(|r| r["upload_concat"] == "partial")
        .count();
    assert_eq!(partials, 4, "{out}");
    let finals: Vec<&&Value> = posts
        .iter()
        .filter(|r| {
            r["upload_concat"]
                .as_str()
                .is_some_and(|c| c.starts_with("final;"))
        })
        .collect();
    assert_eq!(finals.len(), 1, "{out}");
    assert_eq!(
        finals[0]["upload_concat"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        4,
        "{out}"
    );
    assert!(
        requests(&out)
            .iter()
            .all(|r| r["status"] == 201 || r["status"] == 204),
        "every request succeeded the first time: {out}"
    );
    let sent: u64 = patches(&out).iter().map(|(a, b)| b - a).sum();
    assert_eq!(sent, sample.len(), "each byte PATCHed once: {out}");
    assert_uploaded_and_consumable(&app, &upload_path(&out), &sample).await;
}

#[tokio::test]
async fn tus_js_client_resumes_an_aborted_upload_from_its_url_on_s3() {
    let app = TestApp::spawn_with(Store::S3, &[FIVE_MIB_PARTS]).await;
    let sample = Sample::new(72, 12 * MIB + 3);
    let chunk = (MIB / 2 + 1).to_string();
    let mut first = tus_js(&app);
    first.arg("--file").arg(&sample.path).args([
        "--chunk-size",
        &chunk,
        "--data-during-creation",
        "--abort-after",
        &(4 * MIB).to_string(),
    ]);
    let first = run(first).await;
    assert_eq!(first["aborted"], true, "{first}");
    let path = upload_path(&first);
    // The first chunk came with the creation (creation-with-upload).
    let created = &requests(&first)[0];
    assert_eq!(created["method"], "POST", "{first}");
    assert_eq!(created["content_type"], "application/offset+octet-stream");
    let after_creation = number(&created["offset_received"]);
    assert_eq!(after_creation, MIB / 2 + 1, "{first}");
    // Aborted between two PATCHes: the server holds what it acknowledged.
    let acked = number(&first["offset"]);
    assert!(acked >= 4 * MIB && acked < sample.len(), "{first}");
    assert_eq!(head_offset(&app, &path).await, acked);
    assert_contiguous(&patches(&first), after_creation, acked);
    assert_eq!(patched_bytes(&app).await, acked);

    let mut second = tus_js(&app);
    second.arg("--file").arg(&sample.path).args([
        "--chunk-size",
        &chunk,
        "--upload-url",
        first["url"].as_str().unwrap(),
    ]);
    let second = run(second).await;
    assert_eq!(second["aborted"], false, "{second}");
    assert_eq!(second["url"], first["url"]);
    assert_eq!(requests(&second)[0]["method"], "HEAD", "{second}");
    let sent = assert_contiguous(&patches(&second), acked, sample.len());
    assert_eq!(sent, sample.len() - acked, "{second}");
    assert_eq!(
        patched_bytes(&app).await,
        sample.len(),
        "the server took every byte once"
    );
    assert_uploaded_and_consumable(&app, &path, &sample).await;
}

#[tokio::test]
async fn tus_js_client_resumes_after_an_abort_mid_patch_from_its_url_storage() {
    let app = TestApp::spawn(Store::Fs).await;
    let sample = Sample::new(73, 6 * MIB + 1);
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("tus-urls.json");
    let args = |extra: &[&str]| {
        let mut command = tus_js(&app);
        command
            .arg("--file")
            .arg(&sample.path)
            .arg("--url-storage")
            .arg(&storage)
            .args(["--chunk-size", &(2 * MIB).to_string()])
            .args(extra);
        command
    };
    let first = run(args(&[
        "--abort-after",
        &(2 * MIB).to_string(),
        "--abort-mid-patch",
    ]))
    .await;
    assert_eq!(first["aborted"], true, "{first}");
    assert_eq!(first["resumed_from_storage"], false, "{first}");
    let acked = number(&first["offset"]);
    assert_eq!(acked, 2 * MIB, "{first}");
    assert!(
        number(&first["abort_progress"]) > acked,
        "aborted with the next PATCH's body on the wire: {first}"
    );

    let second = run(args(&[])).await;
    assert_eq!(second["resumed_from_storage"], true, "{second}");
    assert_eq!(second["url"], first["url"], "the stored URL: {second}");
    // It resumed where the server stood (at least what it had acknowledged,
    // plus whatever of the cut PATCH it kept), not from 0.
    let patches = patches(&second);
    let resumed_at = patches[0].0;
    assert!(resumed_at >= acked && resumed_at < sample.len(), "{second}");
    let sent = assert_contiguous(&patches, resumed_at, sample.len());
    assert!(sent < sample.len(), "{second}");
    assert!(
        patched_bytes(&app).await <= sample.len(),
        "the server took no byte twice"
    );
    assert_uploaded_and_consumable(&app, &upload_path(&second), &sample).await;
}

#[tokio::test]
async fn tus_js_client_streams_with_a_deferred_length_on_s3() {
    let app = TestApp::spawn_with(Store::S3, &[FIVE_MIB_PARTS]).await;
    let chunk = 2 * MIB + 1;
    // Not a whole number of chunks: tus-js-client 4.3.1 stalls after the
    // last chunk of such a stream, before any request (its issue #779).
    let sample = Sample::new(74, 3 * chunk + 12_345);
    let mut command = tus_js(&app);
    command.arg("--file").arg(&sample.path).args([
        "--stream",
        "--defer-length",
        "--chunk-size",
        &chunk.to_string(),
    ]);
    let out = run(command).await;
    let created = &requests(&out)[0];
    assert_eq!(created["method"], "POST", "{out}");
    assert_eq!(created["defer_length"], "1", "{out}");
    assert_eq!(created["length_sent"], Value::Null, "{out}");
    let patches = patches(&out);
    assert_eq!(
        assert_contiguous(&patches, 0, sample.len()),
        sample.len(),
        "{out}"
    );
    let declared: Vec<&Value> = requests(&out)
        .iter()
        .filter(|r| r["method"] == "PATCH" && !r["length_sent"].is_null())
        .collect();
    assert_eq!(declared.len(), 1, "the length is declared once: {out}");
    assert_eq!(number(&declared[0]["length_sent"]), sample.len());
    assert_uploaded_and_consumable(&app, &upload_path(&out), &sample).await;
}

#[tokio::test]
async fn tus_js_client_resumes_an_aborted_parallel_upload_from_its_url_storage() {
    let app = TestApp::spawn(Store::Fs).await;
    let sample = Sample::new(75, 8 * MIB + 9);
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("tus-urls.json");
    let args = |extra: &[&str]| {
        let mut command = tus_js(&app);
        command
            .arg("--file")
            .arg(&sample.path)
            .arg("--url-storage")
            .arg(&storage)
            .args(["--parallel", "4", "--chunk-size", &(MIB / 2).to_string()])
            .args(extra);
        command
    };
    // Aborted once one partial has 1 MiB of its 2.
    let first = run(args(&["--abort-after", &MIB.to_string()])).await;
    assert_eq!(first["aborted"], true, "{first}");

    // The four partial uploads' URLs come from the storage: each resumes
    // from its HEAD, then the final upload is created.
    let second = run(args(&[])).await;
    assert_eq!(second["resumed_from_storage"], true, "{second}");
    let heads: Vec<&Value> = requests(&second)
        .iter()
        .filter(|r| r["method"] == "HEAD")
        .collect();
    assert_eq!(heads.len(), 4, "{second}");
    // The server holds at least what the first run saw acknowledged (more
    // when PATCHes in flight at the abort were taken all the same), and the
    // second run sent only the rest.
    let resumed: u64 = heads.iter().map(|h| number(&h["offset_received"])).sum();
    let acked: u64 = patches(&first).iter().map(|(a, b)| b - a).sum();
    assert!(resumed >= acked && acked >= MIB, "{first}\n{second}");
    let sent: u64 = patches(&second).iter().map(|(a, b)| b - a).sum();
    assert_eq!(sent, sample.len() - resumed, "{second}");
    let posts: Vec<&Value> = requests(&second)
        .iter()
        .filter(|r| r["method"] == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "only the final: {second}");
    assert!(posts[0]["upload_concat"]
        .as_str()
        .is_some_and(|c| c.starts_with("final;")));
    assert_uploaded_and_consumable(&app, &upload_path(&second), &sample).await;
}

//! tuspy (`tests/clients/py/tuspy_upload.py`): chunks of 1 MiB + 3 bytes,
//! never a multiple of S3's 5 MiB parts, each with `Upload-Checksum`.

use claimcheck_tests::app::{Store, TestApp};
use sha1::Digest;

use super::{
    super::{head_offset, FIVE_MIB_PARTS},
    assert_uploaded_and_consumable, run, tuspy, upload_path, Sample, MIB,
};

/// 1 MiB + 3: every PATCH ends somewhere inside one of the server's parts.
const CHUNK: u64 = MIB + 3;

/// The sizes of the PATCHes tuspy sends from offset `from` to `to`.
fn chunks(from: u64, to: u64) -> Vec<u64> {
    (from..to)
        .step_by(CHUNK as usize)
        .map(|at| CHUNK.min(to - at))
        .collect()
}

/// The sizes of the PATCHes a run sent (what each moved the offset by).
fn patches(out: &serde_json::Value) -> Vec<u64> {
    out["patches"]
        .as_array()
        .unwrap_or_else(|| panic!("no patches in {out}"))
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect()
}

/// The Upload-Checksum of each PATCH a run sent.
fn checksums(out: &serde_json::Value) -> Vec<String> {
    out["checksums"]
        .as_array()
        .unwrap_or_else(|| panic!("no checksums in {out}"))
        .iter()
        .map(|c| {
            c.as_str()
                .unwrap_or_else(|| panic!("a PATCH without: {out}"))
                .to_owned()
        })
        .collect()
}

/// Base64 as Upload-Checksum carries a digest.
fn base64_of(bytes: impl AsRef<[u8]>) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn tuspy_uploads_chunks_of_1_mib_plus_3_with_checksums_on_s3() {
    let app = TestApp::spawn_with(Store::S3, &[FIVE_MIB_PARTS]).await;
    let sample = Sample::new(61, 12 * MIB + 5);
    let mut command = tuspy(&app);
    command.arg("--file").arg(&sample.path).args([
        "--chunk-size",
        &CHUNK.to_string(),
        "--checksum",
    ]);
    let out = run(command).await;
    assert_eq!(out["start_offset"], 0, "{out}");
    assert_eq!(out["offset"], sample.len(), "{out}");
    // Each chunk was taken whole, its checksum matching: 12 PATCHes, each
    // with the SHA-1 of its bytes, which the server checked.
    let expected = chunks(0, sample.len());
    assert_eq!(patches(&out), expected, "{out}");
    let sent = checksums(&out);
    assert_eq!(sent.len(), expected.len(), "{out}");
    let mut at = 0;
    for (len, sent) in expected.into_iter().zip(sent) {
        let chunk = &sample.bytes[at..at + len as usize];
        assert_eq!(
            sent,
            format!("sha1 {}", base64_of(sha1::Sha1::digest(chunk)))
        );
        at += len as usize;
    }
    assert_uploaded_and_consumable(&app, &upload_path(&out), &sample).await;
}

#[tokio::test]
async fn tuspy_resumes_from_the_offset_the_server_reports_on_the_filesystem() {
    let app = TestApp::spawn(Store::Fs).await;
    let sample = Sample::new(62, 5 * MIB + 11);
    let stop_at = 2 * CHUNK;
    let mut first = tuspy(&app);
    first.arg("--file").arg(&sample.path).args([
        "--chunk-size",
        &CHUNK.to_string(),
        "--checksum",
        "--stop-at",
        &stop_at.to_string(),
    ]);
    let first = run(first).await;
    assert_eq!(first["offset"], stop_at, "{first}");
    let path = upload_path(&first);
    assert_eq!(head_offset(&app, &path).await, stop_at);

    // A new process with the URL only: tuspy asks the server (HEAD).
    let mut second = tuspy(&app);
    second.arg("--file").arg(&sample.path).args([
        "--chunk-size",
        &CHUNK.to_string(),
        "--checksum",
        "--upload-url",
        first["url"].as_str().unwrap(),
    ]);
    let second = run(second).await;
    assert_eq!(second["url"], first["url"]);
    assert_eq!(second["start_offset"], stop_at, "{second}");
    assert_eq!(second["offset"], sample.len(), "{second}");
    assert_eq!(
        patches(&second),
        chunks(stop_at, sample.len()),
        "only the rest was sent: {second}"
    );
    assert_uploaded_and_consumable(&app, &path, &sample).await;
}

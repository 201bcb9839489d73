//! The tus 1.0 protocol as clients use it: discovery, creation (with bytes,
//! deferred, empty), appends of any size, checksums, termination and
//! concatenation, on both stores.

use claimcheck_tests::{
    app::{Store, TestApp},
    stores::random_bytes,
};
use reqwest::Method;
use sha1::Digest;

use super::{b64, claim_id, create, head_offset, hv, patch, stored_object, tus, FIVE_MIB_PARTS};

const MIB: u64 = 1024 * 1024;

/// The object of a finished upload, once consumed as every upload ends.
async fn consumed_bytes(app: &TestApp, path: &str) -> Vec<u8> {
    let bytes = stored_object(app, path).await;
    let claim = app
        .get_json(&format!("/v1/uploads/{}", claim_id(path)))
        .await;
    let res = app
        .req(Method::POST, "/v1/claims/consume")
        .json(&serde_json::json!({"owner": "alice", "keys": [claim["key"]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    bytes
}

#[tokio::test]
async fn options_says_what_the_server_speaks_without_a_token() {
    let app = TestApp::spawn(Store::Fs).await;
    let res = app
        .http
        .request(Method::OPTIONS, format!("{}/v1/tus", app.base))
        .send()
        .await
        .unwrap();
    assert!(
        res.status() == 204 || res.status() == 200,
        "{}",
        res.status()
    );
    assert_eq!(hv(&res, "tus-resumable"), Some("1.0.0"));
    assert_eq!(hv(&res, "tus-version"), Some("1.0.0"));
    let extensions = hv(&res, "tus-extension").unwrap();
    for e in [
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "expiration",
        "checksum",
        "termination",
        "concatenation",
    ] {
        assert!(extensions.split(',').any(|x| x == e), "{e} in {extensions}");
    }
    assert!(hv(&res, "tus-max-size").unwrap().parse::<u64>().unwrap() > 0);
    assert_eq!(hv(&res, "tus-checksum-algorithm"), Some("sha1,sha256,md5"));
}

async fn chunks_of_any_size(store: Store) {
    let app = TestApp::spawn_with(store, &[FIVE_MIB_PARTS]).await;
    let size = 11 * MIB + 7;
    let bytes = random_bytes(21, size);
    let path = create(&app, size).await;
    assert!(
        path.starts_with("/v1/tus/"),
        "path-only without CLAIMCHECK_API_PUBLIC_URL: {path}"
    );
    let head = tus(&app, Method::HEAD, &path).send().await.unwrap();
    assert_eq!(hv(&head, "upload-length"), Some(size.to_string().as_str()));
    assert_eq!(hv(&head, "cache-control"), Some("no-store"));
    assert!(hv(&head, "upload-metadata")
        .unwrap()
        .contains(&b64("a.bin")));
    assert!(hv(&head, "upload-expires").unwrap().ends_with(" GMT"));
    let mut offset = 0u64;
    for len in [1, MIB + 3, 5 * MIB, 3 * MIB, size] {
        let end = (offset + len).min(size);
        let res = patch(
            &app,
            &path,
            offset,
            bytes[offset as usize..end as usize].to_vec(),
        )
        .await;
        assert_eq!(res.status(), 204, "{:?}", res.text().await);
        assert_eq!(hv(&res, "upload-offset"), Some(end.to_string().as_str()));
        assert_eq!(hv(&res, "tus-resumable"), Some("1.0.0"));
        offset = end;
        assert_eq!(head_offset(&app, &path).await, end);
        if end == size {
            break;
        }
    }
    assert_eq!(consumed_bytes(&app, &path).await, bytes);
}

#[tokio::test]
async fn chunks_of_any_size_make_the_object_on_s3() {
    chunks_of_any_size(Store::S3).await;
}

#[tokio::test]
async fn chunks_of_any_size_make_the_object_on_the_filesystem() {
    chunks_of_any_size(Store::Fs).await;
}

#[tokio::test]
async fn creation_with_upload_deferred_length_and_empty_uploads() {
    let app = TestApp::spawn(Store::S3).await;
    // Creation with the first bytes.
    let bytes = random_bytes(22, 300_000);
    let res = tus(&app, Method::POST, "/v1/tus")
        .header("Upload-Length", "300000")
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes[..100_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(hv(&res, "upload-offset"), Some("100000"));
    let path = hv(&res, "location").unwrap().to_owned();
    let res = patch(&app, &path, 100_000, bytes[100_000..].to_vec()).await;
    assert_eq!(res.status(), 204);
    assert_eq!(consumed_bytes(&app, &path).await, bytes);

    // Deferred length, declared with the last PATCH.
    let res = tus(&app, Method::POST, "/v1/tus")
        .header("Upload-Defer-Length", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let path = hv(&res, "location").unwrap().to_owned();
    let head = tus(&app, Method::HEAD, &path).send().await.unwrap();
    assert_eq!(hv(&head, "upload-defer-length"), Some("1"));
    assert_eq!(hv(&head, "upload-length"), None);
    assert_eq!(
        patch(&app, &path, 0, bytes[..1000].to_vec()).await.status(),
        204
    );
    let res = tus(&app, Method::PATCH, &path)
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", "1000")
        .header("Upload-Length", "300000")
        .body(bytes[1000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    assert_eq!(consumed_bytes(&app, &path).await, bytes);

    // Zero bytes: finished at creation.
    let res = tus(&app, Method::POST, "/v1/tus")
        .header("Upload-Length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let path = hv(&res, "location").unwrap().to_owned();
    assert_eq!(head_offset(&app, &path).await, 0);
    assert!(consumed_bytes(&app, &path).await.is_empty());
}

#[tokio::test]
async fn checksums_are_verified_and_a_mismatched_chunk_is_dropped() {
    let app = TestApp::spawn(Store::S3).await;
    let bytes = random_bytes(23, 2000);
    let path = create(&app, 2000).await;
    let digest = |b: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(b))
    };
    let send = |offset: u64, chunk: Vec<u8>, checksum: String| {
        tus(&app, Method::PATCH, &path)
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string())
            .header("Upload-Checksum", checksum)
            .body(chunk)
            .send()
    };
    let res = send(
        0,
        bytes[..1000].to_vec(),
        format!("sha1 {}", digest(b"other")),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 460);
    assert_eq!(hv(&res, "content-type"), Some("application/problem+json"));
    assert_eq!(head_offset(&app, &path).await, 0);
    let res = send(0, bytes[..1000].to_vec(), "crc32 AAAA".into())
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = send(
        0,
        bytes[..1000].to_vec(),
        format!("sha1 {}", digest(&bytes[..1000])),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 204);
    let res = send(
        1000,
        bytes[1000..].to_vec(),
        format!("SHA1 {}", digest(&bytes[1000..])),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(consumed_bytes(&app, &path).await, bytes);
}

#[tokio::test]
async fn termination_drops_the_upload() {
    let app = TestApp::spawn(Store::S3).await;
    let path = create(&app, 10 * MIB).await;
    assert_eq!(
        patch(&app, &path, 0, random_bytes(24, 6 * MIB))
            .await
            .status(),
        204
    );
    let res = tus(&app, Method::DELETE, &path).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        tus(&app, Method::HEAD, &path)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let id = claim_id(&path);
    let rows = app
        .sql_i64(&format!(
            "SELECT (SELECT count(*) FROM claimcheck.upload_claims WHERE id = '{id}')
                  + (SELECT count(*) FROM claimcheck.upload_tails WHERE claim_id = '{id}')"
        ))
        .await;
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn concatenation_assembles_partials_in_the_store() {
    for (store, piece) in [
        (Store::S3, 5 * MIB + 1),
        (Store::S3, 1000),
        (Store::Fs, 1000),
    ] {
        let app = TestApp::spawn(store).await;
        let bytes = random_bytes(25, 3 * piece);
        let mut partials = Vec::new();
        for i in 0..3 {
            let chunk = bytes[(i * piece) as usize..((i + 1) * piece) as usize].to_vec();
            let res = tus(&app, Method::POST, "/v1/tus")
                .header("Upload-Length", piece.to_string())
                .header("Upload-Concat", "partial")
                .header("Content-Type", "application/offset+octet-stream")
                .body(chunk)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
            let path = hv(&res, "location").unwrap().to_owned();
            let head = tus(&app, Method::HEAD, &path).send().await.unwrap();
            assert_eq!(hv(&head, "upload-concat"), Some("partial"));
            partials.push(path);
        }
        // A partial is never consumed on its own.
        let key = app
            .get_json(&format!("/v1/uploads/{}", claim_id(&partials[0])))
            .await["key"]
            .clone();
        let res = app
            .req(Method::POST, "/v1/claims/consume")
            .json(&serde_json::json!({"owner": "alice", "keys": [key]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        let absolute = format!("{}{}", app.base, partials[0]);
        let header = format!("final;{absolute} {} {}", partials[1], partials[2]);
        let res = tus(&app, Method::POST, "/v1/tus")
            .header("Upload-Concat", header)
            .header("Upload-Metadata", format!("filename {}", b64("joined.bin")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{:?}", res.text().await);
        let path = hv(&res, "location").unwrap().to_owned();
        let res = patch(&app, &path, 3 * piece, vec![1]).await;
        assert_eq!(res.status(), 403, "PATCH on a final upload");
        assert_eq!(head_offset(&app, &path).await, 3 * piece);
        assert_eq!(
            consumed_bytes(&app, &path).await,
            bytes,
            "{store:?} {piece}"
        );
        // The partials went through the delete queue.
        for partial in &partials {
            assert_eq!(
                tus(&app, Method::HEAD, partial)
                    .send()
                    .await
                    .unwrap()
                    .status(),
                404
            );
        }
        let queued = app
            .sql_i64("SELECT count(*) FROM claimcheck.pending_deletes WHERE reason = 'discarded'")
            .await;
        assert_eq!(queued, 3);
    }
}

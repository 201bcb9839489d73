//! Cases for the S3 store only: presigned part uploads and downloads.

use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use claimcheck::store::{
    signed_url::content_disposition, CompletedPart, DownloadResponse, MIN_PART_SIZE,
};
use claimcheck_tests::stores::{random_bytes, random_sha256_concat};

use super::*;

// ---- S3 only ----------------------------------------------------------------

#[tokio::test]
async fn s3_presigned_part_uploads_complete_through_the_store() {
    let t = Ctx::s3().await;
    let key = t.key("presigned");
    let id = t
        .store
        .create_multipart(&key, "application/octet-stream")
        .await
        .unwrap();
    let bodies = [(1, 80, MIN_PART_SIZE), (2, 81, 4096)];
    let mut parts = Vec::new();
    for (n, seed, len) in bodies {
        let signed = t
            .store
            .presign_upload_part(&key, &id, n, len, Duration::from_secs(300))
            .await
            .unwrap();
        assert_eq!(signed.method, "PUT");
        assert!(signed.expires_at > Utc::now() + chrono::Duration::seconds(290));
        let response = http(
            "PUT",
            &signed.url,
            &signed.headers,
            random_bytes(seed, len).into(),
        )
        .await;
        assert_eq!(response.status(), 200, "presigned PUT of part {n}");
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        parts.push(CompletedPart {
            part_number: n,
            etag,
        });
    }
    let listed = t.store.list_parts(&key, &id).await.unwrap();
    assert_eq!(
        listed.iter().map(|p| p.size).collect::<Vec<_>>(),
        [MIN_PART_SIZE, 4096]
    );
    t.store.complete_multipart(&key, &id, &parts).await.unwrap();
    let expected = random_sha256_concat(&bodies.map(|(_, seed, len)| (seed, len)));
    assert_eq!(t.read_back(&key).await, (MIN_PART_SIZE + 4096, expected));
}

#[tokio::test]
async fn s3_download_urls_name_the_file() {
    let t = Ctx::s3().await;
    let key = t.key("named");
    t.put_random(&key, 90, 2048).await;
    let name = "Rapport d'été \"final\".pdf";
    let signed = t
        .store
        .presign_get(
            &key,
            Duration::from_secs(60),
            &DownloadResponse::new(None, Some(name)),
        )
        .await
        .unwrap();
    let response = http("GET", &signed.url, &signed.headers, Bytes::new()).await;
    assert_eq!(response.status(), 200);
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(disposition, content_disposition(name));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], &random_bytes(90, 2048)[..]);
}

//! Items 8, 10 and 12 of the hardening issue: empty objects, idempotency
//! keys bound to their request, and parts that cannot exceed their size or
//! slip in after a 422.

use claimcheck_tests::{
    app::{Store, TestApp},
    stores::random_bytes,
};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::store_of;

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

async fn status_json(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A 0-byte single-shot upload and a 0-byte chunked upload both finish,
/// with the empty input's SHA-256, and the objects are there, empty.
async fn empty_objects_upload(store: Store) {
    let app = TestApp::spawn(store).await;
    let (status, claim) = status_json(
        app.req(Method::POST, "/v1/uploads?filename=empty.txt")
            .header("Content-Type", "text/plain")
            .header("X-Content-SHA256", EMPTY_SHA256)
            // Stated, as curl does for an empty file (hyper would omit it).
            .header("Content-Length", 0)
            .body(Vec::new())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{claim}");
    assert_eq!(
        (claim["size"].as_u64(), claim["sha256"].as_str()),
        (Some(0), Some(EMPTY_SHA256))
    );
    let objects = store_of(&app).await;
    let key = claim["key"].as_str().unwrap();
    assert_eq!(objects.head(key).await.unwrap().size, 0);

    let chunked = app.init(0, None).await;
    assert_eq!(chunked["part_count"], 1, "{chunked}");
    let id = chunked["id"].as_str().unwrap();
    let (status, receipt) = status_json(
        app.req(Method::PUT, &format!("/v1/uploads/{id}/parts/1"))
            .header("Content-Length", 0)
            .body(Vec::new())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, receipt["sha256"].as_str()),
        (200, Some(EMPTY_SHA256)),
        "{receipt} {:?}",
        app.logs.lock().unwrap()
    );
    let (status, done) = status_json(app.complete(id).await).await;
    assert_eq!(
        (status, done["status"].as_str()),
        (200, Some("uploaded")),
        "{done}"
    );
    let key = done["key"].as_str().unwrap();
    assert_eq!(objects.head(key).await.unwrap().size, 0);
}

#[tokio::test]
async fn empty_objects_upload_s3() {
    empty_objects_upload(Store::S3).await;
}

#[tokio::test]
async fn empty_objects_upload_fs() {
    empty_objects_upload(Store::Fs).await;
}

/// The same Idempotency-Key with another request answers 409 (another
/// size, another kind of start), never the first upload's claim; the same
/// request again answers the first claim.
#[tokio::test]
async fn an_idempotency_key_is_bound_to_its_request() {
    let app = TestApp::spawn(Store::Fs).await;
    let single = |body: &'static [u8]| {
        app.req(Method::POST, "/v1/uploads?filename=a.txt")
            .header("Content-Type", "text/plain")
            .header("Idempotency-Key", "key-1")
            .body(body)
            .send()
    };
    let (status, first) = status_json(single(b"abc").await.unwrap()).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = status_json(single(b"abc").await.unwrap()).await;
    assert_eq!((status, &again["id"]), (200, &first["id"]), "{again}");
    let (status, other) = status_json(single(b"abcd").await.unwrap()).await;
    assert_eq!(
        (status, other["code"].as_str()),
        (409, Some("conflict")),
        "{other}"
    );
    let (status, multipart) = status_json(
        app.req(Method::POST, "/v1/uploads/multipart")
            .header("Idempotency-Key", "key-1")
            .json(&json!({"filename": "a.txt", "content_type": "text/plain", "size": 3}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, multipart["code"].as_str()),
        (409, Some("conflict")),
        "{multipart}"
    );
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims WHERE upload_id IS NOT NULL")
            .await,
        0,
        "no session was opened on the uploaded object's key"
    );
}

/// A presigned part URL is signed for the part's exact length: S3 refuses
/// a PUT of any other size through it.
#[tokio::test]
async fn a_presigned_part_takes_exactly_its_length() {
    let app = TestApp::spawn(Store::S3).await;
    let id = app.init(1024, None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, signed) = status_json(
        app.req(Method::POST, &format!("/v1/uploads/{id}/parts/1/presign"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{signed}");
    let put = |len: u64| {
        // A client of its own each time: S3 may close the connection of a
        // refused body, which a pooled client would try to reuse.
        let mut req = reqwest::Client::new()
            .put(signed["url"].as_str().unwrap())
            .body(random_bytes(1, len));
        for (k, v) in signed["headers"].as_object().unwrap() {
            if !k.eq_ignore_ascii_case("content-length") {
                req = req.header(k, v.as_str().unwrap());
            }
        }
        req.send()
    };
    let oversized = put(64 * 1024).await.unwrap();
    assert!(
        oversized.status().is_client_error(),
        "a 64 KiB PUT into a 1 KiB part: {}",
        oversized.status()
    );
    assert_eq!(put(1024).await.unwrap().status(), 200);
    let (status, done) = status_json(app.complete(&id).await).await;
    assert_eq!((status, done["size"].as_u64()), (200, Some(1024)), "{done}");
}

/// A part the API refused with 422 stays in S3's session (S3 cannot drop
/// one part), but complete never assembles it, also when it reads the
/// session back for presigned parts.
#[tokio::test]
async fn a_part_refused_with_422_is_never_assembled() {
    let app = TestApp::spawn(Store::S3).await;
    let id = app.init(1024, None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A presign marks the upload as having direct parts: complete then
    // lists the session.
    let presign = app
        .req(Method::POST, &format!("/v1/uploads/{id}/parts/1/presign"))
        .send()
        .await
        .unwrap();
    assert_eq!(presign.status(), 200);
    let refused = app
        .req(Method::PUT, &format!("/v1/uploads/{id}/parts/1"))
        .header("X-Content-SHA256", EMPTY_SHA256)
        .body(random_bytes(2, 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let (status, body) = status_json(app.complete(&id).await).await;
    assert_eq!(
        (status, &body["missing_parts"]),
        (409, &json!([1])),
        "{body}"
    );
    let status = app.get_json(&format!("/v1/uploads/{id}")).await;
    assert_eq!(status["parts"], json!([]), "{status}");
    // Sent again with the right bytes, it completes.
    let ok = app.put_part(&id, 1, random_bytes(2, 1024)).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(app.complete(&id).await.status(), 200);
}

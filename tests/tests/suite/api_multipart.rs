//! Chunked uploads through the real binary: parts in any order, resume,
//! parallel parts, presigned parts, failures, races and several processes.

use std::time::Duration;

use claimcheck::{
    domain::composite_sha256,
    store::{s3::S3Store, ObjectStore},
};
use claimcheck_tests::{
    app::{Store, TestApp},
    stores::{random_body, random_bytes, random_sha256, s3_store},
};
use reqwest::Method;
use serde_json::Value;

const MIB: u64 = 1024 * 1024;

fn part_body(seed: u64, len: u64) -> reqwest::Body {
    reqwest::Body::wrap_stream(random_body(seed, len))
}

async fn put(app: &TestApp, id: &str, n: u32, seed: u64, len: u64) -> reqwest::Response {
    app.req(Method::PUT, &format!("/v1/uploads/{id}/parts/{n}"))
        .header("Content-Length", len)
        .header("X-Content-SHA256", random_sha256(seed, len))
        .body(part_body(seed, len))
        .send()
        .await
        .unwrap()
}

async fn code(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn id_of(claim: &Value) -> String {
    claim["id"].as_str().unwrap().to_owned()
}

async fn resumable_out_of_order_upload(store: Store) {
    let app = TestApp::spawn(store).await;
    let sizes = [5 * MIB, 5 * MIB, 5 * MIB, 5 * MIB, MIB];
    let claim = app.init(21 * MIB, Some(5 * MIB)).await;
    assert_eq!(
        (claim["part_count"].as_u64(), claim["status"].as_str()),
        (Some(5), Some("pending"))
    );
    let id = id_of(&claim);
    for n in [3u32, 1, 2] {
        let (status, receipt) =
            code(put(&app, &id, n, n.into(), sizes[n as usize - 1]).await).await;
        assert_eq!(status, 200, "{receipt}");
        assert_eq!(
            receipt["sha256"],
            random_sha256(n.into(), sizes[n as usize - 1])
        );
    }
    // The client restarts: it asks what arrived and sends the rest.
    let status: Value = app.get_json(&format!("/v1/uploads/{id}")).await;
    let have: Vec<u64> = status["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["part_number"].as_u64().unwrap())
        .collect();
    assert_eq!(have, [1, 2, 3]);
    let (s, missing) = code(app.complete(&id).await).await;
    assert_eq!(
        (s, missing["missing_parts"].clone()),
        (409, serde_json::json!([4, 5]))
    );
    for n in [5u32, 4] {
        assert_eq!(
            put(&app, &id, n, n.into(), sizes[n as usize - 1])
                .await
                .status(),
            200
        );
    }
    let (s, done) = code(app.complete(&id).await).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["status"], "uploaded");
    let digests: Vec<String> = (1..=5)
        .map(|n| random_sha256(n, sizes[n as usize - 1]))
        .collect();
    assert_eq!(
        done["sha256"].as_str(),
        composite_sha256(digests.iter().map(|d| Some(d.as_str()))).as_deref()
    );
    // Complete is idempotent.
    let (s, again) = code(app.complete(&id).await).await;
    assert_eq!(
        (s, again["id"].clone(), again["sha256"].clone()),
        (200, done["id"].clone(), done["sha256"].clone())
    );
    // A part after complete is a conflict.
    assert_eq!(put(&app, &id, 1, 1, 5 * MIB).await.status(), 409);
}

#[tokio::test]
async fn resumable_out_of_order_upload_on_fs() {
    resumable_out_of_order_upload(Store::Fs).await;
}

#[tokio::test]
async fn resumable_out_of_order_upload_on_s3() {
    resumable_out_of_order_upload(Store::S3).await;
}

#[tokio::test]
async fn two_hundred_mib_in_sixteen_parallel_parts() {
    let app = TestApp::spawn(Store::S3).await;
    let part = 200 * MIB / 16;
    let claim = app.init(200 * MIB, Some(part)).await;
    let id = id_of(&claim);
    let puts = (1..=16u32).map(|n| put(&app, &id, n, 100 + u64::from(n), part));
    for res in futures::future::join_all(puts).await {
        assert_eq!(res.status(), 200);
    }
    let (s, done) = code(app.complete(&id).await).await;
    assert_eq!(s, 200, "{done}");
    let head = s3_store()
        .await
        .head(done["key"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(head.size, 200 * MIB);
}

#[tokio::test]
async fn presigned_parts_go_straight_to_s3_and_complete_through_the_api() {
    let app = TestApp::spawn(Store::S3).await;
    let claim = app.init(6 * MIB, Some(5 * MIB)).await;
    let id = id_of(&claim);
    // Part 1 straight to S3, part 2 through the API.
    let (s, presigned) = code(
        app.req(Method::POST, &format!("/v1/uploads/{id}/parts/1/presign"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{presigned}");
    assert_eq!(presigned["method"], "PUT");
    let mut direct = app
        .http
        .put(presigned["url"].as_str().unwrap())
        .body(random_bytes(1, 5 * MIB));
    for (k, v) in presigned["headers"].as_object().unwrap() {
        direct = direct.header(k, v.as_str().unwrap());
    }
    assert!(direct.send().await.unwrap().status().is_success());
    assert_eq!(put(&app, &id, 2, 2, MIB).await.status(), 200);
    let (s, done) = code(app.complete(&id).await).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(
        done["sha256"],
        Value::Null,
        "a direct part has no checksum of ours"
    );
    let store: S3Store = s3_store().await;
    assert_eq!(
        store
            .head(done["key"].as_str().unwrap())
            .await
            .unwrap()
            .size,
        6 * MIB
    );
}

#[tokio::test]
async fn part_errors_and_an_expired_claim() {
    let app = TestApp::spawn(Store::Fs).await;
    let id = id_of(&app.init(6 * MIB, Some(5 * MIB)).await);
    for n in ["0", "10001", "3", "x"] {
        let res = app
            .req(Method::PUT, &format!("/v1/uploads/{id}/parts/{n}"))
            .body(vec![0u8; 10])
            .send()
            .await
            .unwrap();
        assert_eq!(code(res).await.1["code"], "invalid_request", "part {n}");
    }
    // Wrong length for part 2 (the remainder is 1 MiB).
    let res = app.put_part(&id, 2, vec![0u8; 1000]).await;
    assert_eq!(code(res).await.1["code"], "invalid_request");
    // A wrong checksum stores nothing.
    let res = app
        .req(Method::PUT, &format!("/v1/uploads/{id}/parts/2"))
        .header("X-Content-SHA256", "0".repeat(64))
        .body(random_bytes(2, MIB))
        .send()
        .await
        .unwrap();
    assert_eq!(code(res).await.0, 422);
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_parts WHERE NOT refused")
            .await,
        0
    );
    // Presigned parts need S3.
    let res = app
        .req(Method::POST, &format!("/v1/uploads/{id}/parts/1/presign"))
        .send()
        .await
        .unwrap();
    assert_eq!(code(res).await.0, 400);
    // Expired (the sweeper has not taken it yet): 410 everywhere.
    app.db
        .client()
        .await
        .execute(
            "UPDATE claimcheck.upload_claims SET expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        code(app.put_part(&id, 2, random_bytes(2, MIB)).await)
            .await
            .1["code"],
        "expired"
    );
    assert_eq!(code(app.complete(&id).await).await.1["code"], "expired");
}

#[tokio::test]
async fn a_client_that_disconnects_mid_part_leaves_nothing() {
    let app = TestApp::spawn(Store::S3).await;
    let claim = app.init(6 * MIB, Some(5 * MIB)).await;
    let id = id_of(&claim);
    let head = format!(
        "PUT /v1/uploads/{id}/parts/1 HTTP/1.1\r\nContent-Length: {}",
        5 * MIB
    );
    app.raw(&head, &random_bytes(1, MIB)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_parts")
            .await,
        0
    );
    let status: Value = app.get_json(&format!("/v1/uploads/{id}")).await;
    assert_eq!(status["status"], "pending");
    let store = s3_store().await;
    let key = claim["key"].as_str().unwrap();
    let upload_id: String = app
        .db
        .client()
        .await
        .query_one("SELECT upload_id FROM claimcheck.upload_claims", &[])
        .await
        .unwrap()
        .get(0);
    assert!(store.list_parts(key, &upload_id).await.unwrap().is_empty());
    assert!(matches!(
        store.head(key).await,
        Err(claimcheck::store::StoreError::NotFound)
    ));
}

#[tokio::test]
async fn single_shot_bodies_that_lie_about_their_length() {
    let app = TestApp::spawn(Store::Fs).await;
    // Shorter than declared: the client stops sending and closes.
    let head = "POST /v1/uploads?filename=a.bin HTTP/1.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000";
    app.raw(head, &random_bytes(1, 50_000)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
            .await,
        0
    );
    let root = app
        .fs_root
        .as_ref()
        .unwrap()
        .path()
        .join(app.prefix.trim_end_matches('/'));
    assert!(!root.exists(), "no object was stored");
    // Longer than declared: exactly the declared bytes are the object; the
    // rest is not read as part of it.
    let answer = app
        .raw(
            "POST /v1/uploads?filename=b.bin HTTP/1.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 10",
            &[7u8; 30],
        )
        .await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert_eq!(
        app.sql_i64("SELECT max(size) FROM claimcheck.upload_claims")
            .await,
        10
    );
}

#[tokio::test]
async fn complete_racing_abort_has_one_winner_and_leaks_nothing() {
    let app = TestApp::spawn(Store::S3).await;
    for round in 0..6u64 {
        let claim = app.init(1000, None).await;
        let id = id_of(&claim);
        assert_eq!(put(&app, &id, 1, round, 1000).await.status(), 200);
        let (completed, aborted) = tokio::join!(
            app.complete(&id),
            app.req(Method::DELETE, &format!("/v1/uploads/{id}")).send()
        );
        let (completed, aborted) = (
            completed.status().as_u16(),
            aborted.unwrap().status().as_u16(),
        );
        assert!(
            matches!(completed, 200 | 404 | 409),
            "complete answered {completed}"
        );
        assert!(matches!(aborted, 204 | 404), "delete answered {aborted}");
    }
    // Every upload was dropped: no claim is left, and every object or
    // session still in the bucket has a queued delete.
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
            .await,
        0
    );
    let store = s3_store().await;
    let (objects, _) = store.list_objects(&app.prefix, None).await.unwrap();
    for object in objects {
        let queued = app
            .db
            .client()
            .await
            .query_one(
                "SELECT count(*) FROM claimcheck.pending_deletes WHERE object_key = $1",
                &[&object.key],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        assert_eq!(queued, 1, "{} is neither claimed nor queued", object.key);
    }
    let sessions = store
        .list_multipart_uploads(&app.prefix, chrono::Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert!(sessions.is_empty(), "{sessions:?}");
}

#[tokio::test]
async fn two_api_processes_serve_one_upload_alternately() {
    let a = TestApp::spawn(Store::S3).await;
    let b = a.another().await;
    let id = id_of(&a.init(11 * MIB, Some(5 * MIB)).await);
    assert_eq!(put(&b, &id, 1, 1, 5 * MIB).await.status(), 200);
    assert_eq!(put(&a, &id, 2, 2, 5 * MIB).await.status(), 200);
    assert_eq!(put(&b, &id, 3, 3, MIB).await.status(), 200);
    let (s, done) = code(a.complete(&id).await).await;
    assert_eq!(s, 200, "{done}");
    let (s, seen) = code(
        b.req(Method::GET, &format!("/v1/uploads/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, seen["status"].as_str()), (200, Some("uploaded")));
}

#[tokio::test]
async fn a_re_uploaded_part_replaces_the_first() {
    let app = TestApp::spawn(Store::S3).await;
    let id = id_of(&app.init(6 * MIB, Some(5 * MIB)).await);
    assert_eq!(put(&app, &id, 1, 10, 5 * MIB).await.status(), 200);
    assert_eq!(put(&app, &id, 2, 20, MIB).await.status(), 200);
    // The client is not sure part 1 arrived and sends other bytes for it.
    assert_eq!(put(&app, &id, 1, 11, 5 * MIB).await.status(), 200);
    let status = app.get_json(&format!("/v1/uploads/{id}")).await;
    assert_eq!(status["parts"][0]["sha256"], random_sha256(11, 5 * MIB));
    let (s, done) = code(app.complete(&id).await).await;
    assert_eq!(s, 200, "{done}");
    let digests = [random_sha256(11, 5 * MIB), random_sha256(20, MIB)];
    assert_eq!(
        done["sha256"].as_str(),
        composite_sha256(digests.iter().map(|d| Some(d.as_str()))).as_deref()
    );
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_parts")
            .await,
        2
    );
}

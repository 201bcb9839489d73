//! Single-shot uploads, listing, discard, idempotency, OpenAPI and CORS,
//! against the real binary on both stores.

use claimcheck_tests::{
    app::{Store, TestApp},
    stores::{random_body, random_bytes, random_sha256},
};
use reqwest::Method;
use serde_json::Value;

use crate::support::{problem, store_of, upload};

async fn single_shot_round_trip(store: Store) {
    let app = TestApp::spawn(store).await;
    let bytes = random_bytes(1, 300_000);
    let res = app
        .req(Method::POST, "/v1/uploads?filename=report.PDF")
        .header("Content-Type", "application/pdf")
        .header("X-Content-SHA256", random_sha256(1, 300_000))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert!(res.headers().contains_key("location"));
    let claim: Value = res.json().await.unwrap();
    assert_eq!(claim["status"], "uploaded");
    assert_eq!(claim["size"], 300_000);
    assert_eq!(claim["sha256"], random_sha256(1, 300_000));
    assert_eq!(claim["owner"], "alice");
    assert_eq!(claim["filename"], "report.PDF");
    let key = claim["key"].as_str().unwrap();
    assert!(
        key.starts_with(&format!("{}priv/", app.prefix)) && key.ends_with(".pdf"),
        "{key}"
    );
    assert_eq!(store_of(&app).await.head(key).await.unwrap().size, 300_000);

    let id = claim["id"].as_str().unwrap();
    let got: Value = app.get_json(&format!("/v1/uploads/{id}")).await;
    assert_eq!(got["key"], claim["key"]);
    let list: Value = app.get_json("/v1/uploads?status=uploaded").await;
    assert_eq!(list["items"][0]["id"], claim["id"]);

    // Discarding an unconsumed upload queues its object's delete.
    let res = app
        .req(Method::DELETE, &format!("/v1/uploads/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
            .await,
        0
    );
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.pending_deletes WHERE reason = 'discarded'")
            .await,
        1
    );
    let res = app
        .req(Method::GET, &format!("/v1/uploads/{id}"))
        .send()
        .await
        .unwrap();
    problem(res, 404, "not_found").await;
}

#[tokio::test]
async fn single_shot_round_trip_on_fs() {
    single_shot_round_trip(Store::Fs).await;
}

#[tokio::test]
async fn single_shot_round_trip_on_s3() {
    single_shot_round_trip(Store::S3).await;
}

#[tokio::test]
async fn checksum_mismatch_leaves_no_object_and_no_claim() {
    let app = TestApp::spawn(Store::S3).await;
    let res = app
        .req(Method::POST, "/v1/uploads?filename=a.bin")
        .header("Content-Type", "application/octet-stream")
        .header("X-Content-SHA256", "0".repeat(64))
        .body(random_bytes(2, 10_000))
        .send()
        .await
        .unwrap();
    problem(res, 422, "checksum_mismatch").await;
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
            .await,
        0
    );
    let store = store_of(&app).await;
    let (objects, _) = store.list_objects(&app.prefix, None).await.unwrap();
    assert!(objects.is_empty(), "{objects:?}");
}

#[tokio::test]
async fn streamed_upload_without_content_length_answers_411() {
    let app = TestApp::spawn(Store::Fs).await;
    let res = app
        .req(Method::POST, "/v1/uploads?filename=a.bin")
        .header("Content-Type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(random_body(3, 1000)))
        .send()
        .await
        .unwrap();
    problem(res, 411, "length_required").await;
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
            .await,
        0
    );
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_upload() {
    let app = TestApp::spawn(Store::Fs).await;
    let send = || {
        app.req(Method::POST, "/v1/uploads?filename=a.txt")
            .header("Content-Type", "text/plain")
            .header("Idempotency-Key", "k-1")
            .body("hello")
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    let res = send().await.unwrap();
    assert_eq!(res.status(), 200);
    let second: Value = res.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
            .await,
        1
    );
}

#[tokio::test]
async fn openapi_describes_every_endpoint_and_the_problem_shape() {
    let app = TestApp::spawn(Store::Fs).await;
    let doc: Value = app.get_json("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/uploads",
        "/v1/uploads/multipart",
        "/v1/uploads/{id}",
        "/v1/uploads/{id}/parts/{n}",
        "/v1/uploads/{id}/parts/{n}/presign",
        "/v1/uploads/{id}/complete",
        "/v1/tokens",
        "/v1/tokens/{id}",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from /openapi.json"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"]["properties"]["code"].is_object());
}

/// The schema describes what the API serializes: a claim's JSON (with
/// `public_url`) has exactly the properties of the `Claim` schema, and every
/// `$ref` in the document names a schema that exists.
#[tokio::test]
async fn the_openapi_schemas_are_the_serialized_types() {
    let app = TestApp::spawn_with(
        Store::Fs,
        &[("CLAIMCHECK_PUBLIC_BASE_URL", "https://cdn.example")],
    )
    .await;
    let doc: Value = app.get_json("/openapi.json").await;
    let res = app
        .req(Method::POST, "/v1/uploads?filename=a.txt&public=true")
        .header("Content-Type", "text/plain")
        .body("abc")
        .send()
        .await
        .unwrap();
    let claim: Value = res.json().await.unwrap();
    let mut served: Vec<&String> = claim.as_object().unwrap().keys().collect();
    let schema = &doc["components"]["schemas"]["Claim"]["properties"];
    let mut described: Vec<&String> = schema.as_object().unwrap().keys().collect();
    served.sort();
    described.sort();
    assert_eq!(served, described, "{claim}");
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "$ref to a missing schema {name}"
        );
    }
}

#[tokio::test]
async fn cors_answers_configured_origins_only() {
    let app = TestApp::spawn_with(
        Store::Fs,
        &[("CLAIMCHECK_CORS_ORIGINS", "https://app.example")],
    )
    .await;
    let preflight = |origin: &'static str| {
        app.http
            .request(Method::OPTIONS, format!("{}/v1/uploads", app.base))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(!refused
        .headers()
        .contains_key("access-control-allow-origin"));
    let res = upload(&app, "a.txt", "text/plain", b"hi".to_vec()).await;
    assert_eq!(
        res.status(),
        201,
        "same-origin and non-browser clients are unaffected"
    );
}

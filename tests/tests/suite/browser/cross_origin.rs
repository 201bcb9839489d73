//! From a page on another origin: tus-js-client's browser build and plain
//! `fetch` through `/v1/tus`, the REST multipart API with parts PUT
//! straight to Garage on presigned URLs, and a single-shot upload; the
//! headers browsers must read (`Location`, `Upload-Offset`, `ETag`) are
//! readable. From an origin not in `CLAIMCHECK_CORS_ORIGINS`, nothing gets
//! through.

use aws_sdk_s3::{
    config::{BehaviorVersion, Credentials, Region},
    types::{CorsConfiguration, CorsRule},
    Client,
};
use claimcheck_tests::{
    app::{Store, TestApp},
    stores::{random_bytes, S3Target},
};
use reqwest::Method;
use serde_json::{json, Value};

use super::{assert_no_page_problems, write_file, Script};
use crate::tus::FIVE_MIB_PARTS;

const MIB: u64 = 1024 * 1024;

/// An S3 client on the test Garage.
fn s3_client(target: &S3Target) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&target.endpoint)
        .region(Region::new(target.region.clone()))
        .credentials_provider(Credentials::new(
            &target.access_key,
            &target.secret_key,
            None,
            None,
            "claimcheck-tests",
        ))
        .force_path_style(true)
        .build();
    Client::from_conf(config)
}

/// A bucket of this test's own whose CORS lets `origin` PUT parts and read
/// their `ETag` (what a deployment configures on its bucket for presigned
/// browser uploads). Its own, so no other test's bucket changes.
async fn bucket_for(client: &Client, origin: &str) -> String {
    let bucket = format!(
        "cc-browser-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let rule = CorsRule::builder()
        .allowed_origins(origin)
        .allowed_methods("PUT")
        .allowed_headers("*")
        .expose_headers("ETag")
        .max_age_seconds(600)
        .build()
        .unwrap();
    client
        .put_bucket_cors()
        .bucket(&bucket)
        .cors_configuration(
            CorsConfiguration::builder()
                .cors_rules(rule)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    bucket
}

async fn object(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// Empties and drops the bucket (best effort: the Garage is the run's own).
async fn drop_bucket(client: &Client, bucket: &str) {
    if let Ok(list) = client.list_objects_v2().bucket(bucket).send().await {
        for o in list.contents() {
            let _ = client
                .delete_object()
                .bucket(bucket)
                .key(o.key().unwrap_or_default())
                .send()
                .await;
        }
    }
    let _ = client.delete_bucket().bucket(bucket).send().await;
}

/// A CORS preflight from `origin` for `method` on `path`.
async fn preflight(app: &TestApp, origin: &str, method: &str, path: &str) -> reqwest::Response {
    app.http
        .request(Method::OPTIONS, format!("{}{path}", app.base))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header(
            "Access-Control-Request-Headers",
            "authorization, tus-resumable, upload-offset, content-type",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn another_origin_uploads_through_tus_rest_and_presigned_parts() {
    let mut script = Script::start("cross_origin.cjs", &json!({}));
    let origins = script.event("origins").await;
    let (allowed, refused) = (
        origins["allowed"].as_str().unwrap().to_owned(),
        origins["refused"].as_str().unwrap().to_owned(),
    );
    let target = S3Target::shared();
    let s3 = s3_client(&target);
    let bucket = bucket_for(&s3, &allowed).await;
    let app = TestApp::spawn_with(
        Store::S3,
        &[
            FIVE_MIB_PARTS,
            ("CLAIMCHECK_S3_BUCKET", &bucket),
            ("CLAIMCHECK_CORS_ORIGINS", &allowed),
        ],
    )
    .await;

    // The preflights the browser is about to make, seen from outside.
    let ok = preflight(&app, &allowed, "PATCH", "/v1/tus/x").await;
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        allowed.as_str()
    );
    let methods = ok.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("PATCH"), "{methods}");
    let no = preflight(&app, &refused, "PATCH", "/v1/tus/x").await;
    assert!(!no.headers().contains_key("access-control-allow-origin"));

    let dir = tempfile::tempdir().unwrap();
    let sizes = [
        ("tus", 7 * MIB + 3),
        ("fetch", 6 * MIB + 1),
        ("rest", 11 * MIB + 5),
    ];
    let mut files = serde_json::Map::new();
    let mut bytes = std::collections::HashMap::new();
    for (i, (name, size)) in sizes.into_iter().enumerate() {
        let b = random_bytes(160 + i as u64, size);
        files.insert(name.into(), write_file(dir.path(), name, &b).into());
        bytes.insert(name, b);
    }
    script
        .send(&json!({"api": app.base, "token": app.alice_token, "files": files}))
        .await;
    let result = script.result().await;
    let page = &result["allowed"];

    // tus-js-client resolved the path-only Location against the API.
    let url = page["tus_client"]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("tus-js-client failed: {}", page["tus_client"]));
    assert!(url.starts_with(&format!("{}/v1/tus/", app.base)), "{url}");

    // Plain fetch read every tus header it needs.
    let f = &page["fetch_tus"];
    let fetch_size = 6 * MIB + 1;
    let half = (fetch_size / 2).to_string();
    assert_eq!(f["created"]["status"], 201, "{f}");
    let location = f["created"]["location"]
        .as_str()
        .expect("Location readable");
    assert!(location.starts_with("/v1/tus/"), "{location}");
    assert!(
        f["created"]["expires"].is_string(),
        "Upload-Expires readable"
    );
    assert_eq!(f["created"]["tus_resumable"], "1.0.0");
    assert_eq!(f["first"]["status"], 204);
    assert_eq!(
        f["first"]["offset"],
        half.as_str(),
        "Upload-Offset readable"
    );
    assert_eq!(f["head"]["offset"], half.as_str());
    assert_eq!(f["head"]["length"], fetch_size.to_string().as_str());
    assert_eq!(f["last"]["offset"], fetch_size.to_string().as_str());

    // REST multipart: parts PUT to Garage itself, their ETags readable.
    let rest = &page["rest"];
    assert_eq!(rest["init"], 201, "{rest}");
    let id = rest["id"].as_str().unwrap();
    assert_eq!(rest["location"], format!("/v1/uploads/{id}").as_str());
    let parts = rest["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    for p in parts {
        assert_eq!(p["status"], 200, "{p}");
        assert!(p["url"].as_str().unwrap().starts_with(&target.endpoint));
        let etag = p["etag"].as_str().expect("ETag readable");
        assert!(etag.len() > 2 && etag.starts_with('"'), "{etag}");
    }
    assert_eq!(rest["complete"], 200);
    assert_eq!(rest["status"], "uploaded");
    assert_eq!(page["single"]["status"], 201);
    assert!(page["single"]["location"]
        .as_str()
        .unwrap()
        .starts_with("/v1/uploads/"));

    // Every claim is uploaded with the bytes sent.
    let id_of = |location: &str| location.rsplit('/').next().unwrap().to_owned();
    for (name, id) in [
        ("tus", id_of(url)),
        ("fetch", id_of(location)),
        ("rest", id.to_owned()),
    ] {
        let claim = app.get_json(&format!("/v1/uploads/{id}")).await;
        assert_eq!(claim["status"], "uploaded", "{name}: {claim}");
        let key = claim["key"].as_str().unwrap();
        assert!(object(&s3, &bucket, key).await == bytes[name], "{name}");
    }

    // The other origin got nowhere: the browser refused every preflight and
    // no request reached the API (four claims, all from the allowed page).
    let other: &Value = &result["refused"];
    for call in ["tus_create", "list", "single"] {
        assert_eq!(other[call], "refused: TypeError", "{call}: {other}");
    }
    assert_eq!(other["tus_client"], "error");
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
            .await,
        4
    );
    assert_no_page_problems(&result["problems"], &[]);
    drop_bucket(&s3, &bucket).await;
}

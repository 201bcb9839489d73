//! What tus requests are refused with, and that a refusal stores nothing.

use claimcheck::tokens::Scope;
use claimcheck_tests::app::{Store, TestApp};
use reqwest::Method;

use super::{create, head_offset, hv, patch, tus};

#[tokio::test]
async fn refusals_carry_tus_resumable_and_store_nothing() {
    let app = TestApp::spawn(Store::S3).await;
    let path = create(&app, 1000).await;
    assert_eq!(patch(&app, &path, 0, vec![1; 100]).await.status(), 204);

    // 409: another offset; nothing stored.
    let res = patch(&app, &path, 50, vec![2; 10]).await;
    assert_eq!(res.status(), 409);
    assert_eq!(hv(&res, "tus-resumable"), Some("1.0.0"));
    assert_eq!(hv(&res, "content-type"), Some("application/problem+json"));
    // 412: another protocol version, with the one served.
    let res = app
        .req(Method::PATCH, &path)
        .header("Tus-Resumable", "0.2.2")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", "100")
        .body(vec![2; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 412);
    assert_eq!(hv(&res, "tus-version"), Some("1.0.0"));
    // 415: not an offset+octet-stream body.
    let res = tus(&app, Method::PATCH, &path)
        .header("Content-Type", "application/octet-stream")
        .header("Upload-Offset", "100")
        .body(vec![2; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    // 413: past the upload's length.
    assert_eq!(patch(&app, &path, 100, vec![2; 901]).await.status(), 413);
    // 400: no or a bad Upload-Offset.
    let res = tus(&app, Method::PATCH, &path)
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", "-1")
        .body(vec![2; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        head_offset(&app, &path).await,
        100,
        "no refusal stored a byte"
    );

    // 401 without a token, 403 without the scope, 404 for another owner's.
    let res = app
        .http
        .head(format!("{}{path}", app.base))
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(hv(&res, "tus-resumable"), Some("1.0.0"));
    let consumer = app.token_for("svc", &[Scope::Consume]).await;
    let res = app
        .http
        .head(format!("{}{path}", app.base))
        .bearer_auth(&consumer)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let bob = app.token_for("bob", &[Scope::Upload]).await;
    for method in [Method::HEAD, Method::DELETE] {
        let res = app
            .http
            .request(method.clone(), format!("{}{path}", app.base))
            .bearer_auth(&bob)
            .header("Tus-Resumable", "1.0.0")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{method}");
    }
    let res = app
        .http
        .patch(format!("{}{path}", app.base))
        .bearer_auth(&bob)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", "100")
        .body(vec![3; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(head_offset(&app, &path).await, 100);
    // A REST upload is no tus upload, an id no uuid names nothing.
    let rest = app.init(10, None).await;
    let rest_path = format!("/v1/tus/{}", rest["id"].as_str().unwrap());
    assert_eq!(
        tus(&app, Method::HEAD, &rest_path)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        tus(&app, Method::HEAD, "/v1/tus/not-a-uuid")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn bad_creations_are_refused_before_a_claim_exists() {
    let app = TestApp::spawn_with(Store::S3, &[("CLAIMCHECK_MAX_UPLOAD_SIZE", "1MiB")]).await;
    let post = || tus(&app, Method::POST, "/v1/tus");
    let cases = [
        (post(), 400, "neither length nor deferral"),
        (
            post()
                .header("Upload-Length", "10")
                .header("Upload-Defer-Length", "1"),
            400,
            "both",
        ),
        (post().header("Upload-Length", "x"), 400, "a bad length"),
        (
            post().header("Upload-Length", "2000000"),
            413,
            "over the limit",
        ),
        (
            post()
                .header("Upload-Length", "10")
                .header("Upload-Metadata", "filename !!"),
            400,
            "bad metadata",
        ),
        (
            post().header("Upload-Length", "10").header(
                "Upload-Metadata",
                format!("filetype {}", super::b64("text/html")),
            ),
            415,
            "a denied type",
        ),
        (
            post()
                .header("Upload-Length", "10")
                .header("Upload-Concat", "final;/v1/uploads/x"),
            400,
            "a bad final",
        ),
        (
            post()
                .header("Upload-Length", "10")
                .header("Content-Type", "text/plain")
                .body("0123456789"),
            415,
            "bytes of another type",
        ),
    ];
    for (req, status, why) in cases {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), status, "{why}");
        assert_eq!(hv(&res, "tus-resumable"), Some("1.0.0"), "{why}");
    }
    let res = app
        .http
        .post(format!("{}/v1/tus", app.base))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // X-HTTP-Method-Override: a POST that is a HEAD.
    let path = create(&app, 10).await;
    let res = tus(&app, Method::POST, &path)
        .header("X-HTTP-Method-Override", "HEAD")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(hv(&res, "upload-offset"), Some("0"));
    let claims = app
        .sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
        .await;
    assert_eq!(claims, 1, "only the good creation made a claim");
}

#[tokio::test]
async fn head_answers_from_postgresql_alone_when_the_store_is_down() {
    let app = TestApp::spawn(Store::S3).await;
    let path = create(&app, 1000).await;
    assert_eq!(patch(&app, &path, 0, vec![1; 300]).await.status(), 204);
    // A pod whose S3 endpoint refuses every connection: tus clients start
    // an upload over on a 5xx HEAD, so HEAD must not need the store.
    let down = claimcheck_tests::procs::RefusedPort::new();
    let pod = app
        .another_with(&[("CLAIMCHECK_S3_ENDPOINT", down.url().as_str())])
        .await;
    let res = tus(&pod, Method::HEAD, &path).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(hv(&res, "upload-offset"), Some("300"));
    // Bytes short of a part need no store either (they go to the tail)...
    assert_eq!(patch(&pod, &path, 300, vec![2; 200]).await.status(), 204);
    // ...and the last bytes, which do, are a clear 503 that stores nothing.
    let res = patch(&pod, &path, 500, vec![3; 500]).await;
    assert_eq!(res.status(), 503);
    assert_eq!(head_offset(&app, &path).await, 500);
    assert_eq!(patch(&app, &path, 500, vec![3; 500]).await.status(), 204);
}

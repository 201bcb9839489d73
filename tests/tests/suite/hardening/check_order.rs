//! Item 11: the contract's check order holds on every route class:
//! authentication (401) and scope (403) come before any body or query
//! parsing error (400), and before the resource's existence (404).

use claimcheck::tokens::Scope;
use claimcheck_tests::app::{Store, TestApp};
use reqwest::Method;

use super::{send_as, status_and_body};

/// A request (method, path, JSON body), a token without the route's scope,
/// a token with it, and the status the latter gets.
type Case<'a> = (Method, &'a str, Option<&'a str>, &'a str, &'a str, u16);

#[tokio::test]
async fn authentication_and_scope_come_before_body_and_query_errors() {
    let app = TestApp::spawn(Store::Fs).await;
    let uploader = app.token_for("up", &[Scope::Upload]).await;
    let consumer = app.token_for("svc", &[Scope::Consume]).await;
    // Shaped like a token, so the API has to ask the database about it.
    let unknown = format!("cc_{}", "A".repeat(43));
    let (user, admin) = (app.alice_token.as_str(), app.admin_token.as_str());
    let (uploader, consumer) = (uploader.as_str(), consumer.as_str());
    let routes: [Case; 15] = [
        (
            Method::POST,
            "/v1/uploads?public=maybe",
            None,
            consumer,
            user,
            400,
        ),
        (
            Method::GET,
            "/v1/uploads?limit=abc",
            None,
            consumer,
            user,
            400,
        ),
        (
            Method::GET,
            "/v1/uploads?cursor=nope",
            None,
            consumer,
            user,
            400,
        ),
        (
            Method::POST,
            "/v1/uploads/multipart",
            Some("{"),
            consumer,
            user,
            400,
        ),
        (
            Method::POST,
            "/v1/uploads/multipart",
            Some("[]"),
            consumer,
            user,
            400,
        ),
        (
            Method::PUT,
            "/v1/uploads/nope/parts/x",
            None,
            consumer,
            user,
            404,
        ),
        (
            Method::POST,
            "/v1/uploads/nope/complete",
            None,
            consumer,
            user,
            404,
        ),
        (
            Method::POST,
            "/v1/claims/consume",
            Some("{"),
            uploader,
            user,
            400,
        ),
        (
            Method::POST,
            "/v1/deletes",
            Some("{\"items\": 1}"),
            uploader,
            user,
            400,
        ),
        (
            Method::POST,
            "/v1/objects/url",
            Some("{"),
            uploader,
            user,
            400,
        ),
        (
            Method::GET,
            "/v1/objects/priv/nope",
            None,
            uploader,
            user,
            404,
        ),
        (Method::POST, "/v1/tokens", Some("{"), user, admin, 400),
        (Method::DELETE, "/v1/tokens/nope", None, user, admin, 404),
        (
            Method::POST,
            "/v1/admin/queue/dead/retry",
            Some("{"),
            user,
            admin,
            400,
        ),
        (Method::GET, "/v1/admin/queue", None, user, admin, 200),
    ];
    for (method, path, body, wrong, right, expected) in routes {
        let route = format!("{method} {path} {body:?}");
        for (token, status, code) in [
            (None, 401, "unauthorized"),
            (Some(unknown.as_str()), 401, "unauthorized"),
            (Some(wrong), 403, "forbidden"),
        ] {
            let res = send_as(&app, token, method.clone(), path, body).await;
            let (got, problem) = status_and_body(res).await;
            assert_eq!(got, status, "{route} with {token:?}: {problem}");
            assert_eq!(problem["code"], code, "{route}");
        }
        let res = send_as(&app, Some(right), method.clone(), path, body).await;
        let (got, answer) = status_and_body(res).await;
        assert_eq!(got, expected, "{route} with the right token: {answer}");
    }
}

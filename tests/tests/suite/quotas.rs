//! Quotas (issue 16): bytes held, bytes and uploads started per UTC day,
//! per owner, checked at every kind of start across pods; refusals answer
//! 429 `quota_exceeded` and create nothing.

mod day;
mod freed;
mod pending;
mod race;
mod starts;

use claimcheck::tokens::Scope;
use claimcheck_tests::app::TestApp;
use reqwest::{Method, Response};
use serde_json::{json, Value};

/// The kinds of start a quota is checked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// `POST /v1/uploads` (the bytes in the body).
    Single,
    /// `POST /v1/uploads/multipart`.
    Multipart,
    /// `POST /v1/tus`.
    Tus,
}

/// An owner with an `upload` token of its own.
pub struct Owner {
    pub name: String,
    pub token: String,
}

impl Owner {
    pub async fn new(app: &TestApp, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            token: app.token_for(name, &[Scope::Upload, Scope::Consume]).await,
        }
    }

    /// Starts an upload of `size` bytes of the kind `start`.
    pub async fn start(&self, app: &TestApp, start: Start, size: u64) -> Response {
        let url = |path: &str| format!("{}{path}", app.base);
        let req = match start {
            Start::Single => app
                .http
                .post(url("/v1/uploads?filename=a.bin"))
                .header("Content-Type", "application/octet-stream")
                .body(vec![7u8; size as usize]),
            Start::Multipart => app.http.post(url("/v1/uploads/multipart")).json(&json!({
                "filename": "a.bin", "content_type": "application/octet-stream", "size": size,
            })),
            Start::Tus => app
                .http
                .post(url("/v1/tus"))
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Length", size.to_string()),
        };
        req.bearer_auth(&self.token).send().await.unwrap()
    }

    /// The owner's claims in the database.
    pub async fn claims(&self, app: &TestApp) -> i64 {
        count(app, "upload_claims", &self.name).await
    }
}

/// Rows of `table` (a claimcheck table with an `owner` column) for `owner`.
pub async fn count(app: &TestApp, table: &str, owner: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM claimcheck.{table} WHERE owner = $1");
    app.db
        .client()
        .await
        .query_one(&sql, &[&owner])
        .await
        .unwrap()
        .get(0)
}

/// Sets `owner`'s overrides through the admin API; returns its quotas.
pub async fn set_quota(app: &TestApp, owner: &str, body: Value) -> Value {
    let res = app
        .http
        .put(format!("{}/v1/admin/owners/{owner}/quota", app.base))
        .bearer_auth(&app.admin_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "set quota");
    res.json().await.unwrap()
}

/// `owner`'s quotas and usage through the admin API.
pub async fn show_quota(app: &TestApp, owner: &str) -> Value {
    app.admin_json(Method::GET, &format!("/v1/admin/owners/{owner}/quota"))
        .await
}

/// Asserts a 429 `quota_exceeded` for `quota` with this limit and usage;
/// returns the problem body.
pub async fn assert_refused(res: Response, quota: &str, limit: u64, usage: u64) -> Value {
    assert_eq!(res.status(), 429);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "quota_exceeded", "{body}");
    assert_eq!(body["quota"], quota, "{body}");
    assert_eq!(body["limit"], limit, "{body}");
    assert_eq!(body["usage"], usage, "{body}");
    body
}

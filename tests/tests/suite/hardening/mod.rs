//! The security review's hardening items (issue 11), one test (or more)
//! each; `docs/reliability.md` says which test shows which item.

mod audit_bound;
mod check_order;
mod content_types;
mod deletes;
mod edges;
mod input_limits;
mod internals;
mod metric_labels;
mod races;
mod timeouts;

use claimcheck_tests::app::TestApp;
use reqwest::Method;
use serde_json::Value;

/// `METHOD path` with `token` (or none) and `body` sent as JSON text as it is
/// (so that malformed JSON can be sent too).
pub async fn send_as(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> reqwest::Response {
    let mut req = app.http.request(method, format!("{}{path}", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(b.to_owned());
    }
    req.send().await.unwrap()
}

/// The status and the body (JSON, or Null when it is not JSON).
pub async fn status_and_body(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

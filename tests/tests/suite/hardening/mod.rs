//! The security review's hardening items, each through the real binary:
//! content types (item 7), NUL and oversized strings (9), the check order
//! (11), metric label cardinality (14) and internals kept out of answers (15).

mod content_types;

use serde_json::Value;

/// The status and the body (JSON, or Null when it is not JSON).
pub async fn status_and_body(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

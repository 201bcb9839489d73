//! One webhook request, per the Standard Webhooks specification
//! (standardwebhooks.com): the event JSON POSTed with `webhook-id`,
//! `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `id.timestamp.body`, keyed with the endpoint's `whsec_` secret.
//!
//! The client follows no redirect (a receiver cannot bounce events to
//! another host), gives up after the timeout, and reads at most
//! [`EXCERPT`] bytes of an answer (kept with a failure for operators).

use std::{sync::Arc, time::Duration};

use base64::{engine::general_purpose::STANDARD, Engine};
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use sha2::Sha256;

/// Bytes of a receiver's answer kept (and read).
pub const EXCERPT: usize = 1024;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// A 2xx answer.
    Delivered {
        /// Its status.
        status: u16,
    },
    /// Another status: the receiver refused or failed.
    Refused {
        /// Its status.
        status: u16,
        /// The start of its body.
        excerpt: String,
    },
    /// No answer: refused connection, timeout, TLS, a bad URL.
    Failed {
        /// Why.
        error: String,
    },
}

/// The HTTP client of the deliveries: http and https (rustls on
/// aws-lc-rs, the system's roots), HTTP/1.1, no redirects (hyper follows
/// none), `timeout` for a whole attempt.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

/// The deliveries' client with `timeout` per attempt.
pub fn client(timeout: Duration) -> HttpClient {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    HttpClient {
        inner: Client::builder(TokioExecutor::new()).build(https),
        timeout,
    }
}

/// `v1,<base64 HMAC-SHA256>` of `id.timestamp.body` under `secret`
/// (`whsec_<base64 key>`; a secret without the prefix is taken whole).
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|k| STANDARD.decode(k).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// POSTs `body` (event `id`'s JSON) to `url`, signed with `secret`.
pub async fn send(http: &HttpClient, url: &str, secret: &str, id: &str, body: Vec<u8>) -> Attempt {
    match tokio::time::timeout(http.timeout, attempt(http, url, secret, id, body)).await {
        Ok(outcome) => outcome,
        Err(_) => Attempt::Failed {
            error: format!("timed out after {:?}", http.timeout),
        },
    }
}

async fn attempt(http: &HttpClient, url: &str, secret: &str, id: &str, body: Vec<u8>) -> Attempt {
    let timestamp = chrono::Utc::now().timestamp();
    let signed = signature(secret, id, timestamp, &body);
    let request = Request::post(url)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("claimcheck-webhooks/", env!("CARGO_PKG_VERSION")),
        )
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signed)
        .body(Full::new(Bytes::from(body)));
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            return Attempt::Failed {
                error: format!("bad URL: {e}"),
            }
        }
    };
    let res = match http.inner.request(request).await {
        Ok(res) => res,
        Err(e) => {
            return Attempt::Failed {
                error: describe(&e),
            }
        }
    };
    let status = res.status().as_u16();
    if res.status().is_success() {
        // The answer is not read: the connection goes with it.
        return Attempt::Delivered { status };
    }
    Attempt::Refused {
        status,
        excerpt: excerpt(res.into_body()).await,
    }
}

/// At most [`EXCERPT`] bytes of an answer, as text; the rest is never read.
async fn excerpt(mut body: hyper::body::Incoming) -> String {
    let mut kept = Vec::new();
    while kept.len() < EXCERPT {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = EXCERPT - kept.len();
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let what = if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut text = format!("{what}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_specifications_example() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let signed = signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}

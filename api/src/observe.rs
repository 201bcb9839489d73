//! Per-request observability: a request id (taken from `X-Request-Id` when
//! the client sends a sane one, else minted, and always returned), one span
//! per request carrying it and the route template, the trace context from an
//! incoming `traceparent`, and the HTTP metrics.
//!
//! Metrics and spans are labelled with the route *template*
//! (`/v1/uploads/{id}`, `unmatched` when no route matches), never the raw
//! path, and with the method folded into the standard set ([`method_label`]),
//! so their cardinality stays bounded whatever clients send. Headers are
//! never logged: tokens and presigned signatures stay out of log lines.
//!
//! The request id is also in reach of whatever builds the answer
//! ([`request_id`]), so that problem bodies can name it.

use std::time::Instant;

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::{
        header::{HeaderName, HeaderValue},
        Method,
    },
    middleware::Next,
    web, Error,
};
use tracing::Instrument;
use uuid::Uuid;

use crate::startup::AppState;

/// `X-Request-Id`.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    /// The id of the request being served, for as long as it is served.
    static CURRENT_REQUEST_ID: String;
}

/// The id of the request this task is serving (`None` outside a request).
pub fn request_id() -> Option<String> {
    CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
}

/// The `method` label: one of the standard methods (RFC 9110, and PATCH),
/// else `other`, so that `curl -X RANDOM` creates no series.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The middleware: wraps every request in its span and records its metrics.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method());
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        request_id = %request_id,
    );
    claimcheck::telemetry::set_parent_from_headers(
        &span,
        req.headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes())),
    );
    let state = req.app_data::<web::Data<AppState>>().cloned();
    // Handlers, extractors and the auth middleware render their errors while
    // this runs, so problem bodies can name the request id.
    let result = CURRENT_REQUEST_ID
        .scope(request_id.clone(), next.call(req).instrument(span.clone()))
        .await;

    let status = match &result {
        Ok(res) => res.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    span.record("http.response.status_code", status);
    if let Some(state) = state {
        let metrics = &state.metrics;
        metrics
            .http_requests_total
            .with_label_values(&[route.as_str(), method, &status.to_string()])
            .inc();
        metrics
            .http_request_duration_seconds
            .with_label_values(&[route.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    let mut res = result?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    Ok(res)
}

/// Counts an upload body in flight while it lives.
pub struct InFlight(claimcheck::metrics::Metrics);

impl InFlight {
    /// Counts one more upload in flight.
    pub fn start(metrics: &claimcheck::metrics::Metrics) -> Self {
        metrics.uploads_in_flight.inc();
        Self(metrics.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.uploads_in_flight.dec();
    }
}

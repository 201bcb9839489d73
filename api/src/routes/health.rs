//! Liveness and readiness.

use actix_web::{get, web, HttpResponse};

use claimcheck::{db, store::probe};
use serde_json::json;

use crate::{observe, startup::AppState};

/// Registers `/healthz` and `/readyz`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    security(()),
    responses((status = 200, description = "The process answers")),
)]
#[get("/healthz")]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: PostgreSQL answers (503 otherwise, so the pod leaves the load
/// balancer until it does). The object store's state is reported in the
/// body but does not fail readiness: an S3 outage must not take every pod
/// out at once, and uploads answer 503 by themselves meanwhile. The route
/// needs no token, so the body says only `ok` or `unavailable` (and the
/// request id); the errors go to the log.
#[utoipa::path(
    get,
    path = "/readyz",
    security(()),
    responses(
        (status = 200, description = "PostgreSQL answers; the store's state is in the body"),
        (status = 503, description = "PostgreSQL does not answer"),
    ),
)]
#[get("/readyz")]
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = if probe::store_answers(&*state.store, &state.key_prefix).await {
        "ok"
    } else {
        "unavailable"
    };
    match db::ping(&state.pool).await {
        Ok(()) => {
            HttpResponse::Ok().json(json!({"status": "ready", "database": "ok", "store": store}))
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unavailable");
            HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", "5"))
                .json(json!({
                    "status": "unavailable",
                    "database": "unavailable",
                    "store": store,
                    "request_id": observe::request_id(),
                }))
        }
    }
}

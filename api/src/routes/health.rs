//! Liveness and readiness.

use actix_web::{get, web, HttpResponse};
use claimcheck::db;
use serde_json::json;

use crate::startup::AppState;

/// Registers `/healthz` and `/readyz`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

/// Liveness: the process answers.
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: PostgreSQL answers. 503 otherwise, so the pod leaves the
/// load balancer until it does.
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match db::ping(&state.pool).await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready", "database": "ok"})),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unavailable");
            HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", "5"))
                .json(json!({"status": "unavailable", "database": e.to_string()}))
        }
    }
}

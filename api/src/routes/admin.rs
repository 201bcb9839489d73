//! `/v1/admin/queue` (admin) and the API's own `/metrics`.

use actix_web::middleware::from_fn;
use actix_web::{get, post, web, HttpResponse};
use claimcheck::{db::DeleteQueue, metrics::CONTENT_TYPE};
use serde::Deserialize;
use serde_json::json;

use crate::{
    auth::{self, Caller},
    error::ApiError,
    startup::AppState,
};

/// Registers the routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(queue).service(retry_dead).service(metrics);
}

/// `GET /v1/admin/queue`: rows by state, the oldest due row's age, dead rows.
#[utoipa::path(
    get,
    path = "/v1/admin/queue",
    responses(
        (
            status = 200,
            description = "Queue rows by state, oldest due age, the first 100 dead rows",
        ),
        (status = 401, body = crate::wire::Problem),
        (status = 403, body = crate::wire::Problem),
        (status = 503, body = crate::wire::Problem),
    ),
)]
#[get("/v1/admin/queue", wrap = "from_fn(auth::admin)")]
pub(crate) async fn queue(
    _caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let queue = DeleteQueue::new(state.pool.clone());
    let stats = queue.stats().await?;
    let dead: Vec<_> = queue
        .list_dead(100)
        .await?
        .into_iter()
        .map(|(row, dead_at)| json!({"row": row, "dead_at": dead_at}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "rows": {"due": stats.due, "leased": stats.leased, "deferred": stats.deferred, "dead": stats.dead},
        "oldest_due_seconds": stats.oldest_due_seconds,
        "dead": dead,
    })))
}

/// `POST /v1/admin/queue/dead/retry`'s optional body.
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct RetryDead {
    /// Only these rows (default: every dead row).
    ids: Option<Vec<i64>>,
}

/// `POST /v1/admin/queue/dead/retry`: put dead rows back in the queue.
#[utoipa::path(
    post,
    path = "/v1/admin/queue/dead/retry",
    request_body(content = Option<RetryDead>),
    responses(
        (status = 200, description = "How many rows went back: {\"retried\": n}"),
        (status = 400, body = crate::wire::Problem),
        (status = 401, body = crate::wire::Problem),
        (status = 403, body = crate::wire::Problem),
        (status = 503, body = crate::wire::Problem),
    ),
)]
#[post("/v1/admin/queue/dead/retry", wrap = "from_fn(auth::admin)")]
pub(crate) async fn retry_dead(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // No body means every dead row; a malformed one is a 400, never taken
    // for "every dead row" (which `Option<web::Json>` would do).
    let ids = match body.is_empty() {
        true => None,
        false => {
            serde_json::from_slice::<RetryDead>(&body)
                .map_err(|e| ApiError::InvalidRequest(format!("invalid JSON body: {e}")))?
                .ids
        }
    };
    let retried = DeleteQueue::new(state.pool.clone())
        .retry_dead(ids.as_deref(), &caller.actor())
        .await?;
    Ok(HttpResponse::Ok().json(json!({"retried": retried})))
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    security(()),
    responses((status = 200, description = "Prometheus text format")),
)]
#[get("/metrics")]
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // The pool gauge costs no query: read it at scrape time.
    state.metrics.set_pool_status(&state.pool);
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(state.metrics.render())
}

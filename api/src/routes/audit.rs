//! `GET /v1/admin/audit` (admin): the audit log, newest first, filtered,
//! paged with an opaque cursor.

use actix_web::middleware::from_fn;
use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use claimcheck::db::{AuditEntry, AuditQuery};
use serde::{Deserialize, Serialize};

use crate::{
    auth::{self, Caller},
    error::ApiError,
    startup::AppState,
};

/// Rows per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

/// Registers the routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list);
}

/// `GET /v1/admin/audit`'s query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only this action (`token.minted`, `objects.consumed`, ...).
    action: Option<String>,
    /// Only this actor: `token`, `sql`, `cli`, `worker`, `anonymous`, a
    /// token id, or an owner.
    actor: Option<String>,
    /// Only rows at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Rows per page (1 to 1000, default 100).
    limit: Option<i64>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// A page of audit rows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Audit rows, newest first: tokens minted and revoked, expired tokens
/// used, consumes, scheduled deletes, dead rows retried, webhook endpoints
/// changed, quota overrides changed, refused authentications (one row per
/// token prefix, minute and API process, with the count).
#[utoipa::path(
    get,
    path = "/v1/admin/audit",
    params(AuditParams),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, body = crate::wire::Problem),
        (status = 401, body = crate::wire::Problem),
        (status = 403, body = crate::wire::Problem),
        (status = 503, body = crate::wire::Problem),
    ),
)]
#[get("/v1/admin/audit", wrap = "from_fn(auth::admin)")]
pub(crate) async fn list(
    _caller: Caller,
    state: web::Data<AppState>,
    params: web::Query<AuditParams>,
) -> Result<HttpResponse, ApiError> {
    let p = params.into_inner();
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::InvalidRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    // The cursor is the last id of the previous page.
    let before_id = match p.cursor.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(id)) if id > 0 => Some(id),
        Some(_) => {
            return Err(ApiError::InvalidRequest(
                "cursor is not one this API gave".into(),
            ))
        }
    };
    // PostgreSQL's timestamps end in 294276; chrono's go further.
    if p.since
        .is_some_and(|t| !(1..=9999).contains(&chrono::Datelike::year(&t)))
    {
        return Err(ApiError::InvalidRequest(
            "since must be a time between the years 1 and 9999".into(),
        ));
    }
    for (name, value) in [("action", &p.action), ("actor", &p.actor)] {
        if value
            .as_deref()
            .is_some_and(|v| v.len() > 255 || v.contains('\0'))
        {
            return Err(ApiError::InvalidRequest(format!(
                "{name} is not a valid filter"
            )));
        }
    }
    let query = AuditQuery {
        action: p.action,
        actor: p.actor,
        since: p.since,
        before_id,
        // One more than asked: whether there is a next page.
        limit: limit + 1,
    };
    let mut items = state.audit_log.page(&query).await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|e| e.id.to_string())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(AuditPage { items, next_cursor }))
}

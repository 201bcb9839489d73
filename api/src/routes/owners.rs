//! `/v1/admin/owners/{owner}/quota` (admin): an owner's quotas and usage,
//! and its overrides of the configured quotas.

use actix_web::middleware::from_fn;
use actix_web::{get, put, web, HttpResponse};
use claimcheck::{
    db::{OwnerQuota, QuotaChange},
    input,
};
use serde::{Deserialize, Deserializer};

use crate::{
    auth::{self, Caller},
    error::ApiError,
    startup::AppState,
};

/// Registers the routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(show).service(change);
}

/// `PUT /v1/admin/owners/{owner}/quota`'s body: each member present is set
/// (a number of bytes or uploads, `0` for no limit, `null` for the
/// configured default); members left out keep their value.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaRequest {
    /// Bytes the owner may hold.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    bytes: Option<Option<u64>>,
    /// Bytes the owner may start per UTC day.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    daily_bytes: Option<Option<u64>>,
    /// Uploads the owner may start per UTC day.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    daily_uploads: Option<Option<u64>>,
}

/// A member that is present: `Some` of its value, `null` included (a
/// member left out stays `None` by `default`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

fn owner_of(path: &str) -> Result<&str, ApiError> {
    if path.trim().is_empty() {
        return Err(ApiError::InvalidRequest("owner must not be empty".into()));
    }
    input::OWNER.check(path)?;
    Ok(path)
}

/// An owner's quotas (the configured ones with its overrides), its
/// overrides and its usage (bytes held; today's bytes and uploads, UTC;
/// pending uploads). An owner nobody configured has the defaults and no
/// usage: never a 404.
#[utoipa::path(
    get,
    path = "/v1/admin/owners/{owner}/quota",
    params(("owner" = String, Path)),
    responses(
        (status = 200, body = OwnerQuota),
        (status = 400, body = crate::wire::Problem),
        (status = 401, body = crate::wire::Problem),
        (status = 403, body = crate::wire::Problem),
        (status = 503, body = crate::wire::Problem),
    ),
)]
#[get("/v1/admin/owners/{owner}/quota", wrap = "from_fn(auth::admin)")]
pub(crate) async fn show(
    _caller: Caller,
    state: web::Data<AppState>,
    owner: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let owner = owner_of(&owner)?;
    let quotas = &state.uploads.limits().quotas;
    Ok(HttpResponse::Ok().json(state.owners.show(owner, quotas).await?))
}

/// Sets an owner's overrides; recorded in the audit log (before and after)
/// in the same transaction. Answers the owner's quotas as they are now.
#[utoipa::path(
    put,
    path = "/v1/admin/owners/{owner}/quota",
    params(("owner" = String, Path)),
    request_body = QuotaRequest,
    responses(
        (status = 200, body = OwnerQuota),
        (status = 400, body = crate::wire::Problem),
        (status = 401, body = crate::wire::Problem),
        (status = 403, body = crate::wire::Problem),
        (status = 503, body = crate::wire::Problem),
    ),
)]
#[put("/v1/admin/owners/{owner}/quota", wrap = "from_fn(auth::admin)")]
pub(crate) async fn change(
    caller: Caller,
    state: web::Data<AppState>,
    owner: web::Path<String>,
    body: web::Json<QuotaRequest>,
) -> Result<HttpResponse, ApiError> {
    let owner = owner_of(&owner)?;
    let body = body.into_inner();
    let change = QuotaChange {
        bytes: body.bytes,
        daily_bytes: body.daily_bytes,
        daily_uploads: body.daily_uploads,
    };
    if change == QuotaChange::default() {
        return Err(ApiError::InvalidRequest(
            "name at least one of bytes, daily_bytes, daily_uploads".into(),
        ));
    }
    let too_big = [change.bytes, change.daily_bytes, change.daily_uploads]
        .into_iter()
        .flatten()
        .flatten()
        .any(|v| v > i64::MAX as u64);
    if too_big {
        return Err(ApiError::InvalidRequest(format!(
            "a quota is at most {}",
            i64::MAX
        )));
    }
    let quotas = &state.uploads.limits().quotas;
    let changed = state
        .owners
        .change(owner, &change, quotas, &caller.actor())
        .await?;
    Ok(HttpResponse::Ok().json(changed))
}

//! `/v1/tokens`: minting, listing and revoking tokens (admin).

use std::collections::BTreeSet;

use actix_web::middleware::from_fn;
use actix_web::{delete, get, post, web, HttpResponse};
use claimcheck::{
    config::parse_duration,
    input,
    tokens::{check_owners, NewToken, Scope},
};
use serde::Deserialize;
use uuid::Uuid;

use crate::wire::TokenPage;
use crate::{
    auth::{self, Caller},
    error::ApiError,
    startup::AppState,
};
use claimcheck::tokens::MintedToken;

/// Registers the routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(mint).service(list).service(revoke);
}

/// `POST /v1/tokens`'s body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct MintRequest {
    /// The principal the token acts for.
    owner: String,
    /// upload, consume, admin.
    scopes: Vec<String>,
    /// A label for people.
    name: Option<String>,
    /// `30d`, `12h`, ... (none: never expires).
    expires_in: Option<String>,
    /// The owners a consume token acts for (none: every owner): it then
    /// sees, consumes, deletes and signs URLs for their claims and objects
    /// only.
    owners: Option<Vec<String>>,
}

/// `POST /v1/tokens`: the raw token is in this answer and nowhere else.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    request_body = MintRequest,
    responses(
        (status = 201, body = MintedToken),
        (status = 400, body = crate::wire::Problem),
        (status = 401, body = crate::wire::Problem),
        (status = 403, body = crate::wire::Problem),
        (status = 503, body = crate::wire::Problem),
    ),
)]
#[post("/v1/tokens", wrap = "from_fn(auth::admin)")]
pub(crate) async fn mint(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<MintRequest>,
) -> Result<HttpResponse, ApiError> {
    if body.owner.trim().is_empty() {
        return Err(ApiError::InvalidRequest("owner must not be empty".into()));
    }
    input::OWNER.check(&body.owner)?;
    if let Some(name) = &body.name {
        input::TOKEN_NAME.check(name)?;
    }
    let scopes: BTreeSet<Scope> = body
        .scopes
        .iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<_, _>>()
        .map_err(ApiError::InvalidRequest)?;
    if scopes.is_empty() {
        return Err(ApiError::InvalidRequest(
            "at least one scope is needed".into(),
        ));
    }
    let expires_in = body
        .expires_in
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| ApiError::InvalidRequest(format!("expires_in: {e}")))?;
    let owners = body
        .owners
        .as_ref()
        .map(|o| -> Result<BTreeSet<String>, ApiError> {
            let owners: BTreeSet<String> = o.iter().cloned().collect();
            check_owners(&owners).map_err(ApiError::InvalidRequest)?;
            Ok(owners)
        })
        .transpose()?;
    let new = NewToken::new(body.owner.clone(), scopes)
        .name(body.name.clone())
        .expires_in(expires_in)
        .owners(owners);
    let minted = state.tokens.create(&new, &caller.actor()).await?;
    Ok(HttpResponse::Created().json(minted))
}

/// `GET /v1/tokens`: every token's record, never a secret.
#[utoipa::path(
    get,
    path = "/v1/tokens",
    responses(
        (status = 200, body = TokenPage),
        (status = 401, body = crate::wire::Problem),
        (status = 403, body = crate::wire::Problem),
        (status = 503, body = crate::wire::Problem),
    ),
)]
#[get("/v1/tokens", wrap = "from_fn(auth::admin)")]
pub(crate) async fn list(
    _caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(TokenPage {
        items: state.tokens.list().await?,
    }))
}

/// `DELETE /v1/tokens/{id}`: revoke.
#[utoipa::path(
    delete,
    path = "/v1/tokens/{id}",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, body = crate::wire::Problem),
        (status = 403, body = crate::wire::Problem),
        (status = 404, body = crate::wire::Problem),
        (status = 503, body = crate::wire::Problem),
    ),
)]
#[delete("/v1/tokens/{id}", wrap = "from_fn(auth::admin)")]
pub(crate) async fn revoke(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("token not found"))?;
    if state.tokens.revoke(id, &caller.actor()).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found("token not found or already revoked"))
    }
}

//! Business adoption (scope `consume`): consume claims into the objects
//! registry, read registry rows, schedule deletes. Download URLs are in
//! [`downloads`].
//!
//! The rules are the SQL functions', reached through [`ObjectRegistry`],
//! which also runs the transactions (and tells a retried consume apart);
//! these handlers only add what HTTP needs: validation before the database,
//! and the mapping of outcomes to answers.

pub mod downloads;

use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{get, post, web, HttpResponse};
use claimcheck::{
    db::{ConsumeError, ObjectRegistry, ScheduleError},
    domain::{DeleteReason, RegistryObject},
    input,
    store::validate_key,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::wire::{ObjectBody, Problem};
use crate::{
    auth::{self, Caller},
    error::ApiError,
    startup::AppState,
};

/// How long after a consume the same consume is answered again with its
/// objects (the contract's retry window).
const RETRY_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The most keys one consume or delete request may name: a request is one
/// transaction, and one that locks without bound would stall the others.
const MAX_KEYS: usize = 1000;

/// Registers the routes of this module and of [`downloads`].
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(consume)
        .service(schedule_deletes)
        .service(downloads::download_url)
        .service(downloads::serve_file)
        // Last: `{key:.*}` matches anything under /v1/objects/ (GET only, so
        // it never takes `POST /v1/objects/url`, but literal routes first).
        .service(show_object);
}

/// `POST /v1/claims/consume`.
#[derive(Deserialize, ToSchema)]
pub struct ConsumeRequest {
    /// The principal the claims belong to (the uploader's token owner).
    pub owner: String,
    /// The object keys to consume, all or nothing; duplicates count once.
    pub keys: Vec<String>,
}

/// The objects a consume moved into the registry.
#[derive(Serialize, ToSchema)]
pub struct ConsumedObjects {
    /// Registry rows, by key.
    pub objects: Vec<ObjectBody>,
}

/// One delete to schedule.
#[derive(Deserialize, ToSchema)]
pub struct DeleteItem {
    /// The object key.
    pub key: String,
    /// `replaced` or `deleted`.
    pub reason: String,
}

/// `POST /v1/deletes`.
#[derive(Deserialize, ToSchema)]
pub struct DeleteRequest {
    /// The deletes, all scheduled in one transaction.
    pub items: Vec<DeleteItem>,
}

/// What `POST /v1/deletes` queued.
#[derive(Serialize, ToSchema)]
pub struct DeletesAccepted {
    /// Queue rows created (one per item).
    pub queued: usize,
}

/// Consumes the owner's uploaded claims into the objects registry, all or
/// nothing. A retry of a consume that already happened (same owner, every
/// key in the registry for that owner, consumed within 24 h) answers 200
/// again with the same objects.
#[utoipa::path(
    post,
    path = "/v1/claims/consume",
    request_body = ConsumeRequest,
    responses(
        (status = 200, body = ConsumedObjects),
        (status = 400, body = Problem),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (
            status = 404,
            body = Problem,
            description = "Some key is unknown, pending or another owner's (
                `missing` lists them,
            ); nothing was consumed",
        ),
        (status = 503, body = Problem),
    ),
)]
#[post("/v1/claims/consume", wrap = "from_fn(auth::consume)")]
pub(crate) async fn consume(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<ConsumeRequest>,
) -> Result<HttpResponse, ApiError> {
    let ConsumeRequest { owner, keys } = body.into_inner();
    if owner.is_empty() {
        return Err(ApiError::InvalidRequest("owner must not be empty".into()));
    }
    if keys.len() > MAX_KEYS {
        return Err(ApiError::InvalidRequest(format!(
            "at most {MAX_KEYS} keys per consume"
        )));
    }
    input::OWNER.check(&owner)?;
    for key in &keys {
        input::KEY.check(key)?;
    }
    let objects = ObjectRegistry::new(state.pool.clone())
        .consume_or_replay(&caller.adopter(), &owner, &keys, RETRY_WINDOW)
        .await
        .map_err(|e| match e {
            ConsumeError::Missing(missing) => ApiError::NotFound {
                message: format!(
                    "claims not found, pending or owned by someone else: {}",
                    missing.join(", ")
                ),
                missing: Some(missing),
            },
            ConsumeError::Db(e) => e.into(),
            ConsumeError::Schedule(e) => schedule_error(e),
        })?;
    let objects = objects.iter().map(|o| object_body(&state, o)).collect();
    Ok(HttpResponse::Ok().json(ConsumedObjects { objects }))
}

/// The registry row of a live object. The key goes in the path as it is,
/// slashes included.
#[utoipa::path(
    get,
    path = "/v1/objects/{key}",
    params(
        ("key" = String, Path, description = "The object key, slashes included, not encoded"),
    ),
    responses(
        (status = 200, body = ObjectBody),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 503, body = Problem),
    ),
)]
#[get("/v1/objects/{key:.*}", wrap = "from_fn(auth::consume)")]
pub(crate) async fn show_object(
    caller: Caller,
    state: web::Data<AppState>,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    input::KEY.check(&key)?;
    let object = ObjectRegistry::new(state.pool.clone())
        .get(&key)
        .await?
        // An owner-bound token sees another owner's object as unknown.
        .filter(|o| caller.acts_for(&o.owner))
        .ok_or_else(|| ApiError::not_found("no live object with this key"))?;
    Ok(HttpResponse::Ok().json(object_body(&state, &object)))
}

/// Removes the registry rows of the keys (where there are any) and queues
/// every key's delete, in one transaction. Reasons: `replaced`, `deleted`.
#[utoipa::path(
    post,
    path = "/v1/deletes",
    request_body = DeleteRequest,
    responses(
        (status = 202, body = DeletesAccepted),
        (status = 400, body = Problem),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 409, body = Problem),
        (status = 503, body = Problem),
    ),
)]
#[post("/v1/deletes", wrap = "from_fn(auth::consume)")]
pub(crate) async fn schedule_deletes(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<DeleteRequest>,
) -> Result<HttpResponse, ApiError> {
    let items = body.into_inner().items;
    if items.len() > MAX_KEYS {
        return Err(ApiError::InvalidRequest(format!(
            "at most {MAX_KEYS} items per request"
        )));
    }
    // Check everything before queueing anything: a key no store accepts
    // would only fail in the worker, over and over, until parked dead.
    let mut deletes = Vec::with_capacity(items.len());
    for DeleteItem { key, reason } in items {
        let reason = match DeleteReason::parse(&reason) {
            Some(r @ (DeleteReason::Replaced | DeleteReason::Deleted)) => r,
            _ => {
                return Err(ApiError::InvalidRequest(format!(
                    "reason must be replaced or deleted, not {reason:?}"
                )))
            }
        };
        validate_key(&key).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
        deletes.push((key, reason));
    }
    let queued = ObjectRegistry::new(state.pool.clone())
        .schedule_deletes(&caller.adopter(), &deletes)
        .await
        .map_err(schedule_error)?;
    Ok(HttpResponse::Accepted().json(DeletesAccepted { queued }))
}

/// A refused delete: 400 outside the key space, 409 for a live claim.
pub(crate) fn schedule_error(e: ScheduleError) -> ApiError {
    match e {
        ScheduleError::Invalid(m) => ApiError::InvalidRequest(m),
        ScheduleError::LiveClaim(m) => ApiError::conflict(m),
        ScheduleError::NotFound(m) => ApiError::not_found(m),
        ScheduleError::Db(e) => e.into(),
    }
}

/// A registry object as the API shows it.
fn object_body(state: &AppState, object: &RegistryObject) -> ObjectBody {
    ObjectBody::new(object, state.public_base_url.as_deref())
}

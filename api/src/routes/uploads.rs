//! `/v1/uploads`: single-shot uploads, listing, status and discard.

use actix_web::middleware::from_fn;
use actix_web::{delete, get, http::StatusCode, post, web, HttpRequest, HttpResponse};
use claimcheck::{
    domain::{Claim, ClaimStatus},
    input,
    uploads::{SingleUpload, Started, UploadStatus},
};
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    auth::{self, Caller},
    body::{content_length, header, pump, with_pump},
    error::ApiError,
    startup::AppState,
    wire::{ClaimBody, ClaimPage, ClaimWithParts, PartBody, Problem},
};

/// Registers the routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(show)
        .service(discard);
}

#[derive(Deserialize)]
struct CreateQuery {
    filename: Option<String>,
    #[serde(default)]
    public: bool,
}

/// `POST /v1/uploads?filename=F&public=false`: the body is the file.
#[utoipa::path(
    post,
    path = "/v1/uploads",
    params(
        ("filename" = String, Query),
        ("public" = Option<bool>, Query),
        ("X-Content-SHA256" = Option<String>, Header),
        ("Idempotency-Key" = Option<String>, Header),
    ),
    request_body(
        content = Vec<u8>,
        content_type = "application/octet-stream",
        description = "The file, streamed; Content-Length required",
    ),
    responses(
        (status = 201, body = ClaimBody),
        (
            status = 200,
            body = ClaimBody,
            description = "An earlier upload with the same Idempotency-Key",
        ),
        (status = 400, body = Problem),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 409, body = Problem),
        (status = 411, body = Problem),
        (status = 413, body = Problem),
        (status = 415, body = Problem),
        (status = 422, body = Problem),
        (status = 429, body = Problem),
        (status = 503, body = Problem),
    ),
)]
#[post("/v1/uploads", wrap = "from_fn(auth::upload)")]
pub(crate) async fn create(
    caller: Caller,
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<CreateQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let owner = caller.owner();
    let upload = SingleUpload {
        filename: query.filename.clone().unwrap_or_default(),
        content_type: header(&req, "content-type").unwrap_or_default().to_owned(),
        len: content_length(&req),
        public: query.public,
        sha256: header(&req, "x-content-sha256").map(str::to_owned),
        idempotency_key: header(&req, "idempotency-key").map(str::to_owned),
    };
    // Refuse before reading a byte when the headers already say no.
    let (len, _) = state.uploads.check_single(&upload)?;
    // After those: the contract's order puts 411, 413 and 415 before 400.
    idempotency_key(&req)?;
    let (body, feed) = pump(payload, len, state.body_idle_timeout, &state.metrics);
    let started = with_pump(feed, state.uploads.put_single(owner, upload, body)).await?;
    Ok(started_response(&state, &started))
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<i64>,
    cursor: Option<Uuid>,
}

/// `GET /v1/uploads?status=pending&limit=&cursor=`: the caller's uploads,
/// newest first.
#[utoipa::path(
    get,
    path = "/v1/uploads",
    params(
        ("status" = Option<String>, Query, description = "pending or uploaded"),
        ("limit" = Option<i64>, Query),
        ("cursor" = Option<String>, Query),
    ),
    responses(
        (status = 200, body = ClaimPage),
        (status = 400, body = Problem),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 503, body = Problem),
    ),
)]
#[get("/v1/uploads", wrap = "from_fn(auth::upload)")]
pub(crate) async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let owner = caller.owner();
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(ClaimStatus::parse(s).ok_or_else(|| {
            ApiError::InvalidRequest("status must be pending or uploaded".into())
        })?),
    };
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::InvalidRequest(
            "limit must be between 1 and 1000".into(),
        ));
    }
    let claims = state
        .uploads
        .list(owner, status, limit, query.cursor)
        .await?;
    let next_cursor = (claims.len() as i64 == limit)
        .then(|| claims.last().map(|c| c.id))
        .flatten();
    let items = claims.iter().map(|c| claim_body(&state, c)).collect();
    Ok(HttpResponse::Ok().json(ClaimPage { items, next_cursor }))
}

/// `GET /v1/uploads/{id}`: the claim and its parts so far.
#[utoipa::path(
    get,
    path = "/v1/uploads/{id}",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = ClaimWithParts),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 503, body = Problem),
    ),
)]
#[get("/v1/uploads/{id}", wrap = "from_fn(auth::upload)")]
pub(crate) async fn show(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let owner = caller.owner();
    let UploadStatus { claim, parts } = state.uploads.status(owner, parse_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(ClaimWithParts {
        claim: claim_body(&state, &claim),
        parts: parts.iter().map(PartBody::from).collect(),
    }))
}

/// `DELETE /v1/uploads/{id}`: abort a pending upload or discard an
/// unconsumed one.
#[utoipa::path(
    delete,
    path = "/v1/uploads/{id}",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Aborted or discarded"),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 503, body = Problem),
    ),
)]
#[delete("/v1/uploads/{id}", wrap = "from_fn(auth::upload)")]
pub(crate) async fn discard(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let owner = caller.owner();
    state.uploads.discard(owner, parse_id(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The `Idempotency-Key` header, 400 when longer than
/// [`input::IDEMPOTENCY_KEY`] allows (it is a unique index's column).
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let key = header(req, "idempotency-key");
    if let Some(key) = key {
        input::IDEMPOTENCY_KEY.check(key)?;
    }
    Ok(key)
}

/// An upload id from the path; anything that is not a uuid is unknown (404).
pub fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found("upload not found"))
}

/// A claim as the API shows it.
pub fn claim_body(state: &AppState, claim: &Claim) -> ClaimBody {
    ClaimBody::new(claim, state.public_base_url.as_deref())
}

/// A start's answer: 201 for a new upload, 200 for a replay of an earlier
/// one (same idempotency key), with `Location`.
pub fn started_response(state: &AppState, started: &Started) -> HttpResponse {
    let status = match started {
        Started::Created(_) => StatusCode::CREATED,
        Started::Replayed(_) => StatusCode::OK,
    };
    claim_response(state, started.claim(), status)
}

/// A claim response with `Location`.
pub fn claim_response(state: &AppState, claim: &Claim, status: StatusCode) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Location", format!("/v1/uploads/{}", claim.id)))
        .json(claim_body(state, claim))
}

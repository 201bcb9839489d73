//! Chunked uploads: init, parts, presigned parts, complete.

use actix_web::middleware::from_fn;
use actix_web::{post, put, web, HttpRequest, HttpResponse};

use super::uploads::{claim_response, idempotency_key, parse_id, started_response};
use crate::{
    auth::{self, Caller},
    body::{content_length, header, pump, with_pump},
    error::ApiError,
    startup::AppState,
    wire::{ClaimBody, InitMultipartRequest, PartBody, PresignedPart, Problem},
};

/// Registers the routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(init)
        .service(put_part)
        .service(presign)
        .service(complete);
}

/// `POST /v1/uploads/multipart`: start a chunked upload.
#[utoipa::path(
    post,
    path = "/v1/uploads/multipart",
    params(("Idempotency-Key" = Option<String>, Header)),
    request_body = InitMultipartRequest,
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
        (status = 413, body = Problem),
        (status = 415, body = Problem),
        (status = 429, body = Problem),
        (status = 503, body = Problem),
    ),
)]
#[post("/v1/uploads/multipart", wrap = "from_fn(auth::upload)")]
pub(crate) async fn init(
    caller: Caller,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<InitMultipartRequest>,
) -> Result<HttpResponse, ApiError> {
    let owner = caller.owner();
    let idempotency_key = idempotency_key(&req)?;
    let started = state
        .uploads
        .init_multipart(owner, body.into_inner().into(), idempotency_key)
        .await?;
    Ok(started_response(&state, &started))
}

/// `PUT /v1/uploads/{id}/parts/{n}`: the raw part, streamed.
#[utoipa::path(
    put,
    path = "/v1/uploads/{id}/parts/{n}",
    params(
        ("id" = String, Path),
        ("n" = u32, Path),
        ("X-Content-SHA256" = Option<String>, Header),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, body = PartBody),
        (status = 400, body = Problem),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
        (status = 410, body = Problem),
        (status = 411, body = Problem),
        (status = 422, body = Problem),
        (status = 503, body = Problem),
    ),
)]
#[put("/v1/uploads/{id}/parts/{n}", wrap = "from_fn(auth::upload)")]
pub(crate) async fn put_part(
    caller: Caller,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let owner = caller.owner();
    let id = parse_id(&path.0)?;
    let n = part_number(&path.1);
    let len = content_length(&req);
    let sha256 = header(&req, "x-content-sha256");
    let (body, feed) = pump(
        payload,
        len.unwrap_or(0),
        state.body_idle_timeout,
        &state.metrics,
    );
    let receipt = with_pump(
        feed,
        state.uploads.put_part(owner, id, n, len, sha256, body),
    )
    .await?;
    Ok(HttpResponse::Ok().json(PartBody::from(&receipt)))
}

/// `POST /v1/uploads/{id}/parts/{n}/presign`: a URL to PUT part n straight to S3.
#[utoipa::path(
    post,
    path = "/v1/uploads/{id}/parts/{n}/presign",
    params(("id" = String, Path), ("n" = u32, Path)),
    responses(
        (status = 200, body = PresignedPart),
        (status = 400, body = Problem),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
        (status = 410, body = Problem),
        (status = 503, body = Problem),
    ),
)]
#[post("/v1/uploads/{id}/parts/{n}/presign", wrap = "from_fn(auth::upload)")]
pub(crate) async fn presign(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let owner = caller.owner();
    let id = parse_id(&path.0)?;
    let n = part_number(&path.1);
    let presigned = state.uploads.presign_part(owner, id, n).await?;
    Ok(HttpResponse::Ok().json(PresignedPart::from(presigned)))
}

/// `POST /v1/uploads/{id}/complete`: assemble the parts.
#[utoipa::path(
    post,
    path = "/v1/uploads/{id}/complete",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = ClaimBody),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
        (status = 410, body = Problem),
        (status = 503, body = Problem),
    ),
)]
#[post("/v1/uploads/{id}/complete", wrap = "from_fn(auth::upload)")]
pub(crate) async fn complete(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let owner = caller.owner();
    let claim = state.uploads.complete(owner, parse_id(&id)?).await?;
    Ok(claim_response(
        &state,
        &claim,
        actix_web::http::StatusCode::OK,
    ))
}

/// A part number from the path. One that is not a number becomes 0, which
/// the service refuses (400) after the upload's existence and state are
/// checked: the contract's order puts 404 and 410 before 400.
fn part_number(raw: &str) -> u32 {
    raw.parse().unwrap_or(0)
}

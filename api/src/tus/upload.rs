//! One tus upload: `HEAD` (its offset), `PATCH` (an append), `DELETE`
//! (termination).

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse, HttpResponseBuilder};
use claimcheck::{
    domain::{ClaimStatus, Concat},
    uploads::{Append, Appended, ResumableState, UploadError},
};
use uuid::Uuid;

use super::headers::{checksum, http_date, number};
use crate::{
    auth::Caller,
    body::{content_length, header, pump, with_pump},
    error::ApiError,
    startup::AppState,
    wire::Problem,
};

/// The media type of a PATCH body.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// `HEAD /v1/tus/{id}`: the offset and what the upload was created with.
/// One read of the database, no store call.
#[utoipa::path(
    head,
    path = "/v1/tus/{id}",
    tag = "tus",
    params(
        ("id" = String, Path, description = "The claim id: the last segment of Location"),
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
    ),
    responses(
        (
            status = 200,
            description = "Upload-Offset, Upload-Length or Upload-Defer-Length, Upload-Metadata, \
                           Upload-Expires, Upload-Concat; Cache-Control: no-store",
        ),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 410, body = Problem),
        (status = 412, body = Problem),
    ),
)]
pub(crate) async fn head(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = upload_id(&id)?;
    let upload = live(state.uploads.resumable(caller.owner(), id).await?)?;
    let mut res = HttpResponse::Ok();
    res.insert_header(("Cache-Control", "no-store"))
        .insert_header(("Upload-Offset", upload.offset.to_string()));
    describe(&mut res, &upload);
    Ok(res.finish())
}

/// `PATCH /v1/tus/{id}`: the bytes at the upload's offset.
#[utoipa::path(
    patch,
    path = "/v1/tus/{id}",
    tag = "tus",
    params(
        ("id" = String, Path),
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Offset" = u64, Header),
        ("Upload-Checksum" = Option<String>, Header, description = "sha1, sha256 or md5, base64"),
        ("Upload-Length" = Option<u64>, Header, description = "Once, when it was deferred"),
    ),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses(
        (status = 204, description = "Upload-Offset, Upload-Expires"),
        (status = 400, body = Problem),
        (status = 401, body = Problem),
        (status = 403, body = Problem, description = "A final upload takes no PATCH"),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Upload-Offset is not the server's"),
        (status = 410, body = Problem),
        (status = 412, body = Problem),
        (status = 413, body = Problem),
        (status = 415, body = Problem),
        (status = 423, body = Problem, description = "Another request is writing the upload"),
        (status = 460, body = Problem, description = "Upload-Checksum mismatch; the chunk is dropped"),
        (status = 503, body = Problem),
    ),
)]
pub(crate) async fn patch(
    caller: Caller,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = upload_id(&id)?;
    if header(&req, "content-type")
        .map(|t| t.to_ascii_lowercase())
        .as_deref()
        != Some(OFFSET_OCTET_STREAM)
    {
        return Err(ApiError::UnsupportedMediaType(format!(
            "a PATCH body is `{OFFSET_OCTET_STREAM}`"
        )));
    }
    let offset = header(&req, "upload-offset")
        .ok_or_else(|| ApiError::InvalidRequest("Upload-Offset is required".into()))
        .and_then(|v| number("Upload-Offset", v))?;
    let checksum = header(&req, "upload-checksum").map(checksum).transpose()?;
    let upload_length = header(&req, "upload-length")
        .map(|v| number("Upload-Length", v))
        .transpose()?;
    let upload = state.uploads.resumable(caller.owner(), id).await?;
    if upload.claim.resumable.as_ref().and_then(|r| r.concat) == Some(Concat::Final) {
        return Err(ApiError::NotAllowed(
            "a final upload is assembled from its partial uploads; it takes no PATCH".into(),
        ));
    }
    let len = content_length(&req);
    let (body, feed) = pump(
        payload,
        len.unwrap_or(u64::MAX),
        state.body_idle_timeout,
        &state.metrics,
    );
    let mut chunk = Append::new(offset, body);
    if let Some(len) = len {
        chunk = chunk.len(len);
    }
    if let Some(c) = checksum {
        chunk = chunk.checksum(c);
    }
    if let Some(l) = upload_length {
        chunk = chunk.upload_length(l);
    }
    let appended = with_pump(feed, state.uploads.append(caller.owner(), id, chunk)).await;
    let (new_offset, expires_at) = match appended.map_err(|e| refusal(&state, e))? {
        Appended::Partial { offset, expires_at } => (offset, Some(expires_at)),
        Appended::Finished(claim) => (claim.size as u64, claim.expires_at),
    };
    state
        .metrics
        .tus_patch_bytes_total
        .inc_by(new_offset.saturating_sub(offset));
    let mut res = HttpResponse::NoContent();
    res.insert_header(("Upload-Offset", new_offset.to_string()));
    if let Some(at) = expires_at {
        res.insert_header(("Upload-Expires", http_date(at)));
    }
    Ok(res.finish())
}

/// `DELETE /v1/tus/{id}`: termination, as `DELETE /v1/uploads/{id}`.
#[utoipa::path(
    delete,
    path = "/v1/tus/{id}",
    tag = "tus",
    params(("id" = String, Path), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    responses(
        (status = 204),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 412, body = Problem),
    ),
)]
pub(crate) async fn terminate(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = upload_id(&id)?;
    // Only a tus upload is one here.
    state.uploads.resumable(caller.owner(), id).await?;
    state.uploads.discard(caller.owner(), id).await?;
    Ok(HttpResponse::build(StatusCode::NO_CONTENT).finish())
}

/// The headers that describe an upload as it was created.
pub(super) fn describe(res: &mut HttpResponseBuilder, upload: &ResumableState) {
    let claim = &upload.claim;
    let resumable = claim.resumable.clone().unwrap_or_default();
    if resumable.length_deferred {
        res.insert_header(("Upload-Defer-Length", "1"));
    } else {
        res.insert_header(("Upload-Length", claim.size.to_string()));
    }
    if let Some(meta) = &resumable.metadata {
        res.insert_header(("Upload-Metadata", meta.as_str()));
    }
    if let Some(concat) = resumable.concat {
        res.insert_header(("Upload-Concat", concat.as_str()));
    }
    if let (ClaimStatus::Pending, Some(at)) = (claim.status, claim.expires_at) {
        res.insert_header(("Upload-Expires", http_date(at)));
    }
}

/// A pending upload whose claim ran out is gone for the client (410): its
/// client starts over rather than resume into the sweeper.
fn live(upload: ResumableState) -> Result<ResumableState, ApiError> {
    let expired = upload.claim.status == ClaimStatus::Pending
        && upload
            .claim
            .expires_at
            .is_some_and(|t| t <= chrono::Utc::now());
    match expired {
        true => Err(ApiError::Expired),
        false => Ok(upload),
    }
}

/// An id that is no uuid names no upload (404, as an unknown one).
fn upload_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found("upload not found"))
}

/// A refused append, in tus's terms.
fn refusal(state: &AppState, e: UploadError) -> ApiError {
    match e {
        UploadError::Busy(m) => {
            state.metrics.tus_locked_total.inc();
            ApiError::Locked(m)
        }
        UploadError::ChecksumMismatch { actual } => ApiError::ChunkChecksumMismatch(format!(
            "the chunk does not match its Upload-Checksum (it hashes to {actual}); it was dropped"
        )),
        other => other.into(),
    }
}

//! `POST /v1/tus`: creation (with its first bytes, with a deferred length,
//! as a partial, or as the final upload of a concatenation).

use actix_web::{web, HttpRequest, HttpResponse};
use claimcheck::uploads::{Append, Appended, Concatenate, StartResumable, Started};

use super::{
    headers::{self, http_date, meta, number, UploadConcat},
    upload::OFFSET_OCTET_STREAM,
    upload_url,
};
use crate::{
    auth::Caller,
    body::{content_length, header, pump, with_pump},
    error::ApiError,
    startup::AppState,
    wire::Problem,
};

/// `POST /v1/tus`: creation; `Upload-Length` or `Upload-Defer-Length: 1`,
/// `Upload-Metadata` (`filename`, `filetype` or `content_type`, `public`),
/// `Upload-Concat` (`partial`, `final;<url> ...`); with a body
/// (`application/offset+octet-stream`), the first bytes.
#[utoipa::path(
    post,
    path = "/v1/tus",
    tag = "tus",
    params(
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Length" = Option<u64>, Header),
        ("Upload-Defer-Length" = Option<u8>, Header, description = "1"),
        ("Upload-Metadata" = Option<String>, Header),
        ("Upload-Concat" = Option<String>, Header),
        ("Idempotency-Key" = Option<String>, Header),
    ),
    request_body(
        content = Vec<u8>,
        content_type = "application/offset+octet-stream",
        description = "Optional: the first bytes (creation-with-upload)",
    ),
    responses(
        (status = 201, description = "Location, Upload-Expires, Upload-Offset when bytes came"),
        (status = 400, body = Problem),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 404, body = Problem, description = "A final names an unknown partial"),
        (status = 409, body = Problem, description = "A final names an unfinished partial"),
        (status = 412, body = Problem),
        (status = 413, body = Problem),
        (status = 415, body = Problem),
        (status = 429, body = Problem),
        (status = 503, body = Problem),
    ),
)]
pub(crate) async fn create(
    caller: Caller,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let owner = caller.owner();
    let declared = Declared::parse(&req)?;
    let idempotency_key = header(&req, "idempotency-key");
    let body_len = content_length(&req);
    let chunked =
        header(&req, "transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
    let has_body = body_len.is_some_and(|l| l > 0) || chunked;
    if has_body
        && header(&req, "content-type")
            .map(|t| t.to_ascii_lowercase())
            .as_deref()
            != Some(OFFSET_OCTET_STREAM)
    {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the bytes of a creation are `{OFFSET_OCTET_STREAM}`"
        )));
    }
    if let Some(UploadConcat::Final(partials)) = declared.concat.clone() {
        if has_body {
            return Err(ApiError::NotAllowed(
                "a final upload takes no bytes of its own".into(),
            ));
        }
        let req = Concatenate {
            partials,
            filename: declared.filename,
            content_type: declared.content_type,
            public: declared.public,
            metadata: declared.metadata,
        };
        let started = state
            .uploads
            .concatenate(owner, req, idempotency_key)
            .await?;
        return Ok(created(&state, started, None));
    }
    let start = StartResumable {
        filename: declared.filename,
        content_type: declared.content_type,
        size: declared.length,
        public: declared.public,
        metadata: declared.metadata,
        partial: declared.concat == Some(UploadConcat::Partial),
    };
    let started = state
        .uploads
        .start_resumable(owner, start, idempotency_key)
        .await?;
    let id = started.claim().id;
    let empty = declared.length == Some(0);
    if !has_body && !empty {
        return Ok(created(&state, started, None));
    }
    // The first bytes (or, for 0 bytes, the end): the upload exists whatever
    // they meet, and the answer gives the offset they reached.
    let (body, feed) = pump(
        payload,
        body_len.unwrap_or(u64::MAX),
        state.body_idle_timeout,
        &state.metrics,
    );
    let mut chunk = Append::new(0, body);
    if let Some(len) = body_len {
        chunk = chunk.len(len);
    }
    let appended = with_pump(feed, state.uploads.append(owner, id, chunk)).await;
    let offset = match appended {
        Ok(Appended::Partial { offset, .. }) => offset,
        Ok(Appended::Finished(claim)) => claim.size as u64,
        Err(e) => {
            tracing::info!(error = %e, upload = %id, "the bytes sent with a creation were not taken");
            state.uploads.resumable(owner, id).await?.offset
        }
    };
    state.metrics.tus_patch_bytes_total.inc_by(offset);
    Ok(created(&state, started, Some(offset)))
}

/// 201 with the upload's URL and expiry (and offset, when bytes came).
fn created(state: &AppState, started: Started, offset: Option<u64>) -> HttpResponse {
    let claim = started.claim();
    let mut res = HttpResponse::Created();
    res.insert_header(("Location", upload_url(state, claim.id)));
    if let Some(at) = claim.expires_at {
        res.insert_header(("Upload-Expires", http_date(at)));
    }
    if let Some(offset) = offset {
        res.insert_header(("Upload-Offset", offset.to_string()));
    }
    res.finish()
}

/// What a creation's headers declare.
struct Declared {
    length: Option<u64>,
    concat: Option<UploadConcat>,
    metadata: Option<String>,
    filename: String,
    content_type: String,
    public: bool,
}

impl Declared {
    fn parse(req: &HttpRequest) -> Result<Self, ApiError> {
        let concat = header(req, "upload-concat")
            .map(headers::concat)
            .transpose()?;
        let length = header(req, "upload-length")
            .map(|v| number("Upload-Length", v))
            .transpose()?;
        let deferred = match header(req, "upload-defer-length") {
            None => false,
            Some("1") => true,
            Some(_) => {
                return Err(ApiError::InvalidRequest(
                    "Upload-Defer-Length must be 1".into(),
                ))
            }
        };
        // A final's length is its partials'.
        let is_final = matches!(concat, Some(UploadConcat::Final(_)));
        if !is_final && length.is_some() == deferred {
            return Err(ApiError::InvalidRequest(
                "send Upload-Length, or Upload-Defer-Length: 1 (one of them)".into(),
            ));
        }
        let metadata = header(req, "upload-metadata").map(str::to_owned);
        let pairs = metadata
            .as_deref()
            .map(headers::metadata)
            .transpose()?
            .unwrap_or_default();
        let filename = meta(&pairs, "filename")
            .or_else(|| meta(&pairs, "name"))
            .unwrap_or("upload");
        let content_type = meta(&pairs, "filetype")
            .or_else(|| meta(&pairs, "content_type"))
            .or_else(|| meta(&pairs, "type"))
            .unwrap_or("application/octet-stream");
        Ok(Self {
            length,
            concat,
            metadata: metadata.filter(|m| !m.is_empty()),
            filename: filename.to_owned(),
            content_type: content_type.to_owned(),
            public: meta(&pairs, "public") == Some("true"),
        })
    }
}

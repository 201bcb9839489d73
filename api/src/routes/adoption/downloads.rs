//! Time-limited download URLs for live registry objects.
//!
//! The route asks the store
//! ([`presign_get`](claimcheck::store::ObjectStore::presign_get)): S3 presigns its
//! own GETs. The filesystem store has no server, so it signs
//! `/v1/files/{key}?expires=..&type=..&filename=..&sig=..` with
//! `CLAIMCHECK_URL_SIGNING_KEY` (HMAC, see
//! [`UrlSigner`](claimcheck::store::signed_url::UrlSigner)) and the API serves
//! it ([`serve_file`], which checks it with that same store's signer): no
//! bearer token there, the signature is the authority. The key is the same
//! on every pod, so any pod serves a URL any other pod signed.
//!
//! Decisions the contract leaves open:
//! - without `CLAIMCHECK_URL_SIGNING_KEY`, the filesystem store's URLs are
//!   refused with 503 (a per-process random key would make URLs fail on
//!   other pods, intermittently); `claimcheck-api dev` supplies a random key;
//! - the URL names `CLAIMCHECK_API_PUBLIC_URL` when set, else the scheme and
//!   host the request came in with (`Forwarded`/`X-Forwarded-*` honoured);
//! - files are served with `nosniff`, their stored type, and the same
//!   disposition as S3's presigned GETs ([`DownloadResponse`]): `inline`
//!   only for types a browser cannot run, else `attachment` (they come from
//!   the API's own origin, where a rendered upload could run as a page).

use std::time::Duration;

use actix_files::NamedFile;
use actix_web::middleware::from_fn;
use actix_web::{
    http::header::{self, HeaderValue},
    post, route, web, HttpRequest, HttpResponse,
};
use chrono::{DateTime, Utc};
use claimcheck::{
    config::Config,
    db::ObjectRegistry,
    input,
    store::{signed_url::SignatureError, DownloadResponse, StoreError},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;
use utoipa::ToSchema;

use crate::{
    auth::{self, Caller},
    error::ApiError,
    startup::AppState,
};

/// The longest lifetime a download URL may ask for: SigV4's limit, 7 days.
const MAX_EXPIRES_IN: u64 = 7 * 24 * 3600;

/// How this API makes download URLs (the store signs them; see
/// [`claimcheck::store::open`] for the filesystem store's signing key).
#[derive(Debug)]
pub struct Downloads {
    default_ttl: Duration,
}

impl Downloads {
    /// Reads `CLAIMCHECK_PRESIGN_TTL`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            default_ttl: config.presign_ttl,
        }
    }
}

/// `POST /v1/objects/url`.
#[derive(Deserialize, ToSchema)]
pub struct DownloadUrlRequest {
    /// The object key.
    pub key: String,
    /// Seconds the URL stays valid, 1 to 604800 (default `CLAIMCHECK_PRESIGN_TTL`).
    pub expires_in: Option<u64>,
    /// The file name the browser saves, named in `Content-Disposition`
    /// (`attachment`, or `inline` for images, PDF, audio, video and plain text).
    pub download_filename: Option<String>,
}

/// A time-limited download URL.
#[derive(Serialize, ToSchema)]
pub struct DownloadUrl {
    /// GET it, no token needed.
    pub url: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A time-limited download URL for a live registry object: a presigned S3
/// GET, or with the filesystem store an HMAC-signed URL the API serves.
#[utoipa::path(
    post,
    path = "/v1/objects/url",
    request_body = DownloadUrlRequest,
    responses(
        (status = 200, body = DownloadUrl),
        (status = 400, body = crate::wire::Problem),
        (status = 401, body = crate::wire::Problem),
        (status = 403, body = crate::wire::Problem),
        (status = 404, body = crate::wire::Problem),
        (
            status = 503,
            body = crate::wire::Problem,
            description = "Store unreachable, or filesystem store without CLAIMCHECK_URL_SIGNING_KEY",
        ),
    ),
)]
#[post("/v1/objects/url", wrap = "from_fn(auth::consume)")]
pub(crate) async fn download_url(
    caller: Caller,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<DownloadUrlRequest>,
) -> Result<HttpResponse, ApiError> {
    let DownloadUrlRequest {
        key,
        expires_in,
        download_filename,
    } = body.into_inner();
    let downloads = &state.downloads;
    let ttl = match expires_in {
        None => downloads
            .default_ttl
            .min(Duration::from_secs(MAX_EXPIRES_IN)),
        Some(s) if (1..=MAX_EXPIRES_IN).contains(&s) => Duration::from_secs(s),
        Some(_) => {
            return Err(ApiError::InvalidRequest(format!(
                "expires_in must be between 1 and {MAX_EXPIRES_IN} seconds"
            )))
        }
    };
    input::KEY.check(&key)?;
    if let Some(name) = &download_filename {
        input::FILENAME.check(name)?;
    }
    let object = ObjectRegistry::new(state.pool.clone())
        .get(&key)
        .await?
        // An owner-bound token sees another owner's object as unknown.
        .filter(|o| caller.acts_for(&o.owner))
        .ok_or_else(|| ApiError::not_found("no live object with this key"))?;
    let response = DownloadResponse::new(Some(&object.content_type), download_filename.as_deref());
    let presigned = state
        .store
        .presign_get(&key, ttl, &response)
        .await
        .map_err(store_error)?;
    let url = absolute(&req, presigned.url)?;
    let expires_at = presigned.expires_at;
    Ok(HttpResponse::Ok().json(DownloadUrl { url, expires_at }))
}

/// `url` as is when absolute; a URL relative to the API (the filesystem
/// store's without `CLAIMCHECK_API_PUBLIC_URL`) joined to the scheme and host
/// the request came in with (`Forwarded`/`X-Forwarded-*` honoured).
fn absolute(req: &HttpRequest, url: String) -> Result<String, ApiError> {
    match Url::parse(&url) {
        Ok(_) => Ok(url),
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            let info = req.connection_info();
            Url::parse(&format!("{}://{}/", info.scheme(), info.host()))
                .and_then(|origin| origin.join(&url))
                .map(String::from)
                .map_err(|_| {
                    ApiError::InvalidRequest("the request's host cannot name a URL".into())
                })
        }
        Err(e) => Err(ApiError::Internal(format!("download URL: {e}"))),
    }
}

/// Serves a file of the filesystem store to whoever holds a valid signed URL
/// (no bearer token), with Range, If-Range and conditional requests.
#[utoipa::path(
    get,
    path = "/v1/files/{key}",
    security(()),
    params(
        ("key" = String, Path, description = "The object key, slashes included"),
        ("expires" = i64, Query),
        (
            "type" = Option<String>,
            Query,
            description = "The object's content type, answered as Content-Type",
        ),
        ("filename" = Option<String>, Query),
        ("sig" = String, Query),
    ),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream"),
        (status = 206, description = "The requested range"),
        (status = 403, body = crate::wire::Problem, description = "Signature invalid or expired"),
        (status = 404, body = crate::wire::Problem),
        (status = 416, description = "Range not satisfiable"),
    ),
)]
#[route("/v1/files/{key:.*}", method = "GET", method = "HEAD")]
pub(crate) async fn serve_file(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let files = state
        .store
        .served_by_api()
        .ok_or_else(|| ApiError::not_found("no such route"))?;
    // The signature first: without one, nobody learns whether a key exists.
    let verified = files
        .signer()
        .ok_or(SignatureError::Invalid)
        .and_then(|v| v.verify_query(&key, req.query_string(), Utc::now()));
    let signed = match verified {
        Ok(signed) => signed,
        Err(e) => return Ok(refused(e)),
    };
    let (file, _) = files.open(&key).await.map_err(store_error)?;
    let path = files.path_of(&key).map_err(store_error)?;
    let file = NamedFile::from_file(file.into_std().await, path)
        .map_err(|e| ApiError::Internal(format!("serving {key}: {e}")))?;
    let mut response = file.disable_content_disposition().into_response(&req);
    let headers = response.headers_mut();
    // The stored type, never actix-files' guess from the key's extension.
    let content_type = HeaderValue::from_str(signed.content_type())
        .map_err(|e| ApiError::Internal(format!("content type: {e}")))?;
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=0"),
    );
    let disposition = HeaderValue::from_str(&signed.content_disposition(&key))
        .map_err(|e| ApiError::Internal(format!("content disposition: {e}")))?;
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    Ok(response)
}

/// 403 `forbidden` for a bad or expired signature (ApiError's 403 speaks of
/// token scopes, which this route has none of).
fn refused(e: SignatureError) -> HttpResponse {
    tracing::info!(code = "forbidden", error = %e, "download refused");
    let detail = match e {
        SignatureError::Expired => "the download URL has expired",
        SignatureError::Invalid => "the download URL's signature is invalid",
    };
    HttpResponse::Forbidden()
        .content_type("application/problem+json")
        .json(json!({
            "type": "https://claimcheck.dev/problems/forbidden",
            "title": "Forbidden",
            "status": 403,
            "code": "forbidden",
            "detail": detail,
        }))
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound | StoreError::InvalidKey(_) => ApiError::not_found("object not found"),
        // The filesystem store without a signing key: its text names the setting.
        StoreError::Unsupported { what, .. } => ApiError::NotConfigured(what),
        StoreError::Unavailable(m) => {
            ApiError::Unavailable(format!("object store unavailable: {m}"))
        }
        other => ApiError::Internal(other.to_string()),
    }
}

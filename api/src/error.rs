//! The API's one error type, and the one place that turns it into
//! `application/problem+json` (RFC 9457) with the contract's stable `code`
//! and the request id (`request_id`). 5xx answers are logged at warn, 4xx at
//! info.
//!
//! A 5xx never tells the client why: the database's or the store's error text
//! names hosts, ports, SQL and versions, so the answer is a generic message
//! with the request id, and the cause goes to the log under that id.

use crate::wire::Problem;
use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use claimcheck::{
    db::{DbError, QuotaExceeded},
    input::TextError,
    uploads::UploadError,
};

use crate::observe;

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid_request`.
    #[error("{0}")]
    InvalidRequest(String),
    /// 401 `unauthorized`.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// 403 `forbidden`.
    #[error("the token lacks the `{0}` scope")]
    Forbidden(&'static str),
    /// 403 `forbidden`: not allowed on this resource, whatever the token.
    #[error("{0}")]
    NotAllowed(String),
    /// 404 `not_found`, with the keys a consume could not find.
    #[error("{message}")]
    NotFound {
        /// What was not found.
        message: String,
        /// Keys missing from a consume.
        missing: Option<Vec<String>>,
    },
    /// 409 `conflict`, with the parts a complete lacks.
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
        /// Parts missing at complete.
        missing_parts: Option<Vec<u32>>,
    },
    /// 410 `expired`.
    #[error("the upload's claim has expired")]
    Expired,
    /// 412 `unsupported_version`: a tus request of another protocol version.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 411 `length_required`.
    #[error("a Content-Length is required")]
    LengthRequired,
    /// 413 `too_large`.
    #[error("{0}")]
    TooLarge(String),
    /// 415 `unsupported_media_type`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422 `checksum_mismatch`.
    #[error("{0}")]
    ChecksumMismatch(String),
    /// 423 `locked`: another request is writing this upload (retry).
    #[error("{0}")]
    Locked(String),
    /// 460 `checksum_mismatch`: a tus chunk did not match its
    /// `Upload-Checksum` (tus's status for it; the REST API's is 422).
    #[error("{0}")]
    ChunkChecksumMismatch(String),
    /// 429 `too_many_pending_uploads`.
    #[error("{0}")]
    TooManyPending(String),
    /// 429 `quota_exceeded`: the quota's name, limit and usage go in the
    /// problem body.
    #[error("{0}")]
    QuotaExceeded(QuotaExceeded),
    /// 503 `unavailable`, with Retry-After: PostgreSQL or the store cannot be
    /// reached. The text is logged, never answered.
    #[error("{0}")]
    Unavailable(String),
    /// 503 `unavailable` because the deployment lacks a setting; the text
    /// names the setting and is answered (it describes no internals).
    #[error("{0}")]
    NotConfigured(&'static str),
    /// 500 `internal`.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The contract's stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) | ApiError::NotAllowed(_) => "forbidden",
            ApiError::PreconditionFailed(_) => "unsupported_version",
            ApiError::Locked(_) => "locked",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::Expired => "expired",
            ApiError::LengthRequired => "length_required",
            ApiError::TooLarge(_) => "too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::ChecksumMismatch(_) | ApiError::ChunkChecksumMismatch(_) => {
                "checksum_mismatch"
            }
            ApiError::TooManyPending(_) => "too_many_pending_uploads",
            ApiError::QuotaExceeded(_) => "quota_exceeded",
            ApiError::Unavailable(_) | ApiError::NotConfigured(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// A 404 for an unknown resource.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::NotFound {
            message: message.into(),
            missing: None,
        }
    }

    /// A 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::Conflict {
            message: message.into(),
            missing_parts: None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::NotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::Locked(_) => StatusCode::LOCKED,
            ApiError::ChunkChecksumMismatch(_) => {
                StatusCode::from_u16(460).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
            }
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Expired => StatusCode::GONE,
            ApiError::LengthRequired => StatusCode::LENGTH_REQUIRED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::ChecksumMismatch(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyPending(_) | ApiError::QuotaExceeded(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable(_) | ApiError::NotConfigured(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let request_id = observe::request_id();
        if status.is_server_error() {
            let detail = match self {
                ApiError::Internal(m) => m.as_str(),
                _ => "",
            };
            tracing::warn!(code = self.code(), error = %self, detail, "request failed");
        } else {
            tracing::info!(code = self.code(), error = %self, "request refused");
        }
        let detail = match self {
            ApiError::Unavailable(_) => format!(
                "a service this request needs is unavailable; retry later (request id {})",
                request_id.as_deref().unwrap_or("unknown")
            ),
            _ => self.to_string(),
        };
        let quota = match self {
            ApiError::QuotaExceeded(q) => Some(q),
            _ => None,
        };
        let body = Problem {
            r#type: format!("https://claimcheck.dev/problems/{}", self.code()),
            title: match status.as_u16() {
                460 => "Checksum Mismatch".to_owned(),
                _ => status.canonical_reason().unwrap_or("Error").to_owned(),
            },
            status: status.as_u16(),
            code: self.code().to_owned(),
            detail,
            missing: match self {
                ApiError::NotFound { missing, .. } => missing.clone(),
                _ => None,
            },
            missing_parts: match self {
                ApiError::Conflict { missing_parts, .. } => missing_parts.clone(),
                _ => None,
            },
            quota: quota.map(|q| q.quota),
            limit: quota.map(|q| q.limit),
            usage: quota.map(|q| q.usage),
            requested: quota.map(|q| q.requested),
            request_id,
        };
        let mut response = HttpResponse::build(status);
        response.content_type("application/problem+json");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header(("Retry-After", "5"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(body)
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        let message = e.to_string();
        match e {
            UploadError::NotFound => ApiError::not_found(message),
            UploadError::Expired => ApiError::Expired,
            UploadError::Conflict(_)
            | UploadError::Busy(_)
            | UploadError::OffsetMismatch { .. } => ApiError::conflict(message),
            UploadError::MissingParts(parts) => ApiError::Conflict {
                message: format!("parts missing: {parts:?}"),
                missing_parts: Some(parts),
            },
            UploadError::Invalid(_) | UploadError::BodyFailed(_) => {
                ApiError::InvalidRequest(message)
            }
            UploadError::LengthRequired => ApiError::LengthRequired,
            UploadError::TooLarge { .. } | UploadError::PastLength { .. } => {
                ApiError::TooLarge(message)
            }
            UploadError::UnsupportedMediaType(_) => ApiError::UnsupportedMediaType(message),
            UploadError::ChecksumMismatch { .. } => ApiError::ChecksumMismatch(message),
            UploadError::TooManyPending { .. } => ApiError::TooManyPending(message),
            UploadError::QuotaExceeded(q) => ApiError::QuotaExceeded(q),
            UploadError::Unavailable(_) => ApiError::Unavailable(message),
            UploadError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<TextError> for ApiError {
    fn from(e: TextError) -> Self {
        ApiError::InvalidRequest(e.to_string())
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        UploadError::from(e).into()
    }
}

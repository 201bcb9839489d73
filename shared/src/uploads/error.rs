//! Why an upload request failed: the core's one error type, which each
//! front-end maps to its own answers.

use crate::{db::DbError, store::StoreError};

/// Why an upload request failed. The API maps each to the contract's
/// problem code.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Unknown upload, or another owner's (the same answer).
    #[error("upload not found")]
    NotFound,
    /// The pending claim's TTL has run out.
    #[error("the upload's claim has expired")]
    Expired,
    /// The upload is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    /// Another request holds the upload's writer lock for longer than this
    /// one waits (retry later).
    #[error("{0}")]
    Busy(String),
    /// Complete found parts missing.
    #[error("parts missing: {0:?}")]
    MissingParts(Vec<u32>),
    /// An append not at the upload's offset (nothing was stored).
    #[error("the upload's offset is {expected}, not the one sent")]
    OffsetMismatch {
        /// The upload's offset.
        expected: u64,
    },
    /// An append that would take the upload past its length.
    #[error("the chunk goes past the upload's length of {length} bytes")]
    PastLength {
        /// The upload's length.
        length: u64,
    },
    /// A bad parameter, part number or length.
    #[error("{0}")]
    Invalid(String),
    /// The body's length was not declared.
    #[error("the body's length must be declared")]
    LengthRequired,
    /// Over the size limit.
    #[error("larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The content type is not allowed.
    #[error("content type `{0}` is not allowed")]
    UnsupportedMediaType(String),
    /// The bytes do not match the client's SHA-256.
    #[error("the bytes do not match the SHA-256 sent (got {actual})")]
    ChecksumMismatch {
        /// What the bytes hash to.
        actual: String,
    },
    /// The owner's in-flight cap is reached.
    #[error("the owner already has {max} uploads in flight")]
    TooManyPending {
        /// The cap.
        max: u32,
    },
    /// The start would take the owner past a quota (nothing was created).
    #[error(transparent)]
    QuotaExceeded(crate::db::QuotaExceeded),
    /// PostgreSQL or the object store cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// The body failed on its way in (the client hung up or stalled).
    #[error("the request body failed: {0}")]
    BodyFailed(String),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

impl From<DbError> for UploadError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            UploadError::Unavailable(format!("database unavailable: {e}"))
        } else {
            UploadError::Internal(e.to_string())
        }
    }
}

impl From<StoreError> for UploadError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => UploadError::Unavailable(format!("object store unavailable: {m}")),
            StoreError::LengthMismatch { expected, actual } => UploadError::Invalid(format!(
                "the body does not match its declared length ({expected} bytes declared, {actual} seen)"
            )),
            StoreError::Body(e) => UploadError::BodyFailed(e.to_string()),
            StoreError::InvalidPart(m) => UploadError::Conflict(m),
            StoreError::Unsupported { store, what } => {
                UploadError::Invalid(format!("the {store} store does not support {what}"))
            }
            other => UploadError::Internal(other.to_string()),
        }
    }
}

impl From<crate::store::LayoutError> for UploadError {
    fn from(e: crate::store::LayoutError) -> Self {
        match e {
            crate::store::LayoutError::Missing(parts) => UploadError::MissingParts(parts),
            other => UploadError::Conflict(other.to_string()),
        }
    }
}

impl From<crate::db::claims::CreateError> for UploadError {
    fn from(e: crate::db::claims::CreateError) -> Self {
        match e {
            crate::db::claims::CreateError::Refused(refused) => match refused.quota {
                crate::db::Quota::Pending => UploadError::TooManyPending {
                    max: refused.limit.min(u64::from(u32::MAX)) as u32,
                },
                _ => UploadError::QuotaExceeded(refused),
            },
            crate::db::claims::CreateError::KeyReused => UploadError::Conflict(
                "this idempotency key was used for a different request".into(),
            ),
            crate::db::claims::CreateError::Db(e) => e.into(),
        }
    }
}

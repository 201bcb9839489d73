//! The REST API's wire types: the bodies handlers read and serialize, and
//! the ones `openapi.rs` describes. The core's domain types (`Claim`,
//! `RegistryObject`, ...) never reach the wire themselves: a field added to
//! one does not leak into the API, and a field of the API (`public_url`)
//! needs nothing in the core.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use claimcheck::{
    domain::{Claim, ClaimStatus, RegistryObject},
    store::PresignedRequest,
    tokens::TokenInfo,
    uploads::{InitMultipart, PartReceipt},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /v1/uploads/multipart`'s body (`InitMultipart` in the OpenAPI
/// document).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = InitMultipart)]
pub struct InitMultipartRequest {
    /// The client's filename.
    pub filename: String,
    /// The object's content type.
    pub content_type: String,
    /// The whole object's size in bytes.
    pub size: u64,
    /// Bytes per part (the last part: the remainder); chosen when absent.
    pub part_size: Option<u64>,
    /// `pub/` or `priv/` (default false).
    #[serde(default)]
    pub public: bool,
}

impl From<InitMultipartRequest> for InitMultipart {
    fn from(r: InitMultipartRequest) -> Self {
        Self {
            filename: r.filename,
            content_type: r.content_type,
            size: r.size,
            part_size: r.part_size,
            public: r.public,
        }
    }
}

/// An error (RFC 9457 problem details) with claimcheck's stable `code`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    pub r#type: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// Stable: invalid_request, unauthorized, forbidden, not_found, conflict,
    /// expired, length_required, too_large, unsupported_media_type,
    /// checksum_mismatch, locked, too_many_pending_uploads, quota_exceeded,
    /// unavailable; tus also unsupported_version (412).
    pub code: String,
    /// What went wrong, for people.
    pub detail: String,
    /// 409 at complete: the parts still missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_parts: Option<Vec<u32>>,
    /// 404 at consume: the keys not found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<Vec<String>>,
    /// 429 `quota_exceeded`: which quota (`bytes`, `daily_bytes`,
    /// `daily_uploads`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<claimcheck::db::Quota>,
    /// 429 `quota_exceeded`: the quota's limit for this owner (bytes, or
    /// uploads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// 429 `quota_exceeded`: what the owner uses of it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<u64>,
    /// 429 `quota_exceeded`: what the refused start would have added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<u64>,
    /// The request's id (its `X-Request-Id`), under which the API logged
    /// the cause of a 5xx.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Every token's record.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPage {
    /// Newest first.
    pub items: Vec<TokenInfo>,
}

/// An upload claim. (Named `Claim` in the OpenAPI document, as before
/// the API had its own types: generated clients keep their names.)
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Claim)]
pub struct ClaimBody {
    /// The claim's id (uuid v7).
    pub id: Uuid,
    /// The object key the server chose.
    pub key: String,
    /// `pending` or `uploaded`.
    pub status: ClaimStatus,
    /// The token owner that created it.
    pub owner: String,
    /// The client's filename.
    pub filename: String,
    /// The declared content type.
    pub content_type: String,
    /// Declared size in bytes.
    pub size: i64,
    /// Under `pub/` (true) or `priv/`.
    pub public: bool,
    /// Hex SHA-256 of the object, or the composite `<hex>-<N>` of a chunked
    /// upload; null until uploaded, or with parts sent straight to S3.
    pub sha256: Option<String>,
    /// Bytes per part of a chunked upload.
    pub part_size: Option<i64>,
    /// Number of parts of a chunked upload.
    pub part_count: Option<i32>,
    /// When the upload started.
    pub created_at: DateTime<Utc>,
    /// When the sweeper may take the claim; null: kept until consumed.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the object was complete.
    pub uploaded_at: Option<DateTime<Utc>>,
    /// Where a public object is served from, when
    /// `CLAIMCHECK_PUBLIC_BASE_URL` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

impl ClaimBody {
    /// `claim` as the API shows it; `public_base_url` makes `public_url`.
    pub fn new(claim: &Claim, public_base_url: Option<&str>) -> Self {
        Self {
            id: claim.id,
            key: claim.key.clone(),
            status: claim.status,
            owner: claim.owner.clone(),
            filename: claim.filename.clone(),
            content_type: claim.content_type.clone(),
            size: claim.size,
            public: claim.public,
            sha256: claim.sha256.clone(),
            part_size: claim.part_size,
            part_count: claim.part_count,
            created_at: claim.created_at,
            expires_at: claim.expires_at,
            uploaded_at: claim.uploaded_at,
            public_url: public_url(claim.public, &claim.key, public_base_url),
        }
    }
}

/// A part received (`PartReceipt` in the OpenAPI document).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PartReceipt)]
pub struct PartBody {
    /// 1-based.
    pub part_number: u32,
    /// Bytes.
    pub size: u64,
    /// Hex SHA-256; null for parts sent straight to S3.
    pub sha256: Option<String>,
}

impl From<&PartReceipt> for PartBody {
    fn from(p: &PartReceipt) -> Self {
        Self {
            part_number: p.part_number,
            size: p.size,
            sha256: p.sha256.clone(),
        }
    }
}

/// A claim with the parts received so far, for resuming.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimWithParts {
    /// The claim.
    #[serde(flatten)]
    pub claim: ClaimBody,
    /// Parts received, by number.
    pub parts: Vec<PartBody>,
}

/// A page of the caller's uploads.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimPage {
    /// Newest first.
    pub items: Vec<ClaimBody>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<Uuid>,
}

/// Where to PUT a part straight to S3.
#[derive(Debug, Serialize, ToSchema)]
pub struct PresignedPart {
    /// The URL, signature included.
    pub url: String,
    /// Always PUT.
    pub method: String,
    /// Headers to send as they are.
    pub headers: BTreeMap<String, String>,
    /// When the URL stops working.
    pub expires_at: DateTime<Utc>,
}

impl From<PresignedRequest> for PresignedPart {
    fn from(p: PresignedRequest) -> Self {
        Self {
            url: p.url,
            method: p.method.to_owned(),
            headers: p.headers.into_iter().collect(),
            expires_at: p.expires_at,
        }
    }
}

/// A live object of the registry (`RegistryObject` in the OpenAPI
/// document).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RegistryObject)]
pub struct ObjectBody {
    /// The object key.
    pub key: String,
    /// The owner of the claim it was.
    pub owner: String,
    /// Bytes.
    pub size: i64,
    /// The content type.
    pub content_type: String,
    /// The original filename.
    pub filename: String,
    /// As the claim's.
    pub sha256: Option<String>,
    /// Under `pub/` (true) or `priv/`.
    pub public: bool,
    /// When the upload started.
    pub created_at: DateTime<Utc>,
    /// When it was consumed.
    pub consumed_at: DateTime<Utc>,
    /// Where a public object is served from, when
    /// `CLAIMCHECK_PUBLIC_BASE_URL` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

impl ObjectBody {
    /// `object` as the API shows it; `public_base_url` makes `public_url`.
    pub fn new(object: &RegistryObject, public_base_url: Option<&str>) -> Self {
        Self {
            key: object.key.clone(),
            owner: object.owner.clone(),
            size: object.size,
            content_type: object.content_type.clone(),
            filename: object.filename.clone(),
            sha256: object.sha256.clone(),
            public: object.public,
            created_at: object.created_at,
            consumed_at: object.consumed_at,
            public_url: public_url(object.public, &object.key, public_base_url),
        }
    }
}

/// `base/key` for a public object when a base is configured.
fn public_url(public: bool, key: &str, base: Option<&str>) -> Option<String> {
    base.filter(|_| public)
        .map(|base| format!("{}/{key}", base.trim_end_matches('/')))
}

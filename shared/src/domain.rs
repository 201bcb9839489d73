//! The domain: claims, parts, registry objects and queued deletes, and the
//! rules that need no database (object keys, composite checksums).

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Where a claim is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    /// The object is not complete yet: parts may still arrive.
    Pending,
    /// The object is complete and waits to be consumed.
    Uploaded,
}

impl ClaimStatus {
    /// The value stored in `upload_claims.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimStatus::Pending => "pending",
            ClaimStatus::Uploaded => "uploaded",
        }
    }

    /// Parses a stored status.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(ClaimStatus::Pending),
            "uploaded" => Some(ClaimStatus::Uploaded),
            _ => None,
        }
    }
}

/// Why an object's delete was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    /// Business code replaced the object with another.
    Replaced,
    /// Business code deleted the object.
    Deleted,
    /// The uploader dropped an upload nobody had consumed.
    Discarded,
    /// The sweeper took a pending claim whose TTL ran out.
    ClaimExpired,
    /// The sweeper took an uploaded claim nobody consumed in time.
    Unconsumed,
}

impl DeleteReason {
    /// Every reason, for metrics exported at zero from the start.
    pub const ALL: [DeleteReason; 5] = [
        DeleteReason::Replaced,
        DeleteReason::Deleted,
        DeleteReason::Discarded,
        DeleteReason::ClaimExpired,
        DeleteReason::Unconsumed,
    ];

    /// The value stored in `pending_deletes.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteReason::Replaced => "replaced",
            DeleteReason::Deleted => "deleted",
            DeleteReason::Discarded => "discarded",
            DeleteReason::ClaimExpired => "claim_expired",
            DeleteReason::Unconsumed => "unconsumed",
        }
    }

    /// Parses a stored reason.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// An upload claim: an upload in flight, or finished and waiting to be consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// uuid v7, so ids sort by creation time.
    pub id: Uuid,
    /// The object key the server chose.
    pub key: String,
    /// The store's multipart session, for chunked uploads.
    pub upload_id: Option<String>,
    /// Lifecycle state.
    pub status: ClaimStatus,
    /// The principal whose token created the claim.
    pub owner: String,
    /// The client's filename, kept as given.
    pub filename: String,
    /// The declared content type.
    pub content_type: String,
    /// The object's size in bytes (declared for chunked uploads).
    pub size: i64,
    /// Whether the object goes under `pub/`.
    pub public: bool,
    /// Hex SHA-256 (single-shot) or composite `<hex>-<N>` (multipart).
    pub sha256: Option<String>,
    /// Bytes per part (the last part: the remainder), for chunked uploads.
    pub part_size: Option<i64>,
    /// Number of parts, for chunked uploads.
    pub part_count: Option<i32>,
    /// Whether parts may have gone straight to the store (presigned).
    pub direct_parts: bool,
    /// When the claim was created.
    pub created_at: DateTime<Utc>,
    /// When the sweeper may take the claim (none: kept until consumed).
    pub expires_at: Option<DateTime<Utc>>,
    /// When the object was complete.
    pub uploaded_at: Option<DateTime<Utc>>,
    /// What an upload appended to at an offset (tus) has besides; `None`
    /// for the REST API's uploads.
    pub resumable: Option<Resumable>,
}

/// What an upload appended to at an offset (tus) has besides its claim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resumable {
    /// The size is not known yet: the claim's `size` is an upper bound (the
    /// size limit) until the client declares it, and the upload cannot
    /// finish before.
    pub length_deferred: bool,
    /// The client's metadata, kept as sent (tus `Upload-Metadata`).
    pub metadata: Option<String>,
    /// Its part in a concatenation, if any.
    pub concat: Option<Concat>,
}

/// An upload's part in a concatenation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concat {
    /// A piece of a later upload: never consumed on its own.
    Partial,
    /// Assembled from partial uploads.
    Final,
}

impl Concat {
    /// The value stored in `upload_claims.concat`.
    pub fn as_str(self) -> &'static str {
        match self {
            Concat::Partial => "partial",
            Concat::Final => "final",
        }
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Option<Self> {
        [Concat::Partial, Concat::Final]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// A part of a chunked upload, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// 1-based.
    pub part_number: i32,
    /// Bytes.
    pub size: i64,
    /// Hex SHA-256; none for parts sent straight to S3.
    pub sha256: Option<String>,
    /// The store's entity tag for the part.
    pub etag: String,
}

/// A live object in the registry: a consumed claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryObject {
    /// The object key.
    pub key: String,
    /// The principal that uploaded it.
    pub owner: String,
    /// Bytes.
    pub size: i64,
    /// Content type.
    pub content_type: String,
    /// The uploader's original filename.
    pub filename: String,
    /// Checksum as on the claim.
    pub sha256: Option<String>,
    /// Whether it is served publicly.
    pub public: bool,
    /// When its upload started.
    pub created_at: DateTime<Utc>,
    /// When business code consumed it.
    pub consumed_at: DateTime<Utc>,
}

/// A queued delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PendingDelete {
    /// Queue row id.
    pub id: i64,
    /// The object to delete.
    pub key: String,
    /// A multipart session to abort first.
    pub upload_id: Option<String>,
    /// Why it was queued.
    pub reason: DeleteReason,
    /// How many times it was leased.
    pub attempts: i32,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

/// The object key for a new upload:
/// `<prefix>pub|priv/YYYY/MM/DD/<id>[.ext]`.
///
/// The extension is kept only when it is 1 to 10 plain ASCII alphanumerics, so
/// nothing a client sends can put a path separator, dot segment or odd
/// character into a key.
pub fn object_key(
    prefix: &str,
    public: bool,
    id: Uuid,
    filename: &str,
    now: DateTime<Utc>,
) -> String {
    let visibility = if public { "pub" } else { "priv" };
    let ext = filename
        .rsplit_once('.')
        .filter(|(stem, ext)| {
            !stem.is_empty()
                && (1..=10).contains(&ext.len())
                && ext.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        .map(|(_, ext)| format!(".{}", ext.to_ascii_lowercase()))
        .unwrap_or_default();
    format!(
        "{prefix}{visibility}/{:04}/{:02}/{:02}/{}{ext}",
        now.year(),
        now.month(),
        now.day(),
        id.as_simple()
    )
}

/// The composite checksum of a multipart upload: `<hex>-<N>`, the SHA-256 of
/// the concatenated binary SHA-256 digests of the N parts in order. `None`
/// when any part has no checksum (sent straight to S3) or is not valid hex.
pub fn composite_sha256<'a>(
    part_digests: impl IntoIterator<Item = Option<&'a str>>,
) -> Option<String> {
    let mut hasher = Sha256::new();
    let mut n = 0usize;
    for digest in part_digests {
        let raw = hex::decode(digest?).ok().filter(|d| d.len() == 32)?;
        hasher.update(&raw);
        n += 1;
    }
    (n > 0).then(|| format!("{}-{n}", hex::encode(hasher.finalize())))
}

/// Splits `size` bytes into parts of `part_size`: the number of parts and the
/// size of part `n` (1-based; the last part holds the remainder).
pub fn part_layout(size: u64, part_size: u64) -> (u32, impl Fn(u32) -> u64) {
    let count = size.div_ceil(part_size).max(1);
    let last = size - (count - 1) * part_size;
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    (count, move |n| if n == count { last } else { part_size })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 3, 10, 0, 0).unwrap()
    }

    #[test]
    fn keys_keep_plain_extensions_only() {
        let id = Uuid::nil();
        let k = |name: &str| object_key("", false, id, name, at());
        assert_eq!(
            k("report.PDF"),
            format!("priv/2026/11/03/{}.pdf", id.as_simple())
        );
        assert_eq!(k("noext"), format!("priv/2026/11/03/{}", id.as_simple()));
        assert_eq!(k(".bashrc"), format!("priv/2026/11/03/{}", id.as_simple()));
        assert_eq!(
            k("a.tar/../x"),
            format!("priv/2026/11/03/{}", id.as_simple())
        );
        assert_eq!(k("a.p-f"), format!("priv/2026/11/03/{}", id.as_simple()));
        assert_eq!(
            object_key("t1/", true, id, "x.png", at()),
            format!("t1/pub/2026/11/03/{}.png", id.as_simple())
        );
    }

    #[test]
    fn composite_checksum_hashes_the_part_digests() {
        let a = hex::encode(Sha256::digest(b"a"));
        let b = hex::encode(Sha256::digest(b"b"));
        let mut joined = Sha256::digest(b"a").to_vec();
        joined.extend_from_slice(&Sha256::digest(b"b"));
        let expected = format!("{}-2", hex::encode(Sha256::digest(&joined)));
        assert_eq!(
            composite_sha256([Some(a.as_str()), Some(b.as_str())]),
            Some(expected)
        );
        assert_eq!(composite_sha256([Some(a.as_str()), None]), None);
        assert_eq!(composite_sha256([Some("zz")]), None);
    }

    #[test]
    fn part_layout_puts_the_remainder_last() {
        let (n, size_of) = part_layout(10, 4);
        assert_eq!((n, size_of(1), size_of(3)), (3, 4, 2));
        let (n, size_of) = part_layout(8, 4);
        assert_eq!((n, size_of(2)), (2, 4));
        let (n, size_of) = part_layout(0, 4);
        assert_eq!((n, size_of(1)), (1, 0));
    }

    #[test]
    fn reasons_round_trip() {
        for r in DeleteReason::ALL {
            assert_eq!(DeleteReason::parse(r.as_str()), Some(r));
        }
    }
}

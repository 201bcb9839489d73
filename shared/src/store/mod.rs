//! The object store: one trait, two implementations.
//!
//! [`fs::FsStore`] keeps objects under a directory (the default for `dev`);
//! [`s3::S3Store`] talks to any S3-compatible server through aws-sdk-s3.
//! Everything above this module (API handlers, workers, audit) sees only
//! [`ObjectStore`], so the contract test suite in `tests/` runs the same cases
//! against both.
//!
//! Bodies are streams with a declared length ([`ByteStream`] plus `len`), never
//! whole buffers: an upload's bytes pass through a bounded buffer on their way
//! to disk or to S3. Both implementations refuse a stream that ends short of, or
//! runs past, its declared length ([`StoreError::LengthMismatch`]) and leave
//! nothing behind when they do.

pub mod body;
pub mod download;
pub mod fs;
pub mod instrumented;
pub mod key;
pub mod limits;
pub mod open;
pub mod probe;
pub mod s3;
pub mod signed_url;
pub mod split;

use std::{fmt, ops::Range, pin::Pin, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;

pub use body::{into_store_error, ExactLength, Sha256Handle, Sha256Tap};
pub use download::DownloadResponse;
pub use key::{validate_key, validate_prefix};
pub use limits::{
    check_copy_range, check_layout, check_part, LayoutError, MAX_PARTS, MAX_PART_SIZE,
    MIN_PART_SIZE,
};
pub use open::{open, UrlSigning};

/// An object's or a part's bytes, as they arrive.
///
/// An `Err` item means the source failed (for example the client hung up); the
/// store abandons the write and cleans up what it had written.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// What an object store call can fail with.
///
/// "Not found" is a variant, never a message to match on: callers branch on
/// [`StoreError::NotFound`] and [`StoreError::NoSuchUpload`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist.
    #[error("object not found")]
    NotFound,
    /// The multipart session does not exist (never created, completed or aborted).
    #[error("multipart upload not found")]
    NoSuchUpload,
    /// The key is not one this store accepts (empty, absolute, `..`, ...).
    #[error("invalid object key: {0}")]
    InvalidKey(String),
    /// The parts given to complete do not match what the store holds.
    #[error("invalid part: {0}")]
    InvalidPart(String),
    /// The body ended before, or ran past, the length it declared.
    #[error("body length mismatch: declared {expected} bytes, got {actual}")]
    LengthMismatch {
        /// The declared length.
        expected: u64,
        /// Bytes seen (for a body that ran long: the first count past the limit).
        actual: u64,
    },
    /// The body's source failed (a client that disconnected mid-body).
    #[error("body stream failed: {0}")]
    Body(#[source] std::io::Error),
    /// The operation does not exist for this store (presigned parts on `fs`).
    #[error("not supported by the {store} store: {what}")]
    Unsupported {
        /// The store's name.
        store: &'static str,
        /// The operation.
        what: &'static str,
    },
    /// The store could not be reached or answered with a server error: retry later.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    /// Anything else the store reported.
    #[error("object store error: {0}")]
    Other(String),
}

impl StoreError {
    /// Whether trying again later may succeed (network trouble, 5xx, throttling).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Metadata of a stored object, as `head` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
    /// The store's entity tag, when it keeps one.
    pub etag: Option<String>,
}

/// A part as the store holds it (`list_parts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    /// 1-based part number.
    pub part_number: u32,
    /// Size in bytes.
    pub size: u64,
    /// The part's entity tag, to hand back on complete.
    pub etag: String,
}

/// A part named in a complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// 1-based part number.
    pub part_number: u32,
    /// The entity tag `upload_part` (or `list_parts`) returned.
    pub etag: String,
}

/// An object found by `list_objects`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// The object's key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// A multipart session found in the store (`list_multipart_uploads`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartSession {
    /// The object key the session will create.
    pub key: String,
    /// The store's upload id.
    pub upload_id: String,
    /// When the session was created.
    pub initiated: DateTime<Utc>,
}

/// A request a client can make straight to the store.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct PresignedRequest {
    /// The URL, signature included.
    pub url: String,
    /// The HTTP method (`PUT` for parts, `GET` for downloads).
    pub method: &'static str,
    /// Headers the client must send as they are.
    pub headers: Vec<(String, String)>,
    /// When the signature stops being accepted.
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for PresignedRequest {
    // The URL carries a signature: never print it whole (logs are read by many).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let without_query = self.url.split('?').next().unwrap_or_default();
        f.debug_struct("PresignedRequest")
            .field("url", &format_args!("{without_query}?<redacted>"))
            .field("method", &self.method)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// How a store wants the keys of a [`ObjectStore::delete_many`] call grouped,
/// so callers batch deletes without knowing which store they talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteBatching {
    /// One call takes up to this many keys in one request (S3's
    /// `DeleteObjects`: 1000). The keys are still spread over the caller's
    /// concurrency: a server may work through one request's keys one after
    /// another (Garage does: about 20 ms a key on a 3-node cluster, where
    /// one request of 100 keys took 2 s), so smaller requests side by side
    /// finish sooner.
    UpTo(usize),
    /// One call takes a whole batch and spreads the work itself (the
    /// filesystem store: one thread per directory, since unlinks in one
    /// directory contend on its lock, and one sync of each directory).
    Whole,
}

impl DeleteBatching {
    /// Keys per `delete_many` call for `keys` keys and `concurrency` calls in
    /// flight (never 0).
    pub fn keys_per_call(self, keys: usize, concurrency: usize) -> usize {
        match self {
            DeleteBatching::UpTo(max) => keys.div_ceil(concurrency.max(1)).min(max),
            DeleteBatching::Whole => keys,
        }
        .max(1)
    }
}

/// The object store every part of claimcheck talks to.
///
/// Every method is safe to call from many tasks and many processes at once.
/// Deletes and aborts are idempotent: a missing object or session is success.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// A short name for logs and metrics: `fs` or `s3`.
    fn kind(&self) -> &'static str;

    /// How callers should group keys for [`delete_many`](Self::delete_many).
    fn delete_batching(&self) -> DeleteBatching;

    /// The filesystem store, whose download URLs ([`presign_get`](Self::presign_get))
    /// point at the API's `/v1/files/...` route: the route checks them with
    /// the store's signer and serves the file from it. `None` for stores that
    /// serve their own URLs (S3).
    fn served_by_api(&self) -> Option<&fs::FsStore>;

    /// Stores `body` (exactly `len` bytes) as `key`, replacing any object there.
    /// Readers see the old object or the whole new one, never a part of it.
    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        len: u64,
        content_type: &str,
    ) -> Result<(), StoreError>;

    /// Opens a multipart session for `key` and returns its upload id.
    async fn create_multipart(&self, key: &str, content_type: &str) -> Result<String, StoreError>;

    /// Stores part `part_number` (exactly `len` bytes) of a session, replacing
    /// an earlier upload of the same part. Returns the part's entity tag.
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        len: u64,
    ) -> Result<String, StoreError>;

    /// The parts the store holds for a session, in part-number order.
    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<StoredPart>, StoreError>;

    /// Assembles the session's parts, in the order given, into the object `key`.
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), StoreError>;

    /// Aborts a session and frees its parts. An unknown session is success.
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError>;

    /// Deletes an object. A missing object is success.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Deletes many objects (S3: batches of up to 1000 keys in one request).
    /// Returns the keys that could not be deleted with their errors; a missing
    /// object is success. An `Err` means no key's fate is known.
    async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, StoreError)>, StoreError>;

    /// The object's metadata, or [`StoreError::NotFound`].
    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError>;

    /// The object's bytes, streamed as they are read (never whole in
    /// memory), or [`StoreError::NotFound`].
    ///
    /// For tus concatenation, where the store cannot assemble the final
    /// upload itself with [`copy_part`](Self::copy_part): an earlier upload
    /// too small to be a part of its own (under [`MIN_PART_SIZE`] and not the
    /// last piece) is streamed from the store back into it, through the
    /// server, never through the client.
    ///
    /// The call returns once the object is found: a failure while reading
    /// (the connection to S3 breaks) is an `Err` item of the stream, and the
    /// time spent reading is the caller's, outside this call's timing.
    async fn get(&self, key: &str) -> Result<ByteStream, StoreError>;

    /// Stores bytes `range` of the existing object `src_key` as part
    /// `part_number` of the session (`key`, `upload_id`), replacing an
    /// earlier upload of the same part, and returns the part's entity tag, as
    /// [`upload_part`](Self::upload_part) does.
    ///
    /// For tus concatenation: the final upload is assembled from the earlier
    /// uploads inside the store, their bytes never passing through the API
    /// where S3 allows it (`UploadPartCopy`; the filesystem store reads the
    /// file's range into the part on its own disk); pieces that cannot be
    /// parts go through [`get`](Self::get).
    /// Some servers refuse to copy a range of a small object (AWS documents
    /// ranges for sources above 5 MB, Garage refuses objects it keeps inline):
    /// the S3 store streams a range of an object of at most [`MIN_PART_SIZE`]
    /// bytes through the process itself, so the call works for any object.
    ///
    /// The part obeys S3's limits like any other ([`check_layout`]): at most
    /// [`MAX_PART_SIZE`] bytes (refused here), and at least [`MIN_PART_SIZE`]
    /// unless it is the last part (refused by complete, as for uploaded
    /// parts). Keeping within them is the caller's job: a range is copied as
    /// one part, never split.
    ///
    /// Errors: [`StoreError::NotFound`] if `src_key` does not exist,
    /// [`StoreError::NoSuchUpload`] for an unknown (or ended) session, and
    /// [`StoreError::InvalidPart`] ([`check_copy_range`]) for an empty range,
    /// one that does not lie inside the object, or a part number or length
    /// outside S3's limits. A refused copy stores nothing: the session keeps
    /// what it held.
    async fn copy_part(
        &self,
        src_key: &str,
        range: Range<u64>,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> Result<String, StoreError>;

    /// A URL the client PUTs part `part_number` to, straight to the store.
    /// The signature covers its exact length `len`: a PUT of any other size
    /// is refused by the store, so a client cannot park more bytes in a part
    /// than the upload declared.
    async fn presign_upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        len: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError>;

    /// A time-limited download URL whose answer carries `response`'s
    /// `Content-Type` and `Content-Disposition`. A URL without scheme and host
    /// (`/v1/files/...`, see [`served_by_api`](Self::served_by_api)) is
    /// relative to the API's origin.
    async fn presign_get(
        &self,
        key: &str,
        expires_in: Duration,
        response: &DownloadResponse,
    ) -> Result<PresignedRequest, StoreError>;

    /// One page of the objects under `prefix`, in key order, starting after the
    /// page that returned `continuation`. Returns the page and the token for
    /// the next one (`None` after the last page). For the audit.
    async fn list_objects(
        &self,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<(Vec<ListedObject>, Option<String>), StoreError>;

    /// Multipart sessions under `prefix` created before `older_than`.
    async fn list_multipart_uploads(
        &self,
        prefix: &str,
        older_than: DateTime<Utc>,
    ) -> Result<Vec<MultipartSession>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::DeleteBatching;

    #[test]
    fn delete_batching_caps_or_spreads_keys() {
        assert_eq!(DeleteBatching::UpTo(1000).keys_per_call(20_000, 8), 1000);
        assert_eq!(DeleteBatching::UpTo(1000).keys_per_call(2500, 8), 313);
        assert_eq!(DeleteBatching::UpTo(1000).keys_per_call(100, 8), 13);
        assert_eq!(DeleteBatching::UpTo(1000).keys_per_call(0, 0), 1);
        assert_eq!(DeleteBatching::Whole.keys_per_call(2500, 8), 2500);
        assert_eq!(DeleteBatching::Whole.keys_per_call(3, 8), 3);
        assert_eq!(DeleteBatching::Whole.keys_per_call(0, 0), 1);
    }
}

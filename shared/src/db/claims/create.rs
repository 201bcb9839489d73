//! Creating claims: the per-owner cap and the idempotency key.

use std::time::Duration;

use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::{claim_from_row, ClaimStore, COLUMNS};
use crate::db::{
    events::{claim_events, EventType},
    secs, DbError,
};
use crate::domain::Claim;

/// A claim to create.
#[derive(Debug, Clone)]
pub struct NewClaim {
    /// uuid v7.
    pub id: Uuid,
    /// The object key (see [`crate::domain::object_key`]).
    pub key: String,
    /// The token's owner.
    pub owner: String,
    /// The client's filename.
    pub filename: String,
    /// The declared content type.
    pub content_type: String,
    /// Declared size in bytes.
    pub size: i64,
    /// `pub/` or `priv/`.
    pub public: bool,
    /// `(part_size, part_count)` for a chunked upload.
    pub parts: Option<(i64, i32)>,
    /// The pending claim's lifetime from now (the database's now).
    pub ttl: Duration,
    /// A resumable (tus) upload's columns; `None` for the REST API's.
    pub resumable: Option<crate::domain::Resumable>,
    /// What the request asked for, as [`request_fingerprint`] writes it: an
    /// idempotency key is bound to it, so a retry must ask for the same.
    pub fingerprint: String,
}

/// A request's fingerprint: the kind of start and everything it declared.
/// Two requests with one idempotency key must agree on all of it.
pub fn request_fingerprint(new: &NewClaim, kind: &str) -> String {
    use sha2::{Digest, Sha256};
    let (part_size, _) = new.parts.unzip();
    let fields = serde_json::json!([
        kind,
        new.size,
        new.filename,
        new.content_type,
        new.public,
        part_size,
        new.resumable.as_ref().map(|r| (
            r.length_deferred,
            r.metadata.as_deref(),
            r.concat.map(|c| c.as_str()),
        )),
    ]);
    hex::encode(Sha256::digest(fields.to_string().as_bytes()))
}

/// What [`ClaimStore::create_idempotent`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new claim.
    New(Claim),
    /// The claim an earlier request made with the same idempotency key.
    Existing(Claim),
}

/// Why a claim was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The idempotency key was used before for a different request.
    #[error("this Idempotency-Key was used for a different request")]
    KeyReused,
    /// The owner already has `max` pending claims.
    #[error("the owner already has {max} uploads in flight")]
    TooManyPending {
        /// The cap.
        max: u32,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for CreateError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for CreateError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Db(e.into())
    }
}

/// Serialises the creations of one owner for the rest of the transaction.
const OWNER_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('claimcheck.owner:' || $1, 0))";

/// The owner's pending claims, counted up to `$2` at most.
const COUNT_PENDING: &str = "SELECT count(*) FROM (
       SELECT 1 FROM claimcheck.upload_claims
        WHERE owner = $1 AND status = 'pending' LIMIT $2) AS capped";

fn insert_sql() -> String {
    let announced = claim_events("created", EventType::UploadCreated);
    format!(
        "WITH created AS (
         INSERT INTO claimcheck.upload_claims
           (id, object_key, owner, filename, content_type, size, public,
            part_size, part_count, expires_at, idempotency_key, idempotency_fingerprint,
            protocol, length_deferred, tus_metadata, concat)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                 now() + make_interval(secs => $10), $11, $12, $13, $14, $15, $16)
         RETURNING {COLUMNS}
         ), announced AS ({announced})
         SELECT {COLUMNS} FROM created"
    )
}

impl ClaimStore {
    /// Creates a pending claim, unless its owner already has `max_pending`.
    ///
    /// Count-then-insert races when many pods create claims for one owner at
    /// once, so both run in one transaction holding a transaction-level
    /// advisory lock on the owner: concurrent creations for the same owner
    /// queue up for a few microseconds, other owners are not affected.
    pub async fn create(&self, new: &NewClaim, max_pending: u32) -> Result<Claim, CreateError> {
        match self.create_idempotent(new, max_pending, None).await? {
            Created::New(claim) | Created::Existing(claim) => Ok(claim),
        }
    }

    /// [`create`](Self::create), unless the owner already made a claim with
    /// the same idempotency key in the last 24 hours: then that claim,
    /// [`Created::Existing`]. A retry neither starts another upload nor
    /// counts twice against the cap.
    #[tracing::instrument(name = "db.create_idempotent", skip_all)]
    pub async fn create_idempotent(
        &self,
        new: &NewClaim,
        max_pending: u32,
        idempotency_key: Option<&str>,
    ) -> Result<Created, CreateError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Every statement below runs while the owner's lock is held, so each
        // is prepared once per connection: an unnamed statement would add a
        // parse round trip per statement to the time other creations of the
        // same owner wait.
        let lock = tx.prepare_cached(OWNER_LOCK).await?;
        tx.execute(&lock, &[&new.owner]).await?;
        if let Some(idem) = idempotency_key {
            if let Some(claim) = reuse_idempotent(&tx, new, idem).await? {
                return Ok(Created::Existing(claim));
            }
        }
        // Counting stops at the cap: only "under or not" matters, and an
        // owner near a large cap should not pay for counting all of it.
        let count = tx.prepare_cached(COUNT_PENDING).await?;
        let pending: i64 = tx
            .query_one(&count, &[&new.owner, &i64::from(max_pending)])
            .await?
            .get(0);
        if pending >= i64::from(max_pending) {
            return Err(CreateError::TooManyPending { max: max_pending });
        }
        let (part_size, part_count) = new.parts.unzip();
        let insert = tx.prepare_cached(&insert_sql()).await?;
        let resumable = new.resumable.as_ref();
        let protocol = if resumable.is_some() { "tus" } else { "rest" };
        let row = tx
            .query_one(
                &insert,
                &[
                    &new.id,
                    &new.key,
                    &new.owner,
                    &new.filename,
                    &new.content_type,
                    &new.size,
                    &new.public,
                    &part_size,
                    &part_count,
                    &secs(new.ttl),
                    &idempotency_key,
                    &idempotency_key.map(|_| new.fingerprint.as_str()),
                    &protocol,
                    &resumable.is_some_and(|r| r.length_deferred),
                    &resumable.and_then(|r| r.metadata.as_deref()),
                    &resumable.and_then(|r| r.concat.map(|c| c.as_str())),
                ],
            )
            .await?;
        tx.commit().await?;
        Ok(Created::New(claim_from_row(&row)?))
    }
}

/// The owner's claim made with `key` in the last 24 hours, if any. An older
/// claim holding the key is no answer any more: the key is freed for reuse.
/// A claim whose request differs ([`NewClaim::fingerprint`]) is no answer
/// either: that is another request reusing the key.
async fn reuse_idempotent(
    tx: &Transaction<'_>,
    new: &NewClaim,
    key: &str,
) -> Result<Option<Claim>, CreateError> {
    let owner = &new.owner;
    let sql = format!(
        "SELECT {COLUMNS}, idempotency_fingerprint FROM claimcheck.upload_claims
          WHERE owner = $1 AND idempotency_key = $2 AND created_at > now() - interval '24 hours'"
    );
    if let Some(row) = tx.query_opt(&sql, &[&owner, &key]).await? {
        let fingerprint: Option<String> = row.try_get("idempotency_fingerprint")?;
        // Claims made before fingerprints were recorded have none: the key
        // alone decides for them, as it did then.
        if fingerprint.is_some_and(|f| f != new.fingerprint) {
            return Err(CreateError::KeyReused);
        }
        return Ok(Some(claim_from_row(&row)?));
    }
    tx.execute(
        "UPDATE claimcheck.upload_claims SET idempotency_key = NULL
          WHERE owner = $1 AND idempotency_key = $2",
        &[&owner, &key],
    )
    .await?;
    Ok(None)
}

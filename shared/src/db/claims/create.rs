//! Creating claims: the per-owner cap, the quotas and the idempotency key.

use std::time::Duration;

use crate::db::Transaction;
use uuid::Uuid;

use super::{claim_from_row, ClaimStore, COLUMNS};
use crate::db::{
    events::{self, claim_events, EventType},
    owners::{self, daily_charge, Charge, Quota, QuotaExceeded, Quotas},
    secs, DbError,
};
use crate::domain::{Claim, Concat};

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
    /// Claims whose bytes this one takes over (a final upload's partials,
    /// deleted once it is assembled): not counted twice against the byte
    /// quota.
    pub releases: Vec<Uuid>,
}

impl NewClaim {
    /// What the claim takes of its owner's quotas. A tus upload counts as
    /// one upload however it is sent: a partial counts its bytes but not as
    /// an upload, the final made of partials counts as the upload but not
    /// their bytes again. A deferred size counts its bytes on the day it is
    /// declared; until then it holds the size limit.
    fn charge(&self) -> Charge<'_> {
        let resumable = self.resumable.as_ref();
        let concat = resumable.and_then(|r| r.concat);
        let deferred = resumable.is_some_and(|r| r.length_deferred);
        let size = self.size.max(0) as u64;
        Charge {
            held: size,
            uploads: u64::from(concat != Some(Concat::Partial)),
            bytes: if deferred || concat == Some(Concat::Final) {
                0
            } else {
                size
            },
            releases: &self.releases,
        }
    }
}

/// What a start may take: the in-flight cap and the quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Pending claims per owner.
    pub max_pending: u32,
    /// The configured quotas (owners' overrides are read with the usage).
    pub quotas: Quotas,
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
    /// The owner's in-flight cap or a quota would be exceeded
    /// ([`Quota::Pending`] for the cap).
    #[error(transparent)]
    Refused(QuotaExceeded),
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

fn insert_sql() -> String {
    let announced = claim_events("created", EventType::UploadCreated);
    let charged = daily_charge("SELECT $3::text, $17::bigint, $18::bigint");
    format!(
        "WITH created AS (
         INSERT INTO claimcheck.upload_claims
           (id, object_key, owner, filename, content_type, size, public,
            part_size, part_count, expires_at, idempotency_key, idempotency_fingerprint,
            protocol, length_deferred, tus_metadata, concat)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                 now() + make_interval(secs => $10), $11, $12, $13, $14, $15, $16)
         RETURNING {COLUMNS}
         ), announced AS ({announced}), charged AS ({charged})
         SELECT {COLUMNS} FROM created"
    )
}

impl ClaimStore {
    /// Creates a pending claim, unless its owner already has
    /// `caps.max_pending` or the claim would take the owner past a quota
    /// ([`CreateError::Refused`]; a quota's refusal is announced as a
    /// `quota.exceeded` event).
    ///
    /// Count-then-insert races when many pods create claims for one owner at
    /// once, so both run in one transaction holding a transaction-level
    /// advisory lock on the owner: concurrent creations for the same owner
    /// queue up for a few microseconds, other owners are not affected.
    pub async fn create(&self, new: &NewClaim, caps: &Caps) -> Result<Claim, CreateError> {
        match self.create_idempotent(new, caps, None).await? {
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
        caps: &Caps,
        idempotency_key: Option<&str>,
    ) -> Result<Created, CreateError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Every statement below runs while the owner's lock is held, so each
        // is prepared once per connection: an unnamed statement would add a
        // parse round trip per statement to the time other creations of the
        // same owner wait.
        tx.execute_cached(OWNER_LOCK, &[&new.owner]).await?;
        if let Some(idem) = idempotency_key {
            if let Some(claim) = reuse_idempotent(&tx, new, idem).await? {
                return Ok(Created::Existing(claim));
            }
        }
        let charge = new.charge();
        if let Err(refused) =
            owners::check_in(&tx, &new.owner, caps.max_pending, &caps.quotas, &charge).await?
        {
            drop(tx);
            if refused.quota != Quota::Pending {
                let data =
                    serde_json::to_value(refused).map_err(|e| DbError::Corrupt(e.to_string()))?;
                events::insert_in(&client, EventType::QuotaExceeded, Some(&new.owner), &data)
                    .await?;
            }
            return Err(CreateError::Refused(refused));
        }
        let (part_size, part_count) = new.parts.unzip();

        let resumable = new.resumable.as_ref();
        let protocol = if resumable.is_some() { "tus" } else { "rest" };
        let row = tx
            .query_one_cached(
                &insert_sql(),
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
                    &(charge.uploads as i64),
                    &(charge.bytes as i64),
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

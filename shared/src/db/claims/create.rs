//! Creating claims: the per-owner cap, the quotas and the idempotency key.

use std::time::Duration;

use tokio_postgres::Row;
use uuid::Uuid;

use super::{claim_from_row, ClaimStore, COLUMNS};
use crate::db::{
    events::{self, claim_events, EventType},
    owners::{daily_charge, Charge, Quota, QuotaExceeded, Quotas},
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

/// The one statement of a start: `admit_claim` (migration V8) takes the
/// owner's lock and judges the start with a snapshot taken after the lock;
/// the claim is inserted, announced and charged to the day only when it is
/// admitted; the lock goes with the statement's transaction, in the same
/// round trip. Parameters: `$1`-`$16` the claim's columns, `$17`/`$18` the
/// day's uploads and bytes it takes, `$19` the in-flight cap, `$20` claims
/// not counted as held, `$21` the bytes it holds, `$22`-`$24` the configured
/// quotas.
static CREATE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let announced = claim_events("created", EventType::UploadCreated);
    let charged = daily_charge("SELECT owner, $17::bigint, $18::bigint FROM created");
    format!(
        "WITH verdict AS (
         SELECT * FROM claimcheck.admit_claim($3::text, $11::text, $19::bigint, $20::uuid[],
                  $21::bigint, $17::bigint, $18::bigint, $22::bigint, $23::bigint, $24::bigint)
         ), created AS (
         INSERT INTO claimcheck.upload_claims
           (id, object_key, owner, filename, content_type, size, public,
            part_size, part_count, expires_at, idempotency_key, idempotency_fingerprint,
            protocol, length_deferred, tus_metadata, concat)
         SELECT $1::uuid, $2::text, $3::text, $4::text, $5::text, $6::bigint, $7::boolean,
                $8::bigint, $9::integer, now() + make_interval(secs => $10::float8), $11::text,
                $12::text, $13::text, $14::boolean, $15::text, $16::text
           FROM verdict WHERE verdict.verdict = 'admitted'
         RETURNING {COLUMNS}
         ), announced AS ({announced}), charged AS ({charged})
         SELECT v.verdict, v.existing_id, v.existing_fingerprint, v.quota, v.quota_limit,
                v.quota_usage, v.quota_requested, c.*
           FROM verdict v LEFT JOIN created c ON true"
    )
});

/// What `admit_claim` said, from the row of [`CREATE`].
fn verdict(row: &Row, new: &NewClaim) -> Result<Verdict, CreateError> {
    let u64_of = |name| -> Result<u64, DbError> {
        Ok(row.try_get::<_, Option<i64>>(name)?.unwrap_or(0).max(0) as u64)
    };
    let verdict: String = row.try_get("verdict")?;
    match verdict.as_str() {
        "admitted" => Ok(Verdict::Admitted(Box::new(claim_from_row(row)?))),
        "existing" => {
            let fingerprint: Option<String> = row.try_get("existing_fingerprint")?;
            // Claims made before fingerprints were recorded have none: the
            // key alone decides for them, as it did then.
            if fingerprint.is_some_and(|f| f != new.fingerprint) {
                return Err(CreateError::KeyReused);
            }
            Ok(Verdict::Existing(row.try_get("existing_id")?))
        }
        "refused" => {
            let quota: String = row.try_get("quota")?;
            let quota = Quota::ALL
                .into_iter()
                .find(|q| q.as_str() == quota)
                .ok_or_else(|| DbError::Corrupt(format!("quota {quota:?}")))?;
            Ok(Verdict::Refused(QuotaExceeded {
                quota,
                limit: u64_of("quota_limit")?,
                usage: u64_of("quota_usage")?,
                requested: u64_of("quota_requested")?,
            }))
        }
        other => Err(DbError::Corrupt(format!("admit_claim verdict {other:?}")).into()),
    }
}

/// [`verdict`]'s answer.
enum Verdict {
    Admitted(Box<Claim>),
    Existing(Uuid),
    Refused(QuotaExceeded),
}

fn as_i64(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
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
        loop {
            if let Some(created) = self.try_create(new, caps, idempotency_key).await? {
                return Ok(created);
            }
        }
    }

    /// One attempt of [`create_idempotent`](Self::create_idempotent): `None`
    /// when the claim an idempotency key named was gone by the time it was
    /// read (consumed or discarded in between: the key is free again).
    async fn try_create(
        &self,
        new: &NewClaim,
        caps: &Caps,
        idempotency_key: Option<&str>,
    ) -> Result<Option<Created>, CreateError> {
        let client = self.pool.get().await?;
        let charge = new.charge();
        let (part_size, part_count) = new.parts.unzip();
        let resumable = new.resumable.as_ref();
        let protocol = if resumable.is_some() { "tus" } else { "rest" };
        let quotas = &caps.quotas;
        let row = client
            .query_one_cached(
                &CREATE,
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
                    &as_i64(charge.uploads),
                    &as_i64(charge.bytes),
                    &i64::from(caps.max_pending),
                    &charge.releases,
                    &as_i64(charge.held),
                    &as_i64(quotas.bytes),
                    &as_i64(quotas.daily_bytes),
                    &as_i64(quotas.daily_uploads),
                ],
            )
            .await?;
        match verdict(&row, new)? {
            Verdict::Admitted(claim) => Ok(Some(Created::New(*claim))),
            Verdict::Existing(id) => {
                // Read after the statement: its own snapshot predates the
                // lock, so it may not see a claim a concurrent retry made.
                drop(client);
                Ok(self.get(id).await?.map(Created::Existing))
            }
            Verdict::Refused(refused) => {
                if refused.quota != Quota::Pending {
                    let data = serde_json::to_value(refused)
                        .map_err(|e| DbError::Corrupt(e.to_string()))?;
                    events::insert_in(&client, EventType::QuotaExceeded, Some(&new.owner), &data)
                        .await?;
                }
                Err(CreateError::Refused(refused))
            }
        }
    }
}

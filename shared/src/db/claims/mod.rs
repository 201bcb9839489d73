//! `claimcheck.upload_claims`: every statement on the claims table, from
//! creation to consumption or sweep.
//!
//! This module holds [`ClaimStore`], the column list and the row mapping;
//! the statements are split by concern: `create` (cap and idempotency
//! key), `lifecycle` (an upload's progress, drops and discards, listings),
//! `writer` (the writer lease), `resumable` (tus's offset read and deferred
//! size) and `sweep` (expiry, recovery, what the
//! reaper and the audit read).
//!
//! Consuming a claim moves it into `claimcheck.objects` through the SQL
//! function, so that statement is in [`super::objects`] (the rule is in
//! [`crate::db`]).

use crate::db::Pool;
use tokio_postgres::Row;
use uuid::Uuid;

use super::DbError;
use crate::domain::{Claim, ClaimStatus, Concat, Resumable};

mod create;
mod lifecycle;
mod resumable;
mod sweep;
mod writer;
pub use create::{request_fingerprint, Caps, CreateError, Created, NewClaim};
pub use writer::WriterLock;

pub use sweep::{ExpiredClaim, ObjectWritten};

/// The columns [`claim_from_row`] reads, named one by one: a column added
/// to the table later does not change what a statement returns.
pub(super) const COLUMNS: &str =
    "id, object_key, upload_id, status, owner, filename, content_type, size, \
                       public, sha256, part_size, part_count, direct_parts, created_at, \
                       expires_at, uploaded_at, protocol, length_deferred, tus_metadata, concat";

/// What a conditional state change found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// This call made the change.
    Done(Claim),
    /// The claim was already in the target state (a repeated call).
    AlreadyDone(Claim),
    /// The claim is pending but its TTL has run out.
    Expired(Claim),
    /// No such claim (never created, consumed, discarded or swept).
    NotFound,
}

/// Upload claims in PostgreSQL.
#[derive(Clone, Debug)]
pub struct ClaimStore {
    pub(super) pool: Pool,
}

impl ClaimStore {
    /// A store over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// The claim with this id.
    pub async fn get(&self, id: Uuid) -> Result<Option<Claim>, DbError> {
        let client = self.pool.get().await?;
        let sql = format!("SELECT {COLUMNS} FROM claimcheck.upload_claims WHERE id = $1");
        client
            .query_opt(&sql, &[&id])
            .await?
            .as_ref()
            .map(claim_from_row)
            .transpose()
    }

    /// The claim for this object key.
    pub async fn get_by_key(&self, key: &str) -> Result<Option<Claim>, DbError> {
        let client = self.pool.get().await?;
        let sql = format!("SELECT {COLUMNS} FROM claimcheck.upload_claims WHERE object_key = $1");
        client
            .query_opt(&sql, &[&key])
            .await?
            .as_ref()
            .map(claim_from_row)
            .transpose()
    }

    /// How many pending claims the owner has.
    pub async fn count_pending_by_owner(&self, owner: &str) -> Result<i64, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM claimcheck.upload_claims WHERE owner = $1 AND status = 'pending'",
                &[&owner],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Counts claims by status, `(pending, uploaded)`, in one statement (for
    /// the `claimcheck_claims` gauge).
    pub async fn count_by_status(&self) -> Result<(i64, i64), DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'pending'),
                        count(*) FILTER (WHERE status = 'uploaded')
                   FROM claimcheck.upload_claims",
                &[],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }
}

/// Maps a row selected with [`COLUMNS`].
pub(crate) fn claim_from_row(row: &Row) -> Result<Claim, DbError> {
    let status: String = row.try_get("status")?;
    Ok(Claim {
        id: row.try_get("id")?,
        key: row.try_get("object_key")?,
        upload_id: row.try_get("upload_id")?,
        status: ClaimStatus::parse(&status)
            .ok_or_else(|| DbError::Corrupt(format!("claim status {status:?}")))?,
        owner: row.try_get("owner")?,
        filename: row.try_get("filename")?,
        content_type: row.try_get("content_type")?,
        size: row.try_get("size")?,
        public: row.try_get("public")?,
        sha256: row.try_get("sha256")?,
        part_size: row.try_get("part_size")?,
        part_count: row.try_get("part_count")?,
        direct_parts: row.try_get("direct_parts")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        uploaded_at: row.try_get("uploaded_at")?,
        resumable: resumable_from_row(row)?,
    })
}

/// The resumable columns of a tus claim's row (`None` for REST's).
fn resumable_from_row(row: &Row) -> Result<Option<Resumable>, DbError> {
    let protocol: &str = row.try_get("protocol")?;
    if protocol != "tus" {
        return Ok(None);
    }
    let concat = row
        .try_get::<_, Option<&str>>("concat")?
        .map(|c| Concat::parse(c).ok_or_else(|| DbError::Corrupt(format!("claim concat {c:?}"))))
        .transpose()?;
    Ok(Some(Resumable {
        length_deferred: row.try_get("length_deferred")?,
        metadata: row.try_get("tus_metadata")?,
        concat,
    }))
}

//! The claim store: upload claims from creation to consumption or sweep.

use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{deletes, secs, DbError};
use crate::domain::{Claim, ClaimStatus, DeleteReason};

mod create;
mod writer;
pub use create::{request_fingerprint, CreateError, NewClaim};
pub use writer::WriterLock;

pub(super) const COLUMNS: &str =
    "id, object_key, upload_id, status, owner, filename, content_type, size, \
                       public, sha256, part_size, part_count, direct_parts, created_at, \
                       expires_at, uploaded_at";

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

    /// Records the multipart session of a pending claim. False when the claim
    /// is gone or no longer pending, or already has a session.
    #[tracing::instrument(name = "db.set_upload_id", skip_all)]
    pub async fn set_upload_id(&self, id: Uuid, upload_id: &str) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE claimcheck.upload_claims SET upload_id = $2
                  WHERE id = $1 AND status = 'pending' AND upload_id IS NULL",
                &[&id, &upload_id],
            )
            .await?;
        Ok(n == 1)
    }

    /// Stamps progress on a pending claim that has not expired: it now expires
    /// `ttl` from now. False when the claim is gone, uploaded or expired.
    #[tracing::instrument(name = "db.touch", skip_all)]
    pub async fn touch(&self, id: Uuid, ttl: Duration) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE claimcheck.upload_claims
                    SET expires_at = now() + make_interval(secs => $2)
                  WHERE id = $1 AND status = 'pending' AND expires_at > now()",
                &[&id, &secs(ttl)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Marks a pending, unexpired claim uploaded with its checksum; it then
    /// expires after `unconsumed_ttl` (never, when `None`).
    ///
    /// Conditional: of a complete racing another complete, an abort or the
    /// sweeper, exactly one wins; the others learn what happened instead.
    #[tracing::instrument(name = "db.mark_uploaded", skip_all)]
    pub async fn mark_uploaded(
        &self,
        id: Uuid,
        sha256: Option<&str>,
        unconsumed_ttl: Option<Duration>,
    ) -> Result<Transition, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE claimcheck.upload_claims
                        SET status = 'uploaded', sha256 = $2, uploaded_at = now(),
                            expires_at = now() + make_interval(secs => $3)
                      WHERE id = $1 AND status = 'pending' AND expires_at > now()
                  RETURNING {COLUMNS}"
                ),
                &[&id, &sha256, &unconsumed_ttl.map(secs)],
            )
            .await?;
        if let Some(row) = row {
            return Ok(Transition::Done(claim_from_row(&row)?));
        }
        Ok(match self.get(id).await? {
            None => Transition::NotFound,
            Some(c) if c.status == ClaimStatus::Uploaded => Transition::AlreadyDone(c),
            Some(c) => Transition::Expired(c),
        })
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

    /// Up to `limit` claims in `status` whose `expires_at` has passed, oldest
    /// first, leaving out those a writer holds (a complete in progress).
    #[tracing::instrument(name = "db.list_expired", skip_all)]
    pub async fn list_expired(
        &self,
        status: ClaimStatus,
        limit: i64,
    ) -> Result<Vec<Claim>, DbError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM claimcheck.upload_claims
              WHERE status = $1 AND expires_at <= now()
                AND (writer_until IS NULL OR writer_until <= now())
              ORDER BY expires_at LIMIT $2"
        );
        let rows = client.query(&sql, &[&status.as_str(), &limit]).await?;
        rows.iter().map(claim_from_row).collect()
    }

    /// Deletes, inside `tx`, those of `ids` that are still in `status` and
    /// expired, and returns them. A claim another sweeper, a complete or a
    /// consume changed first is left alone, so it is never acted on twice.
    pub async fn delete_expired_in(
        tx: &Transaction<'_>,
        ids: &[Uuid],
        status: ClaimStatus,
    ) -> Result<Vec<Claim>, DbError> {
        // Rows are locked in key order, as `consume_claims` locks them, so a
        // sweep and a consume of overlapping claims wait for each other
        // instead of deadlocking. A claim whose writer lock is held (a
        // complete in progress) is not abandoned: it is left for later.
        let sql = format!(
            "DELETE FROM claimcheck.upload_claims
              WHERE id IN (
                    SELECT id FROM claimcheck.upload_claims
                     WHERE id = ANY($1) AND status = $2 AND expires_at <= now()
                       AND (writer_until IS NULL OR writer_until <= now())
                     ORDER BY object_key
                       FOR UPDATE)
          RETURNING {COLUMNS}"
        );
        let rows = tx.query(&sql, &[&ids, &status.as_str()]).await?;
        rows.iter().map(claim_from_row).collect()
    }

    /// Sweeps those of `ids` that are still expired in `status`: in one
    /// transaction, deletes them (their parts cascade) and queues the delete
    /// of each object, with its multipart session, for `reason`. Returns the
    /// claims this call swept.
    #[tracing::instrument(name = "db.expire", skip_all)]
    pub async fn expire(
        &self,
        ids: &[Uuid],
        status: ClaimStatus,
        reason: DeleteReason,
    ) -> Result<Vec<Claim>, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let swept = Self::delete_expired_in(&tx, ids, status).await?;
        let items: Vec<deletes::NewDelete> = swept
            .iter()
            .map(|c| deletes::NewDelete {
                key: c.key.clone(),
                upload_id: c.upload_id.clone(),
                reason,
            })
            .collect();
        deletes::DeleteQueue::enqueue_in(&tx, &items).await?;
        tx.commit().await?;
        Ok(swept)
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

    /// Recovers an expired pending claim whose object turned out complete (a
    /// crash between the store finishing and the database update): it becomes
    /// uploaded, expiring after `unconsumed_ttl`, and its part rows go.
    /// Conditional on the claim still being pending and expired, so a racing
    /// complete or sweeper is never undone; `None` when it was not.
    pub async fn recover(
        &self,
        id: Uuid,
        unconsumed_ttl: Option<Duration>,
    ) -> Result<Option<Claim>, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                &format!(
                    "UPDATE claimcheck.upload_claims
                        SET status = 'uploaded', uploaded_at = now(),
                            expires_at = now() + make_interval(secs => $2)
                      WHERE id = $1 AND status = 'pending' AND expires_at <= now()
                  RETURNING {COLUMNS}"
                ),
                &[&id, &unconsumed_ttl.map(secs)],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        super::PartStore::delete_by_claim_in(&tx, id).await?;
        tx.commit().await?;
        Ok(Some(claim_from_row(&row)?))
    }

    /// Those of `upload_ids` that a claim or a delete-queue row knows (the
    /// orphan reaper and the audit leave these sessions alone).
    pub async fn known_upload_ids(
        &self,
        upload_ids: &[String],
    ) -> Result<std::collections::HashSet<String>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT upload_id FROM claimcheck.upload_claims WHERE upload_id = ANY($1)
                 UNION
                 SELECT upload_id FROM claimcheck.pending_deletes WHERE upload_id = ANY($1)",
                &[&upload_ids],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
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
    })
}

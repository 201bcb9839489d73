//! One writer at a time per claim, across every pod.
//!
//! A complete (and, later, a tus PATCH) does object-store I/O that must not
//! run twice at once for one claim: two CompleteMultipartUploads of one
//! session leave the loser with `NoSuchUpload` and no way to tell a finished
//! object from an aborted one. A transaction cannot be held across that I/O,
//! so the lock is a lease on the claim row, like the delete queue's: a token
//! and an expiry, taken with one conditional UPDATE, renewed while the work
//! lasts, released when it ends, and free again by itself when its holder
//! dies.

use std::time::Duration;

use crate::db::Transaction;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::ClaimStore;
use crate::db::{secs, DbError};

/// What [`ClaimStore::lock_writer`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterLock {
    /// This caller holds the lock; the token fences renewal and release.
    Acquired(Uuid),
    /// Another writer holds an unexpired lock.
    Busy,
    /// The claim is gone or no longer pending: there is nothing to write.
    NotPending,
}

impl ClaimStore {
    /// Takes the writer lock of a pending claim for `lease`, unless another
    /// writer holds it.
    #[tracing::instrument(name = "db.lock_writer", skip_all)]
    pub async fn lock_writer(&self, id: Uuid, lease: Duration) -> Result<WriterLock, DbError> {
        let client = self.pool.get().await?;
        let token = Uuid::new_v4();
        // One statement decides: the row is locked while it is evaluated, so
        // of many concurrent callers exactly one sees the lock free.
        let row = client
            .query_one(
                "WITH claim AS (
                     SELECT id FROM claimcheck.upload_claims
                      WHERE id = $1 AND status = 'pending'
                 ), taken AS (
                     UPDATE claimcheck.upload_claims c
                        SET writer_token = $2,
                            writer_until = now() + make_interval(secs => $3)
                       FROM claim
                      WHERE c.id = claim.id
                        AND c.status = 'pending'
                        AND (c.writer_until IS NULL OR c.writer_until <= now())
                  RETURNING c.id
                 )
                 SELECT (SELECT count(*) FROM claim), (SELECT count(*) FROM taken)",
                &[&id, &token, &secs(lease)],
            )
            .await?;
        let (pending, taken): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        Ok(match (pending, taken) {
            (_, 1) => WriterLock::Acquired(token),
            (0, _) => WriterLock::NotPending,
            _ => WriterLock::Busy,
        })
    }

    /// Extends a held lock to `lease` from now. False when the lock was lost
    /// (it ran out and another writer took it, or the claim left `pending`).
    #[tracing::instrument(name = "db.renew_writer", skip_all)]
    pub async fn renew_writer(
        &self,
        id: Uuid,
        token: Uuid,
        lease: Duration,
    ) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE claimcheck.upload_claims
                    SET writer_until = now() + make_interval(secs => $3)
                  WHERE id = $1 AND writer_token = $2",
                &[&id, &token, &secs(lease)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Releases a held lock (a no-op when it was lost meanwhile).
    #[tracing::instrument(name = "db.unlock_writer", skip_all)]
    pub async fn unlock_writer(&self, id: Uuid, token: Uuid) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE claimcheck.upload_claims
                    SET writer_token = NULL, writer_until = NULL
                  WHERE id = $1 AND writer_token = $2",
                &[&id, &token],
            )
            .await?;
        Ok(())
    }

    /// Inside `tx`: fences a write of the writer of claim `id` to the holder
    /// of `token`, locking the claim row until `tx` ends, and slides the
    /// pending claim's expiry to `ttl` from now (an upload that is making
    /// progress is not swept): the new expiry. None (write nothing) when the
    /// lock was lost or the claim is no longer pending.
    pub async fn fence_writer_in(
        tx: &Transaction<'_>,
        id: Uuid,
        token: Uuid,
        ttl: Duration,
    ) -> Result<Option<DateTime<Utc>>, DbError> {
        let row = tx
            .query_opt(
                "UPDATE claimcheck.upload_claims
                    SET expires_at = greatest(expires_at, now() + make_interval(secs => $3))
                  WHERE id = $1 AND writer_token = $2 AND status = 'pending'
              RETURNING expires_at",
                &[&id, &token, &secs(ttl)],
            )
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get(0)?),
            None => None,
        })
    }
}

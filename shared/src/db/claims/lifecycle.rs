//! An upload's way through its claim: the multipart session, progress,
//! presign marks, completion, pending drops, discards and an owner's listing.

use std::time::Duration;

use uuid::Uuid;

use super::{claim_from_row, ClaimStore, Transition, COLUMNS};
use crate::db::{
    deletes::{DeleteQueue, NewDelete},
    secs, DbError,
};
use crate::db::{
    events::{claim_events, EventType},
    tails::DROP_TAIL_OF_MARKED,
};
use crate::domain::{Claim, ClaimStatus, DeleteReason};

impl ClaimStore {
    /// Records the multipart session of a pending claim. False when the claim
    /// is gone or no longer pending, or already has a session.
    #[tracing::instrument(name = "db.set_upload_id", skip_all)]
    pub async fn set_upload_id(&self, id: Uuid, upload_id: &str) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let n = client
            .execute_cached(
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
    /// An appended upload's tail (its last bytes are in the object now) goes
    /// in the same statement, so a finished upload never keeps one.
    #[tracing::instrument(name = "db.mark_uploaded", skip_all)]
    pub async fn mark_uploaded(
        &self,
        id: Uuid,
        sha256: Option<&str>,
        unconsumed_ttl: Option<Duration>,
    ) -> Result<Transition, DbError> {
        let client = self.pool.get().await?;
        let announced = claim_events("marked", EventType::UploadCompleted);
        let row = client
            .query_opt(
                &format!(
                    "WITH marked AS (
                         UPDATE claimcheck.upload_claims
                            SET status = 'uploaded', sha256 = $2, uploaded_at = now(),
                                expires_at = now() + make_interval(secs => $3)
                          WHERE id = $1 AND status = 'pending' AND expires_at > now()
                      RETURNING {COLUMNS}
                     ), tail AS (
                         {DROP_TAIL_OF_MARKED}
                     ), announced AS ({announced})
                     SELECT {COLUMNS} FROM marked"
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

    /// Notes that parts of a pending claim may go straight to the store, so
    /// complete reads them back. False when the claim is gone or not pending.
    pub async fn set_direct_parts(&self, id: Uuid) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE claimcheck.upload_claims SET direct_parts = true
                  WHERE id = $1 AND status = 'pending'",
                &[&id],
            )
            .await?;
        Ok(n == 1)
    }

    /// Drops a claim that is still pending (its parts cascade) and, in the
    /// same transaction, queues the delete of its key, with its multipart
    /// session unless `session_aborted`: whatever the store holds for the key
    /// (a body that landed after all, an object a dying complete assembled)
    /// is then accounted for. None when the claim was no longer pending: a
    /// complete or the sweeper got there first.
    pub async fn delete_pending(
        &self,
        id: Uuid,
        session_aborted: bool,
    ) -> Result<Option<Claim>, DbError> {
        self.delete_in_status(id, ClaimStatus::Pending, session_aborted)
            .await
    }

    /// Drops an uploaded, unconsumed claim and queues its object's delete
    /// (`discarded`), in one transaction. None when it was no longer there
    /// in that state (consumed, swept, or never uploaded).
    pub async fn discard_uploaded(&self, id: Uuid) -> Result<Option<Claim>, DbError> {
        self.delete_in_status(id, ClaimStatus::Uploaded, true).await
    }

    #[tracing::instrument(name = "db.delete_in_status", skip_all)]
    async fn delete_in_status(
        &self,
        id: Uuid,
        status: ClaimStatus,
        session_aborted: bool,
    ) -> Result<Option<Claim>, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let announced = claim_events("dropped", EventType::UploadDiscarded);
        let sql = format!(
            "WITH dropped AS (
                 DELETE FROM claimcheck.upload_claims WHERE id = $1 AND status = $2
                 RETURNING {COLUMNS}
             ), announced AS ({announced})
             SELECT {COLUMNS} FROM dropped"
        );
        let Some(row) = tx.query_opt(&sql, &[&id, &status.as_str()]).await? else {
            return Ok(None);
        };
        let claim = claim_from_row(&row)?;
        let item = NewDelete {
            key: claim.key.clone(),
            upload_id: claim.upload_id.clone().filter(|_| !session_aborted),
            reason: DeleteReason::Discarded,
        };
        DeleteQueue::enqueue_in(&tx, &[item]).await?;
        tx.commit().await?;
        Ok(Some(claim))
    }

    /// The owner's claims, newest first, optionally in one status, after
    /// the claim `cursor` (ids are uuid v7, so they sort by creation).
    pub async fn list_by_owner(
        &self,
        owner: &str,
        status: Option<ClaimStatus>,
        limit: i64,
        cursor: Option<Uuid>,
    ) -> Result<Vec<Claim>, DbError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM claimcheck.upload_claims
              WHERE owner = $1 AND ($2::text IS NULL OR status = $2)
                AND ($3::uuid IS NULL OR id < $3)
              ORDER BY id DESC LIMIT $4"
        );
        let rows = client
            .query(
                &sql,
                &[&owner, &status.map(ClaimStatus::as_str), &cursor, &limit],
            )
            .await?;
        rows.iter().map(claim_from_row).collect()
    }
}

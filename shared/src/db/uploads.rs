//! The claim store's statements for the upload API: presign marks, pending
//! drops, discards and an owner's listing.

use uuid::Uuid;

use super::{
    claims::{claim_from_row, COLUMNS},
    deletes::{DeleteQueue, NewDelete},
    ClaimStore, DbError,
};
use crate::domain::{Claim, ClaimStatus, DeleteReason};

impl ClaimStore {
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

    /// Drops a claim that is still pending (its parts cascade), queueing
    /// `cleanup` in the same transaction when given (an object or session the
    /// store could not remove at once). None when the claim was no longer
    /// pending: a complete or the sweeper got there first.
    pub async fn delete_pending(
        &self,
        id: Uuid,
        cleanup: Option<NewDelete>,
    ) -> Result<Option<Claim>, DbError> {
        self.delete_in_status(id, ClaimStatus::Pending, cleanup)
            .await
    }

    /// Drops an uploaded, unconsumed claim and queues its object's delete
    /// (`discarded`), in one transaction. None when it was no longer there
    /// in that state (consumed, swept, or never uploaded).
    pub async fn discard_uploaded(&self, id: Uuid) -> Result<Option<Claim>, DbError> {
        self.delete_in_status(id, ClaimStatus::Uploaded, None).await
    }

    #[tracing::instrument(name = "db.delete_in_status", skip_all)]
    async fn delete_in_status(
        &self,
        id: Uuid,
        status: ClaimStatus,
        cleanup: Option<NewDelete>,
    ) -> Result<Option<Claim>, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let sql = format!(
            "DELETE FROM claimcheck.upload_claims WHERE id = $1 AND status = $2 RETURNING {COLUMNS}"
        );
        let Some(row) = tx.query_opt(&sql, &[&id, &status.as_str()]).await? else {
            return Ok(None);
        };
        let claim = claim_from_row(&row)?;
        let queued = match (status, cleanup) {
            (ClaimStatus::Uploaded, _) => Some(NewDelete {
                key: claim.key.clone(),
                upload_id: None,
                reason: DeleteReason::Discarded,
            }),
            (ClaimStatus::Pending, cleanup) => cleanup,
        };
        if let Some(item) = queued {
            DeleteQueue::enqueue_in(&tx, &[item]).await?;
        }
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

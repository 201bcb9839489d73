//! Expired claims and what the background jobs read: the sweeper's listing
//! and sweep, the recovery of a crashed complete, the sessions the reaper
//! and the audit must leave alone, and the audit's uploaded keys.

use std::time::Duration;

use crate::db::Transaction;
use uuid::Uuid;

use super::{claim_from_row, ClaimStore, COLUMNS};
use crate::db::{
    deletes::{DeleteQueue, NewDelete},
    events::{claim_events, EventType},
    keys_in_range, secs, DbError, KeyRange, PartStore, TailStore, KEY_RANGE,
};
use crate::domain::{Claim, ClaimStatus, DeleteReason};

/// An expired pending claim for the sweeper.
#[derive(Debug, Clone)]
pub struct ExpiredClaim {
    /// The claim.
    pub claim: Claim,
    /// Whether its object may exist.
    pub object: ObjectWritten,
}

/// Whether anything may have written a claim's object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectWritten {
    /// Nothing could have: a multipart claim whose writer lock no complete
    /// or append ever took. Its object does not exist; the store need not
    /// be asked.
    Never,
    /// A single-shot body, a concatenation, a writer (or a claim from
    /// before this was recorded): the store must be asked.
    Maybe,
}

impl ClaimStore {
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

    /// Up to `limit` expired pending claims, oldest first, leaving out those
    /// a writer holds (as [`list_expired`](Self::list_expired)), each with
    /// whether anything may have written its object
    /// (`upload_claims.may_have_object`, kept by a trigger: see migration V9).
    #[tracing::instrument(name = "db.list_expired_pending", skip_all)]
    pub async fn list_expired_pending(&self, limit: i64) -> Result<Vec<ExpiredClaim>, DbError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT {COLUMNS}, may_have_object IS NOT FALSE AS may_have_object
               FROM claimcheck.upload_claims
              WHERE status = 'pending' AND expires_at <= now()
                AND (writer_until IS NULL OR writer_until <= now())
              ORDER BY expires_at LIMIT $1"
        );
        let rows = client.query(&sql, &[&limit]).await?;
        rows.iter()
            .map(|row| {
                let object = if row.try_get("may_have_object")? {
                    ObjectWritten::Maybe
                } else {
                    ObjectWritten::Never
                };
                Ok(ExpiredClaim {
                    claim: claim_from_row(row)?,
                    object,
                })
            })
            .collect()
    }

    /// Deletes, inside `tx`, those of `ids` that are still in `status` and
    /// expired, and returns them. A claim another sweeper, a complete or a
    /// consume changed first is left alone, so it is never acted on twice.
    ///
    /// `unwritten` are more ids, of claims the sweeper takes without asking
    /// the store ([`ObjectWritten::Never`]): each goes only if nothing may
    /// have written its object still holds when its row is locked (a writer
    /// that locked it since leaves it to a sweep that asks the store).
    pub async fn delete_expired_in(
        tx: &Transaction<'_>,
        ids: &[Uuid],
        unwritten: &[Uuid],
        status: ClaimStatus,
    ) -> Result<Vec<Claim>, DbError> {
        // Rows are locked in key order, as `consume_claims` locks them, so a
        // sweep and a consume of overlapping claims wait for each other
        // instead of deadlocking. A claim whose writer lock is held (a
        // complete in progress) is not abandoned: it is left for later.
        let announced = claim_events("swept", EventType::UploadExpired);
        let sql = format!(
            "WITH swept AS (
                 DELETE FROM claimcheck.upload_claims
                  WHERE id IN (
                        SELECT id FROM claimcheck.upload_claims
                         WHERE (id = ANY($1) OR (id = ANY($3) AND may_have_object = false))
                           AND status = $2 AND expires_at <= now()
                           AND (writer_until IS NULL OR writer_until <= now())
                         ORDER BY object_key
                           FOR UPDATE)
              RETURNING {COLUMNS}
             ), announced AS ({announced})
             SELECT {COLUMNS} FROM swept"
        );
        let rows = tx
            .query(&sql, &[&ids, &status.as_str(), &unwritten])
            .await?;
        rows.iter().map(claim_from_row).collect()
    }

    /// Sweeps those of `ids` that are still expired in `status`: in one
    /// transaction, deletes them (their parts cascade) and queues the delete
    /// of each object, with its multipart session, for `reason`. Returns the
    /// claims this call swept.
    pub async fn expire(
        &self,
        ids: &[Uuid],
        status: ClaimStatus,
        reason: DeleteReason,
    ) -> Result<Vec<Claim>, DbError> {
        self.expire_with(ids, &[], status, reason).await
    }

    /// [`expire`](Self::expire), with `unwritten` as in
    /// [`delete_expired_in`](Self::delete_expired_in): claims swept without
    /// a look at the store, each only if still nothing may have written its
    /// object.
    #[tracing::instrument(name = "db.expire", skip_all)]
    pub async fn expire_with(
        &self,
        ids: &[Uuid],
        unwritten: &[Uuid],
        status: ClaimStatus,
        reason: DeleteReason,
    ) -> Result<Vec<Claim>, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let swept = Self::delete_expired_in(&tx, ids, unwritten, status).await?;
        let items: Vec<NewDelete> = swept
            .iter()
            .map(|c| NewDelete {
                key: c.key.clone(),
                upload_id: c.upload_id.clone(),
                reason,
            })
            .collect();
        DeleteQueue::enqueue_in(&tx, &items).await?;
        tx.commit().await?;
        Ok(swept)
    }

    /// Recovers an expired pending claim whose object turned out complete (a
    /// crash between the store finishing and the database update): it becomes
    /// uploaded, expiring after `unconsumed_ttl`, and its part and tail rows
    /// go.
    /// Conditional on the claim still being pending and expired, so a racing
    /// complete or sweeper is never undone; `None` when it was not.
    pub async fn recover(
        &self,
        id: Uuid,
        unconsumed_ttl: Option<Duration>,
    ) -> Result<Option<Claim>, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let announced = claim_events("recovered", EventType::UploadCompleted);
        let row = tx
            .query_opt(
                &format!(
                    "WITH recovered AS (
                         UPDATE claimcheck.upload_claims
                            SET status = 'uploaded', uploaded_at = now(),
                                expires_at = now() + make_interval(secs => $2)
                          WHERE id = $1 AND status = 'pending' AND expires_at <= now()
                      RETURNING {COLUMNS}
                     ), announced AS ({announced})
                     SELECT {COLUMNS} FROM recovered"
                ),
                &[&id, &unconsumed_ttl.map(secs)],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        PartStore::delete_by_claim_in(&tx, id).await?;
        TailStore::delete_by_claim_in(&tx, id).await?;
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

impl ClaimStore {
    /// The keys of uploaded claims in `range` (see [`KeyRange`]), for the
    /// audit: each must have its object.
    pub async fn uploaded_keys_between(
        &self,
        range: &KeyRange<'_>,
    ) -> Result<Vec<String>, DbError> {
        let sql = format!(
            "SELECT object_key FROM claimcheck.upload_claims
              WHERE status = 'uploaded' AND {KEY_RANGE}"
        );
        keys_in_range(&self.pool, &sql, range).await
    }
}

//! The delete queue's dead rows: listed for operators, put back on
//! request (recorded in the audit log).

use chrono::{DateTime, Utc};

use super::{delete_from_row, DeleteQueue, COLUMNS};
use crate::db::{
    audit_log::{self, Actor, AuditAction},
    DbError,
};
use crate::domain::PendingDelete;

impl DeleteQueue {
    /// Puts dead rows back in the queue with a fresh attempt count: those in
    /// `ids`, or every dead row when `ids` is `None`. Returns how many.
    /// Recorded in the audit log when there were any.
    #[tracing::instrument(name = "db.retry_dead", skip_all)]
    pub async fn retry_dead(&self, ids: Option<&[i64]>, actor: &Actor) -> Result<u64, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "UPDATE claimcheck.pending_deletes
                    SET dead_at = NULL, attempts = 0, next_attempt_at = now()
                  WHERE dead_at IS NOT NULL AND ($1::bigint[] IS NULL OR id = ANY($1))",
                &[&ids],
            )
            .await?;
        if n > 0 {
            let detail = serde_json::json!({ "rows": n, "ids": ids });
            audit_log::append_in(
                &tx,
                actor,
                AuditAction::DeadDeletesRetried,
                "delete_queue",
                detail,
            )
            .await?;
            tx.commit().await?;
        }
        Ok(n)
    }

    /// Dead rows, oldest first, with the time each died.
    pub async fn list_dead(
        &self,
        limit: i64,
    ) -> Result<Vec<(PendingDelete, DateTime<Utc>)>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS}, dead_at FROM claimcheck.pending_deletes
                      WHERE dead_at IS NOT NULL ORDER BY dead_at, id LIMIT $1"
                ),
                &[&limit],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((delete_from_row(r)?, r.try_get("dead_at")?)))
            .collect()
    }
}

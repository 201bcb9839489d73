//! The durable delete queue.
//!
//! Rows are queued inside the transaction that drops what referenced the
//! object (a claim, a registry row), so the queue commits with it. Workers
//! lease due rows with `FOR UPDATE SKIP LOCKED`, so any number of them take
//! disjoint batches without a leader. A lease is a visibility timeout: a worker
//! that dies loses its rows back to the queue when the lease runs out. Every
//! later change to a leased row is fenced by the lease's token, so a worker
//! whose lease ran out cannot undo the work of the worker that took over.

mod dead;
mod lease;

pub use lease::{DoneAndLease, Lease, LeaseTerms};

use crate::db::{Pool, Transaction};
use tokio_postgres::Row;

use super::DbError;
use crate::domain::{DeleteReason, PendingDelete};

const COLUMNS: &str = "id, object_key, upload_id, reason, attempts, last_error, created_at";

/// A delete to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelete {
    /// The object.
    pub key: String,
    /// A multipart session to abort first.
    pub upload_id: Option<String>,
    /// Why.
    pub reason: DeleteReason,
}

/// Counts of the queue's rows by state, for metrics and `queue stats`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct QueueStats {
    /// Ready now.
    pub due: i64,
    /// Held by a worker whose lease has not run out.
    pub leased: i64,
    /// Waiting for the next attempt after a failure.
    pub deferred: i64,
    /// Parked after too many attempts.
    pub dead: i64,
    /// Age of the oldest due row, in seconds (0 when none is due).
    pub oldest_due_seconds: f64,
}

/// The delete queue in PostgreSQL.
#[derive(Clone, Debug)]
pub struct DeleteQueue {
    pool: Pool,
}

impl DeleteQueue {
    /// A queue over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Queues deletes inside `tx`, in one statement. Returns the new row ids.
    #[tracing::instrument(name = "db.enqueue_in", skip_all)]
    pub async fn enqueue_in(
        tx: &Transaction<'_>,
        items: &[NewDelete],
    ) -> Result<Vec<i64>, DbError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
        let uploads: Vec<Option<&str>> = items.iter().map(|i| i.upload_id.as_deref()).collect();
        let reasons: Vec<&str> = items.iter().map(|i| i.reason.as_str()).collect();
        let rows = tx
            .query(
                "INSERT INTO claimcheck.pending_deletes (object_key, upload_id, reason)
                 SELECT k, u, r FROM unnest($1::text[], $2::text[], $3::text[]) AS i(k, u, r)
                 RETURNING id",
                &[&keys, &uploads, &reasons],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Queues the delete of an object this process wrote but whose claim
    /// is gone, unless the key is live at this moment (a claim or a registry
    /// row has it) or a row no worker holds yet already covers it: one
    /// statement, so the checks and the insert see the same snapshot and a
    /// claim consumed meanwhile counts as its registry row. True when a row
    /// was queued.
    #[tracing::instrument(name = "db.enqueue_unless_live", skip_all)]
    pub async fn enqueue_unless_live(&self, item: &NewDelete) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "INSERT INTO claimcheck.pending_deletes (object_key, upload_id, reason)
                 SELECT $1, $2, $3
                  WHERE NOT EXISTS (SELECT 1 FROM claimcheck.objects WHERE object_key = $1)
                    AND NOT EXISTS (SELECT 1 FROM claimcheck.upload_claims WHERE object_key = $1)
                    -- A row for the key that no worker holds yet runs after
                    -- now, so it deletes the object written before now: one
                    -- is enough. A leased row may have deleted already.
                    AND NOT EXISTS (SELECT 1 FROM claimcheck.pending_deletes
                                     WHERE object_key = $1 AND dead_at IS NULL
                                       AND (leased_until IS NULL OR leased_until <= now()))",
                &[&item.key, &item.upload_id, &item.reason.as_str()],
            )
            .await?;
        Ok(n == 1)
    }

    /// Queues deletes in a transaction of their own.
    pub async fn enqueue(&self, items: &[NewDelete]) -> Result<Vec<i64>, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let ids = Self::enqueue_in(&tx, items).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Row counts by state, in one statement (cheap enough for every scrape
    /// interval: one pass over the queue, by the database clock).
    #[tracing::instrument(name = "db.stats", skip_all)]
    pub async fn stats(&self) -> Result<QueueStats, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT
                    count(*) FILTER (WHERE dead_at IS NULL AND leased_until > now()),
                    count(*) FILTER (WHERE dead_at IS NULL AND coalesce(leased_until <= now(), true)
                                       AND next_attempt_at <= now()),
                    count(*) FILTER (WHERE dead_at IS NULL AND coalesce(leased_until <= now(), true)
                                       AND next_attempt_at > now()),
                    count(*) FILTER (WHERE dead_at IS NOT NULL),
                    coalesce(extract(epoch FROM now() - min(next_attempt_at) FILTER (
                        WHERE dead_at IS NULL AND next_attempt_at <= now()))::float8, 0)
                 FROM claimcheck.pending_deletes",
                &[],
            )
            .await?;
        Ok(QueueStats {
            leased: row.get(0),
            due: row.get(1),
            deferred: row.get(2),
            dead: row.get(3),
            oldest_due_seconds: row.get(4),
        })
    }
}

fn delete_from_row(row: &Row) -> Result<PendingDelete, DbError> {
    let reason: String = row.try_get("reason")?;
    Ok(PendingDelete {
        id: row.try_get("id")?,
        key: row.try_get("object_key")?,
        upload_id: row.try_get("upload_id")?,
        reason: DeleteReason::parse(&reason)
            .ok_or_else(|| DbError::Corrupt(format!("delete reason {reason:?}")))?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
    })
}

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

use std::time::Duration;

use crate::db::{Pool, Transaction};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{
    events::{key_events, EventType},
    secs, DbError,
};
use crate::domain::{DeleteReason, PendingDelete};

const COLUMNS: &str = "id, object_key, upload_id, reason, attempts, last_error, created_at";

/// The lease (see [`DeleteQueue::lease`]). Its columns are named one by one
/// (`COLUMNS` with `p.`), so a column added to the table later does not
/// change the result type of a statement cached before.
static LEASE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let announced = key_events("parked", EventType::ObjectDeleteDead);
    format!("WITH due AS (
        SELECT id, attempts FROM claimcheck.pending_deletes
         WHERE dead_at IS NULL AND next_attempt_at <= now()
         ORDER BY next_attempt_at
         LIMIT $1
           FOR UPDATE SKIP LOCKED
     ), parked AS (
        UPDATE claimcheck.pending_deletes p
           SET dead_at = now(), leased_until = NULL, lease_token = NULL,
               last_error = concat_ws(E'\\n', p.last_error,
                   'leased ' || p.attempts || ' times without an outcome (worker crashed or timed out)')
          FROM due WHERE p.id = due.id AND due.attempts >= $4
        RETURNING p.object_key, p.reason, p.last_error
     ), announced AS ({announced})
     UPDATE claimcheck.pending_deletes p
        SET attempts = p.attempts + 1,
            leased_until = now() + make_interval(secs => $2),
            next_attempt_at = now() + make_interval(secs => $2),
            lease_token = $3
       FROM due WHERE p.id = due.id AND due.attempts < $4
  RETURNING p.id, p.object_key, p.upload_id, p.reason, p.attempts, p.last_error, p.created_at")
});

/// Removes the rows of a lease whose deletes succeeded, announcing each.
static DONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let announced = key_events("gone", EventType::ObjectDeleted);
    format!(
        "WITH gone AS (
             DELETE FROM claimcheck.pending_deletes WHERE id = ANY($1) AND lease_token = $2
             RETURNING id, object_key, reason, NULL::text AS last_error
         ), announced AS ({announced})
         SELECT id FROM gone"
    )
});

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

/// Rows leased together, and the token that proves it.
#[derive(Debug, Clone)]
pub struct Lease {
    /// Fences [`DeleteQueue::done`], [`DeleteQueue::defer`] and friends.
    pub token: Uuid,
    /// The rows, each with its `attempts` already counting this lease.
    pub rows: Vec<PendingDelete>,
    /// When the lease runs out, by this process's clock (measured from
    /// before the lease was asked for, so never later than the database's).
    pub expires: std::time::Instant,
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

    /// Of `keys`, those that are live right now: a registry row, or an
    /// uploaded claim, holds them. The delete worker parks rows for these
    /// instead of deleting (a delete never removes a live object).
    #[tracing::instrument(name = "db.live_keys", skip_all)]
    pub async fn live_keys(
        &self,
        keys: &[&str],
    ) -> Result<std::collections::HashMap<String, &'static str>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT object_key, true FROM claimcheck.objects
                  WHERE object_key = ANY($1)
                 UNION ALL
                 SELECT object_key, false FROM claimcheck.upload_claims
                  WHERE object_key = ANY($1) AND status = 'uploaded'",
                &[&keys],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let registry: bool = r.try_get(1)?;
                let holder = if registry {
                    "a registry row"
                } else {
                    "an uploaded claim"
                };
                Ok((r.try_get(0)?, holder))
            })
            .collect()
    }

    /// Queues deletes in a transaction of their own.
    pub async fn enqueue(&self, items: &[NewDelete]) -> Result<Vec<i64>, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let ids = Self::enqueue_in(&tx, items).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Leases up to `limit` due rows for `lease`, oldest due first.
    ///
    /// One statement: a CTE picks due rows with `FOR UPDATE SKIP LOCKED`
    /// (rows another worker is leasing right now are skipped, not waited for),
    /// then counts the attempt and hides each row until the lease runs out.
    /// A due row that has already been leased `max_attempts` times (its
    /// workers kept dying) is parked as dead here instead of leased again.
    #[tracing::instrument(name = "db.lease", skip_all)]
    pub async fn lease(
        &self,
        limit: u32,
        lease: Duration,
        max_attempts: u32,
    ) -> Result<Lease, DbError> {
        let expires = std::time::Instant::now() + lease;
        let client = self.pool.get().await?;
        let token = Uuid::new_v4();
        let max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        // Cached per connection: the worker runs this once per batch, and
        // preparing it anew each time costs a round trip and a plan.
        let rows = client
            .query_cached(
                &LEASE,
                &[&i64::from(limit), &secs(lease), &token, &max_attempts],
            )
            .await?;
        let rows = rows.iter().map(delete_from_row).collect::<Result<_, _>>()?;
        Ok(Lease {
            token,
            rows,
            expires,
        })
    }

    /// Removes rows of the lease `token` whose deletes succeeded, in one
    /// statement. Returns the ids it removed: an id of `ids` missing there
    /// means the lease ran out and another worker holds that row now.
    #[tracing::instrument(name = "db.done", skip_all)]
    pub async fn done(&self, token: Uuid, ids: &[i64]) -> Result<Vec<i64>, DbError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.pool.get().await?;
        let rows = client.query_cached(&DONE, &[&ids, &token]).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Gives a failed row back to the queue for another attempt after
    /// `delay`, keeping its error. False when the lease is no longer ours.
    #[tracing::instrument(name = "db.defer", skip_all)]
    pub async fn defer(
        &self,
        token: Uuid,
        id: i64,
        delay: Duration,
        error: &str,
    ) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE claimcheck.pending_deletes
                    SET next_attempt_at = now() + make_interval(secs => $3),
                        leased_until = NULL, lease_token = NULL, last_error = $4
                  WHERE id = $1 AND lease_token = $2 AND dead_at IS NULL",
                &[&id, &token, &secs(delay), &error],
            )
            .await?;
        Ok(n == 1)
    }

    /// Parks a row as dead with its error: kept for operators, never retried
    /// by itself. False when the lease is no longer ours.
    #[tracing::instrument(name = "db.park_dead", skip_all)]
    pub async fn park_dead(&self, token: Uuid, id: i64, error: &str) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let announced = key_events("parked", EventType::ObjectDeleteDead);
        let sql = format!(
            "WITH parked AS (
                 UPDATE claimcheck.pending_deletes
                    SET dead_at = now(), leased_until = NULL, lease_token = NULL, last_error = $3
                  WHERE id = $1 AND lease_token = $2 AND dead_at IS NULL
              RETURNING object_key, reason, last_error
             ), announced AS ({announced})
             SELECT count(*) FROM parked"
        );
        let n: i64 = client
            .query_one(&sql, &[&id, &token, &error])
            .await?
            .try_get(0)?;
        Ok(n == 1)
    }

    /// Hands leased rows back untouched (a worker shutting down): they are
    /// due at once and this lease does not count as an attempt.
    #[tracing::instrument(name = "db.release", skip_all)]
    pub async fn release(&self, token: Uuid, ids: &[i64]) -> Result<u64, DbError> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(
                "UPDATE claimcheck.pending_deletes
                    SET next_attempt_at = now(), leased_until = NULL, lease_token = NULL,
                        attempts = greatest(attempts - 1, 0)
                  WHERE id = ANY($1) AND lease_token = $2 AND dead_at IS NULL",
                &[&ids, &token],
            )
            .await?)
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

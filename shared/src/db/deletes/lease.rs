//! Leases of the delete queue and the fenced writes of their outcomes.
//!
//! A lease is one statement ([`DeleteQueue::lease`]); every later change to
//! a leased row names the lease's token, so a worker whose lease ran out
//! changes nothing. The delete worker records a batch's done rows and takes
//! its next batch in one round trip ([`DeleteQueue::done_and_lease`]).

use std::{collections::HashMap, time::Duration};

use tokio_postgres::Row;
use uuid::Uuid;

use super::{delete_from_row, DeleteQueue};
use crate::db::{
    events::{key_events, EventType},
    secs, DbError,
};
use crate::domain::PendingDelete;

/// The lease (see [`DeleteQueue::lease`]). Its columns are named one by one,
/// so a column added to the table later does not change the result type of
/// a statement cached before. `live` names what holds a row's key right now
/// (the registry, an uploaded claim), if anything: the check rides on the
/// lease instead of costing a round trip of its own.
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
  RETURNING p.id, p.object_key, p.upload_id, p.reason, p.attempts, p.last_error, p.created_at,
            CASE WHEN EXISTS (SELECT 1 FROM claimcheck.objects o
                               WHERE o.object_key = p.object_key)
                 THEN 'a registry row'
                 WHEN EXISTS (SELECT 1 FROM claimcheck.upload_claims c
                               WHERE c.object_key = p.object_key AND c.status = 'uploaded')
                 THEN 'an uploaded claim'
            END AS live")
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

/// What a lease asks for: how many rows, for how long, and the attempts
/// after which a due row is parked instead of leased again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTerms {
    /// Rows at most (`CLAIMCHECK_DELETE_BATCH`).
    pub limit: u32,
    /// The visibility timeout (`CLAIMCHECK_DELETE_LEASE`).
    pub lease: Duration,
    /// `CLAIMCHECK_DELETE_MAX_ATTEMPTS`.
    pub max_attempts: u32,
}

/// Rows leased together, and the token that proves it.
#[derive(Debug, Clone)]
pub struct Lease {
    /// Fences [`DeleteQueue::done`], [`DeleteQueue::defer`] and friends.
    pub token: Uuid,
    /// The rows, each with its `attempts` already counting this lease.
    pub rows: Vec<PendingDelete>,
    /// Keys of `rows` that were live when leased, with what holds each (`a
    /// registry row`, `an uploaded claim`): never deleted, parked instead.
    pub live: HashMap<String, &'static str>,
    /// When the lease runs out, by this process's clock (measured from
    /// before the lease was asked for, so never later than the database's).
    pub expires: std::time::Instant,
}

/// The answers of [`DeleteQueue::done_and_lease`], each on its own: one may
/// fail while the other went through.
#[derive(Debug)]
pub struct DoneAndLease {
    /// What [`DeleteQueue::done`] answers.
    pub removed: Result<Vec<i64>, DbError>,
    /// What [`DeleteQueue::lease`] answers.
    pub next: Result<Lease, DbError>,
}

impl DeleteQueue {
    /// Leases up to `limit` due rows for `lease`, oldest due first.
    ///
    /// One statement: a CTE picks due rows with `FOR UPDATE SKIP LOCKED`
    /// (rows another worker is leasing right now are skipped, not waited for),
    /// then counts the attempt and hides each row until the lease runs out.
    /// A due row that has already been leased `max_attempts` times (its
    /// workers kept dying) is parked as dead here instead of leased again.
    /// The same statement says which leased keys are live ([`Lease::live`]).
    #[tracing::instrument(name = "db.lease", skip_all)]
    pub async fn lease(
        &self,
        limit: u32,
        lease: Duration,
        max_attempts: u32,
    ) -> Result<Lease, DbError> {
        let terms = LeaseTerms {
            limit,
            lease,
            max_attempts,
        };
        let client = self.pool.get().await?;
        lease_on(&client, terms).await
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
        done_on(&client, token, ids).await
    }

    /// [`done`](Self::done) for the lease `token`, then a new
    /// [`lease`](Self::lease), in one round trip: both statements go out
    /// pipelined on one connection and run in that order, each in its own
    /// implicit transaction, so the lease never sees the done rows and a
    /// failure of one leaves the other's answer intact.
    #[tracing::instrument(name = "db.done_and_lease", skip_all)]
    pub async fn done_and_lease(
        &self,
        token: Uuid,
        ids: &[i64],
        terms: LeaseTerms,
    ) -> Result<DoneAndLease, DbError> {
        let client = self.pool.get().await?;
        let done = async {
            if ids.is_empty() {
                Ok(Vec::new())
            } else {
                done_on(&client, token, ids).await
            }
        };
        let (removed, next) = tokio::join!(done, lease_on(&client, terms));
        Ok(DoneAndLease { removed, next })
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
}

/// The lease statement on `client`.
async fn lease_on(client: &crate::db::Client, terms: LeaseTerms) -> Result<Lease, DbError> {
    let expires = std::time::Instant::now() + terms.lease;
    let token = Uuid::new_v4();
    let max_attempts = i32::try_from(terms.max_attempts).unwrap_or(i32::MAX);
    // Cached per connection: the worker runs this once per batch, and
    // preparing it anew each time costs a round trip and a plan.
    let rows = client
        .query_cached(
            &LEASE,
            &[
                &i64::from(terms.limit),
                &secs(terms.lease),
                &token,
                &max_attempts,
            ],
        )
        .await?;
    let mut live = HashMap::new();
    for row in &rows {
        if let Some(holder) = live_holder(row)? {
            live.insert(row.try_get("object_key")?, holder);
        }
    }
    let rows = rows.iter().map(delete_from_row).collect::<Result<_, _>>()?;
    Ok(Lease {
        token,
        rows,
        live,
        expires,
    })
}

/// What the lease's `live` column says holds the row's key.
fn live_holder(row: &Row) -> Result<Option<&'static str>, DbError> {
    let live: Option<&str> = row.try_get("live")?;
    Ok(match live {
        None => None,
        Some("a registry row") => Some("a registry row"),
        Some("an uploaded claim") => Some("an uploaded claim"),
        Some(other) => return Err(DbError::Corrupt(format!("live holder {other:?}"))),
    })
}

/// The done statement on `client`.
async fn done_on(
    client: &crate::db::Client,
    token: Uuid,
    ids: &[i64],
) -> Result<Vec<i64>, DbError> {
    let rows = client.query_cached(&DONE, &[&ids, &token]).await?;
    rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
}

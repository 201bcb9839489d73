//! `claimcheck.webhook_endpoints` and `claimcheck.webhook_deliveries`: who
//! wants which events, and each event's delivery to each of them, leased
//! like delete-queue rows (one CTE, `FOR UPDATE SKIP LOCKED`, a lease token
//! fencing every outcome). The admin's statements on endpoints are in
//! [`endpoints`].

mod endpoints;

use std::time::Duration;

use crate::db::Pool;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    events::{event_from_row, Event},
    secs, DbError,
};

/// A registered receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Its id.
    pub id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// The event types it wants, or `*`.
    pub events: Vec<String>,
    /// What it is, for people.
    pub description: Option<String>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// A delivery leased for sending.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The delivery row.
    pub id: i64,
    /// Leases so far, this one included.
    pub attempts: i32,
    /// The receiver.
    pub endpoint_id: Uuid,
    /// Its URL.
    pub url: String,
    /// Its signing secret (`whsec_...`).
    pub secret: String,
    /// The event.
    pub event: Event,
}

/// Deliveries leased together.
#[derive(Debug, Clone)]
pub struct DeliveryLease {
    /// Fences every outcome to this lease.
    pub token: Uuid,
    /// The deliveries.
    pub rows: Vec<Delivery>,
}

/// Delivery rows by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryStats {
    /// Waiting to be sent now.
    pub due: i64,
    /// Being sent.
    pub leased: i64,
    /// Waiting after a failure.
    pub deferred: i64,
    /// Parked after too many failures.
    pub dead: i64,
    /// Delivered (until pruned).
    pub done: i64,
}

/// A delivery parked dead, for operators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadDelivery {
    /// The delivery row.
    pub id: i64,
    /// The receiver.
    pub endpoint_id: Uuid,
    /// Its URL.
    pub url: String,
    /// The event's id.
    pub event_id: i64,
    /// The event's type.
    pub event_type: String,
    /// Leases it had.
    pub attempts: i32,
    /// The last answer's status, if one came.
    pub last_status: Option<i32>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was parked.
    pub dead_at: DateTime<Utc>,
}

/// Webhook endpoints and deliveries in PostgreSQL.
#[derive(Clone, Debug)]
pub struct WebhookStore {
    pub(super) pool: Pool,
}

/// Leases at most `$5` due deliveries per endpoint, `$1` in all: a slow
/// receiver holds no more of a worker than its share. Rows leased `$4`
/// times without an outcome are parked dead.
const LEASE: &str = "WITH due AS (
        SELECT d.id, d.attempts FROM claimcheck.webhook_endpoints w
         CROSS JOIN LATERAL (
               SELECT id, attempts FROM claimcheck.webhook_deliveries
                WHERE endpoint_id = w.id AND done_at IS NULL AND dead_at IS NULL
                  AND next_attempt_at <= now()
                ORDER BY next_attempt_at
                LIMIT $5
                  FOR UPDATE SKIP LOCKED) d
         LIMIT $1
     ), parked AS (
        UPDATE claimcheck.webhook_deliveries p
           SET dead_at = now(), leased_until = NULL, lease_token = NULL,
               last_error = concat_ws(E'\\n', p.last_error,
                   'leased ' || p.attempts || ' times without an outcome')
          FROM due WHERE p.id = due.id AND due.attempts >= $4
     ), leased AS (
        UPDATE claimcheck.webhook_deliveries p
           SET attempts = p.attempts + 1,
               leased_until = now() + make_interval(secs => $2),
               next_attempt_at = now() + make_interval(secs => $2),
               lease_token = $3
          FROM due WHERE p.id = due.id AND due.attempts < $4
        RETURNING p.id, p.attempts, p.endpoint_id, p.event_id
     )
     SELECT l.id AS delivery_id, l.attempts, w.id AS endpoint_id, w.url, w.secret,
            e.id, e.type, e.occurred_at, e.owner, e.data
       FROM leased l
       JOIN claimcheck.webhook_endpoints w ON w.id = l.endpoint_id
       JOIN claimcheck.events e ON e.id = l.event_id";

impl WebhookStore {
    /// The store over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Leases up to `limit` due deliveries, at most `per_endpoint` of each
    /// endpoint, for `lease`.
    #[tracing::instrument(name = "db.lease_deliveries", skip_all)]
    pub async fn lease(
        &self,
        limit: i64,
        per_endpoint: i64,
        lease: Duration,
        max_attempts: u32,
    ) -> Result<DeliveryLease, DbError> {
        let client = self.pool.get().await?;
        let token = Uuid::new_v4();
        let max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        let rows = client
            .query_cached(
                LEASE,
                &[&limit, &secs(lease), &token, &max_attempts, &per_endpoint],
            )
            .await?;
        let rows = rows
            .iter()
            .map(|row| {
                Ok(Delivery {
                    id: row.try_get("delivery_id")?,
                    attempts: row.try_get("attempts")?,
                    endpoint_id: row.try_get("endpoint_id")?,
                    url: row.try_get("url")?,
                    secret: row.try_get("secret")?,
                    event: event_from_row(row)?,
                })
            })
            .collect::<Result<_, DbError>>()?;
        Ok(DeliveryLease { token, rows })
    }

    /// Records deliveries that succeeded (`(id, status)`), in one
    /// statement. Returns how many were still this lease's (a delivery whose
    /// lease ran out belongs to another worker now, which sends it again).
    #[tracing::instrument(name = "db.deliveries_done", skip_all)]
    pub async fn done_many(&self, token: Uuid, delivered: &[(i64, i32)]) -> Result<u64, DbError> {
        if delivered.is_empty() {
            return Ok(0);
        }
        let (ids, statuses): (Vec<i64>, Vec<i32>) = delivered.iter().copied().unzip();
        let client = self.pool.get().await?;
        Ok(client
            .execute_cached(
                "UPDATE claimcheck.webhook_deliveries d
                    SET done_at = now(), leased_until = NULL, lease_token = NULL,
                        last_status = x.status
                   FROM unnest($1::bigint[], $2::int[]) AS x(id, status)
                  WHERE d.id = x.id AND d.lease_token = $3
                    AND d.done_at IS NULL AND d.dead_at IS NULL",
                &[&ids, &statuses, &token],
            )
            .await?)
    }

    /// Records a failed attempt: the delivery is due again after `retry_in`,
    /// or parked dead when `retry_in` is `None`. False when the lease is no
    /// longer ours.
    pub async fn failed(
        &self,
        token: Uuid,
        id: i64,
        status: Option<i32>,
        error: &str,
        retry_in: Option<Duration>,
    ) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE claimcheck.webhook_deliveries
                    SET leased_until = NULL, lease_token = NULL, last_status = $3,
                        last_error = $4,
                        next_attempt_at = CASE WHEN $5::float8 IS NULL THEN next_attempt_at
                                               ELSE now() + make_interval(secs => $5) END,
                        dead_at = CASE WHEN $5::float8 IS NULL THEN now() END
                  WHERE id = $1 AND lease_token = $2 AND done_at IS NULL AND dead_at IS NULL",
                &[&id, &token, &status, &error, &retry_in.map(secs)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Dead deliveries, oldest first.
    pub async fn list_dead(&self, limit: i64) -> Result<Vec<DeadDelivery>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT d.id, d.endpoint_id, w.url, d.event_id, e.type, d.attempts,
                        d.last_status, d.last_error, d.dead_at
                   FROM claimcheck.webhook_deliveries d
                   JOIN claimcheck.webhook_endpoints w ON w.id = d.endpoint_id
                   JOIN claimcheck.events e ON e.id = d.event_id
                  WHERE d.dead_at IS NOT NULL ORDER BY d.dead_at, d.id LIMIT $1",
                &[&limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DeadDelivery {
                    id: r.try_get(0)?,
                    endpoint_id: r.try_get(1)?,
                    url: r.try_get(2)?,
                    event_id: r.try_get(3)?,
                    event_type: r.try_get(4)?,
                    attempts: r.try_get(5)?,
                    last_status: r.try_get(6)?,
                    last_error: r.try_get(7)?,
                    dead_at: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// Delivery rows by state, in one statement.
    pub async fn stats(&self) -> Result<DeliveryStats, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE done_at IS NULL AND dead_at IS NULL
                                           AND leased_until > now()),
                        count(*) FILTER (WHERE done_at IS NULL AND dead_at IS NULL
                                           AND (leased_until IS NULL OR leased_until <= now())
                                           AND next_attempt_at <= now()),
                        count(*) FILTER (WHERE done_at IS NULL AND dead_at IS NULL
                                           AND (leased_until IS NULL OR leased_until <= now())
                                           AND next_attempt_at > now()),
                        count(*) FILTER (WHERE dead_at IS NOT NULL),
                        count(*) FILTER (WHERE done_at IS NOT NULL)
                   FROM claimcheck.webhook_deliveries",
                &[],
            )
            .await?;
        Ok(DeliveryStats {
            leased: row.try_get(0)?,
            due: row.try_get(1)?,
            deferred: row.try_get(2)?,
            dead: row.try_get(3)?,
            done: row.try_get(4)?,
        })
    }
}

fn endpoint_from_row(row: &tokio_postgres::Row) -> Result<Endpoint, DbError> {
    Ok(Endpoint {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        events: row.try_get("events")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
    })
}

//! `claimcheck.events`: the transactional outbox.
//!
//! Every lifecycle statement inserts its event in the same statement or
//! transaction as its change (the claims' and the delete queue's modules
//! take the inserts from here: [`claim_events`], [`key_events`]; the SQL
//! functions write theirs in SQL). The worker's publisher then numbers the
//! events in the order their transactions finished ([`EventStore::publish`])
//! and fans them out to the webhook endpoints that want them.

use crate::db::Pool;
use serde_json::Value;

use super::DbError;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A claim was created (any protocol).
    UploadCreated,
    /// A claim became `uploaded` (also by the sweeper's recovery).
    UploadCompleted,
    /// The uploader dropped it.
    UploadDiscarded,
    /// The sweeper took it (pending too long, or never consumed).
    UploadExpired,
    /// A claim moved into the registry.
    ObjectConsumed,
    /// A registry row was removed and its delete queued.
    ObjectDeleteScheduled,
    /// The worker deleted the object from the store.
    ObjectDeleted,
    /// A delete row was parked dead.
    ObjectDeleteDead,
    /// An upload was refused for a quota.
    QuotaExceeded,
}

impl EventType {
    /// Every type, as the contract lists them.
    pub const ALL: [EventType; 9] = [
        EventType::UploadCreated,
        EventType::UploadCompleted,
        EventType::UploadDiscarded,
        EventType::UploadExpired,
        EventType::ObjectConsumed,
        EventType::ObjectDeleteScheduled,
        EventType::ObjectDeleted,
        EventType::ObjectDeleteDead,
        EventType::QuotaExceeded,
    ];

    /// The type as stored and sent (`upload.created`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UploadCreated => "upload.created",
            EventType::UploadCompleted => "upload.completed",
            EventType::UploadDiscarded => "upload.discarded",
            EventType::UploadExpired => "upload.expired",
            EventType::ObjectConsumed => "object.consumed",
            EventType::ObjectDeleteScheduled => "object.delete_scheduled",
            EventType::ObjectDeleted => "object.deleted",
            EventType::ObjectDeleteDead => "object.delete_dead",
            EventType::QuotaExceeded => "quota.exceeded",
        }
    }

    /// The type of that name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// The insert of one `kind` event per row of the CTE `rows`, whose rows have
/// a claim's columns (`owner`, `object_key`, ...): for a statement
/// `WITH rows AS (... RETURNING ...), announced AS (<this>) SELECT ...`.
pub(crate) fn claim_events(rows: &str, kind: EventType) -> String {
    format!(
        "INSERT INTO claimcheck.events (type, owner, data)
         SELECT '{}', r.owner, claimcheck.claim_json(to_jsonb(r)) FROM {rows} r",
        kind.as_str()
    )
}

/// The insert of one `kind` event per row of the CTE `rows`, whose rows are
/// delete-queue rows (`object_key`, `reason`, `last_error`): the key, the
/// reason and the error.
pub(crate) fn key_events(rows: &str, kind: EventType) -> String {
    format!(
        "INSERT INTO claimcheck.events (type, owner, data)
         SELECT '{}', NULL, jsonb_strip_nulls(jsonb_build_object(
                    'key', r.object_key, 'reason', r.reason, 'last_error', r.last_error))
           FROM {rows} r",
        kind.as_str()
    )
}

/// Inserts one event of its own through `client` (for what no lifecycle
/// statement announces: a refused start's `quota.exceeded`).
pub(crate) async fn insert_in(
    client: &impl super::pool::Exec,
    kind: EventType,
    owner: Option<&str>,
    data: &Value,
) -> Result<(), DbError> {
    client
        .execute(
            "INSERT INTO claimcheck.events (type, owner, data) VALUES ($1, $2, $3)",
            &[&kind.as_str(), &owner, data],
        )
        .await?;
    Ok(())
}

/// A published event, as receivers get it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique; increases with commit order.
    pub id: i64,
    /// What happened.
    pub kind: EventType,
    /// When.
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    /// Whose upload or object (none for a key alone).
    pub owner: Option<String>,
    /// The claim, the registry object, or the key.
    pub data: Value,
}

impl Event {
    /// The event as JSON: `{"id", "type", "occurred_at", "owner", "data"}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id.to_string(),
            "type": self.kind.as_str(),
            "occurred_at": self.occurred_at,
            "owner": self.owner,
            "data": self.data,
        })
    }
}

/// What one publishing step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    /// Events numbered.
    pub events: u64,
    /// Deliveries made for them.
    pub deliveries: u64,
}

/// The outbox.
#[derive(Clone, Debug)]
pub struct EventStore {
    pool: Pool,
}

/// Only one publisher numbers events at a time (a transaction-level
/// advisory lock): two would interleave their numbers and commit out of
/// order.
const PUBLISHER_LOCK: &str =
    "SELECT pg_try_advisory_xact_lock(hashtextextended('claimcheck.events.publisher', 0))";

/// Numbers up to `$1` events whose transactions are older than every
/// transaction still writing in this database, in the order of those
/// transactions, and makes their deliveries.
///
/// The horizon: the oldest transaction id of another session of this
/// database (`pg_stat_activity.backend_xid`, widened to 64 bits against the
/// snapshot's next id), or the next id when none writes. Sessions of other
/// databases share the id counter but never insert events here, so the
/// cluster-wide xmin would hold publishing back for nothing. When the role
/// cannot see other roles' sessions (no `pg_read_all_stats`), the
/// cluster-wide xmin is the safe fallback.
const PUBLISH: &str = "WITH ref AS (
        SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS next,
               pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS cluster_xmin
     ), sessions AS (
        SELECT bool_or(a.query = '<insufficient privilege>') AS blind,
               min(((r.next >> 32) << 32) + a.backend_xid::text::bigint
                   - CASE WHEN ((r.next >> 32) << 32) + a.backend_xid::text::bigint > r.next
                          THEN 4294967296 ELSE 0 END) AS oldest
          FROM pg_stat_activity a CROSS JOIN ref r
         WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
     ), horizon AS (
        SELECT CASE WHEN s.blind THEN r.cluster_xmin ELSE coalesce(s.oldest, r.next) END AS h
          FROM sessions s CROSS JOIN ref r
     ), ready AS (
        SELECT seq, nextval('claimcheck.event_ids') AS id
          FROM (SELECT e.seq FROM claimcheck.events e CROSS JOIN horizon
                 WHERE e.id IS NULL AND e.txid::text::bigint < horizon.h
                 ORDER BY e.txid, e.seq
                 LIMIT $1) AS ordered
     ), numbered AS (
        UPDATE claimcheck.events e SET id = ready.id, published_at = now()
          FROM ready WHERE e.seq = ready.seq
        RETURNING e.id, e.type
     ), fanned AS (
        INSERT INTO claimcheck.webhook_deliveries (event_id, endpoint_id)
        SELECT n.id, w.id FROM numbered n
          JOIN claimcheck.webhook_endpoints w ON n.type = ANY (w.events) OR '*' = ANY (w.events)
        RETURNING 1
     )
     SELECT (SELECT count(*) FROM numbered), (SELECT count(*) FROM fanned)";

impl EventStore {
    /// The outbox over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Numbers up to `limit` committed events and makes their deliveries,
    /// in one transaction. Nothing when another publisher is at it.
    #[tracing::instrument(name = "db.publish_events", skip_all)]
    pub async fn publish(&self, limit: i64) -> Result<Published, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let locked: bool = tx.query_one(PUBLISHER_LOCK, &[]).await?.try_get(0)?;
        if !locked {
            return Ok(Published::default());
        }
        let row = tx.query_one(PUBLISH, &[&limit]).await?;
        let (events, deliveries): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        tx.commit().await?;
        Ok(Published {
            events: events as u64,
            deliveries: deliveries as u64,
        })
    }

    /// Published events after id `after`, oldest first (for readers and
    /// tests).
    pub async fn list_after(&self, after: i64, limit: i64) -> Result<Vec<Event>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, type, occurred_at, owner, data FROM claimcheck.events
                  WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &limit],
            )
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Removes published events older than `retention` whose deliveries are
    /// all done (their delivery rows go with them). Returns how many.
    #[tracing::instrument(name = "db.prune_events", skip_all)]
    pub async fn prune(&self, retention: std::time::Duration, limit: i64) -> Result<u64, DbError> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(
                "DELETE FROM claimcheck.events WHERE seq IN (
                     SELECT e.seq FROM claimcheck.events e
                      WHERE e.id IS NOT NULL
                        AND e.published_at < now() - make_interval(secs => $1)
                        AND NOT EXISTS (SELECT 1 FROM claimcheck.webhook_deliveries d
                                         WHERE d.event_id = e.id AND d.done_at IS NULL)
                      LIMIT $2)",
                &[&super::secs(retention), &limit],
            )
            .await?)
    }
}

/// Maps `id, type, occurred_at, owner, data`.
pub(crate) fn event_from_row(row: &tokio_postgres::Row) -> Result<Event, DbError> {
    let kind: String = row.try_get("type")?;
    Ok(Event {
        id: row.try_get("id")?,
        kind: EventType::parse(&kind)
            .ok_or_else(|| DbError::Corrupt(format!("event type {kind:?}")))?,
        occurred_at: row.try_get("occurred_at")?,
        owner: row.try_get("owner")?,
        data: row.try_get("data")?,
    })
}

//! PostgreSQL: the connection pool, migrations, and the stores.
//!
//! All SQL of the service is in this module, one submodule per table:
//! [`claims`] (`upload_claims`), [`parts`] (`upload_parts`), [`objects`]
//! (`objects`, and the SQL functions `consume_claims` and
//! `schedule_delete`), [`deletes`] (`pending_deletes`), [`tokens`]
//! (`api_tokens`), [`tails`] (`upload_tails`, and the commit of an
//! append), [`events`] (`events`, the outbox), [`webhooks`]
//! (`webhook_endpoints`, `webhook_deliveries`), [`owners`] (`owner_quotas`,
//! `owner_daily_usage`), [`audit_log`] (`audit_log`), [`settings`];
//! [`listen`] is the LISTEN connection. Code
//! outside calls their functions and never holds a statement or drives a
//! transaction itself (except [`crate::files::Files`], which works inside
//! its caller's transaction, through [`ObjectRegistry`]).
//!
//! Which module owns a statement: the table it writes; for a read, the
//! table whose rows it returns. A table read only in a join, an `EXISTS`
//! or a `UNION` arm does not move a statement, and a write to another table
//! in the same transaction is a call into that table's module
//! ([`DeleteQueue::enqueue_in`], [`PartStore::delete_by_claim_in`]). Two
//! reads return keys of several tables alike: the delete worker's live-key
//! check is the queue's (part of [`DeleteQueue::lease`], it guards the
//! queue's deletes), and the audit's accounting is the registry's
//! ([`ObjectRegistry::unaccounted`]). Columns are always named, never `*`:
//! a column added later must not change what a cached statement returns.
//!
//! Every lifecycle change writes its event into `claimcheck.events` in the
//! same statement or transaction (the outbox): the statements take the
//! insert from [`events`] ([`events::claim_events`], [`events::key_events`]),
//! so the event types and payloads are written in one place.
//!
//! Every statement whose outcome can race another pod's is conditional
//! (`WHERE status = 'pending' AND ...`) and its row count is read: the stores
//! return what happened (an outcome enum), not just "ok". No transaction is
//! ever held open across object-store I/O.

pub mod audit_log;
pub mod claims;
pub mod deletes;
pub mod events;
pub mod listen;
pub mod objects;
pub mod owners;
pub mod parts;
pub mod pool;
pub mod settings;
pub mod tails;
pub mod tls;
pub mod tokens;
pub mod webhooks;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;

pub use audit_log::{Actor, ActorKind, AuditAction, AuditEntry, AuditLog, AuditQuery};
pub use claims::ClaimStore;
pub use deletes::DeleteQueue;
pub use events::{Event, EventStore, EventType};
pub use objects::{Adopter, ConsumeError, ObjectRegistry, ScheduleError};
pub use owners::{OwnerQuota, Owners, Quota, QuotaChange, QuotaExceeded, QuotaOverrides, Quotas};
pub use parts::PartStore;
pub use pool::{Client, Pool, Statements, Transaction};
pub use tails::{AppendCommit, Committed, TailStore};
pub use tls::{PgConnection, PgTarget, SslMode, TlsConfigError};
pub use webhooks::{Delivery, DeliveryLease, DeliveryStats, Endpoint, WebhookStore};

/// A database call that failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had from the pool (PostgreSQL down or saturated).
    #[error("database unavailable: {}", with_causes(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("database error: {}", with_causes(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// The database returned something this version does not understand.
    #[error("unexpected data in the database: {0}")]
    Corrupt(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
    /// The connection string cannot be used (syntax, `sslmode`,
    /// `sslrootcert`): no retry will help.
    #[error("database connection settings: {0}")]
    Config(#[from] TlsConfigError),
}

impl DbError {
    /// Whether the database could not be reached (answer 503, retry later),
    /// as opposed to a statement it refused.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Pool(_) => true,
            DbError::Postgres(e) => {
                e.is_closed()
                    || e.code().is_none_or(|code| {
                        // No SQLSTATE: the connection failed. Class 08 and 57P
                        // (admin shutdown, cannot connect now) are outages too,
                        // and so is 25006: the server refused a write as
                        // read-only, a primary fenced or demoted in a failover
                        // (the connection is then not pooled again, see
                        // [`pool::Client`]), so a retry reaches the new one.
                        code.code().starts_with("08")
                            || code.code().starts_with("57P")
                            || code == &SqlState::READ_ONLY_SQL_TRANSACTION
                    })
            }
            DbError::Corrupt(_) | DbError::Migration(_) | DbError::Config(_) => false,
        }
    }

    /// The SQLSTATE, when PostgreSQL sent one.
    pub fn sql_state(&self) -> Option<&SqlState> {
        match self {
            DbError::Postgres(e) => e.code(),
            _ => None,
        }
    }
}

/// `e` followed by its causes (`outer: inner: innermost`).
///
/// tokio-postgres and deadpool keep why a connection failed (refused, a
/// certificate that does not verify) in the source chain, out of their own
/// message, which alone says only "error performing TLS handshake". The chain
/// stops at PostgreSQL's own error for a statement: its DETAIL can quote row
/// values, which stay out of logs and answers as before.
pub(crate) fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        if cause.is::<tokio_postgres::error::DbError>() {
            break;
        }
        let text = cause.to_string();
        // deadpool repeats its cause's message in its own.
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        next = cause.source();
    }
    message
}

/// Opens a pool of at most `max_size` connections to `url`, with the TLS its
/// `sslmode` and `sslrootcert` ask for ([`tls`]).
///
/// Waiting for a connection, opening one and recycling one each time out
/// (deadpool waits forever by default), so a PostgreSQL outage turns into a
/// quick 503 instead of requests that hang.
pub fn connect(url: &str, max_size: usize) -> Result<Pool, DbError> {
    connect_with(url, max_size, Statements::Prepared)
}

/// [`connect`], with statements going out as `statements` says
/// (`CLAIMCHECK_DB_PREPARED_STATEMENTS`; see [`pool`]).
pub fn connect_with(url: &str, max_size: usize, statements: Statements) -> Result<Pool, DbError> {
    let target = PgTarget::parse(url)?;
    let manager = Manager::from_config(
        target.config,
        target.tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let timeout = Some(Duration::from_secs(5));
    let inner = deadpool_postgres::Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(timeout)
        .create_timeout(timeout)
        .recycle_timeout(timeout)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Corrupt(format!("cannot build the pool: {e}")))?;
    Ok(Pool::new(inner, statements))
}

/// Opens one connection to `url` outside the pool (migrations, the LISTEN
/// connection, `dev`), with the same TLS as [`connect`]. The caller drives
/// the returned [`PgConnection`] (spawn it, or poll it for notifications).
pub async fn connect_one(url: &str) -> Result<(tokio_postgres::Client, PgConnection), DbError> {
    Ok(PgTarget::parse(url)?.connect().await?)
}

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Key of the advisory lock held while migrating (an arbitrary constant:
/// "claimcheck" in ASCII, truncated to 8 bytes).
const MIGRATION_LOCK: i64 = 0x636c_6169_6d63_6865;

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations applied by this call, as `V<version>__<name>`.
    pub applied: Vec<String>,
}

/// Applies the embedded migrations that `url`'s database lacks.
///
/// Safe when several pods run it at once: refinery takes no lock of its own,
/// so the run happens under a session-level advisory lock on its own
/// connection; a pod that waited finds nothing left to apply.
pub async fn migrate(url: &str) -> Result<MigrationReport, DbError> {
    let (mut client, connection) = connect_one(url).await?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "migration connection failed");
        }
    });
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = run_locked(&mut client).await;
    // The lock goes with the session anyway; unlock explicitly so a pooled
    // connection (pgbouncer in session mode) does not keep it.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    drop(client);
    let _ = driver.await;
    let report = result?;
    unlocked?;
    Ok(report)
}

async fn run_locked(client: &mut tokio_postgres::Client) -> Result<MigrationReport, DbError> {
    // The history table lives in our schema, which must exist before refinery
    // creates the table (it does so before running V1).
    client
        .batch_execute("CREATE SCHEMA IF NOT EXISTS claimcheck")
        .await?;
    let report = embedded::migrations::runner()
        .set_migration_table_name("claimcheck.refinery_schema_history")
        .run_async(client)
        .await?;
    Ok(MigrationReport {
        applied: report
            .applied_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect(),
    })
}

/// Creates the database `name` through `admin_url` (a connection to
/// another database of the cluster) unless it exists (`dev`'s private
/// cluster).
///
/// # Panics
///
/// When `name` is not a plain lower-case identifier (it is written into the
/// statement as it is).
pub async fn create_database_if_missing(admin_url: &str, name: &str) -> Result<(), DbError> {
    assert!(
        listen::is_plain_identifier(name),
        "database name {name:?} is not a plain identifier"
    );
    let (client, connection) = connect_one(admin_url).await?;
    tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
    }
    Ok(())
}

/// Whether PostgreSQL answers a trivial query through the pool (`/readyz`).
pub async fn ping(pool: &Pool) -> Result<(), DbError> {
    let client = pool.get().await?;
    client.batch_execute("SELECT 1").await?;
    Ok(())
}

/// A slice of the key space, as the audit compares the bucket with the
/// database: keys under `prefix` in `(after, upto]`, at most `limit` of
/// them, in bytewise order (as S3 lists them).
#[derive(Debug, Clone, Copy)]
pub struct KeyRange<'a> {
    /// Only keys starting with this.
    pub prefix: &'a str,
    /// Only keys after this one (`None`: from the start).
    pub after: Option<&'a str>,
    /// Only keys up to this one, included (`None`: to the end).
    pub upto: Option<&'a str>,
    /// At most this many keys.
    pub limit: i64,
}

/// The condition and order of a [`KeyRange`] over `object_key`, for the
/// tables' own statements ([`keys_in_range`] binds `$1` to `$4`). Bytewise
/// (`COLLATE "C"`), as the listing's; V3 indexes both tables for it.
pub(crate) const KEY_RANGE: &str = "starts_with(object_key, $1)
        AND ($2::text IS NULL OR object_key COLLATE \"C\" > $2)
        AND ($3::text IS NULL OR object_key COLLATE \"C\" <= $3)
      ORDER BY object_key COLLATE \"C\" LIMIT $4";

/// Runs `sql`, a table's `SELECT object_key ... WHERE ... {KEY_RANGE}`,
/// over `range`.
pub(crate) async fn keys_in_range(
    pool: &Pool,
    sql: &str,
    range: &KeyRange<'_>,
) -> Result<Vec<String>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            sql,
            &[&range.prefix, &range.after, &range.upto, &range.limit],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Seconds as PostgreSQL's `interval`-building float (`make_interval(secs => $n)`).
pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

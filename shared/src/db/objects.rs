//! The objects registry: live objects that business code adopted.
//!
//! Consume and schedule-delete are the SQL functions of the contract
//! (`claimcheck.consume_claims`, `claimcheck.schedule_delete`); this module
//! calls them, so SQL callers and Rust callers share one implementation.

use deadpool_postgres::Pool;
use tokio_postgres::{error::SqlState, GenericClient, Row};

use super::DbError;
use crate::domain::{DeleteReason, RegistryObject};

/// Why a consume consumed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// These keys are unknown, pending or another owner's.
    #[error("claims not found, pending or owned by someone else: {}", .0.join(", "))]
    Missing(Vec<String>),
    /// A delete scheduled with the consume was refused (see
    /// [`crate::files::Files::replace`]).
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Why a delete was not scheduled (nothing was queued).
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The key is outside the service's key space (`CLAIMCHECK_KEY_PREFIX`
    /// then `pub/` or `priv/`), or the reason is not a business reason.
    #[error("{0}")]
    Invalid(String),
    /// The key is still an upload claim: its uploader discards it, or it
    /// expires.
    #[error("{0}")]
    LiveClaim(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The objects registry in PostgreSQL.
#[derive(Clone, Debug)]
pub struct ObjectRegistry {
    pool: Pool,
}

impl ObjectRegistry {
    /// A registry over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Consumes the owner's uploaded claims for `keys` inside the caller's
    /// transaction `tx`: all of them, or none and [`ConsumeError::Missing`].
    ///
    /// Runs in a savepoint, so a refused consume leaves the caller's
    /// transaction usable (PostgreSQL would otherwise abort all of it).
    #[tracing::instrument(name = "db.consume_in", skip_all)]
    pub async fn consume_in(
        tx: &mut tokio_postgres::Transaction<'_>,
        owner: &str,
        keys: &[String],
    ) -> Result<Vec<RegistryObject>, ConsumeError> {
        let savepoint = tx
            .savepoint("claimcheck_consume")
            .await
            .map_err(DbError::from)?;
        let result = savepoint
            .query(
                "SELECT * FROM claimcheck.consume_claims($1, $2)",
                &[&owner, &keys],
            )
            .await;
        match result {
            Ok(rows) => {
                savepoint.commit().await.map_err(DbError::from)?;
                Ok(rows.iter().map(object_from_row).collect::<Result<_, _>>()?)
            }
            Err(e) if e.code() == Some(&SqlState::NO_DATA_FOUND) => {
                savepoint.rollback().await.map_err(DbError::from)?;
                Err(ConsumeError::Missing(missing_keys(&e)))
            }
            Err(e) => Err(ConsumeError::Db(e.into())),
        }
    }

    /// Removes the registry row of `key` (if any) and queues its delete,
    /// inside the caller's transaction. Returns the queue row's id.
    #[tracing::instrument(name = "db.schedule_delete_in", skip_all)]
    pub async fn schedule_delete_in(
        client: &impl GenericClient,
        key: &str,
        reason: DeleteReason,
    ) -> Result<i64, ScheduleError> {
        let result = client
            .query_one(
                "SELECT claimcheck.schedule_delete($1, $2)",
                &[&key, &reason.as_str()],
            )
            .await;
        let message = |e: &tokio_postgres::Error| {
            e.as_db_error()
                .map_or_else(|| e.to_string(), |db| db.message().to_owned())
        };
        match result {
            Ok(row) => Ok(row.try_get(0).map_err(DbError::from)?),
            Err(e) if e.code() == Some(&SqlState::INVALID_PARAMETER_VALUE) => {
                Err(ScheduleError::Invalid(message(&e)))
            }
            Err(e) if e.code() == Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) => {
                Err(ScheduleError::LiveClaim(message(&e)))
            }
            Err(e) => Err(ScheduleError::Db(e.into())),
        }
    }

    /// The registry row of a live object.
    pub async fn get(&self, key: &str) -> Result<Option<RegistryObject>, DbError> {
        let client = self.pool.get().await?;
        client
            .query_opt(
                "SELECT * FROM claimcheck.objects WHERE object_key = $1",
                &[&key],
            )
            .await?
            .as_ref()
            .map(object_from_row)
            .transpose()
    }
}

/// The keys `consume_claims` named in its error's JSON detail.
fn missing_keys(e: &tokio_postgres::Error) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Detail {
        missing: Vec<String>,
    }
    e.as_db_error()
        .and_then(|db| db.detail())
        .and_then(|d| serde_json::from_str::<Detail>(d).ok())
        .map(|d| d.missing)
        .unwrap_or_default()
}

pub(crate) fn object_from_row(row: &Row) -> Result<RegistryObject, DbError> {
    Ok(RegistryObject {
        key: row.try_get("object_key")?,
        owner: row.try_get("owner")?,
        size: row.try_get("size")?,
        content_type: row.try_get("content_type")?,
        filename: row.try_get("filename")?,
        sha256: row.try_get("sha256")?,
        public: row.try_get("public")?,
        created_at: row.try_get("created_at")?,
        consumed_at: row.try_get("consumed_at")?,
    })
}

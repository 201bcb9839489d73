//! Adoption: consuming claims into the registry and scheduling deletes,
//! through the SQL functions, inside a caller's transaction (the `_in`
//! functions, for [`crate::files::Files`]) or in one of their own (for the
//! HTTP API, whose handlers hold no transaction).

use std::{collections::BTreeSet, time::Duration};

use tokio_postgres::{error::SqlState, GenericClient};

use super::{object_from_row, ObjectRegistry, COLUMNS};
use crate::db::{audit_log::Actor, secs, DbError};
use crate::domain::{DeleteReason, RegistryObject};

/// Who adopts, for the SQL functions: the audit log's actor and, for an
/// owner-bound token, the owners it may act for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adopter {
    /// The audit log's actor; `None`: the SQL caller (`sql` and the
    /// session's role), as for a direct call of the SQL functions.
    pub actor: Option<Actor>,
    /// The owners whose claims and objects it may touch; `None`: every
    /// owner's. Another owner's key answers as an unknown one.
    pub owners: Option<Vec<String>>,
}

impl Adopter {
    /// `actor` acting for every owner.
    pub fn new(actor: Actor) -> Self {
        Self {
            actor: Some(actor),
            owners: None,
        }
    }

    /// Only for `owners` (`None`: every owner).
    pub fn for_owners(mut self, owners: Option<Vec<String>>) -> Self {
        self.owners = owners;
        self
    }

    fn actor_json(&self) -> Option<serde_json::Value> {
        self.actor.as_ref().map(Actor::to_json)
    }
}

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
    /// The key is another owner's, for an [`Adopter`] bound to owners.
    #[error("{0}")]
    NotFound(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl ObjectRegistry {
    /// Consumes the owner's uploaded claims for `keys` inside the caller's
    /// transaction `tx`: all of them, or none and [`ConsumeError::Missing`].
    ///
    /// Runs in a savepoint, so a refused consume leaves the caller's
    /// transaction usable (PostgreSQL would otherwise abort all of it).
    #[tracing::instrument(name = "db.consume_in", skip_all)]
    pub async fn consume_in(
        tx: &mut tokio_postgres::Transaction<'_>,
        by: &Adopter,
        owner: &str,
        keys: &[String],
    ) -> Result<Vec<RegistryObject>, ConsumeError> {
        let savepoint = tx
            .savepoint("claimcheck_consume")
            .await
            .map_err(DbError::from)?;
        let result = savepoint
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM claimcheck.consume_claims_as(
                         coalesce($1, claimcheck.sql_actor()), $2, $3, $4)"
                ),
                &[&by.actor_json(), &by.owners, &owner, &keys],
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
        by: &Adopter,
        key: &str,
        reason: DeleteReason,
    ) -> Result<i64, ScheduleError> {
        let result = client
            .query_one(
                "SELECT claimcheck.schedule_delete_as(
                     coalesce($1, claimcheck.sql_actor()), $2, $3, $4)",
                &[&by.actor_json(), &by.owners, &key, &reason.as_str()],
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
            Err(e) if e.code() == Some(&SqlState::NO_DATA_FOUND) => {
                Err(ScheduleError::NotFound(message(&e)))
            }
            Err(e) => Err(ScheduleError::Db(e.into())),
        }
    }

    /// The registry rows of `keys` when every one of them is a live object
    /// of `owner` consumed within `window`, read through `client` (a
    /// caller's transaction); `None` otherwise, and for an owner `by` may
    /// not act for. Keys are de-duplicated.
    ///
    /// This is how a retried consume (whose first answer was lost) is told
    /// apart from a consume of claims that are really missing. The SQL
    /// function has no such leniency on purpose: inside one transaction
    /// there is nothing to retry.
    pub async fn consumed_within_in(
        client: &impl GenericClient,
        by: &Adopter,
        owner: &str,
        keys: &[String],
        window: Duration,
    ) -> Result<Option<Vec<RegistryObject>>, DbError> {
        let distinct: BTreeSet<&String> = keys.iter().collect();
        let keys: Vec<&String> = distinct.into_iter().collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM claimcheck.objects
              WHERE object_key = ANY ($1) AND owner = $2
                AND ($4::text[] IS NULL OR owner = ANY ($4))
                AND consumed_at > now() - make_interval(secs => $3)
              ORDER BY object_key"
        );
        let rows = client
            .query(&sql, &[&keys, &owner, &secs(window), &by.owners])
            .await?;
        if rows.len() != keys.len() {
            return Ok(None);
        }
        rows.iter()
            .map(object_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Consumes the owner's uploaded claims for `keys` in a transaction of
    /// its own, all or none, and returns the objects by key. A retry of a
    /// consume that committed already (its answer was lost: every key is
    /// the owner's live object, consumed within `window`) gets the same
    /// objects again instead of [`ConsumeError::Missing`].
    #[tracing::instrument(name = "db.consume_or_replay", skip_all)]
    pub async fn consume_or_replay(
        &self,
        by: &Adopter,
        owner: &str,
        keys: &[String],
        window: Duration,
    ) -> Result<Vec<RegistryObject>, ConsumeError> {
        let mut client = self.pool.get().await.map_err(DbError::from)?;
        let mut tx = client.transaction().await.map_err(DbError::from)?;
        let mut objects = match Self::consume_in(&mut tx, by, owner, keys).await {
            Err(ConsumeError::Missing(missing)) => {
                // The savepoint rolled back: the transaction is usable for
                // the look at what an earlier consume left.
                Self::consumed_within_in(&*tx, by, owner, keys, window)
                    .await?
                    .ok_or(ConsumeError::Missing(missing))?
            }
            other => other?,
        };
        tx.commit().await.map_err(DbError::from)?;
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// Schedules every delete of `items` in one transaction of its own
    /// ([`schedule_delete_in`](Self::schedule_delete_in) each): all of them,
    /// or, at the first refusal, none. Returns how many were queued.
    #[tracing::instrument(name = "db.schedule_deletes", skip_all)]
    pub async fn schedule_deletes(
        &self,
        by: &Adopter,
        items: &[(String, DeleteReason)],
    ) -> Result<usize, ScheduleError> {
        let mut client = self.pool.get().await.map_err(DbError::from)?;
        let tx = client.transaction().await.map_err(DbError::from)?;
        for (key, reason) in items {
            // A refusal drops the transaction: nothing of `items` is queued.
            Self::schedule_delete_in(&*tx, by, key, *reason).await?;
        }
        tx.commit().await.map_err(DbError::from)?;
        Ok(items.len())
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

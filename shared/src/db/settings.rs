//! `claimcheck.settings`: configuration the SQL functions need and only the
//! processes know.

use crate::db::Pool;

use super::DbError;

/// Why the key prefix could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum PrefixError {
    /// The database holds another prefix: this process is configured for
    /// another deployment's keys.
    #[error(
        "CLAIMCHECK_KEY_PREFIX is {configured:?} but this database's service uses {recorded:?} \
         (claimcheck.settings); fix the setting, or change the row on purpose"
    )]
    Mismatch {
        /// This process's prefix.
        configured: String,
        /// The database's.
        recorded: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Records `prefix` as the service's key prefix (`claimcheck.schedule_delete`
/// refuses keys outside it), unless the database holds another one already.
pub async fn record_key_prefix(pool: &Pool, prefix: &str) -> Result<(), PrefixError> {
    let client = pool.get().await.map_err(DbError::from)?;
    let row = client
        .query_one(
            "WITH set AS (
                 UPDATE claimcheck.settings SET value = $1
                  WHERE name = 'key_prefix' AND (value IS NULL OR value = $1)
              RETURNING value
             )
             SELECT (SELECT value FROM set),
                    (SELECT value FROM claimcheck.settings WHERE name = 'key_prefix')",
            &[&prefix],
        )
        .await
        .map_err(DbError::from)?;
    let set: Option<String> = row.try_get(0).map_err(DbError::from)?;
    let recorded: Option<String> = row.try_get(1).map_err(DbError::from)?;
    match (set, recorded) {
        (Some(_), _) => Ok(()),
        (None, recorded) => Err(PrefixError::Mismatch {
            configured: prefix.to_owned(),
            recorded: recorded.unwrap_or_default(),
        }),
    }
}

/// [`record_key_prefix`] at a process's start: a mismatch stops the
/// process; an unreachable database does not (the process must come up
/// during an outage, and the first start after the outage records it).
pub async fn record_key_prefix_at_start(pool: &Pool, prefix: &str) -> Result<(), PrefixError> {
    match record_key_prefix(pool, prefix).await {
        Err(PrefixError::Db(e)) if e.is_unavailable() => {
            tracing::warn!(error = %e, "could not record the key prefix now");
            Ok(())
        }
        other => other,
    }
}

//! `claimcheck.objects`: the registry of live objects that business code
//! adopted.
//!
//! Consume and schedule-delete are the SQL functions of the contract
//! (`claimcheck.consume_claims`, `claimcheck.schedule_delete`); `adopt`
//! calls them, inside a caller's transaction or in one of its own, so SQL
//! callers and Rust callers share one implementation. `audit` holds the
//! audit's reads: the registry's keys, and which keys nothing accounts for.

mod adopt;
mod audit;

use crate::db::Pool;
use tokio_postgres::Row;

use super::DbError;
use crate::domain::RegistryObject;

pub use adopt::{Adopter, ConsumeError, ScheduleError};

/// The columns [`object_from_row`] reads, named one by one (also for the
/// rows `consume_claims` returns): a column added to the table later does
/// not change what a statement returns.
pub(crate) const COLUMNS: &str =
    "object_key, owner, size, content_type, filename, sha256, public, created_at, consumed_at";

/// The objects registry in PostgreSQL.
#[derive(Clone, Debug)]
pub struct ObjectRegistry {
    pub(super) pool: Pool,
}

impl ObjectRegistry {
    /// A registry over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// The registry row of a live object.
    pub async fn get(&self, key: &str) -> Result<Option<RegistryObject>, DbError> {
        let client = self.pool.get().await?;
        client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM claimcheck.objects WHERE object_key = $1"),
                &[&key],
            )
            .await?
            .as_ref()
            .map(object_from_row)
            .transpose()
    }
}

/// Maps a row selected with [`COLUMNS`].
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

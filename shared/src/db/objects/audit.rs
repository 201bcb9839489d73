//! The audit's reads over the registry: its keys in a key range, and which
//! listed keys nothing accounts for.

use super::ObjectRegistry;
use crate::db::{keys_in_range, DbError, KeyRange, KEY_RANGE};

impl ObjectRegistry {
    /// The registry's keys in `range` (see [`KeyRange`]).
    pub async fn keys_between(&self, range: &KeyRange<'_>) -> Result<Vec<String>, DbError> {
        let sql = format!("SELECT object_key FROM claimcheck.objects WHERE {KEY_RANGE}");
        keys_in_range(&self.pool, &sql, range).await
    }

    /// Those of `keys` that no claim, registry row or delete-queue row
    /// names, in key order.
    ///
    /// It reads all three tables but answers one question, whether a stored
    /// object is live or on its way out, and the registry is the account of
    /// live objects: so it lives here.
    pub async fn unaccounted(&self, keys: &[String]) -> Result<Vec<String>, DbError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT k FROM unnest($1::text[]) AS k
                  WHERE NOT EXISTS (SELECT 1 FROM claimcheck.upload_claims c WHERE c.object_key = k)
                    AND NOT EXISTS (SELECT 1 FROM claimcheck.objects o WHERE o.object_key = k)
                    AND NOT EXISTS (SELECT 1 FROM claimcheck.pending_deletes d WHERE d.object_key = k)
                  ORDER BY k",
                &[&keys],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}

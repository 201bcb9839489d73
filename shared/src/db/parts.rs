//! The part store: parts received for chunked uploads.

use crate::db::{pool::Exec, Pool, Transaction};
use uuid::Uuid;

use super::DbError;
use crate::domain::Part;

/// Parts of chunked uploads in PostgreSQL.
#[derive(Clone, Debug)]
pub struct PartStore {
    pool: Pool,
}

impl PartStore {
    /// A store over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Records a part of a claim that is still pending, replacing an earlier
    /// upload of the same part number. False (nothing recorded) when the claim
    /// is gone or no longer pending: a part that lands after complete, abort
    /// or sweep must not reappear.
    #[tracing::instrument(name = "db.upsert", skip_all)]
    pub async fn upsert(&self, claim_id: Uuid, part: &Part) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        Self::upsert_on(&client, claim_id, part).await
    }

    /// [`PartStore::upsert`] on `client` (a connection, or a transaction the
    /// part must commit with).
    pub async fn upsert_on(
        client: &impl Exec,
        claim_id: Uuid,
        part: &Part,
    ) -> Result<bool, DbError> {
        let n = client
            .execute(
                "INSERT INTO claimcheck.upload_parts (claim_id, part_number, size, sha256, etag)
                 SELECT id, $2, $3, $4, $5 FROM claimcheck.upload_claims
                  WHERE id = $1 AND status = 'pending'
                 ON CONFLICT (claim_id, part_number) DO UPDATE
                    SET size = excluded.size, sha256 = excluded.sha256,
                        etag = excluded.etag, refused = false, created_at = now()",
                &[
                    &claim_id,
                    &part.part_number,
                    &part.size,
                    &part.sha256,
                    &part.etag,
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Records that the store holds, as part `n` of a pending claim, bytes
    /// the API refused (ETag `etag`): complete must never assemble them, also
    /// when it reads a session back from the store. Replaces an accepted
    /// earlier upload of the part, since the store's copy is now the refused
    /// one. False when the claim is gone or no longer pending.
    #[tracing::instrument(name = "db.refuse_part", skip_all)]
    pub async fn refuse(&self, claim_id: Uuid, n: i32, etag: &str) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "INSERT INTO claimcheck.upload_parts
                        (claim_id, part_number, size, sha256, etag, refused)
                 SELECT id, $2, 0, NULL, $3, true FROM claimcheck.upload_claims
                  WHERE id = $1 AND status = 'pending'
                 ON CONFLICT (claim_id, part_number) DO UPDATE
                    SET size = 0, sha256 = NULL, etag = excluded.etag, refused = true,
                        created_at = now()",
                &[&claim_id, &n, &etag],
            )
            .await?;
        Ok(n == 1)
    }

    /// The ETags of a claim's refused parts, by part number.
    pub async fn refused(
        &self,
        claim_id: Uuid,
    ) -> Result<std::collections::HashMap<u32, String>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT part_number, etag FROM claimcheck.upload_parts
                  WHERE claim_id = $1 AND refused",
                &[&claim_id],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<_, i32>(0)? as u32, r.try_get(1)?)))
            .collect()
    }

    /// The accepted parts of a claim, by part number.
    pub async fn list(&self, claim_id: Uuid) -> Result<Vec<Part>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT part_number, size, sha256, etag FROM claimcheck.upload_parts
                  WHERE claim_id = $1 AND NOT refused ORDER BY part_number",
                &[&claim_id],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Part {
                    part_number: r.try_get(0)?,
                    size: r.try_get(1)?,
                    sha256: r.try_get(2)?,
                    etag: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Removes a claim's part rows inside `tx` (after complete: the object
    /// is whole and the rows are of no more use).
    pub async fn delete_by_claim_in(tx: &Transaction<'_>, claim_id: Uuid) -> Result<u64, DbError> {
        Ok(tx
            .execute(
                "DELETE FROM claimcheck.upload_parts WHERE claim_id = $1",
                &[&claim_id],
            )
            .await?)
    }
}

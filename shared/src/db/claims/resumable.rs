//! What resumable (tus) uploads need of the claims table: the claim with
//! its offset in one read, and a deferred size declared.

use uuid::Uuid;

use super::{claim_from_row, ClaimStore, COLUMNS};
use crate::{
    db::{owners::daily_charge, DbError},
    domain::Claim,
};

impl ClaimStore {
    /// The claim with this id and the bytes received for it (its recorded
    /// parts and its tail), in one statement: a tus `HEAD` is one indexed
    /// read. The sum is the offset for an upload appended to at an offset,
    /// whose parts the server cut without gaps.
    #[tracing::instrument(name = "db.get_with_offset", skip_all)]
    pub async fn get_with_offset(&self, id: Uuid) -> Result<Option<(Claim, u64)>, DbError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT {COLUMNS},
                    (SELECT coalesce(sum(p.size), 0)::bigint FROM claimcheck.upload_parts p
                      WHERE p.claim_id = c.id AND NOT p.refused) AS parts_bytes,
                    (SELECT coalesce(sum(octet_length(t.bytes)), 0)::bigint
                       FROM claimcheck.upload_tails t WHERE t.claim_id = c.id) AS tail_bytes
               FROM claimcheck.upload_claims c WHERE c.id = $1"
        );
        let Some(row) = client.query_opt_cached(&sql, &[&id]).await? else {
            return Ok(None);
        };
        let parts: i64 = row.try_get("parts_bytes")?;
        let tail: i64 = row.try_get("tail_bytes")?;
        Ok(Some((claim_from_row(&row)?, (parts + tail) as u64)))
    }

    /// Declares the size of a pending upload whose size was deferred, fenced
    /// to the holder of its writer lock. None when the lock was lost, the
    /// claim left `pending`, or its size was declared already. The size
    /// counts against its owner's daily bytes now (a deferred start counted
    /// none), in the same statement.
    #[tracing::instrument(name = "db.set_length", skip_all)]
    pub async fn set_length(
        &self,
        id: Uuid,
        writer_token: Uuid,
        size: i64,
        part_count: i32,
    ) -> Result<Option<Claim>, DbError> {
        let client = self.pool.get().await?;
        let charged = daily_charge("SELECT d.owner, 0::bigint, d.size FROM declared d");
        let sql = format!(
            "WITH declared AS (
                 UPDATE claimcheck.upload_claims
                    SET size = $3, part_count = $4, length_deferred = false
                  WHERE id = $1 AND writer_token = $2 AND status = 'pending' AND length_deferred
              RETURNING {COLUMNS}
             ), charged AS ({charged})
             SELECT {COLUMNS} FROM declared"
        );
        client
            .query_opt(&sql, &[&id, &writer_token, &size, &part_count])
            .await?
            .as_ref()
            .map(claim_from_row)
            .transpose()
    }
}

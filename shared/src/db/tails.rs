//! The tail store: bytes appended past a claim's last full part
//! (`upload_tails`), and the commit of an append.
//!
//! An append (a tus PATCH) is acknowledged only once what it brought is
//! durable: the full parts it cut are in the store and recorded, the bytes
//! short of a part are here. Each commit is one transaction, fenced to the
//! holder of the claim's writer lock: a writer that lost its lock (it
//! stalled past the lease and another pod took over) writes nothing.

use crate::db::Pool;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ClaimStore, DbError, PartStore};
use crate::domain::Part;

/// The statement that drops the tails of the claims a `marked` CTE returns
/// (their `id`s): the claims module marks an upload finished and drops its
/// tail in one statement with it.
pub(crate) const DROP_TAIL_OF_MARKED: &str =
    "DELETE FROM claimcheck.upload_tails t USING marked m WHERE t.claim_id = m.id";

/// What one append makes durable, in one transaction.
#[derive(Debug, Clone)]
pub struct AppendCommit {
    /// The claim.
    pub claim_id: Uuid,
    /// The writer lock's token: the commit is fenced to its holder.
    pub writer_token: Uuid,
    /// The claim's expiry slides to this far from now.
    pub ttl: std::time::Duration,
    /// Full parts the store now holds, in order.
    pub parts: Vec<Part>,
    /// Whether the earlier tail went into the first of `parts` (drop it).
    pub drop_tail: bool,
    /// New tail bytes and where they start in the object; empty for none.
    pub tail: (u64, Bytes),
}

/// What [`TailStore::commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// Written; the claim now expires at `expires_at`.
    Done {
        /// The claim's new expiry.
        expires_at: DateTime<Utc>,
    },
    /// Nothing written: the caller no longer holds the writer lock, or the
    /// claim left `pending`.
    LockLost,
}

/// Appended bytes short of a part, in PostgreSQL.
#[derive(Clone, Debug)]
pub struct TailStore {
    pool: Pool,
}

impl TailStore {
    /// A store over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// The bytes of claim `id`'s tail, its segments joined in offset order
    /// (at most a part: the caller cuts a part of them).
    #[tracing::instrument(name = "db.tail", skip_all)]
    pub async fn bytes(&self, claim_id: Uuid) -> Result<Bytes, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT start_offset, bytes FROM claimcheck.upload_tails
                  WHERE claim_id = $1 ORDER BY start_offset",
                &[&claim_id],
            )
            .await?;
        let mut joined = Vec::new();
        let mut next = None;
        for row in &rows {
            let start = row.try_get::<_, i64>(0)? as u64;
            if next.is_some_and(|n| n != start) {
                return Err(DbError::Corrupt(format!(
                    "claim {claim_id}'s tail has a hole before offset {start}"
                )));
            }
            let bytes: &[u8] = row.try_get(1)?;
            joined.extend_from_slice(bytes);
            next = Some(start + bytes.len() as u64);
        }
        Ok(joined.into())
    }

    /// Where claim `id`'s tail starts and how many bytes it holds, without
    /// reading them (`octet_length` of an uncompressed out-of-line value is
    /// in its pointer). `(0, 0)` for none.
    #[tracing::instrument(name = "db.tail_extent", skip_all)]
    pub async fn extent(&self, claim_id: Uuid) -> Result<(u64, u64), DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one_cached(
                "SELECT coalesce(min(start_offset), 0), coalesce(sum(octet_length(bytes)), 0)::bigint
                   FROM claimcheck.upload_tails WHERE claim_id = $1",
                &[&claim_id],
            )
            .await?;
        let (start, len): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        Ok((start as u64, len as u64))
    }

    /// Makes an append durable: its parts recorded, the tail they consumed
    /// dropped, its new tail stored, the claim's expiry slid, all or
    /// nothing.
    #[tracing::instrument(name = "db.commit_append", skip_all)]
    pub async fn commit(&self, commit: &AppendCommit) -> Result<Committed, DbError> {
        let id = commit.claim_id;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // First, so the claim row stays locked until the commit: the lock
        // cannot change hands halfway through.
        let fenced = ClaimStore::fence_writer_in(&tx, id, commit.writer_token, commit.ttl).await?;
        let Some(expires_at) = fenced else {
            return Ok(Committed::LockLost);
        };
        for part in &commit.parts {
            if !PartStore::upsert_on(&tx, id, part).await? {
                return Ok(Committed::LockLost);
            }
        }
        if commit.drop_tail {
            tx.execute(
                "DELETE FROM claimcheck.upload_tails WHERE claim_id = $1",
                &[&id],
            )
            .await?;
        }
        let (start, bytes) = &commit.tail;
        if !bytes.is_empty() {
            tx.execute(
                "INSERT INTO claimcheck.upload_tails (claim_id, start_offset, bytes)
                 VALUES ($1, $2, $3)",
                &[&id, &(*start as i64), &bytes.as_ref()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Committed::Done { expires_at })
    }

    /// Drops claim `id`'s tail inside `tx` (its object turned out whole: the
    /// sweeper's recovery).
    pub async fn delete_by_claim_in(
        tx: &crate::db::Transaction<'_>,
        claim_id: Uuid,
    ) -> Result<u64, DbError> {
        Ok(tx
            .execute(
                "DELETE FROM claimcheck.upload_tails WHERE claim_id = $1",
                &[&claim_id],
            )
            .await?)
    }

    /// Claims that are finished but still have tail rows: none, unless
    /// something wrote past the rules (the audit reports them).
    pub async fn finished_with_tail(&self) -> Result<Vec<Uuid>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT DISTINCT t.claim_id FROM claimcheck.upload_tails t
                   JOIN claimcheck.upload_claims c ON c.id = t.claim_id
                  WHERE c.status = 'uploaded' LIMIT 1000",
                &[],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}

//! `claimcheck.owner_quotas` and `claimcheck.owner_daily_usage`: what each
//! owner may hold and start, and what it started per UTC day.
//!
//! The check runs in the statement that creates the claim, after the
//! owner's advisory lock (`claimcheck.admit_claim`, migration V8, called by
//! [`crate::db::claims`]): every start of one owner passes through it one at
//! a time, on every pod, so "would this fit" and "it is created" cannot be
//! split by another start. Usage is the database
//! as it is: bytes held are summed from the owner's claims (pending ones at
//! their declared size) and registry objects when a byte quota applies, so
//! a queued delete or an expired claim frees quota the moment it commits;
//! daily usage is one row per owner and day, bumped by the creating
//! statement ([`daily_charge`]), read by primary key.

mod quota;

use std::time::Duration;

use crate::db::Pool;
use tokio_postgres::Row;

pub use quota::{
    Charge, OwnerQuota, OwnerUsage, Quota, QuotaChange, QuotaExceeded, QuotaOverrides, Quotas,
};

use super::{
    audit_log::{self, Actor, AuditAction},
    secs, DbError,
};

/// Today in UTC, as the database sees it (`now()` is the transaction's
/// start: one start is counted on one day).
const TODAY: &str = "(now() AT TIME ZONE 'UTC')::date";

/// The statement (a CTE's body) that adds starts to their owners' daily
/// usage, for the statement that creates a claim or declares its size:
/// `rows` is a `SELECT` of `(owner, uploads, bytes)`.
pub(crate) fn daily_charge(rows: &str) -> String {
    format!(
        "INSERT INTO claimcheck.owner_daily_usage AS u (owner, day, uploads, bytes)
         SELECT r.owner, {TODAY}, r.uploads, r.bytes FROM ({rows}) AS r (owner, uploads, bytes)
         ON CONFLICT (owner, day) DO UPDATE
            SET uploads = u.uploads + EXCLUDED.uploads, bytes = u.bytes + EXCLUDED.bytes"
    )
}

/// The owner's overrides, usage and held bytes (`claimcheck.owner_usage`,
/// migration V8, which `claimcheck.admit_claim` reads too): `$1` owner, `$2`
/// the default byte quota; every claim counted as held, the held bytes
/// summed whether a byte quota applies or not.
const READ: &str = "SELECT * FROM claimcheck.owner_usage($1, '{}', $2, true)";

fn u64_col(row: &Row, name: &str) -> Result<u64, DbError> {
    Ok(row.try_get::<_, i64>(name)?.max(0) as u64)
}

fn overrides_from_row(row: &Row) -> Result<QuotaOverrides, DbError> {
    let get = |name| -> Result<Option<u64>, DbError> {
        Ok(row
            .try_get::<_, Option<i64>>(name)?
            .map(|v| v.max(0) as u64))
    };
    Ok(QuotaOverrides {
        bytes: get("bytes")?,
        daily_bytes: get("daily_bytes")?,
        daily_uploads: get("daily_uploads")?,
    })
}

/// What [`READ`] found.
struct Read {
    overrides: QuotaOverrides,
    usage: OwnerUsage,
}

fn read_from_row(row: &Row) -> Result<Read, DbError> {
    Ok(Read {
        overrides: overrides_from_row(row)?,
        usage: OwnerUsage {
            bytes: row.try_get::<_, Option<i64>>("held")?.unwrap_or(0).max(0) as u64,
            daily_bytes: u64_col(row, "daily_bytes_used")?,
            daily_uploads: u64_col(row, "daily_uploads_used")?,
            pending: u64_col(row, "pending")?,
            day: row.try_get("day")?,
        },
    })
}

/// Owners' quotas and usage in PostgreSQL.
#[derive(Clone, Debug)]
pub struct Owners {
    pool: Pool,
}

impl Owners {
    /// Over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// The owner's limits (over `defaults`), overrides and usage, held
    /// bytes included.
    pub async fn show(&self, owner: &str, defaults: &Quotas) -> Result<OwnerQuota, DbError> {
        let client = self.pool.get().await?;
        let default_bytes = defaults.bytes.min(i64::MAX as u64) as i64;
        let read = read_from_row(&client.query_one(READ, &[&owner, &default_bytes]).await?)?;
        Ok(OwnerQuota {
            owner: owner.to_owned(),
            limits: read.overrides.over(defaults),
            overrides: read.overrides,
            usage: read.usage,
        })
    }

    /// Changes the owner's overrides and records the change in the audit
    /// log, in one transaction. Returns the owner's quotas as they are now.
    pub async fn change(
        &self,
        owner: &str,
        change: &QuotaChange,
        defaults: &Quotas,
        actor: &Actor,
    ) -> Result<OwnerQuota, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let before = tx
            .query_opt(
                "SELECT bytes, daily_bytes, daily_uploads FROM claimcheck.owner_quotas
                  WHERE owner = $1 FOR UPDATE",
                &[&owner],
            )
            .await?
            .as_ref()
            .map(overrides_from_row)
            .transpose()?
            .unwrap_or_default();
        let after = change.apply(before);
        let as_i64 = |v: Option<u64>| v.map(|v| v.min(i64::MAX as u64) as i64);
        tx.execute(
            "INSERT INTO claimcheck.owner_quotas AS q (owner, bytes, daily_bytes, daily_uploads)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (owner) DO UPDATE
                SET bytes = EXCLUDED.bytes, daily_bytes = EXCLUDED.daily_bytes,
                    daily_uploads = EXCLUDED.daily_uploads, updated_at = now()",
            &[
                &owner,
                &as_i64(after.bytes),
                &as_i64(after.daily_bytes),
                &as_i64(after.daily_uploads),
            ],
        )
        .await?;
        let detail = serde_json::json!({ "before": before, "after": after });
        audit_log::append_in(&tx, actor, AuditAction::QuotaChanged, owner, detail).await?;
        tx.commit().await?;
        drop(client);
        self.show(owner, defaults).await
    }

    /// Deletes up to `limit` daily usage rows of days older than
    /// `retention`; returns how many.
    pub async fn prune_daily(&self, retention: Duration, limit: i64) -> Result<u64, DbError> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(
                "DELETE FROM claimcheck.owner_daily_usage WHERE (owner, day) IN (
                     SELECT owner, day FROM claimcheck.owner_daily_usage
                      WHERE day < ((now() - make_interval(secs => $1)) AT TIME ZONE 'UTC')::date
                      LIMIT $2)",
                &[&secs(retention), &limit],
            )
            .await?)
    }
}

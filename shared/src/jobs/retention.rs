//! Retention: audit rows (and owners' daily usage rows) older than
//! `CLAIMCHECK_AUDIT_RETENTION` are deleted, in bounded statements, every
//! reap interval. Delivered events have their own pruning in [`super::webhooks`].

use tokio_util::sync::CancellationToken;

use super::{periodic, prune_in_batches, JobContext, JobError};
use crate::db::{AuditLog, Owners};

/// Rows deleted per statement.
const BATCH: i64 = 10_000;

/// What one pruning step removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Audit rows.
    pub audit_rows: u64,
    /// Daily usage rows.
    pub usage_rows: u64,
}

/// Deletes every audit and daily usage row past the retention.
pub async fn prune_once(ctx: &JobContext) -> Result<Pruned, JobError> {
    let retention = ctx.settings.audit_retention;
    let (log, owners) = (
        AuditLog::new(ctx.pool.clone()),
        Owners::new(ctx.pool.clone()),
    );
    let pruned = Pruned {
        audit_rows: prune_in_batches(BATCH, || log.prune(retention, BATCH)).await?,
        usage_rows: prune_in_batches(BATCH, || owners.prune_daily(retention, BATCH)).await?,
    };
    if pruned != Pruned::default() {
        tracing::info!(
            audit_rows = pruned.audit_rows,
            usage_rows = pruned.usage_rows,
            "retention: old rows pruned"
        );
    }
    Ok(pruned)
}

/// Prunes every [`super::JobSettings::reap_interval`] until `cancel` fires.
pub async fn run(ctx: JobContext, cancel: CancellationToken) {
    let every = ctx.settings.reap_interval;
    periodic(&ctx, &cancel, "retention", every, None, prune_once).await;
}

//! The orphan reaper: aborts multipart sessions nothing in the database knows.
//!
//! A session is created in the store before its claim records the upload id,
//! so a crash in between, or a session someone opened behind the service's
//! back, leaks its parts forever (S3 bills them, and lists nothing for them
//! but `ListMultipartUploads`). Sessions under the key prefix older than the
//! claim TTL plus a grace, whose upload id no claim and no delete-queue row
//! carries, are aborted. The age floor keeps the reaper away from a session
//! whose claim is being written right now.

use chrono::Utc;
use futures::{stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::{JobContext, JobError};

/// What one reap did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReapOutcome {
    /// Sessions old enough to be looked at.
    pub examined: usize,
    /// Sessions nothing knew, aborted.
    pub aborted: usize,
    /// Orphans whose abort failed (tried again next time).
    pub failed: usize,
}

/// Lists the old sessions under the prefix and aborts the orphans.
pub async fn reap_once(ctx: &JobContext) -> Result<ReapOutcome, JobError> {
    let s = &ctx.settings;
    let min_age =
        chrono::Duration::from_std(s.claim_ttl + s.orphan_grace).unwrap_or(chrono::Duration::MAX);
    let older_than = Utc::now()
        .checked_sub_signed(min_age)
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    let sessions = ctx
        .store_call(ctx.store.list_multipart_uploads(&s.key_prefix, older_than))
        .await?;
    let mut outcome = ReapOutcome {
        examined: sessions.len(),
        ..ReapOutcome::default()
    };
    let orphans = super::orphan_sessions(ctx, sessions).await?;
    let results: Vec<bool> = stream::iter(orphans)
        .map(|session| async move {
            let result = ctx
                .store_call(ctx.store.abort_multipart(&session.key, &session.upload_id))
                .await;
            match result {
                Ok(()) => {
                    tracing::info!(key = %session.key, upload_id = %session.upload_id,
                        initiated = %session.initiated, "orphan multipart session aborted");
                    true
                }
                Err(e) => {
                    tracing::warn!(key = %session.key, upload_id = %session.upload_id,
                        error = %e, "could not abort an orphan multipart session");
                    false
                }
            }
        })
        .buffer_unordered(s.concurrency.max(1))
        .collect()
        .await;
    outcome.aborted = results.iter().filter(|ok| **ok).count();
    outcome.failed = results.len() - outcome.aborted;
    ctx.metrics
        .orphans_aborted_total
        .inc_by(outcome.aborted as u64);
    Ok(outcome)
}

/// The reaper's loop: a reap every [`super::JobSettings::reap_interval`].
pub async fn run(ctx: JobContext, cancel: CancellationToken) {
    let interval = ctx.settings.reap_interval;
    super::periodic(&ctx, &cancel, "orphan reap", interval, None, reap_once).await;
}

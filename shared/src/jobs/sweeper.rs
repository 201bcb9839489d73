//! The claim sweeper: takes claims whose `expires_at` has passed.
//!
//! Expired pending claims are deleted with their parts and their object's
//! delete (with the multipart session) queued, in one transaction per batch,
//! conditional on each claim still being pending and expired: several
//! sweepers, or a sweeper racing a complete, never act twice on one claim.
//! Before that, a claim whose object already exists at its declared size (a
//! crash between the store finishing and the database update) is recovered to
//! `uploaded` instead. The store is asked (HEAD) only about claims whose
//! object something may have written: a multipart claim whose writer lock no
//! complete or append ever took has no object, and the database says so
//! ([`ObjectWritten`]). Uploaded claims past their unconsumed TTL are dropped
//! the same way with reason `unconsumed`.
//!
//! A sweep works through the whole backlog in batches; the interval is only
//! the pause when there was nothing left.

use futures::{stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::{liveness::Loop, JobContext, JobError};
use crate::{
    db::claims::{ExpiredClaim, ObjectWritten},
    domain::{Claim, ClaimStatus, DeleteReason},
    uploads::object_is_whole,
};

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    /// Pending claims expired (claim and parts dropped, delete queued).
    pub expired: usize,
    /// Expired pending claims whose object was complete, now `uploaded`.
    pub recovered: usize,
    /// Uploaded claims nobody consumed in time, dropped and delete queued.
    pub unconsumed: usize,
    /// Expired pending claims left for a later sweep because the store could
    /// not say whether their object exists.
    pub postponed: usize,
}

/// Sweeps every expired claim, batch after batch, until none is left (or
/// only claims the store could not be asked about).
pub async fn sweep_once(ctx: &JobContext) -> Result<SweepOutcome, JobError> {
    let mut outcome = SweepOutcome::default();
    let batch = ctx.settings.sweep_batch.max(1);
    loop {
        let claims = ctx.claims.list_expired_pending(batch).await?;
        let full = i64::try_from(claims.len()).unwrap_or(i64::MAX) >= batch;
        let step = sweep_pending(ctx, claims).await?;
        outcome.expired += step.expired;
        outcome.recovered += step.recovered;
        outcome.postponed += step.postponed;
        // Postponed claims would be listed again: stop until the next sweep.
        if !full || step.postponed > 0 {
            break;
        }
    }
    if ctx.settings.unconsumed_ttl.is_some() {
        loop {
            let claims = ctx
                .claims
                .list_expired(ClaimStatus::Uploaded, batch)
                .await?;
            let full = i64::try_from(claims.len()).unwrap_or(i64::MAX) >= batch;
            let ids: Vec<_> = claims.iter().map(|c| c.id).collect();
            let swept = ctx
                .claims
                .expire(&ids, ClaimStatus::Uploaded, DeleteReason::Unconsumed)
                .await?;
            outcome.unconsumed += swept.len();
            ctx.metrics
                .sweeps_total
                .with_label_values(&["unconsumed"])
                .inc_by(swept.len() as u64);
            if !full {
                break;
            }
        }
    }
    ctx.metrics
        .sweeper_last_run_timestamp_seconds
        .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    if outcome != SweepOutcome::default() {
        tracing::info!(
            expired = outcome.expired,
            recovered = outcome.recovered,
            unconsumed = outcome.unconsumed,
            postponed = outcome.postponed,
            "sweep"
        );
    }
    Ok(outcome)
}

/// What becomes of an expired pending claim.
enum Verdict {
    /// Its object is whole: recover the claim to `uploaded`.
    Recover,
    /// The store has no whole object for it: sweep it.
    Expire,
    /// Nothing ever wrote its object: sweep it if that still holds.
    ExpireUnwritten,
    /// The store could not say: leave it for a later sweep.
    Postpone,
}

async fn sweep_pending(
    ctx: &JobContext,
    claims: Vec<ExpiredClaim>,
) -> Result<SweepOutcome, JobError> {
    let mut outcome = SweepOutcome::default();
    // Store I/O first, outside any transaction.
    let verdicts: Vec<(Claim, Verdict)> = stream::iter(claims)
        .map(|expired| async move {
            let claim = expired.claim;
            let verdict = match expired.object {
                // No store call: nothing ever wrote this object.
                ObjectWritten::Never => Verdict::ExpireUnwritten,
                ObjectWritten::Maybe => look(ctx, &claim).await,
            };
            (claim, verdict)
        })
        .buffer_unordered(ctx.settings.concurrency.max(1))
        .collect()
        .await;

    let (mut expire, mut unwritten) = (Vec::new(), Vec::new());
    for (claim, verdict) in verdicts {
        match verdict {
            Verdict::Recover => {
                if ctx
                    .claims
                    .recover(claim.id, ctx.settings.unconsumed_ttl)
                    .await?
                    .is_some()
                {
                    tracing::info!(id = %claim.id, key = %claim.key, "expired claim's object is complete: recovered to uploaded");
                    outcome.recovered += 1;
                }
            }
            Verdict::Expire => expire.push(claim.id),
            Verdict::ExpireUnwritten => unwritten.push(claim.id),
            Verdict::Postpone => outcome.postponed += 1,
        }
    }
    let swept = ctx
        .claims
        .expire_with(
            &expire,
            &unwritten,
            ClaimStatus::Pending,
            DeleteReason::ClaimExpired,
        )
        .await?;
    outcome.expired = swept.len();
    let sweeps = &ctx.metrics.sweeps_total;
    sweeps
        .with_label_values(&["expired"])
        .inc_by(outcome.expired as u64);
    sweeps
        .with_label_values(&["recovered"])
        .inc_by(outcome.recovered as u64);
    Ok(outcome)
}

/// Asks the store whether an expired claim's object is whole.
async fn look(ctx: &JobContext, claim: &Claim) -> Verdict {
    let head = ctx.store_call(ctx.store.head(&claim.key)).await;
    match object_is_whole(claim, head) {
        Ok(true) => Verdict::Recover,
        // Missing, or another size (a torn object): drop it.
        Ok(false) => Verdict::Expire,
        Err(e) => {
            tracing::warn!(key = %claim.key, error = %e, "cannot check an expired claim's object; sweeping it later");
            Verdict::Postpone
        }
    }
}

/// The sweeper's loop: a sweep, then a pause of the sweep interval, until
/// `cancel` fires. Cancel stops a sweep wherever it is: each batch is its own
/// transaction, so what was not committed is simply swept next time.
pub async fn run(ctx: JobContext, cancel: CancellationToken) {
    let interval = ctx.settings.sweep_interval;
    let watched = Some(Loop::Sweeper);
    super::periodic(&ctx, &cancel, "sweep", interval, watched, sweep_once).await;
}

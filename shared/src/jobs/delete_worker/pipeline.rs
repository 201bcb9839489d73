//! The delete worker's long-running loop: batches in lanes.
//!
//! A batch alternates between the database (lease, outcomes) and the store
//! (aborts, deletes); done one at a time, each side idles while the other
//! works. So the loop runs [`LANES`] lanes side by side, each a sequence of
//! batches: while one lane's batch is at the store, another's is at the
//! database. All lanes share the process's store-call limit
//! (`CLAIMCHECK_DELETE_CONCURRENCY`), so the store sees no more calls at
//! once than before. Within a lane, a batch's done rows and the lane's next
//! lease go out in one round trip ([`crate::db::DeleteQueue::done_and_lease`]).
//!
//! A lane ends when its lease comes back empty; when every lane has ended,
//! the loop waits for a notification or the poll interval. On cancel, each
//! lane finishes the batch it is working on within the shutdown timeout
//! (recording its outcomes, leasing nothing more) or hands the batch's rows
//! back when the time is up, and hands back a batch it leased but had not
//! started.

use futures::{stream::FuturesUnordered, StreamExt};
use tokio_util::sync::CancellationToken;

use super::{lease_terms, while_leased, work, DrainOutcome, CHANNEL};
use crate::{
    db::{
        deletes::{DoneAndLease, Lease},
        listen::Wakeups,
        DbError,
    },
    jobs::{liveness::Loop, JobContext, JobError},
};

/// Batches in hand at once per process. Two are enough to keep the store
/// busy while the database works and the database busy while the store
/// works; more would only hold more rows leased (out of other workers'
/// reach) without a side left idle to fill.
pub const LANES: usize = 2;

/// How a lane ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LaneEnd {
    /// Its lease came back empty: nothing is due.
    Drained,
    /// The database failed; the rows it held come back when their lease
    /// runs out.
    Failed,
    /// Cancelled: its rows are recorded or handed back.
    Stopped,
}

/// What a lane leases next, after a batch.
enum Next {
    /// The batch's done rows went out with this lease.
    Lease(Lease),
    /// Nothing was leased (cancelled, or the lease failed).
    Nothing(LaneEnd),
}

/// The delete worker's loop: lease and process batches until `cancel` fires.
///
/// After a non-empty lease it runs [`LANES`] lanes until each finds nothing
/// due; after an empty one it waits for a notification or the poll
/// interval. On cancel it stops leasing and finishes the batches in hand
/// within the shutdown timeout, or hands their rows back
/// ([`crate::db::DeleteQueue::release`]) when the time is up.
pub async fn run(ctx: JobContext, listen_url: Option<String>, cancel: CancellationToken) {
    // A lost notification connection is reopened after the poll interval,
    // the same interval the loop polls at meanwhile.
    let wake = Wakeups::listen_or_poll(
        listen_url,
        CHANNEL,
        ctx.settings.poll_interval,
        cancel.clone(),
    );
    while !cancel.is_cancelled() {
        ctx.liveness.beat(Loop::Deletes);
        let lease = match first_lease(&ctx).await {
            Ok(lease) => lease,
            Err(e) => {
                tracing::warn!(error = %e, "could not lease deletes; retrying after the poll interval");
                wake.wait(ctx.settings.poll_interval, &cancel).await;
                continue;
            }
        };
        if lease.rows.is_empty() {
            wake.wait(ctx.settings.poll_interval, &cancel).await;
            continue;
        }
        // The first lane starts with this lease; the others lease their own
        // while it works.
        let lanes: FuturesUnordered<_> = std::iter::once(Some(lease))
            .chain(std::iter::repeat_with(|| None).take(LANES - 1))
            .map(|first| lane(&ctx, first, &cancel))
            .collect();
        let ends: Vec<LaneEnd> = lanes.collect().await;
        if ends.contains(&LaneEnd::Failed) {
            wake.wait(ctx.settings.poll_interval, &cancel).await;
        }
    }
    wake.stop().await;
}

async fn first_lease(ctx: &JobContext) -> Result<Lease, DbError> {
    let terms = lease_terms(ctx);
    ctx.queue
        .lease(terms.limit, terms.lease, terms.max_attempts)
        .await
}

/// One lane: works through batches, starting with `first` (or a lease of
/// its own), until a lease comes back empty, the database fails, or
/// `cancel` fires.
async fn lane(ctx: &JobContext, first: Option<Lease>, cancel: &CancellationToken) -> LaneEnd {
    let mut lease = match first {
        Some(lease) => lease,
        None => match first_lease(ctx).await {
            Ok(lease) => lease,
            Err(e) => {
                tracing::warn!(error = %e, "could not lease deletes; retrying after the poll interval");
                return LaneEnd::Failed;
            }
        },
    };
    loop {
        if lease.rows.is_empty() {
            return LaneEnd::Drained;
        }
        if cancel.is_cancelled() {
            // Leased as the cancel came, not started: hand it back.
            release(
                ctx,
                &lease,
                "shutting down; rows leased but not started handed back",
            )
            .await;
            return LaneEnd::Stopped;
        }
        ctx.liveness.beat(Loop::Deletes);
        let result = {
            let step = step(ctx, &lease, cancel);
            tokio::pin!(step);
            tokio::select! {
                result = &mut step => Some(result),
                () = cancel.cancelled() => {
                    tokio::time::timeout(ctx.settings.shutdown_timeout, &mut step).await.ok()
                }
            }
        };
        match result {
            Some(Ok((outcome, next))) => {
                tracing::info!(
                    leased = outcome.leased,
                    done = outcome.done,
                    deferred = outcome.deferred,
                    dead = outcome.dead,
                    lost = outcome.lost,
                    "delete batch"
                );
                match next {
                    Next::Lease(next) => lease = next,
                    Next::Nothing(end) => return end,
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "delete batch failed; its rows come back when the lease runs out");
                return LaneEnd::Failed;
            }
            None => {
                release(ctx, &lease, "shutdown deadline reached; rows handed back").await;
                return LaneEnd::Stopped;
            }
        }
    }
}

/// One batch of a lane: the store work and the outcomes, then the done rows
/// with the lane's next lease in one round trip (the done rows alone once
/// `cancel` has fired).
async fn step(
    ctx: &JobContext,
    lease: &Lease,
    cancel: &CancellationToken,
) -> Result<(DrainOutcome, Next), JobError> {
    let worked = work(ctx, lease).await?;
    let ids = worked.done_ids();
    let done_alone = || while_leased(lease, || ctx.queue.done(lease.token, &ids));
    if cancel.is_cancelled() {
        let removed = done_alone().await?;
        return Ok((
            worked.finish(ctx, &removed),
            Next::Nothing(LaneEnd::Stopped),
        ));
    }
    let (removed, next) = match ctx
        .queue
        .done_and_lease(lease.token, &ids, lease_terms(ctx))
        .await
    {
        Ok(DoneAndLease { removed, next }) => {
            // The done rows first: the store work is over, so they are
            // retried while the lease lasts (a lease taken with them that
            // is dropped by an error here comes back when it runs out).
            let removed = match removed {
                Ok(removed) => removed,
                Err(_) => done_alone().await?,
            };
            let next = match next {
                Ok(next) => Next::Lease(next),
                Err(e) => {
                    tracing::warn!(error = %e, "could not lease deletes; retrying after the poll interval");
                    Next::Nothing(LaneEnd::Failed)
                }
            };
            (removed, next)
        }
        // No connection for either statement.
        Err(_) => (done_alone().await?, Next::Nothing(LaneEnd::Failed)),
    };
    Ok((worked.finish(ctx, &removed), next))
}

/// Hands the rows of `lease` back (best effort: rows not handed back return
/// when the lease runs out).
async fn release(ctx: &JobContext, lease: &Lease, what: &str) {
    let ids: Vec<i64> = lease.rows.iter().map(|r| r.id).collect();
    match ctx.queue.release(lease.token, &ids).await {
        Ok(n) => tracing::info!(released = n, "{what}"),
        Err(e) => {
            tracing::warn!(error = %e, "could not hand rows back; they return when the lease runs out")
        }
    }
}

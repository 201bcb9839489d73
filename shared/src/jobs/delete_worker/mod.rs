//! The delete worker: drains the durable delete queue against the store.
//!
//! One step ([`run_once`]) leases a batch, aborts the multipart sessions its
//! rows carry, deletes their objects (S3: `DeleteObjects`, up to 1000 keys a
//! request, the batch's keys spread over the concurrency), then records each
//! row's outcome: done rows go in one statement, failed rows are deferred
//! with backoff or, after the last attempt, parked dead with their error. A
//! missing object or session counts as deleted.
//!
//! The loop ([`run`]) keeps leasing while rows come back, and otherwise waits
//! for a notification on [`CHANNEL`] (a trigger sends one for every insert)
//! or the poll interval, whichever comes first ([`Wakeups`]).

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use futures::{stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::{backoff, liveness::Loop, JobContext, JobError};
use crate::{
    db::{deletes::Lease, listen::Wakeups, DbError},
    domain::PendingDelete,
};

/// The channel `claimcheck.notify_pending_delete()` notifies on insert.
pub const CHANNEL: &str = "claimcheck_pending_deletes";

/// What one step did with the rows it leased.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainOutcome {
    /// Rows leased (0: nothing was due).
    pub leased: usize,
    /// Rows whose object (and session) is gone, removed from the queue.
    pub done: usize,
    /// Rows that failed and wait for another attempt.
    pub deferred: usize,
    /// Rows that failed their last attempt and were parked.
    pub dead: usize,
    /// Rows whose lease ran out before their outcome was written (another
    /// worker holds them now and redoes them: deletes are idempotent).
    pub lost: usize,
}

/// Leases one batch of due rows and processes it.
pub async fn run_once(ctx: &JobContext) -> Result<DrainOutcome, JobError> {
    let s = &ctx.settings;
    let lease = ctx
        .queue
        .lease(s.delete_batch, s.delete_lease, s.max_attempts)
        .await?;
    process(ctx, &lease).await
}

/// Leases and processes batches until none is due. For tests and one-shot
/// drains; the long-running loop is [`run`].
pub async fn drain(ctx: &JobContext) -> Result<DrainOutcome, JobError> {
    let mut total = DrainOutcome::default();
    loop {
        let step = run_once(ctx).await?;
        if step.leased == 0 {
            return Ok(total);
        }
        total.leased += step.leased;
        total.done += step.done;
        total.deferred += step.deferred;
        total.dead += step.dead;
        total.lost += step.lost;
    }
}

/// Does the store work for the rows of `lease` and records their outcomes.
pub async fn process(ctx: &JobContext, lease: &Lease) -> Result<DrainOutcome, JobError> {
    let mut outcome = DrainOutcome {
        leased: lease.rows.len(),
        ..DrainOutcome::default()
    };
    if lease.rows.is_empty() {
        return Ok(outcome);
    }
    let started = Instant::now();
    // The safety net for any race not yet found: a key that is live right
    // now is never deleted; its row is parked for an operator instead.
    let keys: Vec<&str> = lease.rows.iter().map(|row| row.key.as_str()).collect();
    let live = while_leased(lease, || ctx.queue.live_keys(&keys)).await?;
    let (live_rows, rows): (Vec<&PendingDelete>, Vec<&PendingDelete>) = lease
        .rows
        .iter()
        .partition(|row| live.contains_key(&row.key));
    for row in live_rows {
        let error = format!(
            "not deleted: the key is live ({} holds it); queued by mistake or a race",
            live[&row.key]
        );
        tracing::error!(id = row.id, key = %row.key, %error, "delete parked as dead");
        let parked =
            while_leased(lease, || ctx.queue.park_dead(lease.token, row.id, &error)).await?;
        if parked {
            outcome.dead += 1;
            ctx.metrics.count_delete("dead", row.reason);
        } else {
            outcome.lost += 1;
        }
    }
    let failures = store_work(ctx, &rows).await;
    let elapsed = started.elapsed().as_secs_f64();

    let (failed, ok): (Vec<&PendingDelete>, Vec<&PendingDelete>) = rows
        .into_iter()
        .partition(|row| failures.contains_key(&row.id));
    let ok_ids: Vec<i64> = ok.iter().map(|row| row.id).collect();
    let removed: HashSet<i64> = while_leased(lease, || ctx.queue.done(lease.token, &ok_ids))
        .await?
        .into_iter()
        .collect();
    outcome.done = removed.len();
    outcome.lost += ok_ids.len() - removed.len();
    // Only rows this lease removed count as done: a row whose lease ran out
    // is counted by the worker that holds it now.
    for row in ok.iter().filter(|row| removed.contains(&row.id)) {
        ctx.metrics.count_delete("done", row.reason);
        ctx.metrics.delete_duration_seconds.observe(elapsed);
    }

    for row in failed {
        let error = &failures[&row.id];
        let attempts = u32::try_from(row.attempts).unwrap_or(0);
        let kept = if attempts >= ctx.settings.max_attempts {
            tracing::error!(id = row.id, key = %row.key, attempts, %error, "delete parked as dead");
            let parked =
                while_leased(lease, || ctx.queue.park_dead(lease.token, row.id, error)).await?;
            outcome.dead += usize::from(parked);
            parked.then_some("dead")
        } else {
            let s = &ctx.settings;
            let delay = backoff::delay(attempts, s.backoff_base, s.backoff_max);
            tracing::warn!(id = row.id, key = %row.key, attempts, ?delay, %error, "delete failed; deferred");
            let deferred =
                while_leased(lease, || ctx.queue.defer(lease.token, row.id, delay, error)).await?;
            outcome.deferred += usize::from(deferred);
            deferred.then_some("deferred")
        };
        match kept {
            Some(what) => ctx.metrics.count_delete(what, row.reason),
            None => outcome.lost += 1,
        }
        ctx.metrics.delete_duration_seconds.observe(elapsed);
    }
    if outcome.lost > 0 {
        tracing::warn!(
            lost = outcome.lost,
            "lease ran out before the outcome was written; another worker redoes those rows"
        );
    }
    Ok(outcome)
}

/// Runs `write`, a statement about `lease`'s rows, again while PostgreSQL
/// is unreachable and the lease lasts. For an outcome, the store work is
/// done by then: giving up would leave the rows to wait for the lease to run
/// out (5 minutes by default) and be deleted a second time by another
/// worker. The live-key check before the store work waits the same way.
async fn while_leased<T, F, Fut>(lease: &Lease, mut write: F) -> Result<T, DbError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DbError>>,
{
    let mut pause = Duration::from_millis(100);
    loop {
        match write().await {
            Err(e) if e.is_unavailable() && Instant::now() + pause < lease.expires => {
                tracing::warn!(error = %e, ?pause, "could not record delete outcomes; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            result => return result,
        }
    }
}

/// Aborts sessions, then deletes objects. Returns the error of each row that
/// failed, by row id (rows not named succeeded).
async fn store_work(ctx: &JobContext, rows: &[&PendingDelete]) -> HashMap<i64, String> {
    let concurrency = ctx.settings.concurrency.max(1);
    // Abort first: a session completed after its abort would otherwise make
    // the object reappear after the delete.
    // Futures collected into a Vec first: a stream holding the closures would
    // not be `Send` for every lifetime, which `tokio::spawn` requires.
    let aborts: Vec<_> = rows
        .iter()
        .filter_map(|row| Some(abort(ctx, row.id, &row.key, row.upload_id.as_deref()?)))
        .collect();
    let mut failures: HashMap<i64, String> = stream::iter(aborts)
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();

    let mut keys: Vec<String> = rows
        .iter()
        .filter(|row| !failures.contains_key(&row.id))
        .map(|row| row.key.clone())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return failures;
    }
    // The store says how its deletes batch (S3: at most 1000 keys a request;
    // both stores spread the keys over the concurrency, since a call may
    // handle its keys one at a time: the fs store's one blocking thread, a
    // Garage cluster's DeleteObjects).
    let per_call = ctx
        .store
        .delete_batching()
        .keys_per_call(keys.len(), concurrency);
    let deletes: Vec<_> = keys
        .chunks(per_call)
        .map(|chunk| delete_chunk(ctx, chunk))
        .collect();
    let key_errors: HashMap<String, String> = stream::iter(deletes)
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    for row in rows {
        if let Some(error) = key_errors.get(&row.key) {
            failures.entry(row.id).or_insert_with(|| error.clone());
        }
    }
    failures
}

/// Aborts one row's session; the row's error when it failed.
async fn abort(ctx: &JobContext, id: i64, key: &str, upload_id: &str) -> Option<(i64, String)> {
    let result = ctx
        .store_call(ctx.store.abort_multipart(key, upload_id))
        .await;
    result
        .err()
        .map(|e| (id, format!("abort multipart upload {upload_id}: {e}")))
}

/// Deletes one chunk of keys; the error of each key that failed.
async fn delete_chunk(ctx: &JobContext, chunk: &[String]) -> Vec<(String, String)> {
    match ctx.store_call(ctx.store.delete_many(chunk)).await {
        Ok(failed) => failed
            .into_iter()
            .map(|(key, e)| (key, format!("delete: {e}")))
            .collect(),
        Err(e) => chunk
            .iter()
            .map(|key| (key.clone(), format!("delete: {e}")))
            .collect(),
    }
}

/// The delete worker's loop: lease and process batches until `cancel` fires.
///
/// After a non-empty batch it leases again at once; after an empty one it
/// waits for a notification or the poll interval. On cancel it stops leasing
/// and finishes the batch in hand within the shutdown timeout, or hands its
/// rows back ([`crate::db::DeleteQueue::release`]) when the time is up.
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
        let s = &ctx.settings;
        let lease = match ctx
            .queue
            .lease(s.delete_batch, s.delete_lease, s.max_attempts)
            .await
        {
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
        let work = process(&ctx, &lease);
        tokio::pin!(work);
        let result = tokio::select! {
            result = &mut work => Some(result),
            () = cancel.cancelled() => {
                tokio::time::timeout(ctx.settings.shutdown_timeout, &mut work).await.ok()
            }
        };
        match result {
            Some(Ok(outcome)) => tracing::info!(
                leased = outcome.leased,
                done = outcome.done,
                deferred = outcome.deferred,
                dead = outcome.dead,
                lost = outcome.lost,
                "delete batch"
            ),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "delete batch failed; its rows come back when the lease runs out");
                wake.wait(ctx.settings.poll_interval, &cancel).await;
            }
            None => {
                let ids: Vec<i64> = lease.rows.iter().map(|r| r.id).collect();
                match ctx.queue.release(lease.token, &ids).await {
                    Ok(n) => {
                        tracing::info!(released = n, "shutdown deadline reached; rows handed back")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not hand rows back; they return when the lease runs out")
                    }
                }
            }
        }
    }
    wake.stop().await;
}

//! The delete worker: drains the durable delete queue against the store.
//!
//! One step ([`run_once`]) leases a batch, aborts the multipart sessions its
//! rows carry, deletes their objects (S3: `DeleteObjects`, up to 1000 keys a
//! request, the batch's keys spread over the concurrency; the filesystem:
//! one call a batch, one thread per directory), then records each
//! row's outcome: done rows go in one statement, failed rows are deferred
//! with backoff or, after the last attempt, parked dead with their error. A
//! missing object or session counts as deleted. A row whose key is live
//! (the lease says so) is parked instead of deleted.
//!
//! The long-running loop ([`run`], in [`pipeline`]) keeps a few batches in
//! hand at once, so the store works on one while the database records or
//! leases another, and it records each batch's done rows and leases the
//! next in one round trip. It waits for a notification on [`CHANNEL`] (a
//! trigger sends one for every insert) or the poll interval when the queue
//! is empty ([`crate::db::listen::Wakeups`]).

mod pipeline;

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use futures::{stream, StreamExt};

pub use pipeline::run;

use super::{backoff, JobContext, JobError};
use crate::{
    db::{
        deletes::{Lease, LeaseTerms},
        DbError,
    },
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
    let terms = lease_terms(ctx);
    let lease = ctx
        .queue
        .lease(terms.limit, terms.lease, terms.max_attempts)
        .await?;
    process(ctx, &lease).await
}

/// The worker's lease terms, from its settings.
fn lease_terms(ctx: &JobContext) -> LeaseTerms {
    let s = &ctx.settings;
    LeaseTerms {
        limit: s.delete_batch,
        lease: s.delete_lease,
        max_attempts: s.max_attempts,
    }
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
        total.add(step);
    }
}

impl DrainOutcome {
    fn add(&mut self, step: DrainOutcome) {
        self.leased += step.leased;
        self.done += step.done;
        self.deferred += step.deferred;
        self.dead += step.dead;
        self.lost += step.lost;
    }
}

/// Does the store work for the rows of `lease` and records their outcomes.
pub async fn process(ctx: &JobContext, lease: &Lease) -> Result<DrainOutcome, JobError> {
    let worked = work(ctx, lease).await?;
    let ids = worked.done_ids();
    let removed = while_leased(lease, || ctx.queue.done(lease.token, &ids)).await?;
    Ok(worked.finish(ctx, &removed))
}

/// A batch whose store work is over and whose failed and live rows are
/// recorded: what is left is to remove its done rows ([`Worked::finish`]).
struct Worked<'a> {
    /// Leased, deferred, dead and lost so far.
    outcome: DrainOutcome,
    /// The rows whose object (and session) is gone.
    ok: Vec<&'a PendingDelete>,
    /// When the batch's work started.
    started: Instant,
}

impl Worked<'_> {
    /// The ids to remove from the queue.
    fn done_ids(&self) -> Vec<i64> {
        self.ok.iter().map(|row| row.id).collect()
    }

    /// The batch's outcome, given the ids the done statement removed.
    fn finish(self, ctx: &JobContext, removed: &[i64]) -> DrainOutcome {
        let mut outcome = self.outcome;
        let removed: HashSet<i64> = removed.iter().copied().collect();
        outcome.done = removed.len();
        outcome.lost += self.ok.len() - removed.len();
        // Only rows this lease removed count as done: a row whose lease ran
        // out is counted by the worker that holds it now.
        let elapsed = self.started.elapsed().as_secs_f64();
        for row in self.ok.iter().filter(|row| removed.contains(&row.id)) {
            ctx.metrics.count_delete("done", row.reason);
            ctx.metrics.delete_duration_seconds.observe(elapsed);
        }
        if outcome.lost > 0 {
            tracing::warn!(
                lost = outcome.lost,
                "lease ran out before the outcome was written; another worker redoes those rows"
            );
        }
        outcome
    }
}

/// The store work for the rows of `lease`, and the outcomes of the rows
/// that are not done: live keys parked, failures deferred or parked.
async fn work<'a>(ctx: &JobContext, lease: &'a Lease) -> Result<Worked<'a>, JobError> {
    let mut outcome = DrainOutcome {
        leased: lease.rows.len(),
        ..DrainOutcome::default()
    };
    let started = Instant::now();
    // The safety net for any race not yet found: a key that was live when
    // leased is never deleted; its row is parked for an operator instead.
    // The lease statement took the check: between it and a delete lie the
    // wait for store slots and the batch's aborts, as when the check was a
    // statement of its own right after the lease.
    let (live_rows, rows): (Vec<&PendingDelete>, Vec<&PendingDelete>) = lease
        .rows
        .iter()
        .partition(|row| lease.live.contains_key(&row.key));
    for row in live_rows {
        let error = format!(
            "not deleted: the key is live ({} holds it); queued by mistake or a race",
            lease.live[&row.key]
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
    Ok(Worked {
        outcome,
        ok,
        started,
    })
}

/// Runs `write`, a statement about `lease`'s rows, again while PostgreSQL
/// is unreachable and the lease lasts. For an outcome, the store work is
/// done by then: giving up would leave the rows to wait for the lease to run
/// out (5 minutes by default) and be deleted a second time by another
/// worker. Parking a live key's row waits the same way.
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
    let mut failures: HashMap<i64, String> = failed_in_flight(aborts, concurrency).await.collect();

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
    // The store says how its deletes batch (S3: at most 1000 keys a
    // request, spread over the concurrency, since a Garage cluster works
    // through one DeleteObjects's keys one at a time; the fs store takes
    // the whole batch and spreads it over directories itself).
    let per_call = ctx
        .store
        .delete_batching()
        .keys_per_call(keys.len(), concurrency);
    let deletes: Vec<_> = keys
        .chunks(per_call)
        .map(|chunk| delete_chunk(ctx, chunk))
        .collect();
    let key_errors: HashMap<String, String> =
        failed_in_flight(deletes, concurrency).await.collect();
    for row in rows {
        if let Some(error) = key_errors.get(&row.key) {
            failures.entry(row.id).or_insert_with(|| error.clone());
        }
    }
    failures
}

/// Runs `calls`, at most `concurrency` at once; what each reports failed,
/// all together.
async fn failed_in_flight<F, I>(calls: Vec<F>, concurrency: usize) -> impl Iterator<Item = I::Item>
where
    F: std::future::Future<Output = I>,
    I: IntoIterator,
{
    stream::iter(calls)
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
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

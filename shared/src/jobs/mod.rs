//! The worker fleet's jobs: the delete-queue drain, the claim sweeper, the
//! orphan reaper and the audit.
//!
//! Each job has a single-step function that does one unit of work and says
//! what it did ([`delete_worker::run_once`], [`sweeper::sweep_once`],
//! [`reaper::reap_once`], [`audit::audit`]): tests drive those directly,
//! without sleeping. The loops around them ([`run`]) add the waiting, the
//! wake-ups and the shutdown. They live in the library, not in the worker
//! binary, because `claimcheck-api dev` runs API and worker in one process.
//!
//! Coordination between processes goes through PostgreSQL only: leases with
//! `FOR UPDATE SKIP LOCKED` and conditional updates. No database transaction
//! is ever held open across object-store I/O.

pub mod audit;
pub mod backoff;
pub mod delete_worker;
pub mod liveness;
pub mod reaper;
pub mod retention;
pub mod sweeper;
pub mod webhooks;

use std::{future::Future, sync::Arc, time::Duration};

use crate::db::Pool;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::{
    config::{Config, StoreConfig},
    db::{ClaimStore, DbError, DeleteQueue},
    metrics::Metrics,
    store::{
        instrumented::Instrumented, s3::DEFAULT_TIMEOUT as DEFAULT_S3_TIMEOUT, MultipartSession,
        ObjectStore, StoreError,
    },
};

/// What a job step can fail with.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// PostgreSQL failed; the step is retried on the next tick.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The object store failed for the step as a whole (listing, say).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The knobs of the jobs, from [`Config`] (tests set them directly).
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Rows leased at once (`CLAIMCHECK_DELETE_BATCH`).
    pub delete_batch: u32,
    /// Visibility timeout of a lease (`CLAIMCHECK_DELETE_LEASE`).
    pub delete_lease: Duration,
    /// Attempts before a row is parked dead (`CLAIMCHECK_DELETE_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// Webhook delivery attempts before a delivery is parked dead.
    pub webhook_max_attempts: u32,
    /// One webhook request's timeout.
    pub webhook_timeout: Duration,
    /// How long delivered events are kept.
    pub event_retention: Duration,
    /// How long audit rows and daily usage rows are kept.
    pub audit_retention: Duration,
    /// Store calls in flight per process (`CLAIMCHECK_DELETE_CONCURRENCY`).
    pub concurrency: usize,
    /// First retry delay (`CLAIMCHECK_DELETE_BACKOFF_BASE`).
    pub backoff_base: Duration,
    /// Longest retry delay (`CLAIMCHECK_DELETE_BACKOFF_MAX`).
    pub backoff_max: Duration,
    /// Poll when no notification came (`CLAIMCHECK_POLL_INTERVAL`).
    pub poll_interval: Duration,
    /// Pause between sweeps with nothing to sweep (`CLAIMCHECK_SWEEP_INTERVAL`).
    pub sweep_interval: Duration,
    /// Claims handled per sweeper statement.
    pub sweep_batch: i64,
    /// Pending claim lifetime (`CLAIMCHECK_CLAIM_TTL`): the reaper's age floor.
    pub claim_ttl: Duration,
    /// Lifetime of a recovered claim (`CLAIMCHECK_UNCONSUMED_TTL`); `None`: keep.
    pub unconsumed_ttl: Option<Duration>,
    /// Added to the claim TTL before a session no one knows is an orphan: a
    /// session is created before its claim records it.
    pub orphan_grace: Duration,
    /// Pause between orphan reaps (listing every session is not free).
    pub reap_interval: Duration,
    /// Only keys under this prefix are reaped and audited (`CLAIMCHECK_KEY_PREFIX`).
    pub key_prefix: String,
    /// How long shutdown waits for rows in hand (`CLAIMCHECK_SHUTDOWN_TIMEOUT`).
    pub shutdown_timeout: Duration,
    /// How often the database gauges are refreshed.
    pub gauge_interval: Duration,
    /// The outer bound of one store call: a call that takes longer fails
    /// (the row is retried), so no loop waits on a black hole forever.
    pub store_timeout: Duration,
    /// A loop that has not completed a step for this long makes the worker
    /// unready (see [`liveness`]).
    pub stall_after: Duration,
}

impl JobSettings {
    /// The settings `config` describes.
    pub fn from_config(config: &Config) -> Self {
        // Twice the S3 request bound (a call may retry once after a slow
        // answer), and never under two minutes (a filesystem batch).
        let store_timeout = match &config.store {
            StoreConfig::S3(s3) => s3.timeout.unwrap_or(DEFAULT_S3_TIMEOUT) * 2,
            StoreConfig::Fs { .. } => Duration::ZERO,
        }
        .max(Duration::from_secs(120));
        Self {
            delete_batch: config.delete_batch,
            delete_lease: config.delete_lease,
            max_attempts: config.delete_max_attempts,
            webhook_max_attempts: config.webhook_max_attempts,
            webhook_timeout: config.webhook_timeout,
            event_retention: config.event_retention,
            audit_retention: config.audit_retention,
            concurrency: usize::try_from(config.delete_concurrency).unwrap_or(1),
            backoff_base: config.delete_backoff_base,
            backoff_max: config.delete_backoff_max,
            poll_interval: config.poll_interval,
            sweep_interval: config.sweep_interval,
            sweep_batch: 500,
            claim_ttl: config.claim_ttl,
            unconsumed_ttl: config.unconsumed_ttl,
            orphan_grace: Duration::from_secs(3600),
            reap_interval: Duration::from_secs(15 * 60),
            key_prefix: config.key_prefix.clone(),
            shutdown_timeout: config.shutdown_timeout,
            gauge_interval: Duration::from_secs(15),
            store_timeout,
            // A step takes at most a lease's work plus the wait before it.
            stall_after: config.delete_lease
                + config.poll_interval.max(config.sweep_interval)
                + store_timeout,
        }
    }
}

/// What every job needs: the database, the store, metrics and settings.
#[derive(Clone, Debug)]
pub struct JobContext {
    /// The PostgreSQL pool.
    pub pool: Pool,
    /// The delete queue.
    pub queue: DeleteQueue,
    /// The claims.
    pub claims: ClaimStore,
    /// The object store, behind the decorator that times and bounds calls.
    pub store: Arc<dyn ObjectStore>,
    /// Where outcomes are counted.
    pub metrics: Metrics,
    /// The knobs.
    pub settings: JobSettings,
    /// When each loop last completed a step.
    pub liveness: liveness::Liveness,
    /// Bounds the store calls in flight in this process.
    store_slots: Arc<Semaphore>,
}

impl JobContext {
    /// A context over `pool` and `store`. `store` comes bare (from
    /// [`crate::store::open`]): the context wraps it in the store decorator,
    /// which times every call into `metrics` and bounds it by
    /// [`JobSettings::store_timeout`].
    pub fn new(
        pool: Pool,
        store: Arc<dyn ObjectStore>,
        metrics: Metrics,
        settings: JobSettings,
    ) -> Self {
        Self {
            queue: DeleteQueue::new(pool.clone()),
            claims: ClaimStore::new(pool.clone()),
            store_slots: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            liveness: liveness::Liveness::default(),
            store: Instrumented::wrap_bounded(store, metrics.clone(), settings.store_timeout),
            pool,
            metrics,
            settings,
        }
    }

    /// Runs one store call within the process's concurrency limit
    /// ([`JobSettings::concurrency`]). The limit is the jobs' own, so it
    /// stays here; the timing and the time bound are the decorator's.
    pub(crate) async fn store_call<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let _slot = match self.store_slots.try_acquire() {
            Ok(slot) => slot,
            Err(_) => {
                tracing::debug!("store call waits for a slot");
                self.store_slots
                    .acquire()
                    .await
                    .expect("the semaphore is never closed")
            }
        };
        call.await
    }
}

/// Runs every job loop (delete worker, webhooks, sweeper, reaper, retention,
/// gauges) until
/// `cancel` fires, then lets each finish or hand back its work within
/// [`JobSettings::shutdown_timeout`].
/// `listen_url` is where LISTEN connects (`None`: poll only).
pub async fn run(ctx: JobContext, listen_url: Option<String>, cancel: CancellationToken) {
    let tasks = [
        tokio::spawn(delete_worker::run(
            ctx.clone(),
            listen_url.clone(),
            cancel.clone(),
        )),
        tokio::spawn(webhooks::run(ctx.clone(), listen_url, cancel.clone())),
        tokio::spawn(sweeper::run(ctx.clone(), cancel.clone())),
        tokio::spawn(reaper::run(ctx.clone(), cancel.clone())),
        tokio::spawn(retention::run(ctx.clone(), cancel.clone())),
        tokio::spawn(refresh_gauges(ctx, cancel)),
    ];
    for task in tasks {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "a job loop panicked");
        }
    }
}

/// Runs `batch` (a bounded DELETE of at most `limit` rows, returning how
/// many it removed) until it removes fewer than `limit`; returns the total.
/// Pruning in bounded statements keeps each one short, whatever the backlog.
pub(crate) async fn prune_in_batches<F, Fut>(limit: i64, batch: F) -> Result<u64, DbError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<u64, DbError>>,
{
    let mut total = 0;
    loop {
        let n = batch().await?;
        total += n;
        if n < limit as u64 {
            return Ok(total);
        }
    }
}

/// Runs `step` every `interval` (after each run, successful or not) until
/// `cancel` fires; a run in progress is dropped at cancel (steps are safe to
/// cut: they hold no transaction across store I/O). A `watched` loop stamps
/// its liveness before each run.
pub(crate) async fn periodic<'a, T, F, Fut>(
    ctx: &'a JobContext,
    cancel: &CancellationToken,
    what: &'static str,
    interval: Duration,
    watched: Option<liveness::Loop>,
    step: F,
) where
    F: Fn(&'a JobContext) -> Fut,
    Fut: Future<Output = Result<T, JobError>>,
{
    while !cancel.is_cancelled() {
        if let Some(which) = watched {
            ctx.liveness.beat(which);
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            result = step(ctx) => if let Err(e) = result {
                tracing::warn!(error = %e, job = what, ?interval, "job step failed; retrying after the interval");
            },
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// The sessions of `sessions` that no claim and no delete-queue row knows
/// (leaked parts): the reaper aborts them, the audit reports them.
pub(crate) async fn orphan_sessions(
    ctx: &JobContext,
    sessions: Vec<MultipartSession>,
) -> Result<Vec<MultipartSession>, DbError> {
    let mut orphans = Vec::new();
    for chunk in sessions.chunks(1000) {
        let ids: Vec<String> = chunk.iter().map(|s| s.upload_id.clone()).collect();
        let known = ctx.claims.known_upload_ids(&ids).await?;
        orphans.extend(
            chunk
                .iter()
                .filter(|s| !known.contains(&s.upload_id))
                .cloned(),
        );
    }
    Ok(orphans)
}

/// Refreshes the database gauges every [`JobSettings::gauge_interval`].
pub async fn refresh_gauges(ctx: JobContext, cancel: CancellationToken) {
    loop {
        if let Err(e) = ctx.metrics.refresh_database_gauges(&ctx.pool).await {
            tracing::warn!(error = %e, "could not refresh the queue and claim gauges");
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(ctx.settings.gauge_interval) => {}
        }
    }
}

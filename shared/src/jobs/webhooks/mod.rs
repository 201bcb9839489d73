//! Webhooks: the publisher numbers committed events and fans them out to
//! the endpoints that want them ([`publish_once`]); the deliverer leases due
//! deliveries and sends them ([`deliver_once`]), at least once, with the
//! delete queue's lease, backoff and dead-row rules; old delivered events
//! are pruned ([`prune_once`]).
//!
//! The loop ([`run`]) wakes on new events and new deliveries (LISTEN, with
//! the poll interval as the fallback), publishes, then delivers until
//! nothing is due.

pub mod send;

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{backoff, prune_in_batches, JobContext, JobError};
use crate::db::{
    events::{EventStore, Published},
    listen::Wakeups,
    webhooks::{Delivery, WebhookStore},
};
use send::Attempt;

/// The channel new events notify.
pub const EVENTS_CHANNEL: &str = "claimcheck_events";
/// The channel new deliveries notify.
pub const DELIVERIES_CHANNEL: &str = "claimcheck_webhook_deliveries";
/// Events numbered per publishing step.
const PUBLISH_BATCH: i64 = 1000;
/// Events pruned per statement.
const PRUNE_BATCH: i64 = 10_000;
/// The pause after a step that numbered a few events and delivered none
/// (no endpoint wants them, or none is registered). Other
/// work commits events a few at a time (a drain: one per deleted row, each
/// `done` notifying), and a loop that went round at once numbered them a
/// few at a time: ~1,900 publishes (each a transaction of its own) in a
/// 4.7 s drain of 10,000 rows, more database time than the drain's own
/// statements. A short pause lets them gather; a full batch goes on at once.
const GATHER: Duration = Duration::from_millis(50);

/// What a webhook step found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Deliveries, or a full batch of events: go on at once.
    Full,
    /// A few events numbered, no deliveries: let more gather first.
    Some,
    /// Nothing.
    Nothing,
}

/// What one delivery step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryOutcome {
    /// Deliveries leased (0: nothing was due).
    pub leased: usize,
    /// Delivered (2xx).
    pub done: usize,
    /// Failed, due again later.
    pub deferred: usize,
    /// Failed their last attempt and parked.
    pub dead: usize,
    /// Whose lease ran out before the outcome was written.
    pub lost: usize,
}

impl std::ops::AddAssign for DeliveryOutcome {
    fn add_assign(&mut self, o: Self) {
        self.leased += o.leased;
        self.done += o.done;
        self.deferred += o.deferred;
        self.dead += o.dead;
        self.lost += o.lost;
    }
}

/// Numbers committed events and makes their deliveries (one batch).
pub async fn publish_once(ctx: &JobContext) -> Result<Published, JobError> {
    Ok(EventStore::new(ctx.pool.clone())
        .publish(PUBLISH_BATCH)
        .await?)
}

/// Leases due deliveries (at most [`super::JobSettings::concurrency`] per
/// endpoint) and sends them, all at once.
pub async fn deliver_once(
    ctx: &JobContext,
    http: &send::HttpClient,
) -> Result<DeliveryOutcome, JobError> {
    let s = &ctx.settings;
    let store = WebhookStore::new(ctx.pool.clone());
    // Long enough for a whole batch: its requests run at once.
    let lease_for = s.webhook_timeout * 3 + Duration::from_secs(10);
    let lease = store
        .lease(
            i64::from(s.delete_batch),
            s.concurrency as i64,
            lease_for,
            s.webhook_max_attempts,
        )
        .await?;
    let mut outcome = DeliveryOutcome {
        leased: lease.rows.len(),
        ..DeliveryOutcome::default()
    };
    // All at once: the lease holds at most `concurrency` per endpoint.
    let results = futures::future::join_all(
        lease
            .rows
            .iter()
            .map(|d| deliver(ctx, &store, http, lease.token, d)),
    )
    .await;
    // The successes in one statement: most of a batch, most of the time.
    let mut delivered = Vec::new();
    for result in results {
        match result? {
            Recorded::Delivered { id, status } => delivered.push((id, status)),
            Recorded::Deferred => outcome.deferred += 1,
            Recorded::Dead => outcome.dead += 1,
            Recorded::Lost => outcome.lost += 1,
        }
    }
    let recorded = store.done_many(lease.token, &delivered).await?;
    outcome.done = recorded as usize;
    outcome.lost += delivered.len() - recorded as usize;
    ctx.metrics
        .webhooks
        .deliveries_total
        .with_label_values(&["done"])
        .inc_by(recorded);
    Ok(outcome)
}

/// Publishes and delivers until nothing is due (tests, one-shot drains).
pub async fn drain(ctx: &JobContext, http: &send::HttpClient) -> Result<DeliveryOutcome, JobError> {
    let mut total = DeliveryOutcome::default();
    loop {
        let published = publish_once(ctx).await?;
        let step = deliver_once(ctx, http).await?;
        let idle = step.leased == 0 && published.events == 0;
        total += step;
        if idle {
            return Ok(total);
        }
    }
}

/// Removes delivered events older than the retention.
pub async fn prune_once(ctx: &JobContext) -> Result<u64, JobError> {
    let store = EventStore::new(ctx.pool.clone());
    let retention = ctx.settings.event_retention;
    Ok(prune_in_batches(PRUNE_BATCH, || store.prune(retention, PRUNE_BATCH)).await?)
}

/// What became of one delivery.
enum Recorded {
    /// Answered 2xx; recorded with the batch's others.
    Delivered {
        id: i64,
        status: i32,
    },
    Deferred,
    Dead,
    Lost,
}

async fn deliver(
    ctx: &JobContext,
    store: &WebhookStore,
    http: &send::HttpClient,
    token: uuid::Uuid,
    d: &Delivery,
) -> Result<Recorded, JobError> {
    let id = d.event.id.to_string();
    let body = serde_json::to_vec(&d.event.to_json()).expect("an event serializes");
    let started = Instant::now();
    let attempt = send::send(http, &d.url, &d.secret, &id, body).await;
    let m = &ctx.metrics;
    m.webhooks
        .delivery_duration_seconds
        .observe(started.elapsed().as_secs_f64());
    let (status, error) = match attempt {
        Attempt::Delivered { status } => {
            return Ok(Recorded::Delivered {
                id: d.id,
                status: i32::from(status),
            })
        }
        Attempt::Refused { status, excerpt } => {
            (Some(i32::from(status)), format!("HTTP {status}: {excerpt}"))
        }
        Attempt::Failed { error } => (None, error),
    };
    let s = &ctx.settings;
    let last = d.attempts as u32 >= s.webhook_max_attempts;
    let retry_in =
        (!last).then(|| backoff::delay(d.attempts as u32, s.backoff_base, s.backoff_max));
    tracing::info!(delivery = d.id, endpoint = %d.endpoint_id, event = d.event.id, attempts = d.attempts, error, "webhook delivery failed");
    if !store.failed(token, d.id, status, &error, retry_in).await? {
        return Ok(Recorded::Lost);
    }
    let outcome = if last { "dead" } else { "deferred" };
    m.webhooks
        .deliveries_total
        .with_label_values(&[outcome])
        .inc();
    Ok(if last {
        Recorded::Dead
    } else {
        Recorded::Deferred
    })
}

/// The webhook loop: publish and deliver while there is work, else wait
/// for a notification or the poll interval; prune every sweep interval.
pub async fn run(ctx: JobContext, listen_url: Option<String>, cancel: CancellationToken) {
    let poll = ctx.settings.poll_interval;
    let events = Wakeups::listen_or_poll(listen_url.clone(), EVENTS_CHANNEL, poll, cancel.clone());
    let deliveries = Wakeups::listen_or_poll(listen_url, DELIVERIES_CHANNEL, poll, cancel.clone());
    let http = send::client(ctx.settings.webhook_timeout);
    let mut last_prune: Option<Instant> = None;
    while !cancel.is_cancelled() {
        if last_prune.is_none_or(|t| t.elapsed() >= ctx.settings.sweep_interval) {
            last_prune = Some(Instant::now());
            match prune_once(&ctx).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "delivered events pruned"),
                Err(e) => tracing::warn!(error = %e, "could not prune events"),
            }
        }
        let step = async {
            let published = publish_once(&ctx).await?;
            let delivered = deliver_once(&ctx, &http).await?;
            // Deliveries go on at once (a step sends at most the
            // per-endpoint concurrency); only numbering events waits.
            let full = published.events >= PUBLISH_BATCH as u64 || delivered.leased > 0;
            Ok::<_, JobError>(if full {
                Found::Full
            } else if published.events > 0 || delivered.leased > 0 {
                Found::Some
            } else {
                Found::Nothing
            })
        };
        // A batch in flight finishes (within the webhook timeout); its
        // deliveries are fenced by their lease either way.
        let found = match step.await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "webhook step failed; retrying after the poll interval");
                Found::Nothing
            }
        };
        match found {
            Found::Full => {}
            Found::Some => {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = tokio::time::sleep(GATHER) => {}
                }
            }
            Found::Nothing => {
                tokio::select! {
                    () = events.wait(poll, &cancel) => {}
                    () = deliveries.wait(poll, &cancel) => {}
                }
            }
        }
    }
    events.stop().await;
    deliveries.stop().await;
}

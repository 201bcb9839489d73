//! Prometheus metrics: every series the contract names, in one registry.
//!
//! Each [`Metrics`] owns its registry (not the process-global one), so tests
//! and `claimcheck-api dev` (API and worker in one process) can hold several
//! without names clashing. Series whose label values form a fixed set are
//! created at 0 in [`Metrics::new`]: a dashboard or an alert on `rate(...)`
//! then sees them before the first event, not only after it.
//!
//! Gauges that describe the database (queue rows, claims) are refreshed by
//! [`Metrics::refresh_database_gauges`] on an interval, with one query each,
//! never per scrape: scrapes from several Prometheus replicas then cost the
//! database nothing.

mod webhooks;

pub use webhooks::WebhookMetrics;

use crate::db::Pool;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::{
    db::{deletes::QueueStats, ClaimStore, DbError, DeleteQueue, WebhookStore},
    domain::DeleteReason,
};

/// Outcomes of a delete-queue row, the `outcome` label of `claimcheck_deletes_total`.
pub const DELETE_OUTCOMES: [&str; 3] = ["done", "deferred", "dead"];
/// The `outcome` label of `claimcheck_sweeps_total`.
pub const SWEEP_OUTCOMES: [&str; 3] = ["expired", "recovered", "unconsumed"];
/// Object-store operations, the `op` label of `claimcheck_store_request_duration_seconds`.
pub const STORE_OPS: [&str; 15] = [
    "put",
    "create_multipart",
    "upload_part",
    "list_parts",
    "complete_multipart",
    "abort_multipart",
    "delete",
    "delete_many",
    "head",
    "get",
    "copy_part",
    "presign_upload_part",
    "presign_get",
    "list_objects",
    "list_multipart_uploads",
];
/// The `outcome` label of `claimcheck_store_request_duration_seconds`.
pub const STORE_OUTCOMES: [&str; 2] = ["ok", "error"];

/// Store calls range from a sub-millisecond `head` on local disk to a 5 GiB
/// part over a slow link.
const STORE_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0,
];

/// Every metric of the contract's "Metrics" section.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `claimcheck_webhook_*`.
    pub webhooks: WebhookMetrics,
    /// `claimcheck_delete_queue_rows{state}`.
    pub delete_queue_rows: IntGaugeVec,
    /// `claimcheck_delete_queue_oldest_due_seconds`.
    pub delete_queue_oldest_due_seconds: Gauge,
    /// `claimcheck_deletes_total{outcome, reason}`.
    pub deletes_total: IntCounterVec,
    /// `claimcheck_delete_duration_seconds`: store work for one queue row.
    pub delete_duration_seconds: Histogram,
    /// `claimcheck_sweeps_total{outcome}`: claims the sweeper acted on.
    pub sweeps_total: IntCounterVec,
    /// `claimcheck_sweeper_last_run_timestamp_seconds`: end of the last complete sweep.
    pub sweeper_last_run_timestamp_seconds: Gauge,
    /// `claimcheck_claims{status}`.
    pub claims: IntGaugeVec,
    /// `claimcheck_upload_bytes_total`.
    pub upload_bytes_total: IntCounter,
    /// `claimcheck_tus_patch_bytes_total`: bytes tus appends made durable.
    pub tus_patch_bytes_total: IntCounter,
    /// `claimcheck_tus_locked_total`: tus appends refused (423) because
    /// another request held the upload.
    pub tus_locked_total: IntCounter,
    /// `claimcheck_quota_refusals_total{quota}`: starts refused by a quota
    /// or the in-flight cap (API).
    pub quota_refusals_total: IntCounterVec,
    /// `claimcheck_http_requests_total{route, method, status}` (API).
    pub http_requests_total: IntCounterVec,
    /// `claimcheck_http_request_duration_seconds{route}` (API).
    pub http_request_duration_seconds: HistogramVec,
    /// `claimcheck_uploads_in_flight` (API).
    pub uploads_in_flight: IntGauge,
    /// `claimcheck_orphans_aborted_total` (reaper).
    pub orphans_aborted_total: IntCounter,
    /// `claimcheck_store_request_duration_seconds{op, outcome}`.
    pub store_request_duration_seconds: HistogramVec,
    /// `claimcheck_db_pool_connections{state}`.
    pub db_pool_connections: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered and fixed-label series at 0.
    pub fn new() -> Self {
        let registry = Registry::new();
        let m = Metrics {
            webhooks: WebhookMetrics::new(&registry),
            delete_queue_rows: IntGaugeVec::new(
                Opts::new(
                    "claimcheck_delete_queue_rows",
                    "Delete-queue rows by state (due, leased, deferred, dead).",
                ),
                &["state"],
            )
            .expect("valid metric"),
            delete_queue_oldest_due_seconds: Gauge::new(
                "claimcheck_delete_queue_oldest_due_seconds",
                "Age of the oldest due delete-queue row.",
            )
            .expect("valid metric"),
            deletes_total: IntCounterVec::new(
                Opts::new(
                    "claimcheck_deletes_total",
                    "Delete-queue rows processed, by outcome and reason.",
                ),
                &["outcome", "reason"],
            )
            .expect("valid metric"),
            delete_duration_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "claimcheck_delete_duration_seconds",
                    "Store work (abort and delete) for one delete-queue row.",
                )
                .buckets(STORE_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
            sweeps_total: IntCounterVec::new(
                Opts::new(
                    "claimcheck_sweeps_total",
                    "Claims the sweeper expired, recovered or dropped as unconsumed.",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            sweeper_last_run_timestamp_seconds: Gauge::new(
                "claimcheck_sweeper_last_run_timestamp_seconds",
                "Unix time at which the last complete sweep ended.",
            )
            .expect("valid metric"),
            claims: IntGaugeVec::new(
                Opts::new("claimcheck_claims", "Upload claims by status."),
                &["status"],
            )
            .expect("valid metric"),
            upload_bytes_total: IntCounter::new(
                "claimcheck_upload_bytes_total",
                "Bytes received in upload bodies.",
            )
            .expect("valid metric"),
            tus_patch_bytes_total: IntCounter::new(
                "claimcheck_tus_patch_bytes_total",
                "Bytes tus appends (PATCH, creation-with-upload) made durable.",
            )
            .expect("valid metric"),
            tus_locked_total: IntCounter::new(
                "claimcheck_tus_locked_total",
                "tus appends refused with 423 because another request was writing the upload.",
            )
            .expect("valid metric"),
            quota_refusals_total: IntCounterVec::new(
                Opts::new(
                    "claimcheck_quota_refusals_total",
                    "Upload starts refused by a quota (bytes, daily_bytes, daily_uploads) or the in-flight cap (pending).",
                ),
                &["quota"],
            )
            .expect("valid metric"),
            http_requests_total: IntCounterVec::new(
                Opts::new("claimcheck_http_requests_total", "HTTP requests answered."),
                &["route", "method", "status"],
            )
            .expect("valid metric"),
            http_request_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "claimcheck_http_request_duration_seconds",
                    "HTTP request durations by route.",
                )
                .buckets(STORE_BUCKETS.to_vec()),
                &["route"],
            )
            .expect("valid metric"),
            uploads_in_flight: IntGauge::new(
                "claimcheck_uploads_in_flight",
                "Upload bodies being received right now.",
            )
            .expect("valid metric"),
            orphans_aborted_total: IntCounter::new(
                "claimcheck_orphans_aborted_total",
                "Multipart sessions no claim or queue row knew, aborted by the reaper.",
            )
            .expect("valid metric"),
            store_request_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "claimcheck_store_request_duration_seconds",
                    "Object store calls (S3 or filesystem) by operation and outcome.",
                )
                .buckets(STORE_BUCKETS.to_vec()),
                &["op", "outcome"],
            )
            .expect("valid metric"),
            db_pool_connections: IntGaugeVec::new(
                Opts::new(
                    "claimcheck_db_pool_connections",
                    "PostgreSQL pool connections by state.",
                ),
                &["state"],
            )
            .expect("valid metric"),
            registry,
        };
        m.register_all();
        m.init_fixed_series();
        m
    }

    fn register_all(&self) {
        let collectors: [Box<dyn prometheus::core::Collector>; 17] = [
            Box::new(self.delete_queue_rows.clone()),
            Box::new(self.delete_queue_oldest_due_seconds.clone()),
            Box::new(self.deletes_total.clone()),
            Box::new(self.delete_duration_seconds.clone()),
            Box::new(self.sweeps_total.clone()),
            Box::new(self.sweeper_last_run_timestamp_seconds.clone()),
            Box::new(self.claims.clone()),
            Box::new(self.upload_bytes_total.clone()),
            Box::new(self.tus_patch_bytes_total.clone()),
            Box::new(self.tus_locked_total.clone()),
            Box::new(self.quota_refusals_total.clone()),
            Box::new(self.http_requests_total.clone()),
            Box::new(self.http_request_duration_seconds.clone()),
            Box::new(self.uploads_in_flight.clone()),
            Box::new(self.orphans_aborted_total.clone()),
            Box::new(self.store_request_duration_seconds.clone()),
            Box::new(self.db_pool_connections.clone()),
        ];
        for c in collectors {
            // Names are constants registered once in a fresh registry.
            self.registry.register(c).expect("unique metric names");
        }
    }

    fn init_fixed_series(&self) {
        for state in ["due", "leased", "deferred", "dead"] {
            self.delete_queue_rows.with_label_values(&[state]).set(0);
        }
        for outcome in DELETE_OUTCOMES {
            for reason in DeleteReason::ALL {
                self.deletes_total
                    .with_label_values(&[outcome, reason.as_str()])
                    .reset();
            }
        }
        for outcome in SWEEP_OUTCOMES {
            self.sweeps_total.with_label_values(&[outcome]).reset();
        }
        for status in ["pending", "uploaded"] {
            self.claims.with_label_values(&[status]).set(0);
        }
        for op in STORE_OPS {
            for outcome in STORE_OUTCOMES {
                // Touching a child creates its series with zero observations.
                let _ = self
                    .store_request_duration_seconds
                    .with_label_values(&[op, outcome]);
            }
        }
        for state in ["idle", "busy"] {
            self.db_pool_connections.with_label_values(&[state]).set(0);
        }
        for quota in crate::db::Quota::ALL {
            self.quota_refusals_total
                .with_label_values(&[quota.as_str()])
                .reset();
        }
    }

    /// Counts one processed delete-queue row.
    pub fn count_delete(&self, outcome: &str, reason: DeleteReason) {
        self.deletes_total
            .with_label_values(&[outcome, reason.as_str()])
            .inc();
    }

    /// Records one object-store call.
    pub fn observe_store(&self, op: &str, ok: bool, seconds: f64) {
        let outcome = if ok { "ok" } else { "error" };
        self.store_request_duration_seconds
            .with_label_values(&[op, outcome])
            .observe(seconds);
    }

    /// Sets the queue gauges from one [`DeleteQueue::stats`] answer.
    pub fn set_queue_stats(&self, stats: &QueueStats) {
        let rows = &self.delete_queue_rows;
        rows.with_label_values(&["due"]).set(stats.due);
        rows.with_label_values(&["leased"]).set(stats.leased);
        rows.with_label_values(&["deferred"]).set(stats.deferred);
        rows.with_label_values(&["dead"]).set(stats.dead);
        self.delete_queue_oldest_due_seconds
            .set(stats.oldest_due_seconds);
    }

    /// Sets the pool gauges from the pool's own counters (no query).
    pub fn set_pool_status(&self, pool: &Pool) {
        let status = pool.status();
        let idle = i64::try_from(status.available).unwrap_or(0);
        let size = i64::try_from(status.size).unwrap_or(0);
        self.db_pool_connections
            .with_label_values(&["idle"])
            .set(idle);
        self.db_pool_connections
            .with_label_values(&["busy"])
            .set((size - idle).max(0));
    }

    /// Refreshes the gauges that describe the database: one queue statistics
    /// query and one claim count query. Call it on an interval.
    pub async fn refresh_database_gauges(&self, pool: &Pool) -> Result<(), DbError> {
        self.set_pool_status(pool);
        let stats = DeleteQueue::new(pool.clone()).stats().await?;
        self.set_queue_stats(&stats);
        let webhooks = WebhookStore::new(pool.clone()).stats().await?;
        self.webhooks.set_queue(&webhooks);
        let (pending, uploaded) = ClaimStore::new(pool.clone()).count_by_status().await?;
        self.claims.with_label_values(&["pending"]).set(pending);
        self.claims.with_label_values(&["uploaded"]).set(uploaded);
        Ok(())
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into memory cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests;

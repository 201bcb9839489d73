//! The webhook deliveries' series.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::db::DeliveryStats;

/// Outcomes of a delivery attempt, the `outcome` label.
pub const OUTCOMES: [&str; 3] = ["done", "deferred", "dead"];
/// States of a delivery row, the `state` label.
pub const STATES: [&str; 4] = ["due", "leased", "deferred", "dead"];

/// `claimcheck_webhook_*`.
#[derive(Clone, Debug)]
pub struct WebhookMetrics {
    /// `claimcheck_webhook_queue_rows{state}`.
    pub queue_rows: IntGaugeVec,
    /// `claimcheck_webhook_deliveries_total{outcome}`.
    pub deliveries_total: IntCounterVec,
    /// `claimcheck_webhook_delivery_duration_seconds`: one request.
    pub delivery_duration_seconds: Histogram,
}

impl WebhookMetrics {
    /// The series, registered in `registry`, fixed ones at 0.
    pub(super) fn new(registry: &Registry) -> Self {
        let m = Self {
            queue_rows: IntGaugeVec::new(
                Opts::new(
                    "claimcheck_webhook_queue_rows",
                    "Webhook delivery rows by state (due, leased, deferred, dead).",
                ),
                &["state"],
            )
            .expect("valid metric"),
            deliveries_total: IntCounterVec::new(
                Opts::new(
                    "claimcheck_webhook_deliveries_total",
                    "Webhook delivery attempts by outcome.",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            delivery_duration_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "claimcheck_webhook_delivery_duration_seconds",
                    "One webhook request, until its answer or its failure.",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
            )
            .expect("valid metric"),
        };
        for c in [
            Box::new(m.queue_rows.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.deliveries_total.clone()),
            Box::new(m.delivery_duration_seconds.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        for state in STATES {
            m.queue_rows.with_label_values(&[state]).set(0);
        }
        for outcome in OUTCOMES {
            m.deliveries_total.with_label_values(&[outcome]).reset();
        }
        m
    }

    /// Sets the queue gauge from one stats query.
    pub fn set_queue(&self, s: &DeliveryStats) {
        for (state, n) in [
            ("due", s.due),
            ("leased", s.leased),
            ("deferred", s.deferred),
            ("dead", s.dead),
        ] {
            self.queue_rows.with_label_values(&[state]).set(n);
        }
    }
}

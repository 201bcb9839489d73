//! Logs and traces: one subscriber for both binaries.
//!
//! Logs go to stdout as JSON (for log pipelines) or pretty to stderr (for
//! people), filtered by `RUST_LOG` (default `info`). When
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans are also exported over OTLP
//! (HTTP/protobuf) with the W3C trace context propagated from incoming
//! `traceparent` headers; when it is unset nothing is exported.

use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::TracerProvider as _,
};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider, Resource};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{filter::filter_fn, fmt, prelude::*, EnvFilter, Layer};

use crate::config::LogFormat;

/// Flushes and stops the trace exporter when dropped: keep it alive in `main`.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("trace exporter shutdown: {e}");
            }
        }
    }
}

/// Installs the global subscriber for `service` (`claimcheck-api`, ...).
/// Call once, first thing; a second call (tests start several apps in one
/// process) keeps the first subscriber.
pub fn init(service: &'static str, format: LogFormat) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = otlp_provider(service);
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service))
            // The exporter's own HTTP client must not trace itself.
            .with_filter(filter_fn(|meta| {
                let target = meta.target();
                !["hyper", "h2", "reqwest", "opentelemetry", "tonic", "tower"]
                    .iter()
                    .any(|noisy| target.starts_with(noisy))
            }))
    });
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    TelemetryGuard { provider }
}

fn otlp_provider(service: &'static str) -> Option<SdkTracerProvider> {
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|v| !v.trim().is_empty())?;
    // The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (and the other OTEL_*
    // variables) itself.
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT is set but the exporter cannot start: {e}");
            return None;
        }
    };
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    Some(provider)
}

/// Makes `span` a child of the trace named by `traceparent` in `headers`
/// (name, value pairs), if there is one.
pub fn set_parent_from_headers<'a>(
    span: &tracing::Span,
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) {
    let carrier = Headers(
        headers
            .filter_map(|(k, v)| {
                Some((
                    k.to_ascii_lowercase(),
                    std::str::from_utf8(v).ok()?.to_owned(),
                ))
            })
            .filter(|(k, _)| k == "traceparent" || k == "tracestate")
            .collect(),
    );
    if carrier.0.is_empty() {
        return;
    }
    let context = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(context);
}

struct Headers(Vec<(String, String)>);

impl Extractor for Headers {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

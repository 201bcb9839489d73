//! One test binary for the whole suite: each file under `tests/` would be its
//! own binary linking aws-sdk-s3 again, which costs minutes on 2 cores.

mod adoption;
mod api_errors;
mod api_multipart;
mod api_uploads;
mod append;
mod audit;
mod audit_log;
mod browser;
mod claims;
mod dev;
mod hardening;
mod idempotency;
mod migrations;
mod object_store;
mod operate;
mod owner_bound;
mod pg_tls;
mod pooler;
mod progress;
mod queue;
mod quotas;
mod support;
mod sweeper;
mod tokens;
mod tus;
mod webhooks;
mod worker;

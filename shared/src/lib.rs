//! claimcheck's library: everything the `claimcheck-api` and
//! `claimcheck-worker` binaries share.

pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod files;
pub mod input;
pub mod jobs;
pub mod media_type;
pub mod metrics;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod uploads;

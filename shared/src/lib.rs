//! claimcheck's library: everything the `claimcheck-api` and
//! `claimcheck-worker` binaries share.

pub mod config;
pub mod db;
pub mod domain;
pub mod store;
pub mod telemetry;

//! The fault suite: each scenario runs the real binaries, injects a fault
//! (`kill -9`, a stopped S3 server, a Garage node lost from a cluster of
//! three, a restarted PostgreSQL, a PostgreSQL failover to a standby, 8 APIs
//! behind PgBouncer, clients that stall or lie, a fuzzer), lets the system
//! settle and then runs `claimcheck-worker audit` and checks the invariants
//! (`claimcheck_tests::faults::check_invariants`).
//!
//! Its own test binary, so `cargo test` runs it after the main suite, never
//! beside it; inside it the scenarios take a lock and run one at a time.
//! The servers a scenario stops are its own (a private Garage, a private
//! PostgreSQL cluster started through `scripts/lib`): a fault never reaches
//! another test. What each scenario showed: `docs/reliability.md`.
//!
//! Run alone: `scripts/test -p claimcheck-tests --test faults -- --nocapture`.

mod api_kill;
mod fuzz;
mod garage_node;
mod pg_failover;
mod pg_fenced;
mod pg_restart;
mod pooler_load;
mod s3_outage;
mod slow_clients;
mod worker_kill;

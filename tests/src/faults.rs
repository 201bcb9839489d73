//! Helpers for the fault suite (`tests/tests/faults/`): API processes that
//! can be killed, a PostgreSQL and a Garage of the scenario's own (so that
//! stopping them disturbs no other test), clients that keep calling the API
//! through an outage, waiting for a worker's drain, settling the system with
//! the library's single-step jobs, and the invariants checked after each
//! fault; upload clients that retry what the contract says to retry; a
//! 3-node Garage that loses a node.

mod listing;
mod load;
mod rounds;
pub(crate) mod servers;
mod settle;
mod uploads;
mod writes;

use std::time::{Duration, Instant};

pub use crate::jobs::record_removals;
pub use crate::{api_process::ApiProcess, db::token, stores::S3Target};
use crate::{db::connect, procs::WorkerProcess};
pub use listing::{listed_but_deleted, read_back, sessions_listed};
pub use load::{status_and_code, Answer, Caller, Clients, Outage, Pause};
pub use rounds::{finish, refused_starts, start_uploads, summary, Running};
pub use servers::{workspace_root, GarageCluster, PostgresPair, PrivateGarage, PrivatePostgres};
pub use settle::{
    check_invariants, run_audit, settle, settle_and_check, settle_context, settle_settings,
    Checked, Settled,
};
pub use uploads::{upload, Finished, Protocol, Refusal, Upload, PART};
pub use writes::{lost_writes, Item, Stage, Writers, Written};

/// One fault scenario at a time in the fault binary, whatever the harness's
/// thread count: they measure timings and load the 2 cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held for the whole scenario.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// The answer of `sql` (one bigint) on `database_url`, on a connection of
/// its own: the server may have restarted since the last question.
pub async fn count_on(database_url: &str, sql: &str) -> i64 {
    connect(database_url)
        .await
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// How many queue rows the removal recorder ([`record_removals`]) counted
/// so far.
pub async fn removals_done(database_url: &str) -> i64 {
    count_on(database_url, "SELECT count(*) FROM public.removed").await
}

/// Waits until the removal recorder counted `n` rows done: the drain is
/// under way. Panics after 30 s.
pub async fn wait_for_removals(database_url: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while removals_done(database_url).await < n {
        assert!(
            Instant::now() < deadline,
            "the drain runs ({n} rows done within 30 s)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the delete queue on `database_url` is empty; after
/// `timeout`, panics saying `what`, whether `worker` still runs and its log.
pub async fn wait_for_empty_queue(
    database_url: &str,
    worker: &WorkerProcess,
    timeout: Duration,
    what: &str,
) {
    let deadline = Instant::now() + timeout;
    while count_on(
        database_url,
        "SELECT count(*) FROM claimcheck.pending_deletes",
    )
    .await
        > 0
    {
        assert!(
            Instant::now() < deadline,
            "{what} (alive: {}); log:\n{}",
            worker.running(),
            worker.log_lines().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

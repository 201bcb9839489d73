//! The readiness check of the object store, one rule for the API and the
//! worker.

use std::time::Duration;

use super::{ObjectStore, StoreError};

/// How long the probe waits for the store.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the store answers: a HEAD of a key under `prefix` that never
/// exists, where "no such key" is an answer. Why not, in the log.
pub async fn store_answers(store: &dyn ObjectStore, prefix: &str) -> bool {
    let probe = format!("{prefix}claimcheck-readyz-probe");
    match tokio::time::timeout(PROBE_TIMEOUT, store.head(&probe)).await {
        Ok(Ok(_) | Err(StoreError::NotFound)) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: object store unavailable");
            false
        }
        Err(_) => {
            tracing::warn!(timeout = ?PROBE_TIMEOUT, "readiness: object store gave no answer");
            false
        }
    }
}

//! The registry's series and the gauges' setters.

use super::*;

#[test]
fn fixed_series_are_exported_at_zero_from_the_start() {
    let text = Metrics::new().render();
    for line in [
        "claimcheck_delete_queue_rows{state=\"dead\"} 0",
        "claimcheck_delete_queue_oldest_due_seconds 0",
        "claimcheck_deletes_total{outcome=\"dead\",reason=\"claim_expired\"} 0",
        "claimcheck_delete_duration_seconds_count 0",
        "claimcheck_sweeps_total{outcome=\"recovered\"} 0",
        "claimcheck_sweeper_last_run_timestamp_seconds 0",
        "claimcheck_claims{status=\"pending\"} 0",
        "claimcheck_upload_bytes_total 0",
        "claimcheck_tus_patch_bytes_total 0",
        "claimcheck_tus_locked_total 0",
        "claimcheck_quota_refusals_total{quota=\"daily_bytes\"} 0",
        "claimcheck_uploads_in_flight 0",
        "claimcheck_orphans_aborted_total 0",
        "claimcheck_store_request_duration_seconds_count{op=\"delete_many\",outcome=\"error\"} 0",
        "claimcheck_db_pool_connections{state=\"busy\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
}

#[test]
fn queue_stats_set_the_gauges() {
    let m = Metrics::new();
    m.set_queue_stats(&QueueStats {
        due: 3,
        leased: 2,
        deferred: 1,
        dead: 4,
        oldest_due_seconds: 7.5,
    });
    m.count_delete("done", DeleteReason::Replaced);
    let text = m.render();
    assert!(text.contains("claimcheck_delete_queue_rows{state=\"due\"} 3"));
    assert!(text.contains("claimcheck_delete_queue_oldest_due_seconds 7.5"));
    assert!(text.contains("claimcheck_deletes_total{outcome=\"done\",reason=\"replaced\"} 1"));
}

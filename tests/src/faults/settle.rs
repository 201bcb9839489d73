//! Settling the system after a fault with the library's single-step jobs,
//! and the invariants checked once it has settled.

use std::{
    collections::{BTreeSet, HashMap},
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use claimcheck::db::Pool;
use claimcheck::{
    jobs::{audit, delete_worker, reaper, sweeper, JobContext, JobSettings},
    metrics::Metrics,
    store::ObjectStore,
};

use super::listing::{existing, sessions_listed};
use crate::{jobs::fast_settings, procs::run_worker_command, stores::S3Target};

/// Job settings for driving the jobs one step at a time while settling:
/// no backoff, a claim TTL of 1 ms and no orphan grace (so the reaper takes
/// every session no claim knows: after the sweep, only crash leftovers).
pub fn settle_settings(prefix: &str) -> JobSettings {
    JobSettings {
        delete_batch: 500,
        max_attempts: 12,
        concurrency: 8,
        claim_ttl: Duration::from_millis(1),
        gauge_interval: Duration::from_secs(60),
        ..fast_settings(prefix)
    }
}

/// A job context for settling on `pool` and `store` under `prefix`.
pub fn settle_context(pool: &Pool, store: Arc<dyn ObjectStore>, prefix: &str) -> JobContext {
    JobContext::new(pool.clone(), store, Metrics::new(), settle_settings(prefix))
}

/// What settling did.
#[derive(Debug, Clone, Default)]
pub struct Settled {
    /// Pending claims expired by the sweep (delete queued).
    pub expired: usize,
    /// Pending claims whose object was complete: recovered to `uploaded`.
    pub recovered: usize,
    /// Queue rows drained.
    pub drained: usize,
    /// Sessions no claim or queue row knew, aborted by the reaper.
    pub orphans_reaped: usize,
    /// Wall time of the whole settling.
    pub took: Duration,
}

/// The clients are gone: every pending claim under `prefix` is made due
/// now (as its TTL would), and the writer lock a killed API held on it
/// released (as its 30 s lease would), then sweep, drain and reap, one step
/// each, as a worker would.
pub async fn settle(pool: &Pool, s3: &S3Target, prefix: &str) -> Settled {
    let ctx = &settle_context(pool, s3.store().await, prefix);
    let started = Instant::now();
    let client = ctx.pool.get().await.expect("db connection");
    client
        .execute(
            "UPDATE claimcheck.upload_claims
                SET expires_at = now() - interval '1 second',
                    writer_until = least(writer_until, now() - interval '1 second')
              WHERE status = 'pending' AND starts_with(object_key, $1)",
            &[&ctx.settings.key_prefix],
        )
        .await
        .expect("expire pending claims");
    drop(client);
    let swept = sweeper::sweep_once(ctx).await.expect("sweep");
    assert_eq!(swept.postponed, 0, "the store answered every question");
    let mut drained = delete_worker::drain(ctx).await.expect("drain").done;
    // Sessions opened by a process killed before its claim recorded them.
    let reaped = reaper::reap_once(ctx).await.expect("reap");
    assert_eq!(reaped.failed, 0, "{reaped:?}");
    drained += delete_worker::drain(ctx).await.expect("drain").done;
    Settled {
        expired: swept.expired,
        recovered: swept.recovered,
        drained,
        orphans_reaped: reaped.aborted,
        took: started.elapsed(),
    }
}

impl fmt::Display for Settled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "settle {:.1?}: expired {}, recovered {}, drained {}, orphan sessions reaped {}",
            self.took, self.expired, self.recovered, self.drained, self.orphans_reaped
        )
    }
}

/// The end of a scenario that leaves uploads behind: [`settle`], then
/// [`check_invariants`]; returns what each saw.
pub async fn settle_and_check(
    pool: &Pool,
    database_url: &str,
    s3: &S3Target,
    prefix: &str,
) -> (Settled, Checked) {
    let settled = settle(pool, s3, prefix).await;
    let checked = check_invariants(pool, database_url, s3, prefix).await;
    (settled, checked)
}

/// What the invariants saw.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    /// Objects in the bucket under the prefix.
    pub objects: usize,
    /// Uploaded claims (not consumed).
    pub uploaded: usize,
    /// Registry rows.
    pub registry: usize,
    /// Queue rows removed as done during the scenario (needs [`record_removals`]).
    pub deletes_done: i64,
    /// Keys the bucket listed but HEAD did not find (deleted while a node
    /// of a replicated store was down), left out of [`Checked::objects`].
    pub listed_gone: usize,
    /// Multipart sessions listed that the store no longer has, likewise.
    pub sessions_gone: usize,
}

async fn keys(pool: &Pool, sql: &str, prefix: &str) -> BTreeSet<String> {
    pool.get()
        .await
        .expect("db connection")
        .query(sql, &[&prefix])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Runs `claimcheck-worker audit` (the binary) on `database_url` and `s3`
/// under `prefix`; panics with its report unless it exits 0. Returns what
/// it printed.
pub fn run_audit(database_url: &str, s3: &S3Target, prefix: &str) -> String {
    let audit_run = run_worker_command(&s3.worker_env(database_url, prefix), &["audit"]);
    let printed = String::from_utf8_lossy(&audit_run.stdout).into_owned();
    assert!(
        audit_run.status.success(),
        "claimcheck-worker audit exits 0; it said:\n{printed}\n{}",
        String::from_utf8_lossy(&audit_run.stderr)
    );
    assert!(printed.contains("clean"), "{printed}");
    printed
}

/// After settling: runs `claimcheck-worker audit` (the binary, exit 0) and
/// checks the invariants, stronger than the audit since nothing is in
/// flight any more:
/// - the bucket holds exactly the objects of the registry and of uploaded
///   claims (every object accounted for, none lost), each of its size;
/// - no multipart session, no pending claim, no claim past its expiry;
/// - a key or session listed but not found by HEAD or ListParts is gone (a
///   replicated store lists what a node missed the delete of), as the
///   audit's second look says too;
/// - the queue is empty: no row due, leased or dead, and every row removed
///   during the scenario was done (not dropped) with its object gone;
/// - a key is in at most one of claims and registry.
pub async fn check_invariants(
    pool: &Pool,
    database_url: &str,
    s3: &S3Target,
    prefix: &str,
) -> Checked {
    run_audit(database_url, s3, prefix);

    let store = s3.store().await;
    let ctx = settle_context(pool, store.clone(), prefix);
    let report = audit::audit(&ctx).await.expect("audit");
    assert!(report.is_clean(), "{report}");

    let mut in_bucket = BTreeSet::new();
    let mut sizes = HashMap::new();
    let mut token = None;
    loop {
        let (page, next) = store
            .list_objects(prefix, token)
            .await
            .expect("list objects");
        for o in page {
            sizes.insert(o.key.clone(), o.size);
            in_bucket.insert(o.key);
        }
        match next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let (sessions, sessions_gone) = sessions_listed(s3, prefix).await;
    assert!(sessions.is_empty(), "sessions left: {sessions:?}");

    let registry = keys(
        pool,
        "SELECT object_key FROM claimcheck.objects WHERE starts_with(object_key, $1)",
        prefix,
    )
    .await;
    let uploaded = keys(
        pool,
        "SELECT object_key FROM claimcheck.upload_claims
          WHERE status = 'uploaded' AND starts_with(object_key, $1)",
        prefix,
    )
    .await;
    let others = keys(
        pool,
        "SELECT object_key || ' ' || status || ' expires ' || coalesce(expires_at::text, 'never')
           FROM claimcheck.upload_claims
          WHERE starts_with(object_key, $1)
            AND (status <> 'uploaded' OR expires_at <= now())",
        prefix,
    )
    .await;
    assert!(
        others.is_empty(),
        "no pending or overdue claim after settling: {others:?}"
    );
    assert!(
        registry.is_disjoint(&uploaded),
        "a key both claimed and live"
    );
    let accounted: BTreeSet<String> = registry.union(&uploaded).cloned().collect();
    // The second look the audit takes too: a replicated store may list a key
    // deleted while one of its nodes was down (Garage does once the node is
    // back, until it repairs the entry); HEAD answers for the object itself.
    let unheld: Vec<String> = in_bucket.difference(&accounted).cloned().collect();
    let there = existing(&*store, &unheld).await;
    in_bucket.retain(|k| accounted.contains(k) || there.contains(k));
    assert_eq!(
        in_bucket, accounted,
        "the bucket holds exactly the registry's and the uploaded claims' objects"
    );
    let client = pool.get().await.expect("db connection");
    for row in client
        .query(
            "SELECT object_key, size FROM claimcheck.objects WHERE starts_with(object_key, $1)
             UNION ALL
             SELECT object_key, size FROM claimcheck.upload_claims WHERE starts_with(object_key, $1)",
            &[&prefix],
        )
        .await
        .expect("sizes")
    {
        let (key, size): (String, i64) = (row.get(0), row.get(1));
        assert_eq!(
            sizes.get(&key).copied(),
            Some(size as u64),
            "{key}: object of the recorded size"
        );
    }
    let queue: i64 = client
        .query_one("SELECT count(*) FROM claimcheck.pending_deletes", &[])
        .await
        .expect("queue")
        .get(0);
    assert_eq!(
        queue, 0,
        "the queue is drained (no row due, leased or dead)"
    );
    let recorder: Option<String> = client
        .query_one("SELECT to_regclass('public.removed')::text", &[])
        .await
        .expect("recorder")
        .get(0);
    let mut deletes_done = 0;
    if recorder.is_some() {
        let row = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE dead) FROM public.removed",
                &[],
            )
            .await
            .expect("removals");
        let dead: i64 = row.get(1);
        assert_eq!(dead, 0, "no dead row was dropped");
        deletes_done = row.get(0);
        let removed = keys(
            pool,
            "SELECT DISTINCT object_key FROM public.removed WHERE starts_with(object_key, $1)",
            prefix,
        )
        .await;
        let back: Vec<_> = removed.intersection(&in_bucket).collect();
        assert!(
            back.is_empty(),
            "deleted keys still in the bucket: {back:?}"
        );
    }
    Checked {
        listed_gone: unheld.len() - there.len(),
        sessions_gone: sessions_gone.len(),
        objects: in_bucket.len(),
        uploaded: uploaded.len(),
        registry: registry.len(),
        deletes_done,
    }
}

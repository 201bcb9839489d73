//! PostgreSQL failover: a primary with a synchronous streaming standby (a
//! pair of the scenario's own), every process given both hosts in one
//! multi-host URL with `target_session_attrs=read-write`. The primary
//! crashes during uploads and a drain, the standby is promoted: the API
//! answers 503 `unavailable` with Retry-After meanwhile and recovers without
//! a restart, so does the worker, and no write the API acknowledged is
//! missing on the new primary.

use std::time::{Duration, Instant};

use claimcheck::{
    db::{listen::Wakeups, DeleteQueue},
    tokens::Scope,
};
use claimcheck_tests::{
    faults::{
        count_on, lost_writes, record_removals, removals_done, serial, settle_and_check,
        status_and_code, token, wait_for_empty_queue, wait_for_removals, ApiProcess, Caller,
        PostgresPair, S3Target, Stage, Writers,
    },
    jobs::{deletes, put_objects},
    procs::WorkerProcess,
    stores::test_prefix,
};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// Rows queued for the drain before the failover.
const ROWS: usize = 1000;
/// Between the primary's crash and the promotion: the time a failover
/// manager takes to notice (Patroni's loop is 10 s; kept short here).
const DETECTION: Duration = Duration::from_secs(2);
/// How long the writers go on after the promotion.
const AFTER: Duration = Duration::from_secs(4);

fn pool(url: &str) -> claimcheck::db::Pool {
    claimcheck::db::connect(url, 8).expect("pool")
}

/// The port of the server `url` leads to now.
async fn server_port(url: &str) -> i64 {
    count_on(url, "SELECT inet_server_port()::bigint").await
}

/// The pool, the LISTEN connection and the migrations, alone: each follows
/// the multi-host URL from the primary to the promoted standby, and the
/// pool's answer while neither writes is a quick "unavailable".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pool_listen_and_migrations_follow_the_multi_host_url() {
    let _serial = serial().await;
    let pair = PostgresPair::start().await;
    let pool = pool(&pair.url);
    assert_ne!(server_port(&pair.url).await, i64::from(pair.standby_port));
    let sync = "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'";
    assert_eq!(
        count_on(&pair.primary_url, sync).await,
        1,
        "a synchronous standby"
    );
    let notify = || async {
        let client = pool.get().await.expect("connection");
        client.batch_execute("NOTIFY failover_test").await.unwrap();
    };
    let wait = Duration::from_secs(10);
    let cancel = CancellationToken::new();
    let wakeups = Wakeups::listen(
        pair.url.clone(),
        "failover_test",
        Duration::from_millis(200),
        cancel.clone(),
    );
    timeout(wait, wakeups.notified())
        .await
        .expect("listening (the wake-up of a new connection)");
    notify().await;
    timeout(wait, wakeups.notified())
        .await
        .expect("notified on the primary");

    pair.crash_primary();
    let crashed = Instant::now();
    let err = claimcheck::db::ping(&pool)
        .await
        .expect_err("no server writes");
    let answered_in = crashed.elapsed();
    assert!(err.is_unavailable(), "{err}");
    assert!(answered_in < Duration::from_secs(6), "{answered_in:?}");
    // The standby answers but is read-only: the URL must not settle for it.
    let err = claimcheck::db::ping(&pool)
        .await
        .expect_err("the standby is refused while read-only");
    assert!(err.is_unavailable(), "{err}");

    pair.promote_standby();
    let promoted = Instant::now();
    while let Err(e) = claimcheck::db::ping(&pool).await {
        assert!(promoted.elapsed() < wait, "the pool reconnects: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reconnected_in = promoted.elapsed();
    assert_eq!(server_port(&pair.url).await, i64::from(pair.standby_port));
    pool.get()
        .await
        .unwrap()
        .batch_execute("CREATE TABLE public.written_after_failover (x int)")
        .await
        .expect("the same pool writes on the new primary");
    timeout(wait, wakeups.notified())
        .await
        .expect("the LISTEN connection reopens on the new primary");
    notify().await;
    timeout(wait, wakeups.notified())
        .await
        .expect("notified on the new primary");
    let report = claimcheck::db::migrate(&pair.url)
        .await
        .expect("migrate through the multi-host URL after the failover");
    assert!(report.applied.is_empty(), "replicated: {report:?}");
    cancel.cancel();
    eprintln!(
        "FAULT pg-failover-library: primary crashed: ping unavailable in {answered_in:.1?}; \
         standby promoted: the pool wrote again {reconnected_in:.1?} after; LISTEN reopened \
         there; migrations found nothing to apply"
    );
}

/// Why the pair replicates synchronously: with the WAL held back on the
/// primary (its walsender stopped), a commit acknowledged asynchronously
/// is gone after the failover, while a synchronous one is never
/// acknowledged at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_synchronous_replication_keeps_acknowledged_commits() {
    let _serial = serial().await;
    let pair = PostgresPair::start().await;
    let client = claimcheck_tests::db::connect(&pair.primary_url).await;
    client
        .batch_execute("CREATE TABLE public.commits (x text)")
        .await
        .unwrap();
    let walsender: i32 = client
        .query_one(
            "SELECT pid FROM pg_stat_replication WHERE sync_state = 'sync'",
            &[],
        )
        .await
        .expect("the standby replicates synchronously")
        .get(0);
    let signal = |name: &str| {
        std::process::Command::new("kill")
            .args([name, &walsender.to_string()])
            .status()
            .expect("kill")
    };
    assert!(signal("-STOP").success());
    client
        .batch_execute(
            "SET synchronous_commit = local; INSERT INTO public.commits VALUES ('async')",
        )
        .await
        .expect("acknowledged without the standby");
    let waiting = claimcheck_tests::db::connect(&pair.primary_url).await;
    let synchronous = tokio::spawn(async move {
        waiting
            .batch_execute("INSERT INTO public.commits VALUES ('sync')")
            .await
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !synchronous.is_finished(),
        "a synchronous commit waits for the standby"
    );
    // The stopped walsender holds the shutdown up until the postmaster
    // kills it (5 s): nothing more reaches the standby.
    pair.crash_primary();
    signal("-CONT");
    let answer = synchronous.await.unwrap();
    assert!(answer.is_err(), "never acknowledged: {answer:?}");
    pair.promote_standby();
    let after = claimcheck_tests::db::connect(&pair.standby_url).await;
    let kept: Vec<String> = after
        .query("SELECT x FROM public.commits", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(kept.is_empty(), "{kept:?}");
    eprintln!(
        "FAULT pg-failover-sync: WAL held back on the primary: the asynchronous commit was \
         acknowledged and is missing after the failover; the synchronous one waited and failed \
         with the primary, never acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_during_uploads_and_a_drain_loses_no_acknowledged_write() {
    let _serial = serial().await;
    let pair = PostgresPair::start().await;
    let setup = pool(&pair.url);
    record_removals(&setup).await;
    let (s3, prefix) = (S3Target::shared(), test_prefix());
    let token = token(&setup, "alice", &[Scope::Upload, Scope::Consume]).await;

    let keys: Vec<String> = (0..ROWS).map(|i| format!("{prefix}drain{i}")).collect();
    put_objects(&*s3.store().await, &keys, 10).await;
    let mut worker_env = s3.worker_env(&pair.url, &prefix);
    worker_env.extend([
        ("CLAIMCHECK_DELETE_BATCH", "10".to_owned()),
        ("CLAIMCHECK_DELETE_CONCURRENCY", "2".to_owned()),
        ("CLAIMCHECK_POLL_INTERVAL", "500ms".to_owned()),
        ("CLAIMCHECK_SWEEP_INTERVAL", "500ms".to_owned()),
        // A lease statement cut by the crash may have committed unheard:
        // such rows come back when the lease runs out.
        ("CLAIMCHECK_DELETE_LEASE", "3s".to_owned()),
    ]);
    let mut worker = WorkerProcess::spawn(&worker_env);
    worker.wait_for_log("worker started", Duration::from_secs(20));
    let mut env = s3.env(&prefix);
    // Starts cut by the crash leave pending claims: no cap in the way.
    env.push(("CLAIMCHECK_MAX_PENDING_PER_OWNER", "100000".into()));
    let mut apis = [
        ApiProcess::spawn(&pair.url, &env).await,
        ApiProcess::spawn(&pair.url, &env).await,
    ];
    // A request that hangs fails the test (the client's timeout).
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let callers: Vec<Caller> = apis
        .iter()
        .map(|api| Caller {
            base: api.base.clone(),
            token: token.clone(),
            http: http.clone(),
        })
        .collect();
    DeleteQueue::new(setup.clone())
        .enqueue(&deletes(&keys))
        .await
        .unwrap();
    let writers = Writers::start(&callers, 6, "alice");
    wait_for_removals(&pair.url, 50).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let done_at_crash = removals_done(&pair.url).await;
    let crashed_at = writers.elapsed();
    pair.crash_primary();
    tokio::time::sleep(DETECTION / 2).await;
    let readyz = format!("{}/readyz", apis[0].base);
    let (ready_during, ready_code, _) =
        status_and_code(http.get(&readyz).send().await.unwrap()).await;
    tokio::time::sleep(DETECTION / 2).await;
    pair.promote_standby();
    let promoted_at = writers.elapsed();
    let promoted = Instant::now();
    // The worker deletes again: a row more is done than at the promotion.
    let done_at_promotion = removals_done(&pair.url).await;
    while removals_done(&pair.url).await <= done_at_promotion {
        assert!(
            promoted.elapsed() < Duration::from_secs(20),
            "the worker resumes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let worker_resumed_in = promoted.elapsed();
    tokio::time::sleep(AFTER.saturating_sub(promoted.elapsed())).await;
    let written = writers.stop().await;
    let ready_after = http.get(&readyz).send().await.unwrap().status();

    assert!(
        done_at_crash < ROWS as i64,
        "the drain was under way at the crash ({done_at_crash} of {ROWS} done)"
    );
    assert_eq!(
        ready_during, 503,
        "not ready without a primary: {ready_code:?}"
    );
    assert_eq!(ready_after, 200, "ready again without a restart");
    for api in &mut apis {
        assert!(api.alive(), "the same API processes");
        assert!(api.panics().is_empty(), "{:?}", api.panics());
    }
    let answers = &written.answers;
    let bad: Vec<_> = answers
        .iter()
        .filter(|a| !a.ok())
        .filter(|a| {
            !(a.status == 503
                && a.code.as_deref() == Some("unavailable")
                && a.retry_after.is_some())
        })
        .collect();
    assert!(
        bad.is_empty(),
        "only 503 unavailable with Retry-After: {bad:?}"
    );
    let unavailable: Vec<_> = answers.iter().filter(|a| a.status == 503).collect();
    let (first_503, last_503) = (
        unavailable.first().expect("the failover was seen").at,
        unavailable.last().unwrap().at,
    );
    let first_ok_after = answers
        .iter()
        .find(|a| a.ok() && a.at > promoted_at)
        .map(|a| a.at)
        .expect("writes succeed again without restarting the API");
    let ok_after = answers
        .iter()
        .filter(|a| a.ok() && a.at > promoted_at)
        .count();
    assert!(
        last_503 < promoted_at + Duration::from_secs(2),
        "503s end soon after the promotion (last at {last_503:?}, promoted at {promoted_at:?})"
    );

    // The multi-host URL leads to the promoted standby now; every write the
    // API acknowledged is there (synchronous replication).
    assert_eq!(server_port(&pair.url).await, i64::from(pair.standby_port));
    let after = pool(&pair.url);
    let lost = lost_writes(&after, &prefix, &written.items).await;
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    wait_for_empty_queue(
        &pair.url,
        &worker,
        Duration::from_secs(40),
        "the same worker drains on the new primary",
    )
    .await;
    let drained_in = promoted.elapsed();
    assert!(worker.running(), "the same worker process");
    let warnings = worker
        .log_lines()
        .iter()
        .filter(|l| l.contains("\"level\":\"ERROR\"") || l.contains("\"level\":\"WARN\""))
        .count();
    worker.terminate();
    let (settled, checked) = settle_and_check(&after, &pair.url, &s3, &prefix).await;
    assert!(checked.deletes_done >= ROWS as i64, "{checked:?}");
    let acked = |stage| written.items.iter().filter(|i| i.acked >= stage).count();
    eprintln!(
        "FAULT pg-failover: primary crashed at {crashed_at:.1?} ({done_at_crash} of {ROWS} drain rows \
         done), standby promoted at {promoted_at:.1?}; 2 APIs x 6 writers: {} answers, {} x 503 \
         unavailable (Retry-After) from {first_503:.1?} to {last_503:.1?}, first success after the \
         promotion at {first_ok_after:.1?} ({:.0?} after it), {ok_after} ok after; slowest answer \
         {:.1?}; /readyz {ready_during} during; acknowledged: {} uploads ({} of them uploaded), {} \
         consumed, {} deleted or discarded ({} discards redone after a lost answer), none lost; \
         worker: deleting again {worker_resumed_in:.1?} after the promotion, queue empty after \
         {drained_in:.1?}, {warnings} warnings/errors logged; {settled}; after: {} objects, all \
         accounted for",
        answers.len(),
        unavailable.len(),
        first_ok_after.saturating_sub(promoted_at),
        written.slowest,
        acked(Stage::Started),
        acked(Stage::Uploaded),
        acked(Stage::Consumed),
        acked(Stage::Deleted),
        written.redone,
        checked.objects,
    );
}

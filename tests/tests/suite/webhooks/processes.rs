//! Real `claimcheck-worker` processes delivering: 4 of them deliver 10,000
//! events exactly once; one killed with deliveries in hand loses none.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use claimcheck_tests::{db::TestDb, procs::WorkerProcess};

use super::{insert_events, receiver::Receiver, receiver::Reply, register};

fn env(db: &TestDb, root: &std::path::Path, extra: &[(&str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("DATABASE_URL", db.url.clone()),
        ("CLAIMCHECK_STORE", "fs".to_owned()),
        ("CLAIMCHECK_FS_ROOT", root.display().to_string()),
        ("CLAIMCHECK_DB_POOL_SIZE", "4".to_owned()),
        ("CLAIMCHECK_METRICS_LISTEN", "127.0.0.1:0".to_owned()),
    ];
    for (k, v) in extra {
        let key: &'static str = Box::leak(k.to_string().into_boxed_str());
        env.push((key, v.to_string()));
    }
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn four_workers_deliver_10000_events_each_exactly_once() {
    const EVENTS: usize = 10_000;
    let db = TestDb::new().await;
    let root = tempfile::tempdir().unwrap();
    let hook = Receiver::always(204).await;
    register(&db, &hook.url, &["*"]).await;
    let env = env(
        &db,
        root.path(),
        &[
            ("CLAIMCHECK_DELETE_CONCURRENCY", "32"),
            ("CLAIMCHECK_POLL_INTERVAL", "10m"),
        ],
    );
    let mut workers: Vec<_> = (0..4).map(|_| WorkerProcess::spawn(&env)).collect();
    for w in &workers {
        w.wait_for_log("worker started", Duration::from_secs(20));
    }
    let started = Instant::now();
    insert_events(&db, EVENTS as i64).await;
    let got = hook.wait_for(EVENTS, Duration::from_secs(120)).await;
    eprintln!(
        "4 workers delivered {EVENTS} events in {:.1?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = hook.received().len().max(got.len());
    let ids: HashSet<String> = hook.received().iter().map(|r| r.id()).collect();
    assert_eq!(
        (ids.len(), got),
        (EVENTS, EVENTS),
        "each event once, no duplicate"
    );
    for w in &mut workers {
        w.terminate();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_with_deliveries_in_hand_loses_none() {
    let db = TestDb::new().await;
    let root = tempfile::tempdir().unwrap();
    // The first request hangs: its worker dies holding the lease.
    let hook = Receiver::start(|n, _| {
        if n == 0 {
            Reply::Hang
        } else {
            Reply::Status(200)
        }
    })
    .await;
    register(&db, &hook.url, &["*"]).await;
    let env = env(
        &db,
        root.path(),
        &[
            ("CLAIMCHECK_WEBHOOK_TIMEOUT", "1s"),
            ("CLAIMCHECK_POLL_INTERVAL", "1s"),
        ],
    );
    let first = WorkerProcess::spawn(&env);
    first.wait_for_log("worker started", Duration::from_secs(20));
    insert_events(&db, 1).await;
    let got = hook.wait_for(1, Duration::from_secs(20)).await;
    let id = got[0].id();
    drop(first); // SIGKILL, before the request times out
    let second = WorkerProcess::spawn(&env);
    second.wait_for_log("worker started", Duration::from_secs(20));
    // After the lease (3 timeouts + 10 s) the delivery comes again.
    let got = hook.wait_for(2, Duration::from_secs(40)).await;
    assert_eq!(got[1].id(), id, "the same event, at least once");
    // The worker records the delivery once the answer is in: after the
    // receiver saw it, so wait for the row (bounded) rather than race it.
    let client = db.client().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let done = loop {
        let done: i64 = client
            .query_one(
                "SELECT count(*) FROM claimcheck.webhook_deliveries WHERE done_at IS NOT NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if done > 0 || std::time::Instant::now() > deadline {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done, 1);
    drop(second);
}

//! The delete worker: single steps against Garage here, real worker
//! processes in [`processes`] (a 4-process drain, kill -9 of a lease
//! holder, SIGTERM with rows in hand) and [`lanes`] (two batches in hand).

mod lanes;
mod processes;

use std::{sync::Arc, time::Duration};

use claimcheck::{jobs::delete_worker, store::ObjectStore};
use claimcheck_tests::{
    db::TestDb,
    jobs::{context, delete, exists, fast_settings, open_session, put_object, sessions},
    procs::{plain_stdout, run_worker_command},
    stores::{s3_store, test_prefix},
};

#[tokio::test]
async fn one_step_aborts_sessions_and_deletes_objects_on_s3() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let store: Arc<dyn ObjectStore> = Arc::new(s3_store().await);
    let ctx = context(&db, store.clone(), fast_settings(&prefix));
    let (a, b, gone) = (
        format!("{prefix}a"),
        format!("{prefix}b"),
        format!("{prefix}never-existed"),
    );
    put_object(&*store, &a, 10).await;
    put_object(&*store, &b, 10).await;
    let session_key = format!("{prefix}mp");
    let upload_id = open_session(&*store, &session_key, 100).await;
    ctx.queue
        .enqueue(&[
            delete(&a, None),
            delete(&b, None),
            delete(&gone, None),
            delete(&session_key, Some(&upload_id)),
        ])
        .await
        .unwrap();

    let outcome = delete_worker::run_once(&ctx).await.unwrap();
    assert_eq!((outcome.leased, outcome.done), (4, 4), "{outcome:?}");
    assert!(!exists(&*store, &a).await && !exists(&*store, &b).await);
    assert!(
        sessions(&*store, &prefix).await.is_empty(),
        "session aborted"
    );
    assert_eq!(ctx.queue.stats().await.unwrap(), Default::default());
    let metrics = ctx.metrics.render();
    assert!(
        metrics.contains("claimcheck_deletes_total{outcome=\"done\",reason=\"deleted\"} 4"),
        "{metrics}"
    );
    assert_eq!(delete_worker::run_once(&ctx).await.unwrap().leased, 0);
}

#[tokio::test]
async fn a_permanently_failing_key_is_parked_dead_and_retry_brings_it_back() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let store: Arc<dyn ObjectStore> = Arc::new(s3_store().await);
    let ctx = context(&db, store, fast_settings(&prefix));
    // A key no store accepts fails the same way on every attempt.
    let bad = format!("{prefix}../escape");
    ctx.queue.enqueue(&[delete(&bad, None)]).await.unwrap();
    for attempt in 1..=3 {
        let outcome = delete_worker::run_once(&ctx).await.unwrap();
        let expected = if attempt < 3 { (1, 0) } else { (0, 1) };
        assert_eq!(
            (outcome.deferred, outcome.dead),
            expected,
            "attempt {attempt}"
        );
    }
    assert_eq!(delete_worker::run_once(&ctx).await.unwrap().leased, 0);
    let dead = ctx.queue.list_dead(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0.attempts, 3);
    let error = dead[0].0.last_error.clone().unwrap();
    assert!(error.contains("invalid object key"), "{error}");

    let env = [("DATABASE_URL", db.url.clone())];
    let listed = run_worker_command(&env, &["queue", "dead"]);
    assert!(listed.status.success());
    let lines = plain_stdout(&listed);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains(&bad) && lines[0].contains("invalid object key"));
    let stats = plain_stdout(&run_worker_command(&env, &["queue", "stats"]));
    assert!(stats.contains(&"dead 1".to_owned()), "{stats:?}");

    let retried = run_worker_command(&env, &["queue", "dead", "--retry"]);
    assert!(retried.status.success());
    assert!(plain_stdout(&retried).contains(&"retried 1".to_owned()));
    let stats = ctx.queue.stats().await.unwrap();
    assert_eq!((stats.dead, stats.due), (0, 1));
    let again = ctx
        .queue
        .lease(10, Duration::from_secs(60), 3)
        .await
        .unwrap();
    assert_eq!(again.rows[0].attempts, 1, "a retried row starts afresh");
}

#[tokio::test]
async fn a_row_whose_lease_ran_out_counts_as_done_only_for_the_worker_holding_it_now() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let store: Arc<dyn ObjectStore> = Arc::new(s3_store().await);
    let slow = context(&db, store.clone(), fast_settings(&prefix));
    let fast = context(&db, store.clone(), fast_settings(&prefix));
    let key = format!("{prefix}late");
    put_object(&*store, &key, 10).await;
    slow.queue.enqueue(&[delete(&key, None)]).await.unwrap();

    // The slow worker's lease runs out before it writes its outcome; the
    // row is leased again meanwhile.
    let late = slow
        .queue
        .lease(10, Duration::from_millis(200), 12)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let current = fast
        .queue
        .lease(10, Duration::from_secs(60), 12)
        .await
        .unwrap();
    assert_eq!(current.rows.len(), 1, "the row is due again");

    let outcome = delete_worker::process(&slow, &late).await.unwrap();
    assert_eq!((outcome.done, outcome.lost), (0, 1), "{outcome:?}");
    let done = "claimcheck_deletes_total{outcome=\"done\",reason=\"deleted\"}";
    let rendered = slow.metrics.render();
    assert!(
        !rendered.contains(&format!("{done} 1")),
        "the late worker does not count it: {rendered}"
    );
    let outcome = delete_worker::process(&fast, &current).await.unwrap();
    assert_eq!((outcome.done, outcome.lost), (1, 0), "{outcome:?}");
    let rendered = fast.metrics.render();
    assert!(rendered.contains(&format!("{done} 1")), "{rendered}");
    assert!(!exists(&*store, &key).await);
    assert_eq!(slow.queue.stats().await.unwrap(), Default::default());
}

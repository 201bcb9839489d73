//! PostgreSQL failover with the old primary fenced rather than stopped (a
//! failover manager sets it read-only, then promotes the standby): the
//! API's pooled connections to it stay open, and every write on them fails
//! with SQLSTATE 25006 (read-only transaction). The API answers 503
//! `unavailable` with Retry-After for those, drops such a connection
//! instead of pooling it again, and so reaches the promoted standby through
//! the multi-host URL without a restart.

use std::time::Duration;

use claimcheck::tokens::Scope;
use claimcheck_tests::{
    faults::{
        count_on, serial, settle_and_check, token, ApiProcess, Caller, Clients, Outage, Pause,
        PostgresPair, S3Target,
    },
    stores::{random_bytes, test_prefix},
};
use reqwest::Method;

fn pool(url: &str) -> claimcheck::db::Pool {
    claimcheck::db::connect(url, 8).expect("pool")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fenced_primary_answers_503_and_the_pool_moves_to_the_promoted_standby() {
    let _serial = serial().await;
    let pair = PostgresPair::start().await;
    let (s3, prefix) = (S3Target::shared(), test_prefix());
    let token = token(&pool(&pair.url), "alice", &[Scope::Upload]).await;
    let mut env = s3.env(&prefix);
    env.push(("CLAIMCHECK_MAX_PENDING_PER_OWNER", "100000".into()));
    let mut api = ApiProcess::spawn(&pair.url, &env).await;
    let pause = Pause {
        after_success: Duration::from_millis(20),
        after_failure: Duration::from_millis(100),
    };
    let clients = Clients::start(
        &Caller::new(&api.base, &token),
        6,
        pause,
        |api, c, i| async move {
            api.req(Method::POST, "/v1/uploads?filename=f.bin")
                .header("Content-Type", "application/octet-stream")
                .body(random_bytes(c * 1_000_000 + i, 4096))
                .send()
                .await
        },
    );
    // Long enough for the pool to hold a connection per client.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fenced_at = clients.elapsed();
    pair.fence_primary().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    pair.promote_standby();
    let promoted_at = clients.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let answers = clients.stop().await;

    assert!(api.alive(), "the same API process");
    assert!(api.panics().is_empty(), "{:?}", api.panics());
    let Outage {
        first: first_503,
        last: last_503,
        count: unavailable,
    } = Outage::seen_in(&answers);
    let first_ok_after = answers
        .iter()
        .find(|a| a.ok() && a.at > promoted_at)
        .map(|a| a.at)
        .expect("uploads succeed again, on the promoted standby");
    assert!(
        last_503 < promoted_at + Duration::from_secs(1),
        "no connection to the fenced primary is pooled again (last 503 at {last_503:?}, \
         promoted at {promoted_at:?})"
    );
    let ok_after = answers
        .iter()
        .filter(|a| a.ok() && a.at > promoted_at)
        .count();
    // The fenced primary still runs; the writes went to the standby.
    let port = count_on(&pair.url, "SELECT inet_server_port()::bigint").await;
    assert_eq!(port, i64::from(pair.standby_port));
    let after = pool(&pair.url);
    let (settled, checked) = settle_and_check(&after, &pair.url, &s3, &prefix).await;
    eprintln!(
        "FAULT pg-fenced: primary fenced (read-only, sessions open) at {fenced_at:.1?}, standby \
         promoted at {promoted_at:.1?}; {} answers, {unavailable} x 503 unavailable (Retry-After) \
         from {first_503:.1?} to {last_503:.1?}, first success after the promotion at \
         {first_ok_after:.1?}, {ok_after} ok after; {settled}; after: {} objects, all accounted for",
        answers.len(),
        checked.objects,
    );
}

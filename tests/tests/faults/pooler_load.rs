//! Eight API processes with pools of 16 and a worker, all through one
//! PgBouncer in transaction mode with 20 server connections (Debian's
//! 1.18, so `CLAIMCHECK_DB_PREPARED_STATEMENTS=false`, LISTEN direct),
//! under 64 concurrent clients uploading, consuming and deleting: every
//! request answered 2xx, the queue drained, the audit clean.

use std::time::{Duration, Instant};

use claimcheck::tokens::Scope;
use claimcheck_tests::{
    db::TestDb,
    faults::{
        check_invariants, record_removals, serial, token, wait_for_empty_queue, ApiProcess,
        S3Target,
    },
    pooler::PgBouncer,
    procs::WorkerProcess,
    stores::test_prefix,
};
use futures::future::join_all;
use serde_json::{json, Value};

const APIS: usize = 8;
const CLIENTS: usize = 64;
const ROUNDS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_apis_and_a_worker_share_twenty_server_connections() {
    let _serial = serial().await;
    let db = TestDb::new().await;
    record_removals(&db.pool).await;
    let pg_port = url::Url::parse(&db.direct_url).unwrap().port().unwrap();
    let bouncer = PgBouncer::start(pg_port, 20);
    let url = bouncer.url_for(&db.direct_url);
    let prefix = test_prefix();
    let s3 = S3Target::shared();
    let mut env: Vec<(&str, String)> = s3.env(&prefix);
    env.extend([
        ("CLAIMCHECK_DB_PREPARED_STATEMENTS", "false".to_owned()),
        ("CLAIMCHECK_LISTEN_DATABASE_URL", db.direct_url.clone()),
        ("CLAIMCHECK_DB_POOL_SIZE", "16".to_owned()),
    ]);
    let apis = join_all((0..APIS).map(|_| ApiProcess::spawn(&url, &env))).await;
    let mut worker_env = env.clone();
    worker_env.push(("DATABASE_URL", url.clone()));
    worker_env.push(("CLAIMCHECK_POLL_INTERVAL", "500ms".to_owned()));
    let worker = WorkerProcess::spawn(&worker_env);
    let token = token(&db.pool, "load", &[Scope::Upload, Scope::Consume]).await;
    let http = reqwest::Client::new();

    let started = Instant::now();
    let clients = (0..CLIENTS).map(|c| {
        let (http, token, apis) = (http.clone(), token.clone(), &apis);
        async move {
            let mut answers = Vec::new();
            for round in 0..ROUNDS {
                let base = &apis[(c + round) % APIS].base;
                let res = http
                    .post(format!("{base}/v1/uploads?filename=f.bin"))
                    .bearer_auth(&token)
                    .header("Content-Type", "application/octet-stream")
                    .body(vec![c as u8; 4096])
                    .send()
                    .await
                    .unwrap();
                answers.push(res.status().as_u16());
                if res.status() != 201 {
                    continue;
                }
                let key = res.json::<Value>().await.unwrap()["key"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let base = &apis[(c + round + 1) % APIS].base;
                let res = http
                    .post(format!("{base}/v1/claims/consume"))
                    .bearer_auth(&token)
                    .json(&json!({"owner": "load", "keys": [key]}))
                    .send()
                    .await
                    .unwrap();
                answers.push(res.status().as_u16());
                let base = &apis[(c + round + 2) % APIS].base;
                let res = http
                    .post(format!("{base}/v1/deletes"))
                    .bearer_auth(&token)
                    .json(&json!({"items": [{"key": key, "reason": "deleted"}]}))
                    .send()
                    .await
                    .unwrap();
                answers.push(res.status().as_u16());
            }
            answers
        }
    });
    let answers: Vec<u16> = join_all(clients).await.into_iter().flatten().collect();
    let took = started.elapsed();
    let failed: Vec<&u16> = answers
        .iter()
        .filter(|s| !(200..300).contains(*s))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        answers.len(),
        &failed[..failed.len().min(10)]
    );
    assert_eq!(answers.len(), CLIENTS * ROUNDS * 3);

    wait_for_empty_queue(
        &db.direct_url,
        &worker,
        Duration::from_secs(60),
        "the worker drains the deletes",
    )
    .await;
    let drained = started.elapsed();
    let removed =
        claimcheck_tests::jobs::count(&db, "SELECT count(DISTINCT id) FROM public.removed").await;
    assert_eq!(removed, (CLIENTS * ROUNDS) as i64, "every delete done once");
    for mut api in apis {
        assert!(api.alive(), "no API process died");
        assert!(api.panics().is_empty(), "{:?}", api.panics());
        api.kill9().await;
    }
    let mut worker = worker;
    worker.terminate();
    let checked = check_invariants(&db.pool, &db.url, &s3, &prefix).await;
    assert_eq!(checked.objects, 0);
    eprintln!(
        "FAULT pooler-load: {APIS} APIs x pool 16 + 1 worker through PgBouncer (transaction mode, 20 server \
         connections): {} requests by {CLIENTS} clients in {took:.1?} ({:.0} requests/s), all 2xx; \
         {} deletes drained {:.1?} after the start; audit clean",
        answers.len(),
        answers.len() as f64 / took.as_secs_f64(),
        CLIENTS * ROUNDS,
        drained
    );
}

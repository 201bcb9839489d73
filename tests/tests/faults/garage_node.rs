//! `kill -9` of Garage nodes in a 3-node cluster (replication factor 3, the
//! default consistency mode: reads and writes need 2 of 3 nodes), each
//! started again afterwards:
//!
//! 1. Node 3 dies, a node that neither the API (on node 1) nor the worker
//!    (on node 2) sends requests to, during 20 uploads (REST multipart and
//!    tus) and a drain of 5,000 deletes. The other two nodes are a quorum.
//!    This is what every client sees when a load balancer in front of all
//!    nodes takes a dead node out.
//! 2. Node 1 dies, the API's own endpoint, during 20 more uploads: without
//!    a load balancer the API reaches no node at all. Clients get 503 with
//!    Retry-After, retry, and complete once node 1 is back.
//! 3. Nodes 2 and 3 die together: node 1 answers, but no quorum is left.
//!    Once node 1 knows, two uploads are refused with 503 until both nodes
//!    are back, then complete.
//!
//! After round 1 and at the end the bucket is listed (Garage lists keys
//! deleted while node 3 was down once it is back: each must answer 404),
//! round 1's objects are read back through node 3, half the uploads are
//! consumed, and the system settles; the invariants and `claimcheck-worker
//! audit` read through node 3.

use std::time::{Duration, Instant};

use claimcheck::tokens::Scope;
use claimcheck_tests::{
    db::TestDb,
    faults::{
        count_on, finish, listed_but_deleted, read_back, record_removals, refused_starts, serial,
        sessions_listed, settle_and_check, start_uploads, summary, token, wait_for_empty_queue,
        wait_for_removals, ApiProcess, Caller, Finished, GarageCluster,
    },
    jobs::put_objects,
    procs::WorkerProcess,
    stores::test_prefix,
};
use reqwest::Method;

const MIB: u64 = 1024 * 1024;
const UPLOADS: usize = 20;
const DRAIN: usize = 5000;
/// Rows the drain does on three nodes before the uploads start.
const DONE_ALONE: i64 = 1000;
/// When node 3 dies, after round 1's uploads started (each starts within a
/// second and takes several).
const KILL_AFTER: Duration = Duration::from_millis(1500);
/// How long node 1 stays down in round 2.
const OUTAGE: Duration = Duration::from_secs(3);
/// The drain's rows removed so far (`record_removals` keeps every removal).
const DRAIN_DONE: &str =
    "SELECT count(*) FROM public.removed WHERE object_key LIKE '%/priv/drain/%'";

/// The cluster, the database and the API process on node 1.
struct Scene {
    cluster: GarageCluster,
    db: TestDb,
    prefix: String,
    api: ApiProcess,
    caller: Caller,
}

impl Scene {
    async fn start() -> Self {
        let cluster = GarageCluster::start();
        let db = TestDb::new().await;
        record_removals(&db.pool).await;
        let prefix = test_prefix();
        let mut env = cluster.node(1).env(&prefix);
        env.push(("CLAIMCHECK_PART_SIZE", "5MiB".to_owned()));
        let api = ApiProcess::spawn(&db.url, &env).await;
        let token = token(&db.pool, "alice", &[Scope::Upload, Scope::Consume]).await;
        let caller = Caller::new(&api.base, &token);
        Self {
            cluster,
            db,
            prefix,
            api,
            caller,
        }
    }

    /// A worker on node 2 that retries a failed delete after 200 ms (not
    /// the default 30 s, so a failure would show within the test).
    fn worker(&self) -> WorkerProcess {
        let mut env = self.cluster.node(2).worker_env(&self.db.url, &self.prefix);
        env.extend([
            ("CLAIMCHECK_DELETE_BACKOFF_BASE", "200ms".to_owned()),
            ("CLAIMCHECK_DELETE_BACKOFF_MAX", "2s".to_owned()),
            ("CLAIMCHECK_POLL_INTERVAL", "200ms".to_owned()),
        ]);
        WorkerProcess::spawn(&env)
    }

    async fn count(&self, sql: &str) -> i64 {
        count_on(&self.db.url, sql).await
    }

    /// 5,000 objects in the bucket (through node 2) and in the registry,
    /// then their deletes scheduled by the SQL function business code calls
    /// (the registry row goes and the queue row comes in one transaction).
    async fn fill_the_queue(&self) -> Duration {
        let keys: Vec<String> = (0..DRAIN)
            .map(|i| format!("{}priv/drain/{i:04}.bin", self.prefix))
            .collect();
        let started = Instant::now();
        put_objects(&*self.cluster.node(2).store().await, &keys, 64).await;
        let client = self.db.client().await;
        client
            .execute(
                "INSERT INTO claimcheck.objects
                   (object_key, owner, size, content_type, filename, public, created_at)
                 SELECT k, 'alice', 64, 'application/octet-stream', 'd.bin', false, now()
                   FROM unnest($1::text[]) AS k",
                &[&keys],
            )
            .await
            .expect("register the objects");
        let queued: i64 = client
            .query_one(
                "SELECT count(claimcheck.schedule_delete(object_key, 'deleted'))
                   FROM claimcheck.objects WHERE starts_with(object_key, $1)",
                &[&format!("{}priv/drain/", self.prefix)],
            )
            .await
            .expect("schedule the deletes")
            .get(0);
        assert_eq!(queued, DRAIN as i64);
        started.elapsed()
    }
}

fn rate(rows: i64, from: Duration, to: Duration) -> f64 {
    rows as f64 / (to - from).as_secs_f64()
}

/// Round 1: the drain runs alone on three nodes for its first 1,000 rows,
/// then the uploads start, and node 3 dies while both run.
async fn node_3_dies(scene: &Scene, worker: &WorkerProcess) -> (Vec<Finished>, String) {
    let epoch = Instant::now();
    wait_for_removals(&scene.db.url, 1).await;
    let drain_started = epoch.elapsed();
    wait_for_removals(&scene.db.url, DONE_ALONE).await;
    let alone_done_at = epoch.elapsed();
    let running = start_uploads(&scene.caller, 1, UPLOADS, Duration::from_secs(1), epoch);
    tokio::time::sleep(KILL_AFTER).await;
    scene.cluster.kill(3);
    let killed_at = epoch.elapsed();
    let done_at_kill = scene.count(DRAIN_DONE).await;
    let uploading = running.iter().filter(|t| !t.is_finished()).count();
    assert!(
        done_at_kill < DRAIN as i64 && uploading > 0,
        "node 3 died during the drain ({done_at_kill} rows done) and the uploads ({uploading} running)"
    );
    let finished = finish(1, running).await;
    let uploads_done_at = epoch.elapsed();
    let done_after_uploads = scene.count(DRAIN_DONE).await;
    wait_for_empty_queue(
        &scene.db.url,
        worker,
        Duration::from_secs(60),
        "the drain ends with node 3 down",
    )
    .await;
    let drained_at = epoch.elapsed();
    scene.cluster.start_again(3);
    let back_at = epoch.elapsed();
    // Node 3 missed the deletes of most of the drain: does a listing show
    // those keys again? Each must at least answer 404.
    let listed_at = Instant::now();
    let ghosts = listed_but_deleted(&scene.db.pool, scene.cluster.node(1), &scene.prefix)
        .await
        .len();
    let listed_in = listed_at.elapsed();

    // Two of three nodes are a quorum for every read and write: nothing
    // was refused, nothing had to be retried.
    let refusals: usize = finished.iter().map(|f| f.refusals.len()).sum();
    let retried = scene
        .count("SELECT count(*) FROM public.removed WHERE attempts > 1 OR dead")
        .await;
    let drain = scene
        .count("SELECT count(DISTINCT object_key) FROM public.removed WHERE object_key LIKE '%/priv/drain/%'")
        .await;
    assert_eq!(
        (refusals, retried, drain, scene.count(DRAIN_DONE).await),
        (0, 0, DRAIN as i64, DRAIN as i64),
        "with 2 of 3 nodes: no refusal, every delete done at its first attempt, each once"
    );
    let report = format!(
        "{DRAIN} deletes, drain from {drain_started:.1?}: {DONE_ALONE} rows alone on 3 nodes by \
         {alone_done_at:.1?} ({:.0} rows/s); {UPLOADS} uploads from then; node 3 killed at {killed_at:.1?} \
         with {done_at_kill} rows done and {uploading} uploads running; uploads done by {uploads_done_at:.1?} \
         ({}), drain meanwhile {:.0} rows/s, then {:.0} rows/s on 2 nodes without uploads, queue empty at \
         {drained_at:.1?}; 0 rows retried, 0 dead; node 3 back at {back_at:.1?}; then node 1 listed {ghosts} \
         deleted keys again, each HEAD 404 ({listed_in:.1?})",
        rate(DONE_ALONE - 1, drain_started, alone_done_at),
        summary(&finished),
        rate(done_after_uploads - done_at_kill, killed_at, uploads_done_at),
        rate(
            DRAIN as i64 - done_after_uploads,
            uploads_done_at,
            drained_at
        ),
    );
    (finished, report)
}

/// Round 2: node 1, the API's endpoint, dies during 20 uploads.
async fn api_node_dies(scene: &Scene) -> (Vec<Finished>, String) {
    let epoch = Instant::now();
    let running = start_uploads(&scene.caller, 2, UPLOADS, Duration::from_secs(1), epoch);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    scene.cluster.kill(1);
    let killed_at = epoch.elapsed();
    tokio::time::sleep(OUTAGE).await;
    scene.cluster.start_again(1);
    let back_at = epoch.elapsed();
    let finished = finish(2, running).await;
    assert!(
        finished.iter().any(|f| !f.refusals.is_empty()),
        "the clients met node 1's death"
    );
    let report = format!(
        "node 1 killed at {killed_at:.1?}, back at {back_at:.1?}; {}; {} requests; every upload done by {:.1?}",
        summary(&finished),
        finished.iter().map(|f| f.requests).sum::<usize>(),
        epoch.elapsed(),
    );
    (finished, report)
}

/// Round 3: nodes 2 and 3 die together; node 1 answers alone, without a
/// quorum. Garage notices a dead peer only when a write to it fails (its
/// status exchange and pings are seconds apart), and requests wait until
/// then: the uploads start once node 1 knows, are refused, and complete
/// once both nodes are back.
async fn quorum_lost(scene: &Scene) -> (Vec<Finished>, String) {
    scene.cluster.kill(2);
    scene.cluster.kill(3);
    let epoch = Instant::now();
    while scene.cluster.healthy_seen_by(1) > 1 {
        assert!(
            epoch.elapsed() < Duration::from_secs(30),
            "node 1 notices that nodes 2 and 3 are gone"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let noticed_at = epoch.elapsed();
    let running = start_uploads(&scene.caller, 3, 2, Duration::ZERO, epoch);
    // Longer than the S3 client's own retries of a 503 (3 attempts, about
    // 3 s): the refusals reach the clients.
    tokio::time::sleep(Duration::from_secs(5)).await;
    scene.cluster.start_again(2);
    scene.cluster.start_again(3);
    let back_at = epoch.elapsed();
    let finished = finish(3, running).await;
    assert!(
        finished.iter().all(|f| !f.refusals.is_empty()),
        "one node alone is no quorum: every upload was refused first"
    );
    let report = format!(
        "nodes 2 and 3 killed, node 1 noticed at {noticed_at:.1?}, both back at {back_at:.1?}; {}; \
         done by {:.1?}",
        summary(&finished),
        epoch.elapsed(),
    );
    (finished, report)
}

/// After the rounds: what the bucket lists, round 1 read back through
/// node 3, every other upload consumed, then settling, the invariants and
/// the audit through node 3. Returns the report.
async fn the_end(
    scene: &Scene,
    first: &[Finished],
    all: &[&Finished],
    starts_refused: usize,
) -> String {
    // Keys deleted while node 3 was down, listed again? (Round 1's listing
    // through node 1 found them; its HEADs did not make them go.)
    let listed_at = Instant::now();
    let node3 = scene.cluster.node(3);
    let ghosts = listed_but_deleted(&scene.db.pool, node3, &scene.prefix).await;
    let listed_in = listed_at.elapsed();
    let drain_keys = format!("{}priv/drain/", scene.prefix);
    assert!(
        ghosts.iter().all(|k| k.starts_with(&drain_keys)),
        "only the drain deleted anything: {ghosts:?}"
    );
    let read_at = Instant::now();
    for f in first {
        read_back(node3, f).await;
    }
    let read_in = read_at.elapsed();

    // Business code adopts every other upload; the rest stay claims.
    let adopt: Vec<&str> = all.iter().step_by(2).map(|f| f.key.as_str()).collect();
    let res = scene
        .caller
        .req(Method::POST, "/v1/claims/consume")
        .json(&serde_json::json!({"owner": "alice", "keys": adopt}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // Sessions left: every upload completed, so a live one can only come
    // from a start refused after the store opened it (the retry opened
    // another); the others are listed but gone (ended while a node was down).
    let (live, gone) = sessions_listed(node3, &scene.prefix).await;
    let keys: Vec<&str> = all.iter().map(|f| f.key.as_str()).collect();
    let gone_of_round_1 = gone
        .iter()
        .filter(|s| first.iter().any(|f| f.key == s.key))
        .count();
    assert!(
        live.len() <= starts_refused && live.iter().all(|s| keys.contains(&s.key.as_str())),
        "{starts_refused} starts refused; sessions left: {live:?}"
    );
    let checked_at = Instant::now();
    let (settled, checked) =
        settle_and_check(&scene.db.pool, &scene.db.url, node3, &scene.prefix).await;
    let checked_in = checked_at.elapsed();
    // Every upload completed: no pending claim was left to expire.
    assert_eq!(settled.expired + settled.recovered, 0, "{settled}");
    assert_eq!(
        (checked.objects, checked.registry + checked.uploaded),
        (all.len(), all.len()),
        "every upload is one object, none lost, none left over"
    );
    format!(
        "{} MiB in {} uploads; listed through node 3: {} deleted keys listed again, each HEAD 404 \
         ({listed_in:.1?}); round 1 read back through node 3 in {read_in:.1?}; sessions listed: {} live \
         ({starts_refused} starts refused), {} gone ({gone_of_round_1} of round 1's uploads); {settled}; \
         audit and invariants in {checked_in:.1?}: {} objects = {} registry + {} claims ({} more listed, gone)",
        all.iter().map(|f| f.upload.size).sum::<u64>() / MIB,
        all.len(),
        ghosts.len(),
        live.len(),
        gone.len(),
        checked.objects,
        checked.registry,
        checked.uploaded,
        checked.listed_gone,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_garage_nodes_during_uploads_and_a_drain() {
    let _serial = serial().await;
    let started = Instant::now();
    let mut scene = Scene::start().await;
    let filled_in = scene.fill_the_queue().await;
    let mut worker = scene.worker();
    let (first, report1) = node_3_dies(&scene, &worker).await;
    let (second, report2) = api_node_dies(&scene).await;
    let (third, report3) = quorum_lost(&scene).await;
    let api = &mut scene.api;
    assert!(api.alive() && api.panics().is_empty(), "{:?}", api.panics());
    worker.terminate();
    let all: Vec<&Finished> = first.iter().chain(&second).chain(&third).collect();
    let starts_refused = refused_starts(&second) + refused_starts(&third);
    let report4 = the_end(&scene, &first, &all, starts_refused).await;
    eprintln!(
        "FAULT garage-node round 1 (node 3 down): deletes queued in {filled_in:.1?}; {report1}"
    );
    eprintln!("FAULT garage-node round 2 (the API's node down): {report2}");
    eprintln!("FAULT garage-node round 3 (2 of 3 down): {report3}");
    eprintln!(
        "FAULT garage-node end: {report4}; scenario {:.1?}",
        started.elapsed()
    );
}

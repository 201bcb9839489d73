//! Helpers for the fault suite (`tests/tests/faults/`): API processes that
//! can be killed, a PostgreSQL and a Garage of the scenario's own (so that
//! stopping them disturbs no other test), settling the system with the
//! library's single-step jobs, and the invariants checked after each fault.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use claimcheck::{
    jobs::{audit, delete_worker, reaper, sweeper, JobContext, JobSettings},
    metrics::Metrics,
    store::{s3::S3Settings, s3::S3Store, ObjectStore},
    tokens::{Scope, TokenStore},
};
use deadpool_postgres::Pool;
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::{binary, procs::run_worker_command, required_env};

/// One fault scenario at a time in the fault binary, whatever the harness's
/// thread count: they measure timings and load the 2 cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held for the whole scenario.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// The workspace root (scripts live there).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// Runs `bash scripts/lib/NAME ARGS` with `env`; panics unless it succeeds;
/// returns its standard output.
fn script(name: &str, args: &[&str], env: &[(String, String)]) -> String {
    let out = std::process::Command::new("bash")
        .arg(workspace_root().join("scripts/lib").join(name))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run scripts/lib/{name}: {e}"));
    assert!(
        out.status.success(),
        "scripts/lib/{name} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn key_values(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn value(env: &[(String, String)], name: &str) -> String {
    env.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("{name} missing from {env:?}"))
}

/// An S3 server to talk to: the shared test Garage or a private one.
#[derive(Debug, Clone)]
pub struct S3Target {
    /// Endpoint URL.
    pub endpoint: String,
    /// Bucket.
    pub bucket: String,
    /// Region.
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
}

impl S3Target {
    /// The Garage `scripts/test` started (shared by every test: never stop it).
    pub fn shared() -> Self {
        Self {
            endpoint: required_env("CLAIMCHECK_TEST_S3_ENDPOINT"),
            bucket: required_env("CLAIMCHECK_TEST_S3_BUCKET"),
            region: required_env("CLAIMCHECK_TEST_S3_REGION"),
            access_key: required_env("CLAIMCHECK_TEST_S3_ACCESS_KEY"),
            secret_key: required_env("CLAIMCHECK_TEST_S3_SECRET_KEY"),
        }
    }

    /// Settings for the library's S3 store.
    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: Some(self.endpoint.clone()),
            public_endpoint: None,
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            force_path_style: true,
            access_key_id: Some(self.access_key.clone()),
            secret_access_key: Some(self.secret_key.clone()),
        }
    }

    /// The library's S3 store on it.
    pub async fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(S3Store::new(self.settings()).await.expect("S3 store"))
    }

    /// The environment of a process (API or worker) on it, under `prefix`.
    pub fn env(&self, prefix: &str) -> Vec<(String, String)> {
        [
            ("CLAIMCHECK_STORE", "s3"),
            ("CLAIMCHECK_S3_ENDPOINT", &self.endpoint),
            ("CLAIMCHECK_S3_BUCKET", &self.bucket),
            ("CLAIMCHECK_S3_REGION", &self.region),
            ("CLAIMCHECK_S3_FORCE_PATH_STYLE", "true"),
            ("AWS_ACCESS_KEY_ID", &self.access_key),
            ("AWS_SECRET_ACCESS_KEY", &self.secret_key),
            ("CLAIMCHECK_KEY_PREFIX", prefix),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

/// A single-node Garage of the scenario's own (`scripts/lib/garage.sh
/// start-private`), removed on drop.
pub struct PrivateGarage {
    /// How to reach it.
    pub s3: S3Target,
    env: Vec<(String, String)>,
}

impl PrivateGarage {
    /// Starts one (a second or two).
    pub fn start() -> Self {
        let env = key_values(&script("garage.sh", &["start-private"], &[]));
        let s3 = S3Target {
            endpoint: value(&env, "CLAIMCHECK_TEST_S3_ENDPOINT"),
            bucket: value(&env, "CLAIMCHECK_TEST_S3_BUCKET"),
            region: value(&env, "CLAIMCHECK_TEST_S3_REGION"),
            access_key: value(&env, "CLAIMCHECK_TEST_S3_ACCESS_KEY"),
            secret_key: value(&env, "CLAIMCHECK_TEST_S3_SECRET_KEY"),
        };
        Self { s3, env }
    }

    /// Stops the server (SIGTERM), keeping its data.
    pub fn stop(&self) {
        script("garage.sh", &["stop"], &self.env);
    }

    /// Starts it again and waits until it answers.
    pub fn start_again(&self) {
        script("garage.sh", &["start"], &self.env);
    }
}

impl Drop for PrivateGarage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(workspace_root().join("scripts/lib/garage.sh"))
            .arg("cleanup")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
    }
}

/// A PostgreSQL cluster of the scenario's own (`scripts/lib/postgres.sh
/// start-private`), migrated, removed on drop.
pub struct PrivatePostgres {
    /// Connection string (database `postgres`, migrated).
    pub url: String,
    env: Vec<(String, String)>,
}

impl PrivatePostgres {
    /// Starts one and migrates it (a few seconds).
    pub async fn start() -> Self {
        let env = key_values(&script("postgres.sh", &["start-private"], &[]));
        let url = value(&env, "DATABASE_URL");
        let pg = Self { url, env };
        claimcheck::db::migrate(&pg.url)
            .await
            .expect("migrate the private cluster");
        pg
    }

    /// Stops the server (`pg_ctl -m fast`: connections are cut), keeping its data.
    pub fn stop(&self) {
        script("postgres.sh", &["stop", "fast"], &self.env);
    }

    /// Starts it again on the same port.
    pub fn start_again(&self) {
        script("postgres.sh", &["start"], &self.env);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(workspace_root().join("scripts/lib/postgres.sh"))
            .arg("destroy")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
    }
}

type Logs = Arc<Mutex<Vec<String>>>;

/// A `claimcheck-api` process on a random port: its pid for `kill -9` and
/// `/proc`, and everything it wrote (standard output and error).
pub struct ApiProcess {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its process id.
    pub pid: u32,
    /// Every line it wrote so far.
    pub logs: Logs,
    child: Child,
}

impl ApiProcess {
    /// Starts the API on `database_url` with `env` (store settings and more).
    pub async fn spawn(database_url: &str, env: &[(String, String)]) -> Self {
        let mut child = Command::new(binary("claimcheck-api"))
            .env("DATABASE_URL", database_url)
            .env("CLAIMCHECK_LISTEN", "127.0.0.1:0")
            .env("CLAIMCHECK_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start claimcheck-api");
        let pid = child.id().expect("pid");
        let logs = Logs::default();
        let kept = logs.clone();
        let mut errors = BufReader::new(child.stderr.take().expect("stderr")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = errors.next_line().await {
                kept.lock().expect("log buffer").push(line);
            }
        });
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read the api's log") {
                let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if entry["message"] == "claimcheck-api listening" {
                    return entry["port"].as_u64().expect("port in the log");
                }
            }
            panic!("claimcheck-api exited before listening");
        })
        .await
        .expect("claimcheck-api listens within 30 s");
        let kept = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().expect("log buffer").push(line);
            }
        });
        Self {
            base: format!("http://127.0.0.1:{port}"),
            pid,
            logs,
            child,
        }
    }

    /// `kill -9`, and waits for it.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("SIGKILL the api");
        let _ = self.child.wait().await;
    }

    /// Whether the process still runs (it did not crash or exit).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Open file descriptors (sockets included), from `/proc`.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Resident memory in KiB, from `/proc`.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Lines that show a panic or an `internal` (500) answer.
    pub fn panics(&self) -> Vec<String> {
        self.logs
            .lock()
            .expect("log buffer")
            .iter()
            .filter(|l| l.contains("panicked") || l.contains("\"status\":500"))
            .cloned()
            .collect()
    }
}

/// Mints a token for `owner` with `scopes` on `pool`'s database.
pub async fn token(pool: &Pool, owner: &str, scopes: &[Scope]) -> String {
    let scopes = scopes.iter().copied().collect();
    TokenStore::new(pool.clone())
        .create(owner, &scopes, None, None)
        .await
        .expect("mint a token")
        .token
}

/// Job settings for driving the jobs one step at a time while settling:
/// no backoff, a claim TTL of 1 ms and no orphan grace (so the reaper takes
/// every session no claim knows: after the sweep, only crash leftovers).
pub fn settle_settings(prefix: &str) -> JobSettings {
    JobSettings {
        delete_batch: 500,
        delete_lease: Duration::from_secs(60),
        max_attempts: 12,
        concurrency: 8,
        backoff_base: Duration::ZERO,
        backoff_max: Duration::ZERO,
        poll_interval: Duration::from_millis(200),
        sweep_interval: Duration::from_millis(200),
        sweep_batch: 500,
        claim_ttl: Duration::from_millis(1),
        unconsumed_ttl: Some(Duration::from_secs(3600)),
        orphan_grace: Duration::ZERO,
        reap_interval: Duration::from_secs(60),
        key_prefix: prefix.to_owned(),
        shutdown_timeout: Duration::from_secs(5),
        gauge_interval: Duration::from_secs(60),
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

/// The clients are gone: every pending claim is made due now (as its TTL
/// would), then sweep, drain and reap, one step each, as a worker would.
pub async fn settle(ctx: &JobContext) -> Settled {
    let started = Instant::now();
    let client = ctx.pool.get().await.expect("db connection");
    client
        .execute(
            "UPDATE claimcheck.upload_claims SET expires_at = now() - interval '1 second'
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
}

/// Installs a trigger that records every queue row removed (id, key,
/// attempts) in `public.fault_removed`, for "no queued delete lost".
pub async fn record_removals(pool: &Pool) {
    pool.get()
        .await
        .expect("db connection")
        .batch_execute(
            "CREATE TABLE public.fault_removed (id bigint, object_key text, attempts int, dead boolean);
             CREATE FUNCTION public.fault_record_removal() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO public.fault_removed
                   VALUES (OLD.id, OLD.object_key, OLD.attempts, OLD.dead_at IS NOT NULL);
                   RETURN NULL; END $$;
             CREATE TRIGGER fault_record_removal AFTER DELETE ON claimcheck.pending_deletes
                 FOR EACH ROW EXECUTE FUNCTION public.fault_record_removal();",
        )
        .await
        .expect("install the removal recorder");
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
    let s3_env = s3.env(prefix);
    let env: Vec<(&str, String)> = std::iter::once(("DATABASE_URL", database_url.to_owned()))
        .chain(s3_env.iter().map(|(k, v)| (k.as_str(), v.clone())))
        .collect();
    let audit_run = run_worker_command(&env, &["audit"]);
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
    let mut sizes = std::collections::HashMap::new();
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
    let far = chrono::Utc::now() + chrono::Duration::days(1);
    let sessions = store
        .list_multipart_uploads(prefix, far)
        .await
        .expect("list sessions");
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
        .query_one("SELECT to_regclass('public.fault_removed')::text", &[])
        .await
        .expect("recorder")
        .get(0);
    let mut deletes_done = 0;
    if recorder.is_some() {
        let row = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE dead) FROM public.fault_removed",
                &[],
            )
            .await
            .expect("removals");
        let dead: i64 = row.get(1);
        assert_eq!(dead, 0, "no dead row was dropped");
        deletes_done = row.get(0);
        let removed = keys(
            pool,
            "SELECT DISTINCT object_key FROM public.fault_removed WHERE starts_with(object_key, $1)",
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
        objects: in_bucket.len(),
        uploaded: uploaded.len(),
        registry: registry.len(),
        deletes_done,
    }
}

/// Status and `code` of a response (the problem's code, if any).
pub async fn status_and_code(res: reqwest::Response) -> (u16, Option<String>, Option<String>) {
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (
        status,
        body["code"].as_str().map(str::to_owned),
        retry_after,
    )
}

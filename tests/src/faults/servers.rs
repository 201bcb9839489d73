//! A Garage (one node or a cluster of three) and a PostgreSQL of the
//! scenario's own, started and stopped through `scripts/lib`: stopping them
//! disturbs no other test.

use std::{path::PathBuf, process::Stdio};

use crate::stores::S3Target;

/// The workspace root (scripts live there).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// `bash scripts/lib/NAME ARGS` with `env`, reading nothing from standard input.
fn script_command(name: &str, args: &[&str], env: &[(String, String)]) -> std::process::Command {
    let mut command = std::process::Command::new("bash");
    command
        .arg(workspace_root().join("scripts/lib").join(name))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null());
    command
}

/// Runs `bash scripts/lib/NAME ARGS` with `env`; panics unless it succeeds;
/// returns its standard output.
pub(crate) fn script(name: &str, args: &[&str], env: &[(String, String)]) -> String {
    let out = script_command(name, args, env)
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

/// Runs `bash scripts/lib/NAME ARG` with `env` and ignores how it went: for
/// clean-up in `drop`, where a second panic would hide the test's own.
pub(crate) fn clean_up(name: &str, arg: &str, env: &[(String, String)]) {
    let _ = script_command(name, &[arg], env)
        .stdout(Stdio::null())
        .status();
}

pub(crate) fn key_values(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub(crate) fn value(env: &[(String, String)], name: &str) -> String {
    env.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("{name} missing from {env:?}"))
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
        clean_up("garage.sh", "cleanup", &self.env);
    }
}

/// A 3-node Garage cluster of the scenario's own (`scripts/lib/garage.sh
/// start-cluster`: replication factor 3, one node per zone), removed on drop.
pub struct GarageCluster {
    nodes: Vec<S3Target>,
    env: Vec<(String, String)>,
}

impl GarageCluster {
    /// Starts one: three nodes, connected, one layout applied, the key and
    /// the bucket (a few seconds).
    pub fn start() -> Self {
        let env = key_values(&script("garage.sh", &["start-cluster"], &[]));
        let nodes = (1..=3)
            .map(|n| S3Target {
                endpoint: value(&env, &format!("CLAIMCHECK_TEST_S3_ENDPOINT_{n}")),
                bucket: value(&env, "CLAIMCHECK_TEST_S3_BUCKET"),
                region: value(&env, "CLAIMCHECK_TEST_S3_REGION"),
                access_key: value(&env, "CLAIMCHECK_TEST_S3_ACCESS_KEY"),
                secret_key: value(&env, "CLAIMCHECK_TEST_S3_SECRET_KEY"),
            })
            .collect();
        Self { nodes, env }
    }

    /// How to reach node `n` (1 to 3) over S3.
    pub fn node(&self, n: usize) -> &S3Target {
        &self.nodes[n - 1]
    }

    /// `kill -9` of node `n`.
    pub fn kill(&self, n: usize) {
        script("garage.sh", &["kill-node", &n.to_string()], &self.env);
    }

    /// How many nodes node `n` sees connected, itself included.
    pub fn healthy_seen_by(&self, n: usize) -> usize {
        script("garage.sh", &["healthy-nodes", &n.to_string()], &self.env)
            .trim()
            .parse()
            .expect("a count of nodes")
    }

    /// Starts node `n` again on its data and waits until every running node
    /// is connected to it.
    pub fn start_again(&self, n: usize) {
        script("garage.sh", &["start-node", &n.to_string()], &self.env);
    }
}

impl Drop for GarageCluster {
    fn drop(&mut self) {
        clean_up("garage.sh", "cleanup-cluster", &self.env);
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
        clean_up("postgres.sh", "destroy", &self.env);
    }
}

/// A PostgreSQL primary with a synchronous streaming standby, of the
/// scenario's own (`scripts/lib/postgres.sh start-pair`), migrated through
/// the multi-host URL, removed on drop.
pub struct PostgresPair {
    /// Both hosts, primary first, `target_session_attrs=read-write`: what
    /// the processes are given.
    pub url: String,
    /// The primary alone.
    pub primary_url: String,
    /// The standby alone (read-only until promoted).
    pub standby_url: String,
    /// The standby's port (where the multi-host URL leads after a failover).
    pub standby_port: u16,
    env: Vec<(String, String)>,
}

impl PostgresPair {
    /// Starts the pair, waits until the standby streams synchronously, and
    /// migrates through the multi-host URL (a few seconds).
    pub async fn start() -> Self {
        let env = key_values(&script("postgres.sh", &["start-pair"], &[]));
        let pair = Self {
            url: value(&env, "DATABASE_URL"),
            primary_url: value(&env, "CLAIMCHECK_PG_PRIMARY_URL"),
            standby_url: value(&env, "CLAIMCHECK_PG_STANDBY_URL"),
            standby_port: value(&env, "CLAIMCHECK_PG_STANDBY_PORT")
                .parse()
                .expect("standby port"),
            env,
        };
        claimcheck::db::migrate(&pair.url)
            .await
            .expect("migrate through the multi-host URL");
        pair
    }

    /// Crashes the primary (`pg_ctl -m immediate`: every server process
    /// quits at once, no shutdown checkpoint, nothing more sent to the standby).
    pub fn crash_primary(&self) {
        script("postgres.sh", &["stop-primary", "immediate"], &self.env);
    }

    /// Fences the primary without stopping it, as a failover manager may
    /// before promoting: every new transaction is read-only, in the open
    /// sessions too (the setting is reloaded), and the sessions stay open.
    pub async fn fence_primary(&self) {
        let client = crate::db::connect(&self.primary_url).await;
        // Two statements: a multi-statement batch is one transaction, which
        // ALTER SYSTEM refuses.
        for sql in [
            "ALTER SYSTEM SET default_transaction_read_only = on",
            "SELECT pg_reload_conf()",
        ] {
            client.batch_execute(sql).await.expect("fence the primary");
        }
    }

    /// Promotes the standby and waits until it accepts writes.
    pub fn promote_standby(&self) {
        script("postgres.sh", &["promote-standby"], &self.env);
    }
}

impl Drop for PostgresPair {
    fn drop(&mut self) {
        clean_up("postgres.sh", "destroy-pair", &self.env);
    }
}

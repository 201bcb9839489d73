//! `claimcheck-api dev`: the whole service on one machine, for a newcomer.
//!
//! Uses `DATABASE_URL` when a server answers there; otherwise runs a private
//! PostgreSQL cluster under `.claimcheck-dev/pg` (kept between runs, stopped
//! when dev stops). Objects go to the filesystem store.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{bail, Context};
use claimcheck::{
    config::{Config, StoreConfig},
    db::{self, Actor},
    jobs::{self, JobContext, JobSettings},
    metrics::Metrics,
    store,
    tokens::{NewToken, Scope, TokenStore},
};
use tokio_util::sync::CancellationToken;

/// A PostgreSQL cluster dev started; stopped when dropped.
pub struct DevPostgres {
    pg_ctl: PathBuf,
    data_dir: PathBuf,
    as_postgres_user: bool,
}

impl Drop for DevPostgres {
    fn drop(&mut self) {
        let _ = pg_command(&self.pg_ctl, self.as_postgres_user)
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "stop"])
            .status();
    }
}

/// Points `config` at the dev database and store, migrated and ready.
pub async fn prepare(config: &mut Config) -> anyhow::Result<Option<DevPostgres>> {
    // One process signs and serves its own download URLs: a random key will do.
    config.url_signing_key.get_or_insert_with(|| {
        format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        )
    });
    // The upload page, built by scripts/dev into ./web/dist.
    config
        .web_dir
        .get_or_insert_with(|| PathBuf::from("web/dist"));
    if !matches!(config.store, StoreConfig::Fs { .. }) {
        tracing::warn!("dev always uses the filesystem store; CLAIMCHECK_STORE is ignored");
        config.store = StoreConfig::Fs {
            root: PathBuf::from("./data"),
        };
    }
    let answers = match &config.database_url {
        Some(url) => tokio::time::timeout(Duration::from_secs(3), db::connect_one(url))
            .await
            .is_ok_and(|r| r.is_ok()),
        None => false,
    };
    let postgres = if answers {
        None
    } else {
        let (pg, url) = start_private_cluster(Path::new(".claimcheck-dev/pg")).await?;
        config.database_url = Some(url);
        Some(pg)
    };
    let url = config.database_url.as_deref().expect("set above");
    db::migrate(url)
        .await
        .context("migrating the dev database")?;
    Ok(postgres)
}

/// The worker loops running inside the dev process.
pub struct DevWorker {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl DevWorker {
    /// Stops the loops and waits for them to hand back their work.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// Starts the delete worker, sweeper and reaper in this process, as
/// `claimcheck-worker` would in production.
pub async fn start_worker(config: &Config) -> anyhow::Result<DevWorker> {
    let url = config.database_url.clone().expect("prepared");
    let pool = db::connect(&url, 4)?;
    let store = store::open(&config.store, None).await?;
    let ctx = JobContext::new(
        pool,
        store,
        Metrics::new(),
        JobSettings::from_config(config),
    );
    let cancel = CancellationToken::new();
    let task = tokio::spawn(jobs::run(ctx, Some(url), cancel.clone()));
    Ok(DevWorker { cancel, task })
}

/// Mints an `upload`+`consume`+`admin` token for the developer.
pub async fn mint_token(config: &Config) -> anyhow::Result<String> {
    let url = config.database_url.as_deref().expect("prepared");
    let pool = db::connect(url, 1)?;
    let scopes = [Scope::Upload, Scope::Consume, Scope::Admin]
        .into_iter()
        .collect();
    let new = NewToken::new("dev", scopes).name(Some("claimcheck-api dev".into()));
    let minted = TokenStore::new(pool).create(&new, &Actor::cli()).await?;
    Ok(minted.token)
}

/// True when the upload page `prepare` pointed at has been built.
pub fn page_built(config: &Config) -> bool {
    config
        .web_dir
        .as_deref()
        .is_some_and(|dir| dir.join("index.html").is_file())
}

/// Prints where the service is and how to talk to it.
pub fn announce(port: u16, token: &str, page_built: bool) {
    let base = format!("http://127.0.0.1:{port}");
    println!("claimcheck dev server: {base}  (objects in ./data)");
    // The token rides in the fragment, which the browser never sends: the
    // page reads it, keeps it in the tab's sessionStorage and drops it from
    // the address bar.
    println!("upload page: {base}/#token={token}");
    if !page_built {
        println!("  (not built yet: scripts/dev builds web/ with npm; / says how)");
    }
    println!("token (upload, consume, admin; owner `dev`):");
    println!("  export CC_TOKEN={token}");
    println!("upload a file:");
    println!(
        "  curl -sS -H \"Authorization: Bearer $CC_TOKEN\" -H 'Content-Type: text/plain' \\\n       --data-binary @README.md '{base}/v1/uploads?filename=README.md'"
    );
    println!("  curl {base}/readyz");
}

async fn start_private_cluster(dir: &Path) -> anyhow::Result<(DevPostgres, String)> {
    let bin_dir = postgres_bin_dir().context(
        "PostgreSQL's initdb was not found: install Debian's postgresql (scripts/dev does)",
    )?;
    let as_postgres_user = running_as_root();
    std::fs::create_dir_all(dir)?;
    let data_dir = dir.canonicalize()?;
    if as_postgres_user {
        // initdb and postgres refuse to run as root.
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.parent().unwrap_or(dir)))?;
    }
    if !data_dir.join("PG_VERSION").exists() {
        run(pg_command(&bin_dir.join("initdb"), as_postgres_user)
            .arg("-D")
            .arg(&data_dir)
            .args(["--auth=trust", "-U", "postgres", "-E", "UTF8"]))?;
    }
    let pg = DevPostgres {
        pg_ctl: bin_dir.join("pg_ctl"),
        data_dir: data_dir.clone(),
        as_postgres_user,
    };
    // A dev killed with -9 leaves its server running: stop it first.
    let _ = pg_command(&pg.pg_ctl, as_postgres_user)
        .arg("-D")
        .arg(&data_dir)
        .args(["-m", "fast", "stop"])
        .output();
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1",
        data_dir.display()
    );
    run(pg_command(&pg.pg_ctl, as_postgres_user)
        .arg("-D")
        .arg(&data_dir)
        .args(["-o", &options, "-w", "-l"])
        .arg(data_dir.join("server.log"))
        .arg("start"))?;
    let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    db::create_database_if_missing(&admin, "claimcheck").await?;
    println!(
        "dev PostgreSQL on 127.0.0.1:{port} (data in {})",
        data_dir.display()
    );
    Ok((
        pg,
        format!("postgres://postgres@127.0.0.1:{port}/claimcheck"),
    ))
}

fn pg_command(program: &Path, as_postgres_user: bool) -> Command {
    if as_postgres_user {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Where initdb and pg_ctl are: on PATH, else the newest Debian install.
fn postgres_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

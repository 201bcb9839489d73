//! `claimcheck-worker`: the delete worker, the claim sweeper and the orphan
//! reaper (`run`, the default), plus the operator subcommands. The jobs
//! themselves live in the library (`claimcheck::jobs`); this binary wires
//! configuration, logging, signals and the metrics/health endpoint.

mod http;

use std::process::ExitCode;

use claimcheck::{
    cli::SharedCommand,
    config::Config,
    db,
    jobs::{self, JobContext, JobSettings},
    metrics::Metrics,
    store, telemetry,
};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// claimcheck's worker. Configuration comes from the environment (see the
/// contract's table: DATABASE_URL, CLAIMCHECK_*).
#[derive(Parser)]
#[command(name = "claimcheck-worker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the delete worker, the sweeper and the reaper (the default), with
    /// /metrics, /healthz and /readyz on CLAIMCHECK_METRICS_LISTEN.
    Run,
    /// Compare the bucket with the database under CLAIMCHECK_KEY_PREFIX;
    /// print what disagrees and exit 1 if anything does.
    Audit,
    #[command(flatten)]
    Shared(SharedCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let config = Config::from_env()?;
    let _telemetry = telemetry::init("claimcheck-worker", config.log_format);
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(config).await.map(|()| ExitCode::SUCCESS),
        Command::Audit => audit(config).await,
        Command::Shared(command) => {
            command.run_with(&config).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn context(config: &Config) -> anyhow::Result<(JobContext, String)> {
    let url = config
        .database_url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL is not set"))?;
    let pool = db::connect_with(&url, config.db_pool_size, config.db_statements)?;
    // Bare: the job context adds the decorator that traces and times calls.
    let store = store::open(&config.store, None).await?;
    let ctx = JobContext::new(
        pool,
        store,
        Metrics::new(),
        JobSettings::from_config(config),
    );
    Ok((ctx, url))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let (ctx, _) = context(&config).await?;
    db::settings::record_key_prefix_at_start(&ctx.pool, &config.key_prefix).await?;
    let cancel = CancellationToken::new();
    let server = http::start(config.metrics_listen, ctx.clone())?;
    tracing::info!(
        metrics_listen = %server.local_addr,
        store = ctx.store.kind(),
        "worker started"
    );
    tokio::spawn(stop_on_signal(cancel.clone()));
    jobs::run(ctx, config.listen_database_url.clone(), cancel).await;
    server.handle.stop(true).await;
    tracing::info!("worker stopped");
    Ok(())
}

/// Cancels on SIGTERM or SIGINT: the jobs stop taking work and hand back
/// what they cannot finish within CLAIMCHECK_SHUTDOWN_TIMEOUT.
async fn stop_on_signal(cancel: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    cancel.cancel();
}

async fn audit(config: Config) -> anyhow::Result<ExitCode> {
    let (ctx, _) = context(&config).await?;
    let report = jobs::audit::audit(&ctx).await?;
    print!("{report}");
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

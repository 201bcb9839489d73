//! `claimcheck-worker`: the delete worker and the claim sweeper.

use claimcheck::{config::Config, db, telemetry};
use clap::{Parser, Subcommand};

/// claimcheck's worker. Configuration comes from the environment (see the
/// contract's table: DATABASE_URL, CLAIMCHECK_*).
#[derive(Parser)]
#[command(name = "claimcheck-worker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply database migrations, then exit. Safe to run from many pods at once.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::from_env()?;
    telemetry::init(config.log_format);
    match cli.command {
        Command::Migrate => {
            let url = config
                .database_url
                .ok_or_else(|| anyhow::anyhow!("DATABASE_URL is not set"))?;
            let report = db::migrate(&url).await?;
            tracing::info!(applied = ?report.applied, "migrations up to date");
            Ok(())
        }
    }
}

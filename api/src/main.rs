//! `claimcheck-api`: the HTTP API pods.
//!
//! Reads configuration, sets up logging, and hands over to a subcommand: serve
//! (the default), migrate, or dev (a whole service on one machine).

mod dev;
mod routes;
mod startup;

use claimcheck::{config::Config, db, telemetry};
use clap::{Parser, Subcommand};

/// claimcheck's upload API. Configuration comes from the environment (see the
/// contract's table: DATABASE_URL, CLAIMCHECK_*).
#[derive(Parser)]
#[command(name = "claimcheck-api", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply database migrations, then exit. Safe to run from many pods at once.
    Migrate,
    /// Run the whole service on this machine: the filesystem store and a
    /// PostgreSQL of its own (or DATABASE_URL when it answers).
    Dev,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::from_env()?;
    telemetry::init(config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            startup::Application::build(config)
                .await?
                .run_until_stopped()
                .await
        }
        Command::Migrate => {
            let url = database_url(&config)?;
            let report = db::migrate(&url).await?;
            tracing::info!(applied = ?report.applied, "migrations up to date");
            Ok(())
        }
        Command::Dev => {
            let _postgres = dev::prepare(&mut config).await?;
            let app = startup::Application::build(config).await?;
            dev::announce(app.port());
            app.run_until_stopped().await
        }
    }
}

fn database_url(config: &Config) -> anyhow::Result<String> {
    config
        .database_url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL is not set"))
}

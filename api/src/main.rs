//! `claimcheck-api`: the HTTP API pods.
//!
//! Reads configuration, sets up logging, and hands over to a subcommand: serve
//! (the default), migrate, or dev (a whole service on one machine).

mod auth;
mod body;
mod dev;
mod error;
mod observe;
mod openapi;
mod page;
mod routes;
mod startup;
mod tus;
mod wire;

use claimcheck::{cli::SharedCommand, config::Config, telemetry};
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
    /// Run the whole service on this machine: the filesystem store and a
    /// PostgreSQL of its own (or DATABASE_URL when it answers).
    Dev,
    #[command(flatten)]
    Shared(SharedCommand),
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::from_env()?;
    if matches!(cli.command, Some(Command::Dev))
        && std::env::var_os("CLAIMCHECK_LOG_FORMAT").is_none()
    {
        // A person reads dev's logs, not a log pipeline.
        config.log_format = claimcheck::config::LogFormat::Pretty;
    }
    let _telemetry = telemetry::init("claimcheck-api", config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            startup::Application::build(config)
                .await?
                .run_until_stopped()
                .await
        }
        Command::Dev => {
            let _postgres = dev::prepare(&mut config).await?;
            let token = dev::mint_token(&config).await?;
            let worker = dev::start_worker(&config).await?;
            let page_built = dev::page_built(&config);
            let app = startup::Application::build(config).await?;
            dev::announce(app.port(), &token, page_built);
            let served = app.run_until_stopped().await;
            worker.stop().await;
            served
        }
        Command::Shared(command) => {
            command.run_with(&config).await?;
            Ok(())
        }
    }
}

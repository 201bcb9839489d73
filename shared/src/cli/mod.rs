//! Subcommands both binaries share (the contract's "Commands"): `migrate`,
//! `queue stats|dead [--retry]`, `webhooks stats|dead [--retry]` and
//! `owner show OWNER`. Each binary flattens [`SharedCommand`] into
//! its own subcommand enum; `token create|list|revoke` joins it as a variant
//! of its own (a `cli/token.rs`).

pub mod owner;
pub mod queue;
pub mod token;
pub mod webhooks;

use std::io::Write;

use clap::Subcommand;

use crate::db::{self, DbError};

/// The subcommands of both `claimcheck-api` and `claimcheck-worker`.
#[derive(Debug, Clone, Subcommand)]
pub enum SharedCommand {
    /// Apply database migrations, then exit. Safe to run from many pods at once.
    Migrate,
    /// Inspect and repair the delete queue.
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// Inspect and repair webhook deliveries.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Mint, list and revoke API tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Owners' quotas and usage.
    #[command(subcommand)]
    Owner(owner::OwnerCommand),
}

/// What a shared subcommand runs against.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The database (`None`: the command fails, `DATABASE_URL` unset).
    pub url: Option<&'a str>,
    /// Connections it may open (at most 2 are used).
    pub pool_size: usize,
    /// Prepared or unnamed statements.
    pub statements: db::Statements,
    /// The configured quotas (`owner show`).
    pub quotas: db::Quotas,
}

/// Why a shared subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `DATABASE_URL` is not set.
    #[error("DATABASE_URL is not set")]
    NoDatabaseUrl,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// The thing named does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The output could not be encoded.
    #[error("cannot encode the output: {0}")]
    Json(#[from] serde_json::Error),
}

impl SharedCommand {
    /// Runs the subcommand with `config`'s database, writing to standard
    /// output: what both binaries' `main` do with it.
    pub async fn run_with(self, config: &crate::config::Config) -> Result<(), CliError> {
        let mut out = std::io::stdout();
        // Migrating holds a session-level lock: through a transaction
        // pooler it needs the direct connection LISTEN uses, when there is one.
        let url = match self {
            SharedCommand::Migrate => config
                .listen_database_url
                .as_deref()
                .or(config.database_url.as_deref()),
            _ => config.database_url.as_deref(),
        };
        let target = Target {
            url,
            pool_size: config.db_pool_size,
            statements: config.db_statements,
            quotas: config.quotas,
        };
        self.run(&target, &mut out).await?;
        out.flush()?;
        Ok(())
    }

    /// Runs the subcommand against `target`, writing to `out`.
    pub async fn run(
        self,
        target: &Target<'_>,
        out: &mut (dyn Write + Send),
    ) -> Result<(), CliError> {
        let url = target.url.ok_or(CliError::NoDatabaseUrl)?;
        let pool_size = target.pool_size;
        let connect = |size: usize| db::connect_with(url, size, target.statements);
        match self {
            SharedCommand::Migrate => {
                let report = db::migrate(url).await?;
                tracing::info!(applied = ?report.applied, "migrations up to date");
                Ok(())
            }
            SharedCommand::Queue(command) => {
                let pool = connect(pool_size.min(2))?;
                command.run(&pool, out).await
            }
            SharedCommand::Webhooks(command) => {
                let pool = connect(pool_size.min(2))?;
                command.run(&pool, out).await
            }
            SharedCommand::Token(command) => {
                let pool = connect(pool_size.min(2))?;
                command.run(&pool, out).await
            }
            SharedCommand::Owner(command) => {
                let pool = connect(pool_size.min(2))?;
                command.run(&pool, &target.quotas, out).await
            }
        }
    }
}

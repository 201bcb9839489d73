//! `owner show OWNER`: an owner's quotas and usage.

use std::io::Write;

use crate::db::Pool;
use clap::Subcommand;

use super::CliError;
use crate::db::{Owners, Quotas};

/// Owners' quotas.
#[derive(Debug, Clone, Subcommand)]
pub enum OwnerCommand {
    /// The owner's limits (the configured quotas with its overrides), its
    /// overrides and its usage, as JSON.
    Show {
        /// The owner id.
        owner: String,
    },
}

impl OwnerCommand {
    /// Runs the command against `pool` with the configured `quotas`.
    pub async fn run(
        self,
        pool: &Pool,
        quotas: &Quotas,
        out: &mut (dyn Write + Send),
    ) -> Result<(), CliError> {
        match self {
            OwnerCommand::Show { owner } => {
                let shown = Owners::new(pool.clone()).show(&owner, quotas).await?;
                writeln!(out, "{}", serde_json::to_string_pretty(&shown)?)?;
            }
        }
        Ok(())
    }
}

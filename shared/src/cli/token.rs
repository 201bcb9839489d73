//! `token create|list|revoke`: tokens from the command line.

use std::io::Write;

use crate::db::Pool;
use clap::Subcommand;
use uuid::Uuid;

use super::CliError;
use crate::{
    config::parse_duration,
    db::Actor,
    tokens::{parse_owners, parse_scopes, NewToken, TokenStore},
};

/// Token administration.
#[derive(Debug, Clone, Subcommand)]
pub enum TokenCommand {
    /// Mint a token; the raw token is printed alone on the last line, once.
    Create {
        /// The principal whose uploads the token creates.
        #[arg(long)]
        owner: String,
        /// Comma-separated: upload, consume, admin.
        #[arg(long, value_parser = parse_scopes)]
        scopes: std::collections::BTreeSet<crate::tokens::Scope>,
        /// A label for people.
        #[arg(long)]
        name: Option<String>,
        /// Lifetime, e.g. `30d` (default: never expires).
        #[arg(long, value_parser = parse_duration)]
        expires_in: Option<std::time::Duration>,
        /// Comma-separated owners a consume token acts for (default: every
        /// owner).
        #[arg(long, value_parser = parse_owners)]
        owners: Option<std::collections::BTreeSet<String>>,
    },
    /// List tokens (never their secrets), as JSON lines.
    List,
    /// Revoke a token by id.
    Revoke {
        /// The token's id.
        id: Uuid,
    },
}

impl TokenCommand {
    /// Runs the command, writing to `out`.
    pub async fn run(self, pool: &Pool, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
        let tokens = TokenStore::new(pool.clone());
        match self {
            TokenCommand::Create {
                owner,
                scopes,
                name,
                expires_in,
                owners,
            } => {
                let new = NewToken::new(owner.clone(), scopes.clone())
                    .name(name)
                    .expires_in(expires_in)
                    .owners(owners);
                let minted = tokens.create(&new, &Actor::cli()).await?;
                let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
                writeln!(
                    out,
                    "token id {} for owner {owner} with scopes {}",
                    minted.info.id,
                    scopes.join(",")
                )?;
                writeln!(out, "{}", minted.token)?;
            }
            TokenCommand::List => {
                for info in tokens.list().await? {
                    writeln!(out, "{}", serde_json::to_string(&info)?)?;
                }
            }
            TokenCommand::Revoke { id } => {
                if !tokens.revoke(id, &Actor::cli()).await? {
                    return Err(CliError::NotFound(format!(
                        "token {id} (unknown or already revoked)"
                    )));
                }
                writeln!(out, "revoked {id}")?;
            }
        }
        Ok(())
    }
}

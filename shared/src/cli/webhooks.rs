//! `webhooks stats` and `webhooks dead [--retry]`: the deliveries for
//! operators, as `queue` is for the delete queue.

use std::io::Write;

use crate::db::Pool;
use clap::Subcommand;

use super::CliError;
use crate::db::{Actor, WebhookStore};

/// `webhooks ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum WebhooksCommand {
    /// Delivery rows by state (due, leased, deferred, dead, done).
    Stats {
        /// One JSON object instead of `name value` lines.
        #[arg(long)]
        json: bool,
    },
    /// List dead deliveries with their last answer, oldest first; `--retry`
    /// sends every dead delivery again with a fresh attempt count.
    Dead {
        /// Send the dead deliveries again.
        #[arg(long)]
        retry: bool,
        /// Most rows listed.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
}

impl WebhooksCommand {
    /// Runs the command on `pool`, writing to `out`.
    pub async fn run(self, pool: &Pool, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
        let store = WebhookStore::new(pool.clone());
        match self {
            WebhooksCommand::Stats { json } => {
                let s = store.stats().await?;
                if json {
                    writeln!(out, "{}", serde_json::to_string(&s)?)?;
                } else {
                    for (name, n) in [
                        ("due", s.due),
                        ("leased", s.leased),
                        ("deferred", s.deferred),
                        ("dead", s.dead),
                        ("done", s.done),
                    ] {
                        writeln!(out, "{name} {n}")?;
                    }
                }
            }
            WebhooksCommand::Dead { retry, limit, json } => {
                for d in store.list_dead(limit).await? {
                    if json {
                        writeln!(out, "{}", serde_json::to_string(&d)?)?;
                    } else {
                        writeln!(
                            out,
                            "{}\t{}\tevent={}\t{}\tattempts={}\tstatus={}\tdead_at={}\t{}",
                            d.id,
                            d.url,
                            d.event_id,
                            d.event_type,
                            d.attempts,
                            d.last_status.map_or("-".to_owned(), |s| s.to_string()),
                            d.dead_at.to_rfc3339(),
                            d.last_error.unwrap_or_default().replace('\n', " | ")
                        )?;
                    }
                }
                if retry {
                    let n = store.retry_dead(None, &Actor::cli()).await?;
                    writeln!(out, "retried {n}")?;
                }
            }
        }
        Ok(())
    }
}

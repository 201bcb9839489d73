//! `queue stats` and `queue dead [--retry]`: the delete queue for operators.

use std::io::Write;

use crate::db::Pool;
use clap::Subcommand;

use super::CliError;
use crate::db::{Actor, DeleteQueue};

/// `queue ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum QueueCommand {
    /// Rows by state (due, leased, deferred, dead) and the oldest due row's age.
    Stats {
        /// One JSON object instead of `name value` lines.
        #[arg(long)]
        json: bool,
    },
    /// List dead rows with their last error, oldest first; `--retry` puts
    /// every dead row back in the queue with a fresh attempt count.
    Dead {
        /// Put the dead rows back in the queue.
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

impl QueueCommand {
    /// Runs the command on `pool`, writing to `out`.
    pub async fn run(self, pool: &Pool, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
        let queue = DeleteQueue::new(pool.clone());
        match self {
            QueueCommand::Stats { json } => {
                let stats = queue.stats().await?;
                if json {
                    writeln!(out, "{}", serde_json::to_string(&stats)?)?;
                } else {
                    writeln!(out, "due {}", stats.due)?;
                    writeln!(out, "leased {}", stats.leased)?;
                    writeln!(out, "deferred {}", stats.deferred)?;
                    writeln!(out, "dead {}", stats.dead)?;
                    writeln!(out, "oldest_due_seconds {:.0}", stats.oldest_due_seconds)?;
                }
            }
            QueueCommand::Dead { retry, limit, json } => {
                for (row, dead_at) in queue.list_dead(limit).await? {
                    if json {
                        let mut value = serde_json::to_value(&row)?;
                        value["dead_at"] = serde_json::to_value(dead_at)?;
                        writeln!(out, "{value}")?;
                    } else {
                        writeln!(
                            out,
                            "{}\t{}\t{}\tattempts={}\tdead_at={}\t{}",
                            row.id,
                            row.key,
                            row.reason.as_str(),
                            row.attempts,
                            dead_at.to_rfc3339(),
                            row.last_error.unwrap_or_default().replace('\n', " | ")
                        )?;
                    }
                }
                if retry {
                    let n = queue.retry_dead(None, &Actor::cli()).await?;
                    writeln!(out, "retried {n}")?;
                }
            }
        }
        Ok(())
    }
}

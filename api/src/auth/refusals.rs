//! Refused authentications, counted per token prefix (or, for an expired
//! token, per token) and minute before they reach the audit log: a flood of
//! bad tokens costs a map entry per prefix, and each minute becomes one
//! audit row per prefix and process, with the count in `detail`.
//!
//! [`Refusals::flush`] writes the minutes that are over (a background task
//! calls it every few seconds) or, at shutdown, everything. A write that
//! fails puts its counts back for the next flush.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use chrono::{DateTime, Utc};
use claimcheck::db::{Actor, AuditAction, AuditLog};
use tokio_util::sync::CancellationToken;

/// Distinct prefixes kept per minute; more (a flood of random tokens) are
/// counted together under [`OVERFLOW`].
const MAX_KEYS: usize = 1024;
/// The target that counts prefixes beyond [`MAX_KEYS`].
const OVERFLOW: &str = "*";
/// How often finished minutes are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    minute: i64,
    action: AuditAction,
    target: String,
}

#[derive(Debug, Clone)]
struct Tally {
    count: u64,
    actor: Actor,
}

/// Refusals waiting for the audit log.
#[derive(Debug)]
pub struct Refusals {
    log: AuditLog,
    pending: Mutex<HashMap<Key, Tally>>,
}

impl Refusals {
    /// Writing to `log`.
    pub fn new(log: AuditLog) -> Self {
        Self {
            log,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one refusal of `action` (`auth.refused` for an unknown or
    /// revoked token, with its prefix as `target`; `token.expired_used` for
    /// an expired one, with its id) by `actor`, in the current minute.
    pub fn record(&self, action: AuditAction, target: &str, actor: Actor) {
        let minute = Utc::now().timestamp().div_euclid(60);
        let mut pending = self.pending.lock().expect("never poisoned");
        let mut key = Key {
            minute,
            action,
            target: target.to_owned(),
        };
        if !pending.contains_key(&key) && pending.len() >= MAX_KEYS {
            key.target = OVERFLOW.to_owned();
        }
        pending
            .entry(key)
            .or_insert(Tally { count: 0, actor })
            .count += 1;
    }

    /// Writes the counts of minutes that are over, or of every minute when
    /// `all` (shutdown). Returns the rows written.
    pub async fn flush(&self, all: bool) -> usize {
        let now = Utc::now().timestamp().div_euclid(60);
        let ready: Vec<(Key, Tally)> = {
            let mut pending = self.pending.lock().expect("never poisoned");
            let keys: Vec<Key> = pending
                .keys()
                .filter(|k| all || k.minute < now)
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|k| pending.remove(&k).map(|t| (k, t)))
                .collect()
        };
        let mut written = 0;
        for (key, tally) in ready {
            let minute = DateTime::<Utc>::from_timestamp(key.minute * 60, 0);
            let detail = serde_json::json!({ "count": tally.count, "minute": minute });
            match self
                .log
                .append(&tally.actor, key.action, &key.target, detail)
                .await
            {
                Ok(()) => written += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "could not write refused authentications to the audit log; keeping them");
                    let mut pending = self.pending.lock().expect("never poisoned");
                    pending
                        .entry(key)
                        .or_insert(Tally {
                            count: 0,
                            actor: tally.actor,
                        })
                        .count += tally.count;
                }
            }
        }
        written
    }

    /// Flushes finished minutes every [`FLUSH_EVERY`] until `cancel` fires.
    pub async fn run(&self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(FLUSH_EVERY) => {}
            }
            self.flush(false).await;
        }
    }
}

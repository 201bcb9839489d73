//! [`Files`]: adopting uploads from Rust business code, inside the business's
//! own PostgreSQL transaction.
//!
//! No SQL here: the statements are [`ObjectRegistry`]'s. The rules live in
//! the SQL functions (`claimcheck.consume_claims`,
//! `claimcheck.schedule_delete`), reached through [`ObjectRegistry`]: SQL
//! callers, Rust callers and the HTTP API share one implementation. Nothing
//! here commits: the caller's commit makes the adoption (and the queued
//! deletes) happen together with its own writes, and its rollback undoes them.
//!
//! ```no_run
//! # async fn avatar(client: &mut tokio_postgres::Client, user: i64, new_key: String)
//! #     -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use claimcheck::files::Files;
//!
//! let mut tx = client.transaction().await?;
//! let old: Option<String> = tx
//!     .query_opt("SELECT avatar_key FROM users WHERE id = $1 FOR UPDATE", &[&user])
//!     .await?
//!     .and_then(|row| row.get(0));
//! Files::new(&mut tx)
//!     .replace("user-42", &old.into_iter().collect::<Vec<_>>(), &[new_key.clone()])
//!     .await?;
//! tx.execute("UPDATE users SET avatar_key = $1 WHERE id = $2", &[&new_key, &user])
//!     .await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```

use std::{collections::BTreeSet, time::Duration};

use tokio_postgres::Transaction;

pub use crate::db::objects::{ConsumeError, ScheduleError};
use crate::{
    db::{Actor, Adopter, DbError, ObjectRegistry},
    domain::{DeleteReason, RegistryObject},
};

/// Adoption operations over a caller's open transaction.
pub struct Files<'a, 't> {
    tx: &'a mut Transaction<'t>,
    by: Adopter,
}

impl<'a, 't> Files<'a, 't> {
    /// Works inside `tx`; the caller commits or rolls back. Acts for every
    /// owner; the audit log names the actor `sql` with the session's
    /// database role, as for a direct call of the SQL functions.
    pub fn new(tx: &'a mut Transaction<'t>) -> Self {
        Self {
            tx,
            by: Adopter::default(),
        }
    }

    /// Acts for `owners` only, as an owner-bound consume token does: another
    /// owner's claims are missing to [`consume`](Self::consume) and its
    /// objects unknown to [`delete`](Self::delete) ([`ScheduleError::NotFound`]).
    pub fn for_owners<I, S>(mut self, owners: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.by.owners = Some(owners.into_iter().map(Into::into).collect());
        self
    }

    /// Names `actor` in the audit log instead of the database role.
    pub fn acting_as(mut self, actor: Actor) -> Self {
        self.by.actor = Some(actor);
        self
    }

    /// Consumes the owner's uploaded claims for `keys` into the objects
    /// registry: all of them, or none and [`ConsumeError::Missing`] naming
    /// every key that is unknown, still pending or another owner's. Keys are
    /// de-duplicated. A refusal leaves the transaction usable (savepoint).
    pub async fn consume(
        &mut self,
        owner: &str,
        keys: &[String],
    ) -> Result<Vec<RegistryObject>, ConsumeError> {
        ObjectRegistry::consume_in(self.tx, &self.by, owner, keys).await
    }

    /// Replaces the object set `old_keys` with `new_keys` (an entity's
    /// attachments, say): consumes the keys of `new_keys` that are not in
    /// `old_keys` and queues the delete of the keys of `old_keys` that are not
    /// in `new_keys`, with reason `replaced`. Keys in both are left alone.
    /// Either side may be empty. Returns the objects consumed.
    ///
    /// The consume runs first, so a refused consume queues no delete: the
    /// old objects stay as they were.
    pub async fn replace(
        &mut self,
        owner: &str,
        old_keys: &[String],
        new_keys: &[String],
    ) -> Result<Vec<RegistryObject>, ConsumeError> {
        let old: BTreeSet<&String> = old_keys.iter().collect();
        let new: BTreeSet<&String> = new_keys.iter().collect();
        let added: Vec<String> = new.difference(&old).map(|k| (*k).clone()).collect();
        let consumed = if added.is_empty() {
            Vec::new()
        } else {
            self.consume(owner, &added).await?
        };
        for dropped in old.difference(&new) {
            ObjectRegistry::schedule_delete_in(
                &*self.tx,
                &self.by,
                dropped,
                DeleteReason::Replaced,
            )
            .await?;
        }
        Ok(consumed)
    }

    /// Removes the registry rows of `keys` (where there are any) and queues
    /// each key's delete with reason `deleted`. Keys are de-duplicated.
    ///
    /// Refused, with nothing queued by this call, for a key outside the
    /// service's key space or one that is still an upload claim (or, with
    /// [`for_owners`](Self::for_owners), another owner's).
    pub async fn delete(&mut self, keys: &[String]) -> Result<(), ScheduleError> {
        let keys: BTreeSet<&String> = keys.iter().collect();
        for key in keys {
            ObjectRegistry::schedule_delete_in(&*self.tx, &self.by, key, DeleteReason::Deleted)
                .await?;
        }
        Ok(())
    }

    /// The registry rows of `keys` when every one of them is a live object of
    /// `owner` consumed within `window`; `None` otherwise.
    ///
    /// This is how a retried consume (whose first answer was lost) is told
    /// apart from a consume of claims that are really missing: the HTTP API
    /// answers such a retry with the same objects. The SQL function has no
    /// such leniency on purpose: inside one transaction there is nothing to
    /// retry.
    pub async fn consumed_within(
        &mut self,
        owner: &str,
        keys: &[String],
        window: Duration,
    ) -> Result<Option<Vec<RegistryObject>>, DbError> {
        ObjectRegistry::consumed_within_in(&*self.tx, &self.by, owner, keys, window).await
    }
}

impl std::fmt::Debug for Files<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files").finish_non_exhaustive()
    }
}

//! `claimcheck.audit_log`: who did what, appended and never updated.
//!
//! Rows are written through the SQL function `claimcheck.audit`, in the
//! same transaction as the action they record wherever there is one: the
//! SQL functions `consume_claims_as` and `schedule_delete_as` write theirs
//! themselves (so a consume made by a business transaction that rolls back
//! leaves no row), the token, webhook and quota statements call
//! [`append_in`] inside their own transactions. Refused authentications
//! arrive already counted per token prefix and minute ([`AuditLog::append`]
//! with the count in `detail`), so a flood of bad tokens writes a handful
//! of rows, not one per request.

use std::time::Duration;

use crate::db::Pool;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{pool::Exec, secs, DbError};

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actor {
    /// `token`, `sql`, `cli`, `worker` or `anonymous`.
    pub kind: ActorKind,
    /// The token's id, for a token.
    pub token_id: Option<Uuid>,
    /// The token's owner (for `sql`: the session's role).
    pub owner: Option<String>,
    /// The HTTP request's id (`X-Request-Id`), when there was one.
    pub request_id: Option<String>,
}

/// The kinds of [`Actor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// An API token.
    Token,
    /// A direct call of the SQL functions.
    Sql,
    /// A command of `claimcheck-api` or `claimcheck-worker`.
    #[default]
    Cli,
    /// A worker process on its own.
    Worker,
    /// A request whose token was refused.
    Anonymous,
}

impl ActorKind {
    /// Every kind.
    const ALL: [ActorKind; 5] = [
        ActorKind::Token,
        ActorKind::Sql,
        ActorKind::Cli,
        ActorKind::Worker,
        ActorKind::Anonymous,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Token => "token",
            ActorKind::Sql => "sql",
            ActorKind::Cli => "cli",
            ActorKind::Worker => "worker",
            ActorKind::Anonymous => "anonymous",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl Actor {
    /// A token acting (its id and owner).
    pub fn token(id: Uuid, owner: &str) -> Self {
        Self {
            kind: ActorKind::Token,
            token_id: Some(id),
            owner: Some(owner.to_owned()),
            request_id: None,
        }
    }

    /// A command line.
    pub fn cli() -> Self {
        Self::default()
    }

    /// A worker process.
    pub fn worker() -> Self {
        Self {
            kind: ActorKind::Worker,
            ..Self::default()
        }
    }

    /// A refused request (no token that could be trusted).
    pub fn anonymous() -> Self {
        Self {
            kind: ActorKind::Anonymous,
            ..Self::default()
        }
    }

    /// The same actor, for the request `id`.
    pub fn with_request_id(mut self, id: Option<String>) -> Self {
        self.request_id = id;
        self
    }

    /// As the SQL functions take it: `{"kind", "token_id"?, "owner"?, "request_id"?}`.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({ "kind": self.kind.as_str() });
        if let Some(id) = self.token_id {
            v["token_id"] = id.to_string().into();
        }
        if let Some(owner) = &self.owner {
            v["owner"] = owner.as_str().into();
        }
        if let Some(request_id) = &self.request_id {
            v["request_id"] = request_id.as_str().into();
        }
        v
    }
}

/// The actions the audit log records (the `action` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// A token was minted.
    TokenMinted,
    /// A token was revoked.
    TokenRevoked,
    /// An expired token was presented (counted per token and minute).
    ExpiredTokenUsed,
    /// A token was refused (counted per token prefix and minute).
    AuthRefused,
    /// Claims were consumed (written by `consume_claims_as`).
    ObjectsConsumed,
    /// A delete was scheduled (written by `schedule_delete_as`).
    DeleteScheduled,
    /// Dead delete rows were put back in the queue.
    DeadDeletesRetried,
    /// A webhook endpoint was registered.
    WebhookCreated,
    /// A webhook endpoint was removed.
    WebhookDeleted,
    /// A webhook endpoint's dead deliveries were put back.
    WebhookRetried,
    /// An owner's quota overrides changed.
    QuotaChanged,
}

impl AuditAction {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::TokenMinted => "token.minted",
            AuditAction::TokenRevoked => "token.revoked",
            AuditAction::ExpiredTokenUsed => "token.expired_used",
            AuditAction::AuthRefused => "auth.refused",
            AuditAction::ObjectsConsumed => "objects.consumed",
            AuditAction::DeleteScheduled => "delete.scheduled",
            AuditAction::DeadDeletesRetried => "deletes.dead_retried",
            AuditAction::WebhookCreated => "webhook.created",
            AuditAction::WebhookDeleted => "webhook.deleted",
            AuditAction::WebhookRetried => "webhook.dead_retried",
            AuditAction::QuotaChanged => "quota.changed",
        }
    }
}

/// One audit row.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Increasing; the cursor of the admin listing.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// `token`, `sql`, `cli`, `worker`, `anonymous`.
    pub actor: ActorKind,
    /// The acting token's id.
    pub actor_token_id: Option<Uuid>,
    /// The acting token's owner (or, for `sql`, the database role).
    pub actor_owner: Option<String>,
    /// What was done (`token.minted`, `objects.consumed`, ...).
    pub action: String,
    /// What it was done to (a token id, an owner, a key, ...).
    pub target: Option<String>,
    /// The particulars.
    #[schema(value_type = Object)]
    pub detail: Value,
    /// The HTTP request's id.
    pub request_id: Option<String>,
}

/// Which rows [`AuditLog::page`] returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this action.
    pub action: Option<String>,
    /// Only this actor: a kind (`sql`, `cli`, ...), a token id, or an owner.
    pub actor: Option<String>,
    /// Only rows at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only rows older than this id (the previous page's last).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// Appends a row through `client` (a caller's transaction, so the row
/// commits with the action or not at all).
pub async fn append_in(
    client: &impl Exec,
    actor: &Actor,
    action: AuditAction,
    target: &str,
    detail: Value,
) -> Result<(), DbError> {
    client
        .execute(
            "SELECT claimcheck.audit($1, $2, $3, $4)",
            &[&actor.to_json(), &action.as_str(), &target, &detail],
        )
        .await?;
    Ok(())
}

/// The audit log in PostgreSQL.
#[derive(Clone, Debug)]
pub struct AuditLog {
    pool: Pool,
}

impl AuditLog {
    /// A log over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Appends a row of its own (an action with no transaction to join).
    pub async fn append(
        &self,
        actor: &Actor,
        action: AuditAction,
        target: &str,
        detail: Value,
    ) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        append_in(&client, actor, action, target, detail).await
    }

    /// A page of rows, newest first.
    pub async fn page(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, DbError> {
        let client = self.pool.get().await?;
        // The actor filter names one column, so each form uses its index.
        let (actor_kind, actor_token, actor_owner) = match q.actor.as_deref() {
            None => (None, None, None),
            Some(a) => match (ActorKind::parse(a), Uuid::parse_str(a)) {
                (Some(kind), _) => (Some(kind.as_str()), None, None),
                (None, Ok(id)) => (None, Some(id), None),
                (None, Err(_)) => (None, None, Some(a)),
            },
        };
        let rows = client
            .query(
                "SELECT id, at, actor, actor_token_id, actor_owner, action, target, detail, request_id
                   FROM claimcheck.audit_log
                  WHERE ($1::text IS NULL OR action = $1)
                    AND ($2::text IS NULL OR actor = $2)
                    AND ($3::uuid IS NULL OR actor_token_id = $3)
                    AND ($4::text IS NULL OR actor_owner = $4)
                    AND ($5::timestamptz IS NULL OR at >= $5)
                    AND ($6::bigint IS NULL OR id < $6)
                  ORDER BY id DESC
                  LIMIT $7",
                &[
                    &q.action,
                    &actor_kind,
                    &actor_token,
                    &actor_owner,
                    &q.since,
                    &q.before_id,
                    &q.limit,
                ],
            )
            .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Deletes up to `limit` rows older than `retention` (a bounded
    /// statement: the worker calls it until it returns less than `limit`);
    /// returns how many.
    #[tracing::instrument(name = "db.prune_audit_log", skip_all)]
    pub async fn prune(&self, retention: Duration, limit: i64) -> Result<u64, DbError> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(
                "DELETE FROM claimcheck.audit_log WHERE id IN (
                     SELECT id FROM claimcheck.audit_log
                      WHERE at < now() - make_interval(secs => $1) LIMIT $2)",
                &[&secs(retention), &limit],
            )
            .await?)
    }
}

fn entry_from_row(row: &Row) -> Result<AuditEntry, DbError> {
    let actor: String = row.try_get("actor")?;
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor: ActorKind::parse(&actor)
            .ok_or_else(|| DbError::Corrupt(format!("audit actor {actor:?}")))?,
        actor_token_id: row.try_get("actor_token_id")?,
        actor_owner: row.try_get("actor_owner")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        detail: row.try_get("detail")?,
        request_id: row.try_get("request_id")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_goes_to_sql_with_only_what_it_has() {
        let id = Uuid::nil();
        let actor = Actor::token(id, "svc").with_request_id(Some("r-1".into()));
        assert_eq!(
            actor.to_json(),
            serde_json::json!({"kind": "token", "token_id": id.to_string(), "owner": "svc", "request_id": "r-1"})
        );
        assert_eq!(Actor::cli().to_json(), serde_json::json!({"kind": "cli"}));
        assert_eq!(
            Actor::worker().to_json(),
            serde_json::json!({"kind": "worker"})
        );
    }
}

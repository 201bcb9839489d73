//! `claimcheck.api_tokens`: the statements on tokens. What a token is
//! (minting, hashing, scopes) is [`crate::tokens`].

use std::str::FromStr;

use crate::db::Pool;
use chrono::Utc;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{
    audit_log::{self, Actor, AuditAction},
    secs, DbError,
};
use crate::tokens::{
    hash, looks_like_a_token, new_secret, Authentication, MintedToken, NewToken, Scope, TokenInfo,
};

/// Tokens in PostgreSQL.
#[derive(Clone, Debug)]
pub struct TokenStore {
    pool: Pool,
}

/// The columns [`info_from_row`] reads.
const COLUMNS: &str =
    "id, owner, scopes, name, created_at, expires_at, revoked_at, last_used_at, owners";

/// A token by its secret's hash, and whether it has expired.
static AUTHENTICATE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS}, expires_at <= now() AS expired
           FROM claimcheck.api_tokens WHERE token_sha256 = $1"
    )
});

impl TokenStore {
    /// A store over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Mints a token, and records who minted it in the audit log in the
    /// same transaction.
    pub async fn create(&self, new: &NewToken, actor: &Actor) -> Result<MintedToken, DbError> {
        let (token, hashed) = new_secret();
        let scopes: Vec<&str> = new.scopes.iter().map(|s| s.as_str()).collect();
        let owners: Option<Vec<&String>> = new.owners.as_ref().map(|o| o.iter().collect());
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO claimcheck.api_tokens
                            (id, token_sha256, owner, scopes, name, expires_at, owners)
                     VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7)
                     RETURNING {COLUMNS}"
                ),
                &[
                    &Uuid::now_v7(),
                    &hashed,
                    &new.owner,
                    &scopes,
                    &new.name,
                    &new.expires_in.map(secs),
                    &owners,
                ],
            )
            .await?;
        let info = info_from_row(&row)?;
        let detail = serde_json::json!({
            "owner": info.owner, "scopes": info.scopes, "name": info.name,
            "expires_at": info.expires_at, "owners": info.owners,
        });
        let target = info.id.to_string();
        audit_log::append_in(&tx, actor, AuditAction::TokenMinted, &target, detail).await?;
        tx.commit().await?;
        Ok(MintedToken { token, info })
    }

    /// What a raw secret stands for. Records a valid token's use at most
    /// once a minute, so a busy client does not turn every request into a
    /// write.
    pub async fn authenticate(&self, raw: &str) -> Result<Authentication, DbError> {
        if !looks_like_a_token(raw) {
            return Ok(Authentication::Unknown);
        }
        let client = self.pool.get().await?;
        // Every request runs it: prepared once per connection.
        let row = client
            .query_opt_cached(&AUTHENTICATE, &[&hash(raw)])
            .await?;
        let Some(row) = row else {
            return Ok(Authentication::Unknown);
        };
        let info = info_from_row(&row)?;
        if info.revoked_at.is_some() {
            return Ok(Authentication::Revoked(info));
        }
        if row.try_get::<_, Option<bool>>("expired")? == Some(true) {
            return Ok(Authentication::Expired(info));
        }
        let stale = info
            .last_used_at
            .is_none_or(|t| Utc::now().signed_duration_since(t).num_seconds() >= 60);
        if stale {
            client
                .execute_cached(
                    "UPDATE claimcheck.api_tokens SET last_used_at = now()
                      WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
                    &[&info.id],
                )
                .await?;
        }
        Ok(Authentication::Valid(info))
    }

    /// Every token, newest first.
    pub async fn list(&self) -> Result<Vec<TokenInfo>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!("SELECT {COLUMNS} FROM claimcheck.api_tokens ORDER BY id DESC"),
                &[],
            )
            .await?;
        rows.iter().map(info_from_row).collect()
    }

    /// Revokes a token, and records who revoked it in the audit log in the
    /// same transaction. False when there is no such token or it was
    /// already revoked.
    pub async fn revoke(&self, id: Uuid, actor: &Actor) -> Result<bool, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "UPDATE claimcheck.api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
                &[&id],
            )
            .await?;
        if n == 1 {
            let target = id.to_string();
            let detail = serde_json::json!({});
            audit_log::append_in(&tx, actor, AuditAction::TokenRevoked, &target, detail).await?;
            tx.commit().await?;
        }
        Ok(n == 1)
    }
}

fn info_from_row(row: &Row) -> Result<TokenInfo, DbError> {
    let scopes: Vec<String> = row.try_get("scopes")?;
    Ok(TokenInfo {
        id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        scopes: scopes
            .iter()
            .map(|s| Scope::from_str(s).map_err(DbError::Corrupt))
            .collect::<Result<_, _>>()?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
        owners: row
            .try_get::<_, Option<Vec<String>>>("owners")?
            .map(|o| o.into_iter().collect()),
    })
}

//! `claimcheck.api_tokens`: the statements on tokens. What a token is
//! (minting, hashing, scopes) is [`crate::tokens`].

use std::{collections::BTreeSet, str::FromStr, time::Duration};

use chrono::Utc;
use deadpool_postgres::Pool;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{secs, DbError};
use crate::tokens::{hash, looks_like_a_token, new_secret, MintedToken, Scope, TokenInfo};

/// Tokens in PostgreSQL.
#[derive(Clone, Debug)]
pub struct TokenStore {
    pool: Pool,
}

/// The columns [`info_from_row`] reads.
const COLUMNS: &str = "id, owner, scopes, name, created_at, expires_at, revoked_at, last_used_at";

impl TokenStore {
    /// A store over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Mints a token for `owner` with `scopes`, valid for `expires_in` (or forever).
    pub async fn create(
        &self,
        owner: &str,
        scopes: &BTreeSet<Scope>,
        name: Option<&str>,
        expires_in: Option<Duration>,
    ) -> Result<MintedToken, DbError> {
        let (token, hashed) = new_secret();
        let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO claimcheck.api_tokens (id, token_sha256, owner, scopes, name, expires_at)
                     VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
                     RETURNING {COLUMNS}"
                ),
                &[&Uuid::now_v7(), &hashed, &owner, &scopes, &name, &expires_in.map(secs)],
            )
            .await?;
        Ok(MintedToken {
            token,
            info: info_from_row(&row)?,
        })
    }

    /// The token a raw secret stands for, if it is known, unexpired and not
    /// revoked. Records its use at most once a minute, so a busy client does
    /// not turn every request into a write.
    pub async fn authenticate(&self, raw: &str) -> Result<Option<TokenInfo>, DbError> {
        if !looks_like_a_token(raw) {
            return Ok(None);
        }
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM claimcheck.api_tokens
                      WHERE token_sha256 = $1 AND revoked_at IS NULL
                        AND (expires_at IS NULL OR expires_at > now())"
                ),
                &[&hash(raw)],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let info = info_from_row(&row)?;
        let stale = info
            .last_used_at
            .is_none_or(|t| Utc::now().signed_duration_since(t).num_seconds() >= 60);
        if stale {
            client
                .execute(
                    "UPDATE claimcheck.api_tokens SET last_used_at = now()
                      WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
                    &[&info.id],
                )
                .await?;
        }
        Ok(Some(info))
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

    /// Revokes a token. False when there is no such token or it was already revoked.
    pub async fn revoke(&self, id: Uuid) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE claimcheck.api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
                &[&id],
            )
            .await?;
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
    })
}

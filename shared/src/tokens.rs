//! API tokens: opaque, random, stored only as SHA-256 hashes.
//!
//! A raw token is `cc_` followed by 43 base64url characters (32 random bytes,
//! 256 bits). It is shown once, when minted; the database keeps its hash, so a
//! leaked database does not leak usable tokens. Lookups are by hash, which is
//! as good as a constant-time compare: the secret never meets a `==`.

use std::{collections::BTreeSet, fmt, str::FromStr, time::Duration};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::{secs, DbError};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Create and manage one's own uploads.
    Upload,
    /// Adopt claims, schedule deletes, get download URLs (backend services).
    Consume,
    /// Tokens and the queue.
    Admin,
}

impl Scope {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Upload => "upload",
            Scope::Consume => "consume",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "upload" => Ok(Scope::Upload),
            "consume" => Ok(Scope::Consume),
            "admin" => Ok(Scope::Admin),
            other => Err(format!("unknown scope `{other}` (upload, consume, admin)")),
        }
    }
}

/// Parses `upload,consume`.
pub fn parse_scopes(s: &str) -> Result<BTreeSet<Scope>, String> {
    let scopes: BTreeSet<Scope> = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(Scope::from_str)
        .collect::<Result<_, _>>()?;
    if scopes.is_empty() {
        return Err("at least one scope is needed".into());
    }
    Ok(scopes)
}

/// A token's record (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// Its id, for listing and revoking.
    pub id: Uuid,
    /// The principal whose uploads it creates.
    pub owner: String,
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
    /// A label for people.
    pub name: Option<String>,
    /// When minted.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last use, to the minute.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl TokenInfo {
    /// Whether the token grants `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// A freshly minted token: the raw secret, shown this once, and its record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MintedToken {
    /// `cc_...`: give it to the client; it cannot be shown again.
    pub token: String,
    /// The stored record.
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// Tokens in PostgreSQL.
#[derive(Clone, Debug)]
pub struct TokenStore {
    pool: Pool,
}

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
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let token = format!("cc_{}", URL_SAFE_NO_PAD.encode(secret));
        let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO claimcheck.api_tokens (id, token_sha256, owner, scopes, name, expires_at)
                     VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
                     RETURNING {COLUMNS}"
                ),
                &[&Uuid::now_v7(), &hash(&token), &owner, &scopes, &name, &expires_in.map(secs)],
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

fn hash(raw: &str) -> Vec<u8> {
    Sha256::digest(raw.as_bytes()).to_vec()
}

/// `cc_` and 43 base64url characters: anything else is not worth a query.
fn looks_like_a_token(raw: &str) -> bool {
    raw.strip_prefix("cc_").is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse() {
        let s = parse_scopes("upload, consume").unwrap();
        assert!(s.contains(&Scope::Upload) && s.contains(&Scope::Consume) && s.len() == 2);
        assert!(parse_scopes("upload,root").is_err());
        assert!(parse_scopes("").is_err());
    }

    #[test]
    fn token_shape_is_checked_before_any_query() {
        let good = format!("cc_{}", URL_SAFE_NO_PAD.encode([7u8; 32]));
        assert_eq!(good.len(), 46);
        assert!(looks_like_a_token(&good));
        assert!(!looks_like_a_token("cc_short"));
        assert!(!looks_like_a_token(&good.replace("cc_", "xx_")));
        assert!(!looks_like_a_token(&format!("{good}=")));
    }
}

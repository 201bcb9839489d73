//! API tokens: opaque, random, stored only as SHA-256 hashes.
//!
//! A raw token is `cc_` followed by 43 base64url characters (32 random bytes,
//! 256 bits). It is shown once, when minted; the database keeps its hash, so a
//! leaked database does not leak usable tokens. Lookups are by hash, which is
//! as good as a constant-time compare: the secret never meets a `==`.
//!
//! This module is the token logic (minting, hashing, the shape check,
//! scopes); the statements on `claimcheck.api_tokens` are in
//! [`crate::db::tokens`].

use std::{collections::BTreeSet, fmt, str::FromStr};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use crate::db::tokens::TokenStore;

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

/// A new raw token, `cc_` and 32 random bytes in base64url, and the hash
/// the database keeps of it.
pub(crate) fn new_secret() -> (String, Vec<u8>) {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = format!("cc_{}", URL_SAFE_NO_PAD.encode(secret));
    let hashed = hash(&token);
    (token, hashed)
}

/// The SHA-256 a token is stored and looked up by.
pub(crate) fn hash(raw: &str) -> Vec<u8> {
    Sha256::digest(raw.as_bytes()).to_vec()
}

/// `cc_` and 43 base64url characters: anything else is not worth a query.
pub(crate) fn looks_like_a_token(raw: &str) -> bool {
    raw.strip_prefix("cc_").is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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

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

/// Parses `a,b`: the owners a consume token is bound to (at least one,
/// each a valid owner id).
pub fn parse_owners(s: &str) -> Result<BTreeSet<String>, String> {
    let owners: BTreeSet<String> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    check_owners(&owners)?;
    Ok(owners)
}

/// Checks a set of owners a token is bound to: at least one, each a valid
/// owner id.
pub fn check_owners(owners: &BTreeSet<String>) -> Result<(), String> {
    if owners.is_empty() {
        return Err("owners: at least one owner is needed (leave it out for every owner)".into());
    }
    if owners.len() > 1000 {
        return Err("owners: at most 1000".into());
    }
    for owner in owners {
        if owner.trim().is_empty() {
            return Err("owners: an owner must not be empty".into());
        }
        crate::input::OWNER
            .check(owner)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
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
    /// The owners a consume token acts for (absent: every owner).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owners: Option<BTreeSet<String>>,
}

impl TokenInfo {
    /// Whether the token grants `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Whether the token may act for `owner`'s claims and objects: an
    /// unbound token for every owner, a bound one for its owners only.
    pub fn acts_for(&self, owner: &str) -> bool {
        self.owners.as_ref().is_none_or(|o| o.contains(owner))
    }
}

/// A token to mint.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The principal whose uploads it creates.
    pub owner: String,
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
    /// A label for people.
    pub name: Option<String>,
    /// Its lifetime (none: forever).
    pub expires_in: Option<std::time::Duration>,
    /// The owners a consume token acts for (none: every owner).
    pub owners: Option<BTreeSet<String>>,
}

impl NewToken {
    /// A token for `owner` with `scopes`, unnamed, never expiring, unbound.
    pub fn new(owner: impl Into<String>, scopes: BTreeSet<Scope>) -> Self {
        Self {
            owner: owner.into(),
            scopes,
            name: None,
            expires_in: None,
            owners: None,
        }
    }

    /// Named `name`.
    pub fn name(mut self, name: Option<String>) -> Self {
        self.name = name;
        self
    }

    /// Expiring after `expires_in`.
    pub fn expires_in(mut self, expires_in: Option<std::time::Duration>) -> Self {
        self.expires_in = expires_in;
        self
    }

    /// Bound to `owners` (consume scope).
    pub fn owners(mut self, owners: Option<BTreeSet<String>>) -> Self {
        self.owners = owners;
        self
    }
}

/// What a presented token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// A valid token.
    Valid(TokenInfo),
    /// A known token past its expiry.
    Expired(TokenInfo),
    /// A known token that was revoked.
    Revoked(TokenInfo),
    /// Not a token of this service.
    Unknown,
}

/// The first characters of a presented token, as the audit log names
/// refused ones: enough to tell a client's tokens apart, far too few to
/// use (8 of a 46-character token; anything but base64url is shown as `?`).
pub fn token_prefix(raw: &str) -> String {
    raw.chars()
        .take(8)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '?'
            }
        })
        .collect()
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

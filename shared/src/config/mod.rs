//! Configuration, read from the environment (the contract's table).
//!
//! Durations accept `30s`, `5m`, `24h`, `7d` (and `0` where zero means "off");
//! sizes accept `16MiB`, `5GiB` or plain bytes. A bad value is an error that
//! names the variable, never a silent default.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::store::{s3::S3Settings, MAX_PART_SIZE, MIN_PART_SIZE};

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// Which object store to use.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// Files under a directory.
    Fs {
        /// The root directory.
        root: PathBuf,
    },
    /// An S3-compatible server.
    S3(S3Settings),
}

/// Everything both binaries read from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`.
    pub database_url: Option<String>,
    /// `CLAIMCHECK_LISTEN`.
    pub listen: SocketAddr,
    /// `CLAIMCHECK_METRICS_LISTEN`.
    pub metrics_listen: SocketAddr,
    /// `CLAIMCHECK_STORE` and its settings.
    pub store: StoreConfig,
    /// `CLAIMCHECK_CLAIM_TTL`.
    pub claim_ttl: Duration,
    /// `CLAIMCHECK_UNCONSUMED_TTL`; `None` keeps unconsumed uploads forever.
    pub unconsumed_ttl: Option<Duration>,
    /// `CLAIMCHECK_MAX_UPLOAD_SIZE`, bytes.
    pub max_upload_size: u64,
    /// `CLAIMCHECK_MAX_PENDING_PER_OWNER`.
    pub max_pending_per_owner: u32,
    /// `CLAIMCHECK_PART_SIZE`, bytes.
    pub part_size: u64,
    /// `CLAIMCHECK_DELETE_MAX_ATTEMPTS`.
    pub delete_max_attempts: u32,
    /// `CLAIMCHECK_DELETE_LEASE`.
    pub delete_lease: Duration,
    /// `CLAIMCHECK_WEBHOOK_MAX_ATTEMPTS`.
    pub webhook_max_attempts: u32,
    /// `CLAIMCHECK_WEBHOOK_TIMEOUT`: one webhook request.
    pub webhook_timeout: Duration,
    /// `CLAIMCHECK_EVENT_RETENTION`: how long delivered events are kept.
    pub event_retention: Duration,
    /// `CLAIMCHECK_QUOTA_BYTES`, `CLAIMCHECK_DAILY_UPLOAD_BYTES`,
    /// `CLAIMCHECK_DAILY_UPLOADS` (0: none).
    pub quotas: crate::db::Quotas,
    /// `CLAIMCHECK_AUDIT_RETENTION`: how long audit rows (and daily usage
    /// rows) are kept.
    pub audit_retention: Duration,
    /// `CLAIMCHECK_DELETE_BATCH`.
    pub delete_batch: u32,
    /// `CLAIMCHECK_DELETE_CONCURRENCY`.
    pub delete_concurrency: u32,
    /// `CLAIMCHECK_SWEEP_INTERVAL`.
    pub sweep_interval: Duration,
    /// `CLAIMCHECK_POLL_INTERVAL`.
    pub poll_interval: Duration,
    /// `CLAIMCHECK_DELETE_BACKOFF_BASE`.
    pub delete_backoff_base: Duration,
    /// `CLAIMCHECK_DELETE_BACKOFF_MAX`.
    pub delete_backoff_max: Duration,
    /// `CLAIMCHECK_ALLOWED_CONTENT_TYPES`.
    pub allowed_content_types: Vec<String>,
    /// `CLAIMCHECK_DENIED_CONTENT_TYPES`.
    pub denied_content_types: Vec<String>,
    /// `CLAIMCHECK_KEY_PREFIX`.
    pub key_prefix: String,
    /// `CLAIMCHECK_PRESIGN_TTL`.
    pub presign_ttl: Duration,
    /// `CLAIMCHECK_URL_SIGNING_KEY`.
    pub url_signing_key: Option<String>,
    /// `CLAIMCHECK_DB_POOL_SIZE`.
    pub db_pool_size: usize,
    /// `CLAIMCHECK_DB_PREPARED_STATEMENTS`: prepared (default) or unnamed
    /// statements (transaction poolers without prepared-statement support).
    pub db_statements: crate::db::Statements,
    /// `CLAIMCHECK_LISTEN_DATABASE_URL`: where LISTEN (and `migrate`'s
    /// session lock) connect; `None` for `off` (poll only). Unset: the
    /// `DATABASE_URL`.
    pub listen_database_url: Option<String>,
    /// `CLAIMCHECK_SHUTDOWN_TIMEOUT`.
    pub shutdown_timeout: Duration,
    /// `CLAIMCHECK_BODY_IDLE_TIMEOUT`.
    pub body_idle_timeout: Duration,
    /// `CLAIMCHECK_CORS_ORIGINS`.
    pub cors_origins: Vec<String>,
    /// `CLAIMCHECK_PUBLIC_BASE_URL`.
    pub public_base_url: Option<String>,
    /// `CLAIMCHECK_API_PUBLIC_URL`: the API's address as clients reach it,
    /// for the download URLs the API serves itself (filesystem store). When
    /// unset, each URL names the host and scheme of the request that asked
    /// for it (`Forwarded`/`X-Forwarded-*` honoured).
    pub api_public_url: Option<url::Url>,
    /// `CLAIMCHECK_WEB_DIR`: the built upload page (`web/dist`) the API
    /// serves at `/`. Unset, `serve` serves no page (`dev` looks in
    /// `./web/dist`).
    pub web_dir: Option<PathBuf>,
    /// `CLAIMCHECK_LOG_FORMAT`.
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default: for log pipelines).
    Json,
    /// Human-readable.
    Pretty,
}

/// A key prefix is empty or ends in `/`, so `app1` can never match the keys
/// of `app10/` (the reaper, the audit and `schedule_delete` look under it).
fn check_key_prefix(prefix: &str) -> Result<String, String> {
    if prefix.is_empty() {
        return Ok(String::new());
    }
    if !prefix.ends_with('/') || prefix.starts_with('/') || prefix.contains("//") {
        return Err("must be empty, or path segments ending in `/` (like `app1/`)".into());
    }
    if prefix.len() > 256 || prefix.chars().any(char::is_control) {
        return Err("must be at most 256 bytes without control characters".into());
    }
    Ok(prefix.to_owned())
}

/// Types a browser runs when it renders them (stored XSS): HTML, SVG, XHTML,
/// scripts, and XML (which can carry XHTML script).
const DEFAULT_DENIED: &str = "text/html, image/svg+xml, application/xhtml+xml, \
     application/javascript, text/javascript, text/xml, application/xml";

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&get);
        let store = match env.str("CLAIMCHECK_STORE", "fs").as_str() {
            "fs" => StoreConfig::Fs {
                root: PathBuf::from(env.str("CLAIMCHECK_FS_ROOT", "./data")),
            },
            "s3" => {
                let endpoint = env.opt("CLAIMCHECK_S3_ENDPOINT");
                StoreConfig::S3(S3Settings {
                    public_endpoint: env
                        .opt("CLAIMCHECK_S3_PUBLIC_ENDPOINT")
                        .or(endpoint.clone()),
                    endpoint,
                    bucket: env.opt("CLAIMCHECK_S3_BUCKET").ok_or_else(|| ConfigError {
                        var: "CLAIMCHECK_S3_BUCKET",
                        message: "required when CLAIMCHECK_STORE=s3".into(),
                    })?,
                    region: env.str("CLAIMCHECK_S3_REGION", "us-east-1"),
                    force_path_style: env.parse("CLAIMCHECK_S3_FORCE_PATH_STYLE", "false")?,
                    access_key_id: env.opt("AWS_ACCESS_KEY_ID"),
                    secret_access_key: env.opt("AWS_SECRET_ACCESS_KEY"),
                    timeout: Some(env.duration("CLAIMCHECK_S3_TIMEOUT", "30s")?),
                })
            }
            other => {
                return Err(ConfigError::new(
                    "CLAIMCHECK_STORE",
                    format!("`{other}`: expected fs or s3"),
                ))
            }
        };
        let part_size = env.size("CLAIMCHECK_PART_SIZE", "16MiB")?;
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size) {
            return Err(ConfigError::new(
                "CLAIMCHECK_PART_SIZE",
                "must be between 5MiB and 5GiB (S3's part limits)".into(),
            ));
        }
        let config = Config {
            database_url: env.opt("DATABASE_URL"),
            listen: env.parse("CLAIMCHECK_LISTEN", "127.0.0.1:8080")?,
            metrics_listen: env.parse("CLAIMCHECK_METRICS_LISTEN", "127.0.0.1:9090")?,
            store,
            claim_ttl: env.duration("CLAIMCHECK_CLAIM_TTL", "24h")?,
            unconsumed_ttl: Some(env.duration("CLAIMCHECK_UNCONSUMED_TTL", "7d")?)
                .filter(|d| !d.is_zero()),
            max_upload_size: env.size("CLAIMCHECK_MAX_UPLOAD_SIZE", "5GiB")?,
            max_pending_per_owner: env.parse("CLAIMCHECK_MAX_PENDING_PER_OWNER", "100")?,
            part_size,
            delete_max_attempts: env.parse("CLAIMCHECK_DELETE_MAX_ATTEMPTS", "12")?,
            delete_lease: env.duration("CLAIMCHECK_DELETE_LEASE", "5m")?,
            webhook_max_attempts: env.parse("CLAIMCHECK_WEBHOOK_MAX_ATTEMPTS", "12")?,
            webhook_timeout: env.duration("CLAIMCHECK_WEBHOOK_TIMEOUT", "10s")?,
            event_retention: env.duration("CLAIMCHECK_EVENT_RETENTION", "7d")?,
            quotas: crate::db::Quotas {
                bytes: env.size("CLAIMCHECK_QUOTA_BYTES", "0")?,
                daily_bytes: env.size("CLAIMCHECK_DAILY_UPLOAD_BYTES", "0")?,
                daily_uploads: env.parse("CLAIMCHECK_DAILY_UPLOADS", "0")?,
            },
            audit_retention: env.duration("CLAIMCHECK_AUDIT_RETENTION", "365d")?,
            delete_batch: env.parse("CLAIMCHECK_DELETE_BATCH", "100")?,
            delete_concurrency: env.parse("CLAIMCHECK_DELETE_CONCURRENCY", "8")?,
            sweep_interval: env.duration("CLAIMCHECK_SWEEP_INTERVAL", "60s")?,
            poll_interval: env.duration("CLAIMCHECK_POLL_INTERVAL", "5s")?,
            delete_backoff_base: env.duration("CLAIMCHECK_DELETE_BACKOFF_BASE", "30s")?,
            delete_backoff_max: env.duration("CLAIMCHECK_DELETE_BACKOFF_MAX", "1h")?,
            allowed_content_types: env.list("CLAIMCHECK_ALLOWED_CONTENT_TYPES", "*/*"),
            denied_content_types: env.list("CLAIMCHECK_DENIED_CONTENT_TYPES", DEFAULT_DENIED),
            key_prefix: env.with("CLAIMCHECK_KEY_PREFIX", "", check_key_prefix)?,
            presign_ttl: env.duration("CLAIMCHECK_PRESIGN_TTL", "15m")?,
            url_signing_key: env.opt("CLAIMCHECK_URL_SIGNING_KEY"),
            db_pool_size: env.parse("CLAIMCHECK_DB_POOL_SIZE", "16")?,
            db_statements: if env.parse("CLAIMCHECK_DB_PREPARED_STATEMENTS", "true")? {
                crate::db::Statements::Prepared
            } else {
                crate::db::Statements::Unnamed
            },
            listen_database_url: match env.opt("CLAIMCHECK_LISTEN_DATABASE_URL") {
                Some(off) if off.eq_ignore_ascii_case("off") => None,
                Some(url) => Some(url),
                None => env.opt("DATABASE_URL"),
            },
            shutdown_timeout: env.duration("CLAIMCHECK_SHUTDOWN_TIMEOUT", "5m")?,
            body_idle_timeout: env.duration("CLAIMCHECK_BODY_IDLE_TIMEOUT", "60s")?,
            cors_origins: env.list("CLAIMCHECK_CORS_ORIGINS", ""),
            public_base_url: env.opt("CLAIMCHECK_PUBLIC_BASE_URL"),
            api_public_url: env
                .opt("CLAIMCHECK_API_PUBLIC_URL")
                .map(|v| {
                    parse_base_url(&v).map_err(|e| {
                        ConfigError::new("CLAIMCHECK_API_PUBLIC_URL", format!("`{v}`: {e}"))
                    })
                })
                .transpose()?,
            web_dir: env.opt("CLAIMCHECK_WEB_DIR").map(PathBuf::from),
            log_format: match env.str("CLAIMCHECK_LOG_FORMAT", "json").as_str() {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                other => {
                    return Err(ConfigError::new(
                        "CLAIMCHECK_LOG_FORMAT",
                        format!("`{other}`: expected json or pretty"),
                    ))
                }
            },
        };
        config.check()
    }

    fn check(self) -> Result<Self, ConfigError> {
        let positive = [
            ("CLAIMCHECK_DELETE_MAX_ATTEMPTS", self.delete_max_attempts),
            ("CLAIMCHECK_WEBHOOK_MAX_ATTEMPTS", self.webhook_max_attempts),
            ("CLAIMCHECK_DELETE_BATCH", self.delete_batch),
            ("CLAIMCHECK_DELETE_CONCURRENCY", self.delete_concurrency),
        ];
        for (var, value) in positive {
            if value == 0 {
                return Err(ConfigError::new(var, "must be at least 1".into()));
            }
        }
        if self.db_pool_size == 0 {
            return Err(ConfigError::new(
                "CLAIMCHECK_DB_POOL_SIZE",
                "must be at least 1".into(),
            ));
        }
        if self.claim_ttl.is_zero() || self.delete_lease.is_zero() {
            return Err(ConfigError::new(
                "CLAIMCHECK_CLAIM_TTL/CLAIMCHECK_DELETE_LEASE",
                "must be longer than 0".into(),
            ));
        }
        Ok(self)
    }
}

impl ConfigError {
    fn new(var: &'static str, message: String) -> Self {
        Self { var, message }
    }
}

mod parse;

use parse::Env;
pub use parse::{parse_base_url, parse_duration, parse_size};

#[cfg(test)]
mod tests;

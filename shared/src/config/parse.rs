//! Reading values: the environment through a lookup, durations, sizes, URLs.

use std::{str::FromStr, time::Duration};

use super::ConfigError;

/// Parses `30s`, `5m`, `24h`, `7d`, or `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match s.trim() {
        "0" => Ok(Duration::ZERO),
        s => humantime::parse_duration(s).map_err(|e| e.to_string()),
    }
}

/// Parses an absolute `http(s)` URL that paths can be appended to (no query
/// or fragment: they would end up in the middle of every URL built on it).
pub fn parse_base_url(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s.trim()).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err("expected an http:// or https:// URL".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(url)
}

/// Parses `16MiB`, `5GiB`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    bytesize::ByteSize::from_str(s.trim()).map(|b| b.as_u64())
}

pub(super) struct Env<'a, F: Fn(&str) -> Option<String>>(pub(super) &'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    pub(super) fn opt(&self, var: &str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    pub(super) fn str(&self, var: &str, default: &str) -> String {
        self.opt(var).unwrap_or_else(|| default.to_owned())
    }

    pub(super) fn with<T>(
        &self,
        var: &'static str,
        default: &str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let value = self.str(var, default);
        f(&value).map_err(|e| ConfigError::new(var, format!("`{value}`: {e}")))
    }

    pub(super) fn parse<T: FromStr>(
        &self,
        var: &'static str,
        default: &str,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.with(var, default, |v| v.parse::<T>().map_err(|e| e.to_string()))
    }

    pub(super) fn duration(
        &self,
        var: &'static str,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        self.with(var, default, parse_duration)
    }

    pub(super) fn size(&self, var: &'static str, default: &str) -> Result<u64, ConfigError> {
        self.with(var, default, parse_size)
    }

    pub(super) fn list(&self, var: &str, default: &str) -> Vec<String> {
        self.str(var, default)
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

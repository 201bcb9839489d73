//! Limits on uploads: size, content types, in-flight cap, parts, TTLs.

use std::time::Duration;

use super::UploadError;
use crate::{
    config::Config,
    db::{claims::Caps, Quotas},
    input,
    media_type::MediaType,
    store::{MAX_PARTS, MAX_PART_SIZE, MIN_PART_SIZE},
};

/// The limits the upload service enforces (from [`Config`]).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest object, bytes.
    pub max_upload_size: u64,
    /// Pending uploads per owner.
    pub max_pending_per_owner: u32,
    /// Bytes held and started per day, per owner (owners' overrides are in
    /// the database).
    pub quotas: Quotas,
    /// Default part size, bytes.
    pub part_size: u64,
    /// Pending claim lifetime after the last progress.
    pub claim_ttl: Duration,
    /// Uploaded-but-unconsumed lifetime (`None`: forever).
    pub unconsumed_ttl: Option<Duration>,
    /// Accepted and refused content types.
    pub content_types: ContentTypes,
    /// Key prefix.
    pub key_prefix: String,
    /// Lifetime of presigned URLs.
    pub presign_ttl: Duration,
}

impl Limits {
    /// The limits `config` sets.
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_upload_size: config.max_upload_size,
            max_pending_per_owner: config.max_pending_per_owner,
            quotas: config.quotas,
            part_size: config.part_size,
            claim_ttl: config.claim_ttl,
            unconsumed_ttl: config.unconsumed_ttl,
            content_types: ContentTypes {
                allowed: config.allowed_content_types.clone(),
                denied: config.denied_content_types.clone(),
            },
            key_prefix: config.key_prefix.clone(),
            presign_ttl: config.presign_ttl,
        }
    }

    /// What a start may take: the in-flight cap and the quotas.
    pub fn caps(&self) -> Caps {
        Caps {
            max_pending: self.max_pending_per_owner,
            quotas: self.quotas,
        }
    }

    /// [`UploadError::TooLarge`] when `size` is over the limit.
    pub fn check_size(&self, size: u64) -> Result<(), UploadError> {
        if size > self.max_upload_size {
            return Err(UploadError::TooLarge {
                limit: self.max_upload_size,
            });
        }
        Ok(())
    }
}

/// Content-type patterns: `type/subtype`, `type/*` or `*/*`.
#[derive(Debug, Clone)]
pub struct ContentTypes {
    /// Accepted patterns.
    pub allowed: Vec<String>,
    /// Refused even when accepted (stored XSS: HTML, SVG, XML, scripts).
    pub denied: Vec<String>,
}

impl ContentTypes {
    /// The normalised content type (lowercase essence, parameters dropped).
    /// [`UploadError::Invalid`] for a NUL character or more than [`input::CONTENT_TYPE`]'s bytes;
    /// [`UploadError::UnsupportedMediaType`] for anything that is not an RFC 9110 media type ([`MediaType`]),
    /// a wildcard, a type no allowed pattern matches, or one a denied
    /// pattern matches.
    pub fn check(&self, content_type: &str) -> Result<String, UploadError> {
        input::CONTENT_TYPE
            .check(content_type)
            .map_err(|e| UploadError::Invalid(e.to_string()))?;
        let media = MediaType::parse(content_type)
            .filter(|m| !m.is_wildcard())
            .ok_or_else(|| {
                UploadError::UnsupportedMediaType(content_type.escape_debug().to_string())
            })?;
        let matches = |pattern: &String| match pattern.split_once('/') {
            Some(("*", "*")) => true,
            Some((t, "*")) => media.top_level() == t,
            _ => pattern == media.essence(),
        };
        if !self.allowed.iter().any(matches) || self.denied.iter().any(matches) {
            return Err(UploadError::UnsupportedMediaType(media.to_string()));
        }
        Ok(media.essence().to_owned())
    }
}

/// The part size for an upload of `size` bytes: the client's (checked
/// against S3's rules), else the default, grown when the default would need
/// more than 10,000 parts (rounded up to a whole MiB).
pub fn choose_part_size(
    size: u64,
    requested: Option<u64>,
    default: u64,
) -> Result<u64, UploadError> {
    if let Some(part_size) = requested {
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size) {
            return Err(UploadError::Invalid(format!(
                "part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes"
            )));
        }
        if size.div_ceil(part_size) > u64::from(MAX_PARTS) {
            return Err(UploadError::Invalid(format!(
                "part_size {part_size} needs more than {MAX_PARTS} parts for {size} bytes"
            )));
        }
        return Ok(part_size);
    }
    const MIB: u64 = 1024 * 1024;
    let needed = size.div_ceil(u64::from(MAX_PARTS)).div_ceil(MIB) * MIB;
    Ok(default.max(needed).min(MAX_PART_SIZE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(allowed: &[&str]) -> ContentTypes {
        ContentTypes {
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            denied: vec!["text/html".into(), "image/svg+xml".into()],
        }
    }

    #[test]
    fn content_types_match_patterns_and_refuse_denied_ones() {
        let any = types(&["*/*"]);
        assert_eq!(
            any.check("Application/PDF; q=1").unwrap(),
            "application/pdf"
        );
        assert!(any.check("text/html; charset=utf-8").is_err());
        assert!(any.check("image/svg+xml").is_err());
        assert!(any.check("garbage").is_err());
        let images = types(&["image/*", "application/pdf"]);
        assert!(images.check("image/png").is_ok());
        assert!(images.check("application/pdf").is_ok());
        assert!(images.check("video/mp4").is_err());
        assert!(images.check("image/svg+xml").is_err());
    }

    #[test]
    fn content_types_are_parsed_strictly() {
        let any = types(&["*/*"]);
        for refused in [
            "text/html,x",
            "text/html ,x",
            " text/html",
            "TEXT/HTML",
            "*/*",
        ] {
            assert!(
                matches!(
                    any.check(refused),
                    Err(UploadError::UnsupportedMediaType(_))
                ),
                "{refused:?}"
            );
        }
        for invalid in [
            "text/plain\0".to_owned(),
            format!("text/{}", "x".repeat(300)),
        ] {
            assert!(
                matches!(any.check(&invalid), Err(UploadError::Invalid(_))),
                "{invalid:?}"
            );
        }
    }

    #[test]
    fn part_size_follows_s3_rules() {
        const MIB: u64 = 1 << 20;
        assert_eq!(
            choose_part_size(100 * MIB, None, 16 * MIB).unwrap(),
            16 * MIB
        );
        // 5 TiB at 16 MiB would need 327,680 parts: grow to fit 10,000.
        let big = 5u64 << 40;
        let ps = choose_part_size(big, None, 16 * MIB).unwrap();
        assert!(big.div_ceil(ps) <= 10_000 && ps.is_multiple_of(MIB));
        assert!(choose_part_size(100 * MIB, Some(MIB), 16 * MIB).is_err());
        assert!(choose_part_size(100 * MIB, Some(6 * 1024 * MIB), 16 * MIB).is_err());
        assert!(choose_part_size(60_000 * MIB, Some(5 * MIB), 16 * MIB).is_err());
        assert_eq!(
            choose_part_size(10 * MIB, Some(5 * MIB), 16 * MIB).unwrap(),
            5 * MIB
        );
    }
}

//! tus request headers, parsed into the core's types: what a header may
//! hold is checked here, so a bad one is a 400 before anything is stored.

use base64::{engine::general_purpose::STANDARD, Engine};
use claimcheck::uploads::{ChecksumAlgorithm, ChunkChecksum};
use uuid::Uuid;

use crate::error::ApiError;

/// `Upload-Metadata`: comma-separated `key base64(value)` pairs (a value
/// may be absent). Returns the pairs, decoded; the header itself is kept as
/// sent for HEAD.
pub fn metadata(raw: &str) -> Result<Vec<(String, Option<String>)>, ApiError> {
    let bad = |why: &str| ApiError::InvalidRequest(format!("Upload-Metadata: {why}"));
    let mut pairs = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut it = pair.split(' ').filter(|s| !s.is_empty());
        let key = it.next().ok_or_else(|| bad("a pair without a key"))?;
        let value = match it.next() {
            None => None,
            Some(v) => {
                let bytes = STANDARD
                    .decode(v)
                    .map_err(|_| bad(&format!("the value of `{key}` is not base64")))?;
                Some(String::from_utf8(bytes).map_err(|_| bad(&format!("`{key}` is not UTF-8")))?)
            }
        };
        if it.next().is_some() {
            return Err(bad(&format!("`{key}` has more than one value")));
        }
        if pairs.iter().any(|(k, _)| k == key) {
            return Err(bad(&format!("`{key}` appears twice")));
        }
        pairs.push((key.to_owned(), value));
    }
    Ok(pairs)
}

/// The value of `key` among decoded metadata pairs.
pub fn meta<'a>(pairs: &'a [(String, Option<String>)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.as_deref())
}

/// `Upload-Checksum: <algorithm> <base64 digest>`.
pub fn checksum(raw: &str) -> Result<ChunkChecksum, ApiError> {
    let (name, digest) = raw.trim().split_once(' ').ok_or_else(|| {
        ApiError::InvalidRequest("Upload-Checksum: `<algorithm> <base64>`".into())
    })?;
    let algorithm = ChecksumAlgorithm::parse(name).ok_or_else(|| {
        ApiError::InvalidRequest(format!(
            "Upload-Checksum: unsupported algorithm `{name}` (supported: sha1, sha256, md5)"
        ))
    })?;
    let digest = STANDARD.decode(digest.trim()).map_err(|_| {
        ApiError::InvalidRequest("Upload-Checksum: the digest is not base64".into())
    })?;
    Ok(ChunkChecksum { algorithm, digest })
}

/// A non-negative integer header (`Upload-Offset`, `Upload-Length`).
pub fn number(name: &str, raw: &str) -> Result<u64, ApiError> {
    let raw = raw.trim();
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::InvalidRequest(format!(
            "{name} must be a non-negative integer"
        )));
    }
    raw.parse()
        .map_err(|_| ApiError::InvalidRequest(format!("{name} is out of range")))
}

/// `Upload-Concat` of a creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadConcat {
    /// `partial`.
    Partial,
    /// `final;<url> <url> ...`: the partial uploads' ids, in order.
    Final(Vec<Uuid>),
}

/// Parses `Upload-Concat`. The URLs of a final may be absolute or paths;
/// each must name an upload under `/v1/tus/`.
pub fn concat(raw: &str) -> Result<UploadConcat, ApiError> {
    let raw = raw.trim();
    if raw == "partial" {
        return Ok(UploadConcat::Partial);
    }
    let Some(urls) = raw.strip_prefix("final;") else {
        return Err(ApiError::InvalidRequest(
            "Upload-Concat must be `partial` or `final;<url> ...`".into(),
        ));
    };
    let ids = urls
        .split(' ')
        .filter(|u| !u.is_empty())
        .map(|url| {
            let path = url::Url::parse(url)
                .map(|u| u.path().to_owned())
                .unwrap_or_else(|_| url.to_owned());
            path.rsplit_once("/v1/tus/")
                .and_then(|(_, id)| Uuid::parse_str(id.trim_end_matches('/')).ok())
                .ok_or_else(|| {
                    ApiError::InvalidRequest(format!(
                        "Upload-Concat: `{url}` is not a tus upload URL"
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(ApiError::InvalidRequest(
            "Upload-Concat: a final upload names at least one partial upload".into(),
        ));
    }
    Ok(UploadConcat::Final(ids))
}

/// An instant as an HTTP date (RFC 9110 IMF-fixdate), as `Upload-Expires`.
pub fn http_date(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs_decode_and_bad_ones_are_refused() {
        let pairs =
            metadata("filename d29ybGQ=,is_confidential, filetype dGV4dC9wbGFpbg==").unwrap();
        assert_eq!(meta(&pairs, "filename"), Some("world"));
        assert_eq!(meta(&pairs, "filetype"), Some("text/plain"));
        assert_eq!(meta(&pairs, "is_confidential"), None);
        assert!(pairs
            .iter()
            .any(|(k, v)| k == "is_confidential" && v.is_none()));
        for bad in ["filename !!!", "a YQ== YQ==", "a YQ==,a YQ=="] {
            assert!(metadata(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn checksums_numbers_and_concat_parse_strictly() {
        let c = checksum("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=").unwrap();
        assert_eq!((c.algorithm, c.digest.len()), (ChecksumAlgorithm::Sha1, 20));
        assert!(checksum("crc32 AAAA").is_err());
        assert!(checksum("sha1").is_err());
        assert_eq!(number("Upload-Offset", "42").unwrap(), 42);
        for bad in ["-1", "1.5", "", "x", "99999999999999999999999"] {
            assert!(number("Upload-Offset", bad).is_err(), "{bad}");
        }
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        let header = format!("final;https://x.example/v1/tus/{a} /v1/tus/{b}");
        assert_eq!(concat(&header).unwrap(), UploadConcat::Final(vec![a, b]));
        assert_eq!(concat("partial").unwrap(), UploadConcat::Partial);
        assert!(concat("final;").is_err());
        assert!(concat("final;/v1/uploads/x").is_err());
    }

    #[test]
    fn expiry_is_an_http_date() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-29T08:05:09Z").unwrap();
        assert_eq!(http_date(at.into()), "Sun, 29 Nov 2026 08:05:09 GMT");
    }
}

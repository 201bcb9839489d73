//! What the answer to a download URL says about its body, the same for both
//! stores: S3 puts it in the presigned GET (`response-content-type`,
//! `response-content-disposition`), the filesystem store signs it into the URL
//! the API serves.
//!
//! The type is the object's stored one (checked at upload), never a guess
//! from the key's extension. The disposition is `inline` only for types a
//! browser shows without running anything in them ([`MediaType::is_inert`]);
//! everything else is an `attachment`, so that HTML, SVG or XML an operator
//! chose to accept is saved, not rendered, wherever the URL points.

use crate::media_type::MediaType;

/// The response headers a download URL fixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadResponse {
    /// The object's stored content type; `None`: `application/octet-stream`.
    pub content_type: Option<String>,
    /// The file name the browser saves; `None`: the key's last segment.
    pub filename: Option<String>,
}

impl DownloadResponse {
    /// A response of `content_type` naming `filename`.
    pub fn new(content_type: Option<&str>, filename: Option<&str>) -> Self {
        Self {
            content_type: content_type.map(str::to_owned),
            filename: filename.map(str::to_owned),
        }
    }

    /// The `Content-Type` header.
    pub fn content_type(&self) -> &str {
        self.content_type
            .as_deref()
            .unwrap_or("application/octet-stream")
    }

    /// The `Content-Disposition` header for the object `key`.
    pub fn content_disposition(&self, key: &str) -> String {
        let name = match &self.filename {
            Some(name) => name.as_str(),
            None => key.rsplit('/').next().unwrap_or_default(),
        };
        let inert = self
            .content_type
            .as_deref()
            .and_then(MediaType::parse)
            .is_some_and(|t| t.is_inert());
        disposition(if inert { "inline" } else { "attachment" }, name)
    }
}

/// `Content-Disposition: attachment` naming `filename` (RFC 6266), with an
/// ASCII fallback in `filename=` and the exact UTF-8 name in `filename*=`
/// (RFC 5987). Control characters are dropped and characters that could end
/// the quoted string or name a path are replaced, so a hostile name cannot
/// inject header parameters.
pub fn content_disposition(filename: &str) -> String {
    disposition("attachment", filename)
}

/// [`content_disposition`] with the disposition type `kind`.
fn disposition(kind: &str, filename: &str) -> String {
    let cleaned: String = filename
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if matches!(c, '/' | '\\') { '_' } else { c })
        .collect();
    let cleaned = match cleaned.trim() {
        "" => "download".to_owned(),
        trimmed => trimmed.to_owned(),
    };
    let fallback: String = cleaned
        .chars()
        .map(|c| match c {
            '"' | '%' => '_',
            c if c.is_ascii() => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::with_capacity(cleaned.len() * 3);
    for byte in cleaned.bytes() {
        // RFC 5987 attr-char: everything else is percent-encoded.
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_quotes_safely() {
        assert_eq!(
            content_disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            content_disposition("a\"b\r\n;c/d é.txt"),
            "attachment; filename=\"a_b;c_d _.txt\"; filename*=UTF-8''a%22b%3Bc_d%20%C3%A9.txt"
        );
        assert_eq!(
            content_disposition("\n"),
            "attachment; filename=\"download\"; filename*=UTF-8''download"
        );
    }

    #[test]
    fn only_inert_types_are_inline() {
        let key = "priv/2026/11/29/x.html";
        let of = |t: Option<&str>, name: Option<&str>| {
            DownloadResponse::new(t, name).content_disposition(key)
        };
        assert_eq!(
            of(Some("image/png"), None),
            "inline; filename=\"x.html\"; filename*=UTF-8''x.html"
        );
        assert!(of(Some("text/plain"), Some("a.txt")).starts_with("inline; filename=\"a.txt\""));
        for active in [
            Some("text/html"),
            Some("image/svg+xml"),
            Some("application/xml"),
            Some("application/octet-stream"),
            Some("garbage"),
            None,
        ] {
            assert!(of(active, None).starts_with("attachment;"), "{active:?}");
        }
        assert_eq!(
            DownloadResponse::default().content_type(),
            "application/octet-stream"
        );
    }
}

//! Signed download URLs for the filesystem store.
//!
//! S3 signs its own URLs; the filesystem store has no server of its own, so the
//! API serves its files at `GET /v1/files/{key}` and [`UrlSigner`] is what
//! makes such a URL unforgeable: an HMAC-SHA256 over the key, the expiry, the
//! content type and the download filename ([`DownloadResponse`]), checked by
//! [`UrlSigner::verify`] when the request comes back.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use url::Url;

pub use super::download::{content_disposition, DownloadResponse};

type HmacSha256 = Hmac<Sha256>;

/// Why a signed URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature is genuine but its time is up (only reported for genuine
    /// URLs, so a forger learns nothing from it).
    #[error("signed URL expired")]
    Expired,
    /// Missing, malformed or wrong signature parameters.
    #[error("invalid URL signature")]
    Invalid,
}

/// Why a [`UrlSigner`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlSignerError {
    /// The base URL cannot take path segments (`mailto:` and the like).
    #[error("base URL {0:?} cannot carry a path")]
    BaseUrl(String),
    /// An empty key would make every signature forgeable.
    #[error("the URL signing key is empty")]
    EmptyKey,
}

/// Signs and checks `{base_url}/v1/files/{key}?expires=..&type=..&filename=..&sig=..`.
#[derive(Clone)]
pub struct UrlSigner {
    /// `None`: URLs relative to the API's origin (`/v1/files/...`), for the
    /// API to complete with the origin a request came in on.
    base_url: Option<Url>,
    key: Vec<u8>,
}

/// Stands in for the origin while a relative URL is built; cut off after.
const NO_ORIGIN: &str = "http://origin.invalid/";

impl std::fmt::Debug for UrlSigner {
    // The key is a secret: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner")
            .field("base_url", &self.base_url.as_ref().map(Url::as_str))
            .field("key", &"<redacted>")
            .finish()
    }
}

impl UrlSigner {
    /// A signer for URLs under `base_url` (the API's public address), keyed
    /// with `key` (a secret shared by every API instance).
    pub fn new(base_url: Url, key: impl Into<Vec<u8>>) -> Result<Self, UrlSignerError> {
        let key = key.into();
        if key.is_empty() {
            return Err(UrlSignerError::EmptyKey);
        }
        if base_url.cannot_be_a_base() {
            return Err(UrlSignerError::BaseUrl(base_url.to_string()));
        }
        Ok(Self {
            base_url: Some(base_url),
            key,
        })
    }

    /// A signer of URLs relative to the API's origin (`/v1/files/...`): for
    /// an API without `CLAIMCHECK_API_PUBLIC_URL`, which completes them with
    /// the scheme and host each request came in with. The signature does not
    /// cover the origin, so any origin the API answers on serves them.
    pub fn without_base(key: impl Into<Vec<u8>>) -> Result<Self, UrlSignerError> {
        let mut signer = Self::new(Url::parse(NO_ORIGIN).expect("a valid URL"), key)?;
        signer.base_url = None;
        Ok(signer)
    }

    /// The URL that downloads `key` until `expires_at` (whole seconds),
    /// answered with `response`'s headers.
    pub fn sign(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
        response: &DownloadResponse,
    ) -> String {
        let expires = expires_at.timestamp();
        let sig = URL_SAFE_NO_PAD.encode(self.mac(key, expires, response).finalize().into_bytes());
        let mut url = match &self.base_url {
            Some(base) => base.clone(),
            None => Url::parse(NO_ORIGIN).expect("a valid URL"),
        };
        url.path_segments_mut()
            .expect("checked in new: the base URL can carry a path")
            .pop_if_empty()
            .extend(["v1", "files"])
            .extend(key.split('/'));
        {
            let mut query = url.query_pairs_mut();
            query.clear().append_pair("expires", &expires.to_string());
            if let Some(content_type) = &response.content_type {
                query.append_pair("type", content_type);
            }
            if let Some(name) = &response.filename {
                query.append_pair("filename", name);
            }
            query.append_pair("sig", &sig);
        }
        match self.base_url {
            Some(_) => url.into(),
            None => url[url::Position::BeforePath..].to_owned(),
        }
    }

    /// Checks the query parameters of a request for `key` (already
    /// percent-decoded) at time `now`. Returns the response headers the URL
    /// was signed with.
    pub fn verify<I, K, V>(
        &self,
        key: &str,
        params: I,
        now: DateTime<Utc>,
    ) -> Result<DownloadResponse, SignatureError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let (mut expires, mut content_type, mut filename, mut sig) = (None, None, None, None);
        for (name, value) in params {
            let slot = match name.as_ref() {
                "expires" => &mut expires,
                "type" => &mut content_type,
                "filename" => &mut filename,
                "sig" => &mut sig,
                _ => continue,
            };
            // A repeated parameter could be read differently by another parser.
            if slot.replace(value.as_ref().to_owned()).is_some() {
                return Err(SignatureError::Invalid);
            }
        }
        let expires: i64 = expires
            .and_then(|e| e.parse().ok())
            .ok_or(SignatureError::Invalid)?;
        let sig = sig
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            .ok_or(SignatureError::Invalid)?;
        let response = DownloadResponse {
            content_type,
            filename,
        };
        self.mac(key, expires, &response)
            .verify_slice(&sig) // constant time
            .map_err(|_| SignatureError::Invalid)?;
        if now.timestamp() >= expires {
            return Err(SignatureError::Expired);
        }
        Ok(response)
    }

    /// [`verify`](Self::verify) over a raw query string (`a=1&b=2`).
    pub fn verify_query(
        &self,
        key: &str,
        query: &str,
        now: DateTime<Utc>,
    ) -> Result<DownloadResponse, SignatureError> {
        self.verify(key, url::form_urlencoded::parse(query.as_bytes()), now)
    }

    fn mac(&self, key: &str, expires: i64, response: &DownloadResponse) -> HmacSha256 {
        // Keys never hold control characters (validate_key), so '\n' separates
        // fields unambiguously; the type is length-prefixed, and the filename
        // comes last with a presence marker so that "no filename" and "empty
        // filename" sign differently. URLs without a type sign as v1, as
        // before types were signed, so those still verify (served as
        // `application/octet-stream` attachments).
        let (version, typed) = match &response.content_type {
            Some(t) => ("v2", format!("{}:{t}", t.len())),
            None => ("v1", String::new()),
        };
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(format!("claimcheck-get-{version}\n").as_bytes());
        mac.update(key.as_bytes());
        mac.update(format!("\n{expires}\n{typed}").as_bytes());
        match &response.filename {
            Some(name) => {
                mac.update(b"1");
                mac.update(name.as_bytes());
            }
            None => mac.update(b"0"),
        }
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn signer() -> UrlSigner {
        UrlSigner::new(
            Url::parse("https://files.example/base/").unwrap(),
            b"k".repeat(32),
        )
        .unwrap()
    }

    fn query(url: &str) -> Vec<(String, String)> {
        Url::parse(url)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    }

    #[test]
    fn a_signed_url_verifies_and_returns_its_filename() {
        let now = Utc::now();
        let response =
            DownloadResponse::new(Some("application/pdf"), Some("Rapport été \"v2\".pdf"));
        let url = signer().sign("priv/2026/x.pdf", now + Duration::minutes(5), &response);
        let parsed = Url::parse(&url).unwrap();
        assert_eq!(parsed.path(), "/base/v1/files/priv/2026/x.pdf");
        let verified = signer()
            .verify("priv/2026/x.pdf", query(&url), now)
            .unwrap();
        assert_eq!(verified, response);
        let raw = parsed.query().unwrap();
        assert_eq!(
            signer().verify_query("priv/2026/x.pdf", raw, now).unwrap(),
            response
        );
    }

    #[test]
    fn a_signer_without_base_signs_relative_urls_that_verify_anywhere() {
        let now = Utc::now();
        let response = DownloadResponse::new(Some("text/plain"), Some("a b.txt"));
        let relative = UrlSigner::without_base(b"k".repeat(32)).unwrap();
        let url = relative.sign("a/b c", now + Duration::minutes(5), &response);
        assert!(url.starts_with("/v1/files/a/b%20c?expires="), "{url}");
        let absolute = Url::parse("https://api.example/")
            .unwrap()
            .join(&url)
            .unwrap();
        assert_eq!(
            signer().verify("a/b c", query(absolute.as_str()), now),
            Ok(response)
        );
    }

    #[test]
    fn without_a_type_or_filename_none_comes_back() {
        let now = Utc::now();
        let none = DownloadResponse::default();
        let url = signer().sign("a/b", now + Duration::seconds(60), &none);
        assert_eq!(signer().verify("a/b", query(&url), now), Ok(none));
    }

    #[test]
    fn tampering_with_any_part_is_invalid() {
        let now = Utc::now();
        let response = DownloadResponse::new(Some("image/png"), Some("f.txt"));
        let url = signer().sign("a/b", now + Duration::seconds(60), &response);
        let q = query(&url);
        let set = |name: &str, value: &str| -> Vec<(String, String)> {
            q.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        if k == name {
                            value.to_owned()
                        } else {
                            v.clone()
                        },
                    )
                })
                .collect()
        };
        let invalid = Err(SignatureError::Invalid);
        assert_eq!(signer().verify("a/c", q.clone(), now), invalid, "other key");
        let later = (now + Duration::days(1)).timestamp().to_string();
        assert_eq!(signer().verify("a/b", set("expires", &later), now), invalid);
        assert_eq!(
            signer().verify("a/b", set("filename", "g.txt"), now),
            invalid
        );
        assert_eq!(
            signer().verify("a/b", set("type", "text/html"), now),
            invalid
        );
        assert_eq!(signer().verify("a/b", set("sig", "AAAA"), now), invalid);
        assert_eq!(signer().verify("a/b", set("sig", "!!"), now), invalid);
        for dropped in ["filename", "type"] {
            let without: Vec<_> = q.iter().filter(|(k, _)| k != dropped).cloned().collect();
            assert_eq!(signer().verify("a/b", without, now), invalid, "{dropped}");
        }
        let mut doubled = q.clone();
        doubled.push(("filename".into(), "f.txt".into()));
        assert_eq!(signer().verify("a/b", doubled, now), invalid);
        let other = UrlSigner::new(Url::parse("https://files.example/").unwrap(), "other").unwrap();
        assert_eq!(other.verify("a/b", q.clone(), now), invalid, "other key");
        assert_eq!(
            signer().verify("a/b", Vec::<(String, String)>::new(), now),
            invalid
        );
    }

    #[test]
    fn an_expired_url_is_reported_as_expired() {
        let now = Utc::now();
        let url = signer().sign(
            "a/b",
            now + Duration::seconds(30),
            &DownloadResponse::default(),
        );
        assert_eq!(
            signer().verify("a/b", query(&url), now + Duration::seconds(31)),
            Err(SignatureError::Expired)
        );
    }

    #[test]
    fn the_signer_refuses_unusable_settings() {
        let base = Url::parse("https://x/").unwrap();
        assert_eq!(
            UrlSigner::new(base, Vec::new()).unwrap_err(),
            UrlSignerError::EmptyKey
        );
        let mailto = Url::parse("mailto:a@b").unwrap();
        assert!(matches!(
            UrlSigner::new(mailto, "k"),
            Err(UrlSignerError::BaseUrl(_))
        ));
        assert!(
            !format!("{:?}", signer()).contains("kkkk"),
            "Debug hides the key"
        );
    }
}

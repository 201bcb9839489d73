//! [`open`]: the store a [`StoreConfig`] names, for the API, the worker and
//! `claimcheck-api dev` alike.

use std::{fmt, sync::Arc};

use url::Url;

use super::{fs::FsStore, s3::S3Store, signed_url::UrlSigner, ObjectStore, StoreError};
use crate::config::{Config, StoreConfig};

/// HMAC keys shorter than this are refused at start-up.
pub const MIN_SIGNING_KEY_LEN: usize = 32;

/// How the filesystem store signs download URLs, which the API serves at
/// `/v1/files/...` (S3 presigns its own and ignores this).
#[derive(Clone, Default)]
pub struct UrlSigning {
    /// `CLAIMCHECK_URL_SIGNING_KEY`, the same on every API pod. `None`:
    /// download URLs are refused (a per-process random key would make URLs
    /// fail on other pods, intermittently).
    pub key: Option<String>,
    /// `CLAIMCHECK_API_PUBLIC_URL`. `None`: URLs relative to the API, which
    /// completes them with the origin each request came in on.
    pub public_url: Option<Url>,
}

impl fmt::Debug for UrlSigning {
    // The key is a secret: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlSigning")
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("public_url", &self.public_url.as_ref().map(Url::as_str))
            .finish()
    }
}

impl UrlSigning {
    /// The signing settings of `config`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            key: config.url_signing_key.clone(),
            public_url: config.api_public_url.clone(),
        }
    }

    /// The signer these settings describe; `None` without a key. Refuses a
    /// key under [`MIN_SIGNING_KEY_LEN`] bytes.
    fn signer(&self) -> Result<Option<UrlSigner>, StoreError> {
        let Some(key) = &self.key else {
            tracing::warn!(
                "CLAIMCHECK_URL_SIGNING_KEY is not set: download URLs for the \
                 filesystem store are refused (503); set it, the same on every pod"
            );
            return Ok(None);
        };
        if key.len() < MIN_SIGNING_KEY_LEN {
            return Err(StoreError::Other(format!(
                "CLAIMCHECK_URL_SIGNING_KEY must be at least {MIN_SIGNING_KEY_LEN} bytes"
            )));
        }
        let signer = match &self.public_url {
            Some(base) => UrlSigner::new(base.clone(), key.as_bytes()),
            None => UrlSigner::without_base(key.as_bytes()),
        };
        signer
            .map(Some)
            .map_err(|e| StoreError::Other(format!("CLAIMCHECK_URL_SIGNING_KEY: {e}")))
    }
}

/// Opens the object store `config` names. `signing`: how the filesystem
/// store signs download URLs; `None` for processes that never hand out
/// download URLs (the worker). The store comes bare: wrap it in
/// [`super::instrumented::Instrumented`] (the jobs' context does so itself).
pub async fn open(
    config: &StoreConfig,
    signing: Option<&UrlSigning>,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    Ok(match config {
        StoreConfig::Fs { root } => {
            let signer = signing.map(UrlSigning::signer).transpose()?.flatten();
            let root = root.clone();
            // Creating directories and removing stale temp files blocks.
            let store = tokio::task::spawn_blocking(move || FsStore::new(root, signer))
                .await
                .map_err(|e| StoreError::Other(format!("opening the fs store: {e}")))?
                .map_err(|e| StoreError::Other(format!("opening the fs store: {e}")))?;
            Arc::new(store)
        }
        StoreConfig::S3(settings) => Arc::new(S3Store::new(settings.clone()).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_signing_key_is_refused_and_none_is_no_signer() {
        let short = UrlSigning {
            key: Some("k".repeat(MIN_SIGNING_KEY_LEN - 1)),
            public_url: None,
        };
        assert!(matches!(short.signer(), Err(StoreError::Other(m)) if m.contains("at least 32")));
        assert!(UrlSigning::default().signer().unwrap().is_none());
        let long = UrlSigning {
            key: Some("k".repeat(MIN_SIGNING_KEY_LEN)),
            public_url: None,
        };
        assert!(!format!("{long:?}").contains("kkkk"), "Debug hides the key");
        assert!(long.signer().unwrap().is_some());
    }
}

//! Building the S3 clients from [`S3Settings`].

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use aws_sdk_s3::{
    config::{
        retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, Credentials, Region,
        RequestChecksumCalculation, ResponseChecksumValidation, StalledStreamProtectionConfig,
    },
    presigning::PresigningConfig,
    Client,
};
use chrono::{DateTime, Utc};

use super::{errors::map_sdk_error, S3Store};
use crate::store::StoreError;

/// Where the bucket is and how to reach it.
#[derive(Clone, Default)]
pub struct S3Settings {
    /// The endpoint claimcheck talks to (`http://garage:3900`); `None` for AWS.
    pub endpoint: Option<String>,
    /// The endpoint presigned URLs name, as clients reach it (the signature
    /// covers the host); `None` for the same as `endpoint`.
    pub public_endpoint: Option<String>,
    /// The bucket.
    pub bucket: String,
    /// The signing region (Garage: whatever its `s3_region` says).
    pub region: String,
    /// Path-style addressing (`host/bucket/key`), needed for `host:port` endpoints.
    pub force_path_style: bool,
    /// Static credentials; both or neither. Neither: the default provider chain.
    pub access_key_id: Option<String>,
    /// See `access_key_id`.
    pub secret_access_key: Option<String>,
    /// `CLAIMCHECK_S3_TIMEOUT`: the longest one request without a body may
    /// take, retries included; `None` for [`DEFAULT_TIMEOUT`].
    pub timeout: Option<Duration>,
}

/// `CLAIMCHECK_S3_TIMEOUT`'s default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl fmt::Debug for S3Settings {
    // The secret key must not reach the logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("public_endpoint", &self.public_endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("force_path_style", &self.force_path_style)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// How long a request body or response may make no progress before the SDK
/// fails the call.
const STALL_GRACE: Duration = Duration::from_secs(120);

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl S3Store {
    /// Builds the clients; makes no request (see [`S3Store::check`]).
    pub async fn new(settings: S3Settings) -> Result<S3Store, StoreError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            // Only a connect timeout for the streaming client: the SDK's read
            // timeout covers sending the request body too, and a 5 GiB part
            // from a slow client takes long (the other client adds an
            // operation timeout, below).
            // A stalled body is caught by the SDK's stalled stream protection,
            // with a grace period longer than the API's body idle timeout
            // (60 s by default): a client pausing for a while is the API's to
            // judge, while a server that stops reading still fails the call.
            .stalled_stream_protection(
                StalledStreamProtectionConfig::enabled()
                    .grace_period(STALL_GRACE)
                    .build(),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .build(),
            )
            .retry_config(RetryConfig::standard())
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        match (&settings.access_key_id, &settings.secret_access_key) {
            (Some(id), Some(secret)) => {
                loader = loader.credentials_provider(Credentials::new(
                    id,
                    secret,
                    None,
                    None,
                    "claimcheck-settings",
                ));
            }
            (None, None) => {}
            _ => {
                return Err(StoreError::Other(
                    "S3 access key id and secret access key must be set together".into(),
                ))
            }
        }
        let shared = loader.load().await;
        let timeout = settings.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let bounded = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .operation_timeout(timeout)
            .build();
        let client_for = |endpoint: Option<&String>, timeouts: Option<&TimeoutConfig>| {
            let mut config = aws_sdk_s3::config::Builder::from(&shared)
                .force_path_style(settings.force_path_style)
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
            if let Some(endpoint) = endpoint {
                config = config.endpoint_url(endpoint);
            }
            if let Some(timeouts) = timeouts {
                config = config.timeout_config(timeouts.clone());
            }
            Client::from_conf(config.build())
        };
        let public = settings
            .public_endpoint
            .as_ref()
            .or(settings.endpoint.as_ref());
        Ok(S3Store {
            client: client_for(settings.endpoint.as_ref(), Some(&bounded)),
            streaming: client_for(settings.endpoint.as_ref(), None),
            presigner: client_for(public, None),
            bucket: settings.bucket,
            endpoint: settings.endpoint,
        })
    }

    /// Checks the bucket is reachable with these credentials (`HeadBucket`),
    /// for start-up and readiness checks.
    pub async fn check(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| map_sdk_error("HeadBucket", e))?;
        Ok(())
    }

    pub(super) fn presigning_config(
        expires_in: Duration,
    ) -> Result<(PresigningConfig, DateTime<Utc>), StoreError> {
        let start = SystemTime::now();
        let config = PresigningConfig::builder()
            .start_time(start)
            .expires_in(expires_in)
            .build()
            .map_err(|e| StoreError::Other(format!("presigning: {e}")))?;
        let expires_at = DateTime::<Utc>::from(start + expires_in);
        Ok((config, expires_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_debug_hides_the_secret() {
        let settings = S3Settings {
            secret_access_key: Some("hunter2".into()),
            ..Default::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}

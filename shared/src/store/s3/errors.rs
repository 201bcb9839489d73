//! aws-sdk-s3 errors as [`StoreError`]s: by the error's code and HTTP status
//! (typed accessors), never by its message.

use aws_sdk_s3::{
    config::http::HttpResponse,
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
};

use crate::store::StoreError;

/// Maps the error of operation `op` (the name goes into messages).
pub(super) fn map_sdk_error<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            from_code(op, status, ctx.err().code(), ctx.err().message())
        }
        // The request may not have reached the server, or its answer was cut:
        // connection refused or reset, timeouts, DNS.
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(format!("{op}: {}", DisplayErrorContext(&err)))
        }
        _ => StoreError::Other(format!("{op}: {}", DisplayErrorContext(&err))),
    }
}

/// Maps an S3 error code and HTTP status (a `DeleteObjects` per-key error has
/// a code and no status of its own: pass 200).
pub(super) fn from_code(
    op: &'static str,
    status: u16,
    code: Option<&str>,
    message: Option<&str>,
) -> StoreError {
    let describe = || {
        format!(
            "{op}: {} (HTTP {status}): {}",
            code.unwrap_or("no error code"),
            message.unwrap_or("no message")
        )
    };
    match code {
        // HEAD answers carry no body, so no code: the SDK names them by status.
        Some("NoSuchKey" | "NotFound") => StoreError::NotFound,
        None if status == 404 => StoreError::NotFound,
        Some("NoSuchUpload") => StoreError::NoSuchUpload,
        Some("InvalidPart" | "InvalidPartOrder" | "EntityTooSmall") => {
            StoreError::InvalidPart(describe())
        }
        Some(
            "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "RequestTimeout"
            | "ServiceUnavailable"
            | "InternalError",
        ) => StoreError::Unavailable(describe()),
        _ if status >= 500 || status == 429 => StoreError::Unavailable(describe()),
        _ => StoreError::Other(describe()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_map_to_variants() {
        assert!(matches!(
            from_code("Op", 404, Some("NoSuchKey"), None),
            StoreError::NotFound
        ));
        assert!(matches!(
            from_code("Op", 404, None, None),
            StoreError::NotFound
        ));
        assert!(matches!(
            from_code("Op", 404, Some("NoSuchUpload"), None),
            StoreError::NoSuchUpload
        ));
        assert!(matches!(
            from_code("Op", 404, Some("NoSuchBucket"), None),
            StoreError::Other(_)
        ));
        assert!(matches!(
            from_code("Op", 400, Some("EntityTooSmall"), None),
            StoreError::InvalidPart(_)
        ));
        assert!(matches!(
            from_code("Op", 503, Some("SlowDown"), None),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            from_code("Op", 502, None, None),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            from_code("Op", 403, Some("AccessDenied"), Some("no")),
            StoreError::Other(_)
        ));
    }
}

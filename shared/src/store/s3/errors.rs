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

/// The per-key errors of one `DeleteObjects` call over `batch`: each key
/// whose delete failed, with its error. A missing key is deleted (some
/// servers, older Garage among them, report it as an error). An error that
/// names no key of the batch cannot be pinned on a row, so it fails the
/// whole call: every key of it is retried, none counts as deleted.
pub(super) fn delete_errors(
    batch: &[&String],
    errors: &[aws_sdk_s3::types::Error],
) -> Result<Vec<(String, StoreError)>, StoreError> {
    let mut failed = Vec::new();
    for error in errors {
        if error.code() == Some("NoSuchKey") {
            continue;
        }
        let mapped = from_code("DeleteObjects", 200, error.code(), error.message());
        match error
            .key()
            .filter(|k| batch.iter().any(|b| b.as_str() == *k))
        {
            Some(key) => failed.push((key.to_owned(), mapped)),
            None => {
                return Err(StoreError::Other(format!(
                    "{mapped} (reported for key {:?}, not one of the {} deleted)",
                    error.key().unwrap_or("none"),
                    batch.len()
                )))
            }
        }
    }
    Ok(failed)
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
    use aws_sdk_s3::types::Error as KeyError;

    fn key_error(key: Option<&str>, code: &str) -> KeyError {
        KeyError::builder()
            .set_key(key.map(str::to_owned))
            .code(code)
            .build()
    }

    #[test]
    fn delete_errors_fail_only_the_keys_they_name_and_skip_missing_ones() {
        let (a, b) = ("a".to_owned(), "b".to_owned());
        let failed = delete_errors(
            &[&a, &b],
            &[
                key_error(Some("a"), "NoSuchKey"),
                key_error(Some("b"), "AccessDenied"),
            ],
        )
        .unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, "b");
    }

    #[test]
    fn a_delete_error_without_a_key_of_the_batch_fails_the_whole_call() {
        let (a, b) = ("a".to_owned(), "b".to_owned());
        for error in [
            key_error(None, "InternalError"),
            key_error(Some("zzz"), "AccessDenied"),
        ] {
            assert!(delete_errors(&[&a, &b], &[error]).is_err());
        }
    }

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

//! Our [`ByteStream`] as a request body aws-sdk-s3 can send.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use aws_sdk_s3::primitives::SdkBody;
use bytes::Bytes;
use futures::Stream;
use http_body::Frame;
use http_body_util::StreamBody;
use sync_wrapper::SyncStream;

use super::errors::map_sdk_error;
use crate::store::{into_store_error, ByteStream, ExactLength, StoreError};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Wraps `body` (which must be exactly `len` bytes) for the SDK. The returned
/// [`BodyFailure`] holds the source's error if the body fails.
pub(super) fn upload_body(body: ByteStream, len: u64) -> (SdkBody, BodyFailure) {
    let failure = BodyFailure::default();
    let checked = CheckedBody {
        inner: ExactLength::new(body, len),
        expected: len,
        seen: 0,
        held: None,
        failure: failure.clone(),
        finished: false,
    };
    // The SDK wants a Sync body; a stream is only ever polled from one task, so
    // SyncStream's exclusive access costs nothing.
    (
        SdkBody::from_body_1_x(StreamBody::new(SyncStream::new(checked))),
        failure,
    )
}

/// Passes chunks on, except the one that completes the declared length: that
/// one is held until the source has ended. Once hyper has sent
/// `Content-Length` bytes the request is complete and the server stores it, so
/// a body that runs long must fail *before* its last declared byte goes out.
struct CheckedBody {
    inner: ExactLength,
    expected: u64,
    seen: u64,
    held: Option<Bytes>,
    failure: BodyFailure,
    finished: bool,
}

impl Stream for CheckedBody {
    type Item = Result<Frame<Bytes>, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    if chunk.is_empty() {
                        continue;
                    }
                    this.seen += chunk.len() as u64;
                    if this.seen == this.expected {
                        this.held = Some(chunk);
                        continue;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.finished = true;
                    this.held = None;
                    this.failure.record(e);
                    return Poll::Ready(Some(Err("the request body's source failed".into())));
                }
                Poll::Ready(None) => {
                    this.finished = true;
                    return Poll::Ready(this.held.take().map(|chunk| Ok(Frame::data(chunk))));
                }
            }
        }
    }
}

/// Where an upload body leaves its source's error, so a failed upload reports
/// why the body failed (length mismatch, client gone) rather than the
/// transport error the SDK saw.
#[derive(Clone, Default)]
pub(super) struct BodyFailure(Arc<Mutex<Option<std::io::Error>>>);

impl BodyFailure {
    fn record(&self, error: std::io::Error) {
        *self.0.lock().expect("body failure slot poisoned") = Some(error);
    }

    pub(super) fn into_error<E>(
        self,
        op: &'static str,
        err: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> StoreError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match self.0.lock().expect("body failure slot poisoned").take() {
            Some(source_error) => into_store_error(source_error),
            None => map_sdk_error(op, err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{stream, StreamExt};
    use http_body_util::BodyExt;

    fn source(parts: Vec<&'static [u8]>) -> ByteStream {
        stream::iter(parts.into_iter().map(|p| Ok(Bytes::from_static(p)))).boxed()
    }

    #[tokio::test]
    async fn a_body_of_the_declared_length_passes_whole() {
        let (body, failure) = upload_body(source(vec![b"ab", b"", b"cd"]), 4);
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"abcd");
        assert!(failure.0.lock().unwrap().is_none());
    }

    #[tokio::test]
    async fn the_last_declared_byte_is_not_sent_when_more_follow() {
        let (mut body, failure) = upload_body(source(vec![b"ab", b"cd", b"ef"]), 4);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"ab");
        assert!(
            body.frame().await.unwrap().is_err(),
            "cd is held back, then the error comes"
        );
        let recorded = failure.0.lock().unwrap().take().unwrap();
        assert!(matches!(
            into_store_error(recorded),
            StoreError::LengthMismatch { expected: 4, .. }
        ));
    }

    #[tokio::test]
    async fn a_short_body_fails_with_a_length_mismatch() {
        let (body, failure) = upload_body(source(vec![b"ab"]), 3);
        assert!(body.collect().await.is_err());
        let recorded = failure.0.lock().unwrap().take().unwrap();
        assert!(matches!(
            into_store_error(recorded),
            StoreError::LengthMismatch {
                expected: 3,
                actual: 2
            }
        ));
    }
}

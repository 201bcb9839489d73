//! Stream adapters for bodies on their way to a store.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use super::{ByteStream, StoreError};

/// Passes a body through while checking it is exactly `expected` bytes long.
///
/// A body that runs past the length fails as soon as the first byte too many
/// arrives (so a lying client cannot make us read more than it declared); one
/// that ends short fails at its end. The failure is an `io::Error` whose inner
/// error is a [`StoreError::LengthMismatch`], which [`into_store_error`] recovers.
pub struct ExactLength {
    inner: ByteStream,
    expected: u64,
    seen: u64,
    done: bool,
}

impl ExactLength {
    /// Wraps `inner`, which must yield exactly `expected` bytes.
    pub fn new(inner: ByteStream, expected: u64) -> Self {
        Self {
            inner,
            expected,
            seen: 0,
            done: false,
        }
    }

    fn mismatch(&mut self) -> std::io::Error {
        self.done = true;
        std::io::Error::other(StoreError::LengthMismatch {
            expected: self.expected,
            actual: self.seen,
        })
    }
}

impl Stream for ExactLength {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.seen += chunk.len() as u64;
                if self.seen > self.expected {
                    return Poll::Ready(Some(Err(self.mismatch())));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) if self.seen != self.expected => {
                Poll::Ready(Some(Err(self.mismatch())))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            other => other,
        }
    }
}

/// Turns a body stream's failure back into the store error it stands for:
/// a length mismatch raised by [`ExactLength`], else [`StoreError::Body`].
pub fn into_store_error(err: std::io::Error) -> StoreError {
    let is_mismatch = err
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<StoreError>().is_some());
    if is_mismatch {
        if let Ok(inner) = err
            .into_inner()
            .expect("checked above")
            .downcast::<StoreError>()
        {
            return *inner;
        }
        unreachable!("downcast checked above");
    }
    StoreError::Body(err)
}

/// `body`, failing once it goes past `limit` bytes (with an error
/// [`is_over_limit`] recognises): for a body whose length is not declared.
pub fn at_most(body: ByteStream, limit: u64) -> ByteStream {
    let mut seen = 0u64;
    Box::pin(body.map(move |chunk| {
        let chunk = chunk?;
        seen += chunk.len() as u64;
        if seen > limit {
            return Err(std::io::Error::other(OverLimit));
        }
        Ok(chunk)
    }))
}

/// The error [`at_most`] fails with.
#[derive(Debug, thiserror::Error)]
#[error("the body goes past its limit")]
struct OverLimit;

/// Whether `e` is [`at_most`]'s.
pub fn is_over_limit(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<OverLimit>())
}

/// Passes a body through while computing its SHA-256.
///
/// The digest is read from the [`Sha256Handle`] once the store is done with
/// the body: see [`Sha256Handle::digest_of`].
pub struct Sha256Tap {
    inner: ByteStream,
    state: Arc<Mutex<TapState>>,
}

/// What the tap has seen so far.
#[derive(Default)]
struct TapState {
    /// `None` once the body failed: there is no digest to give.
    hasher: Option<Sha256>,
    /// Bytes passed through.
    seen: u64,
}

/// Where a [`Sha256Tap`] leaves its digest.
#[derive(Clone, Default)]
pub struct Sha256Handle(Arc<Mutex<TapState>>);

impl std::fmt::Debug for Sha256Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sha256Handle").finish_non_exhaustive()
    }
}

impl Sha256Handle {
    /// The digest of a body declared `len` bytes long, when exactly those
    /// bytes went through without error. The stream need not have been
    /// polled to its end: a store may stop once it has the declared length,
    /// and an HTTP client never polls an empty body at all.
    pub fn digest_of(&self, len: u64) -> Option<[u8; 32]> {
        let state = self.0.lock().ok()?;
        let hasher = state.hasher.as_ref().filter(|_| state.seen == len)?;
        Some(hasher.clone().finalize().into())
    }
}

impl Sha256Tap {
    /// Wraps `inner`; the returned handle yields the digest at the end.
    pub fn new(inner: ByteStream) -> (Self, Sha256Handle) {
        let handle = Sha256Handle(Arc::new(Mutex::new(TapState {
            hasher: Some(Sha256::new()),
            ..TapState::default()
        })));
        let tap = Self {
            inner,
            state: handle.0.clone(),
        };
        (tap, handle)
    }
}

impl Stream for Sha256Tap {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        if let (Poll::Ready(item), Ok(mut state)) = (&polled, self.state.lock()) {
            match item {
                Some(Ok(chunk)) => {
                    if let Some(h) = state.hasher.as_mut() {
                        h.update(chunk);
                    }
                    state.seen += chunk.len() as u64;
                }
                Some(Err(_)) => state.hasher = None,
                None => {}
            }
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{stream, StreamExt, TryStreamExt};

    fn chunks(parts: &[&'static [u8]]) -> ByteStream {
        let items: Vec<Result<Bytes, std::io::Error>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        stream::iter(items).boxed()
    }

    #[tokio::test]
    async fn exact_length_passes_a_body_of_the_declared_length() {
        let out: Vec<Bytes> = ExactLength::new(chunks(&[b"ab", b"cd"]), 4)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(out.concat(), b"abcd");
    }

    #[tokio::test]
    async fn exact_length_stops_at_the_first_byte_too_many() {
        let mut s = ExactLength::new(chunks(&[b"ab", b"cd", b"ef"]), 3);
        assert!(s.next().await.unwrap().is_ok());
        let err = s.next().await.unwrap().unwrap_err();
        assert!(matches!(
            into_store_error(err),
            StoreError::LengthMismatch {
                expected: 3,
                actual: 4
            }
        ));
        assert!(s.next().await.is_none(), "nothing is read past the error");
    }

    #[tokio::test]
    async fn exact_length_refuses_a_short_body() {
        let err = ExactLength::new(chunks(&[b"ab"]), 3)
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        assert!(matches!(
            into_store_error(err),
            StoreError::LengthMismatch {
                expected: 3,
                actual: 2
            }
        ));
    }

    #[tokio::test]
    async fn other_failures_are_body_errors() {
        let err = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "gone");
        assert!(matches!(into_store_error(err), StoreError::Body(_)));
    }

    #[tokio::test]
    async fn sha256_tap_hashes_the_whole_body() {
        let (tap, handle) = Sha256Tap::new(chunks(&[b"hello ", b"world"]));
        let _: Vec<Bytes> = tap.try_collect().await.unwrap();
        assert_eq!(
            hex::encode(handle.digest_of(11).unwrap()),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }

    #[test]
    fn sha256_tap_gives_the_empty_digest_for_a_body_never_polled() {
        let (_tap, handle) = Sha256Tap::new(chunks(&[]));
        assert_eq!(
            handle.digest_of(0).map(hex::encode).as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert!(handle.digest_of(1).is_none());
    }

    #[tokio::test]
    async fn sha256_tap_has_no_digest_for_a_failed_body() {
        let items: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::other("cut")),
        ];
        let (mut tap, handle) = Sha256Tap::new(stream::iter(items).boxed());
        while tap.next().await.is_some() {}
        assert!(handle.digest_of(2).is_none());
    }

    #[tokio::test]
    async fn sha256_tap_has_no_digest_for_an_unfinished_body() {
        let (mut tap, handle) = Sha256Tap::new(chunks(&[b"hello ", b"world"]));
        tap.next().await;
        assert!(handle.digest_of(11).is_none());
    }
}

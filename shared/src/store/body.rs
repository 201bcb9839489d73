//! Stream adapters for bodies on their way to a store.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use futures::Stream;
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

/// Passes a body through while computing its SHA-256.
///
/// The digest is read from the [`Sha256Handle`] once the stream has ended; it
/// is `None` if the stream did not run to its end.
pub struct Sha256Tap {
    inner: ByteStream,
    hasher: Option<Sha256>,
    out: Arc<Mutex<Option<[u8; 32]>>>,
}

/// Where a [`Sha256Tap`] leaves its digest.
#[derive(Clone, Debug, Default)]
pub struct Sha256Handle(Arc<Mutex<Option<[u8; 32]>>>);

impl Sha256Handle {
    /// The digest of the whole body, once the stream has ended without error.
    pub fn digest(&self) -> Option<[u8; 32]> {
        *self.0.lock().expect("sha256 handle poisoned")
    }
}

impl Sha256Tap {
    /// Wraps `inner`; the returned handle yields the digest at the end.
    pub fn new(inner: ByteStream) -> (Self, Sha256Handle) {
        let handle = Sha256Handle::default();
        let tap = Self {
            inner,
            hasher: Some(Sha256::new()),
            out: handle.0.clone(),
        };
        (tap, handle)
    }
}

impl Stream for Sha256Tap {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(h) = self.hasher.as_mut() {
                    h.update(chunk);
                }
            }
            Poll::Ready(Some(Err(_))) => self.hasher = None,
            Poll::Ready(None) => {
                if let Some(h) = self.hasher.take() {
                    *self.out.lock().expect("sha256 handle poisoned") = Some(h.finalize().into());
                }
            }
            Poll::Pending => {}
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
            hex::encode(handle.digest().unwrap()),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }

    #[tokio::test]
    async fn sha256_tap_has_no_digest_for_an_unfinished_body() {
        let (mut tap, handle) = Sha256Tap::new(chunks(&[b"hello ", b"world"]));
        tap.next().await;
        assert!(handle.digest().is_none());
    }
}

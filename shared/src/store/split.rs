//! Cutting one incoming body into store parts of a fixed size.
//!
//! A protocol that appends at an offset (tus) receives chunks of any size,
//! but S3 assembles only parts of at least 5 MiB (but the last). The splitter
//! buffers at most one part: it yields each full part as it fills, and when
//! the body ends hands back the remainder (fewer bytes than a part), which
//! the caller keeps durably until the next chunk completes it.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use super::ByteStream;

/// Cuts a body, prefixed by the bytes left over from earlier bodies, into
/// parts of exactly `part_size` bytes.
pub struct PartSplitter {
    body: ByteStream,
    buf: BytesMut,
    part_size: usize,
    ended: bool,
}

impl PartSplitter {
    /// A splitter over `body`, after `carried` (an earlier body's remainder,
    /// fewer than `part_size` bytes). `part_size` must not be 0.
    pub fn new(carried: Bytes, body: ByteStream, part_size: usize) -> Self {
        assert!(part_size > 0, "a part holds at least one byte");
        Self {
            body,
            buf: BytesMut::from(&carried[..]),
            part_size,
            ended: false,
        }
    }

    /// The next full part, or `None` once the body has ended with fewer
    /// than `part_size` bytes left ([`PartSplitter::remainder`]). A body that
    /// fails returns its error; the parts returned before it stay whole, and
    /// the bytes buffered since are the caller's to drop or keep.
    pub async fn next_part(&mut self) -> Result<Option<Bytes>, std::io::Error> {
        while self.buf.len() < self.part_size && !self.ended {
            match self.body.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    // Parts are cut as soon as one is full, so the buffer
                    // never holds more than a part and one chunk.
                    self.buf.extend_from_slice(&chunk);
                }
                None => self.ended = true,
            }
        }
        if self.buf.len() >= self.part_size {
            return Ok(Some(self.buf.split_to(self.part_size).freeze()));
        }
        Ok(None)
    }

    /// The bytes after the last full part (fewer than a part), once
    /// [`PartSplitter::next_part`] returned `None`.
    pub fn remainder(self) -> Bytes {
        self.buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: &[&[u8]]) -> ByteStream {
        let chunks: Vec<Result<Bytes, std::io::Error>> = chunks
            .iter()
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Box::pin(futures::stream::iter(chunks))
    }

    async fn split(carried: &[u8], chunks: &[&[u8]], size: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut s = PartSplitter::new(Bytes::copy_from_slice(carried), body(chunks), size);
        let mut parts = Vec::new();
        while let Some(p) = s.next_part().await.unwrap() {
            parts.push(p.to_vec());
        }
        (parts, s.remainder().to_vec())
    }

    #[tokio::test]
    async fn chunks_of_any_size_become_whole_parts_and_a_remainder() {
        let (parts, rest) = split(b"ab", &[b"c", b"defgh", b"", b"ij"], 3).await;
        assert_eq!(parts, [b"abc".to_vec(), b"def".to_vec(), b"ghi".to_vec()]);
        assert_eq!(rest, b"j");
        let (parts, rest) = split(b"", &[b"abcdef"], 3).await;
        assert_eq!((parts.len(), rest.len()), (2, 0));
        let (parts, rest) = split(b"a", &[], 3).await;
        assert_eq!((parts.len(), rest), (0, b"a".to_vec()));
    }

    #[tokio::test]
    async fn a_failed_body_keeps_the_parts_already_cut() {
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"abcd")),
            Err(std::io::Error::other("client went away")),
        ];
        let mut s = PartSplitter::new(Bytes::new(), Box::pin(futures::stream::iter(chunks)), 3);
        assert_eq!(s.next_part().await.unwrap().unwrap(), &b"abc"[..]);
        assert!(s.next_part().await.is_err());
    }
}

//! Checksums of appended chunks: a chunk counts only when its bytes hash to
//! what the client sent (tus's `checksum` extension).

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use sha2::digest::DynDigest;

use crate::store::ByteStream;

/// A hash a client may send with a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// MD5.
    Md5,
}

impl ChecksumAlgorithm {
    /// Every algorithm supported, in the order they are advertised.
    pub const ALL: [ChecksumAlgorithm; 3] = [
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Md5,
    ];

    /// The algorithm's name as tus writes it (`sha1`, `sha256`, `md5`).
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha1 => "sha1",
            ChecksumAlgorithm::Sha256 => "sha256",
            ChecksumAlgorithm::Md5 => "md5",
        }
    }

    /// The algorithm of that name (case-insensitive), if supported.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    fn hasher(self) -> Box<dyn DynDigest + Send> {
        match self {
            ChecksumAlgorithm::Sha1 => Box::new(<sha1::Sha1 as sha2::Digest>::new()),
            ChecksumAlgorithm::Sha256 => Box::new(<sha2::Sha256 as sha2::Digest>::new()),
            ChecksumAlgorithm::Md5 => Box::new(<md5::Md5 as sha2::Digest>::new()),
        }
    }
}

/// The digest a client expects a chunk to have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkChecksum {
    /// The hash.
    pub algorithm: ChecksumAlgorithm,
    /// The digest's bytes.
    pub digest: Vec<u8>,
}

/// Hashes a body as it passes; [`Hashed::digest`] once it has ended.
pub(super) struct Hashed(Arc<Mutex<Box<dyn DynDigest + Send>>>);

impl Hashed {
    /// `body`, hashed with `algorithm` on its way through.
    pub(super) fn tap(body: ByteStream, algorithm: ChecksumAlgorithm) -> (ByteStream, Hashed) {
        let state = Arc::new(Mutex::new(algorithm.hasher()));
        let seen = state.clone();
        let body = body.inspect(move |chunk| {
            if let (Ok(chunk), Ok(mut h)) = (chunk, seen.lock()) {
                h.update(chunk);
            }
        });
        (Box::pin(body), Hashed(state))
    }

    /// The digest of the bytes that went through.
    pub(super) fn digest(&self) -> Vec<u8> {
        match self.0.lock() {
            Ok(mut h) => h.finalize_reset().into_vec(),
            Err(poisoned) => poisoned.into_inner().finalize_reset().into_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[tokio::test]
    async fn each_algorithm_hashes_the_bytes_that_pass() {
        let cases = [
            (
                ChecksumAlgorithm::Sha1,
                "a9993e364706816aba3e25717850c26c9cd0d89d",
            ),
            (
                ChecksumAlgorithm::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (ChecksumAlgorithm::Md5, "900150983cd24fb0d6963f7d28e17f72"),
        ];
        for (algorithm, want) in cases {
            let chunks: Vec<Result<Bytes, std::io::Error>> =
                vec![Ok(Bytes::from_static(b"a")), Ok(Bytes::from_static(b"bc"))];
            let (body, hashed) = Hashed::tap(Box::pin(futures::stream::iter(chunks)), algorithm);
            let _: Vec<_> = body.collect().await;
            assert_eq!(hex::encode(hashed.digest()), want, "{}", algorithm.name());
        }
        assert_eq!(
            ChecksumAlgorithm::parse("SHA256"),
            Some(ChecksumAlgorithm::Sha256)
        );
        assert_eq!(ChecksumAlgorithm::parse("crc32"), None);
    }
}

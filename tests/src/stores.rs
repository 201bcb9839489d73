//! Object stores for tests, each on a private prefix, and bodies to feed them.

use std::{io, ops::Range, sync::Arc, task::Poll};

use bytes::Bytes;
use claimcheck::store::{
    fs::{FsStore, UrlSigner},
    s3::{S3Settings, S3Store},
    ByteStream, ObjectStore,
};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::required_env;

/// Bytes per generated chunk.
const CHUNK: u64 = 64 * 1024;

/// The base URL the test filesystem store signs download URLs for.
pub const FS_BASE_URL: &str = "http://claimcheck.test/";
/// The key the test filesystem store signs download URLs with.
pub const FS_SIGNING_KEY: &[u8] = b"claimcheck-test-signing-key-0123456789";

/// A fresh prefix (`t-<uuid>/`): tests share one bucket without seeing each
/// other's objects.
pub fn test_prefix() -> String {
    format!("t-{}/", uuid::Uuid::new_v4().simple())
}

/// The S3 store `scripts/test` set up (Garage), path-style. Panics if the
/// `CLAIMCHECK_TEST_S3_*` variables are missing: a test never skips silently.
pub async fn s3_store() -> S3Store {
    S3Store::new(S3Target::shared().settings())
        .await
        .expect("S3 store from CLAIMCHECK_TEST_S3_*")
}

/// An S3 server to talk to: the shared test Garage or a private one
/// (`faults::PrivateGarage`).
#[derive(Debug, Clone)]
pub struct S3Target {
    /// Endpoint URL.
    pub endpoint: String,
    /// Bucket.
    pub bucket: String,
    /// Region.
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
}

impl S3Target {
    /// The Garage `scripts/test` started (shared by every test: never stop it).
    pub fn shared() -> Self {
        Self {
            endpoint: required_env("CLAIMCHECK_TEST_S3_ENDPOINT"),
            bucket: required_env("CLAIMCHECK_TEST_S3_BUCKET"),
            region: required_env("CLAIMCHECK_TEST_S3_REGION"),
            access_key: required_env("CLAIMCHECK_TEST_S3_ACCESS_KEY"),
            secret_key: required_env("CLAIMCHECK_TEST_S3_SECRET_KEY"),
        }
    }

    /// Settings for the library's S3 store.
    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: Some(self.endpoint.clone()),
            public_endpoint: None,
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            force_path_style: true,
            access_key_id: Some(self.access_key.clone()),
            secret_access_key: Some(self.secret_key.clone()),
            timeout: None,
        }
    }

    /// The library's S3 store on it.
    pub async fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(S3Store::new(self.settings()).await.expect("S3 store"))
    }

    /// The environment of a process (API or worker) on it, under `prefix`.
    pub fn env(&self, prefix: &str) -> Vec<(&'static str, String)> {
        [
            ("CLAIMCHECK_STORE", "s3"),
            ("CLAIMCHECK_S3_ENDPOINT", &self.endpoint),
            ("CLAIMCHECK_S3_BUCKET", &self.bucket),
            ("CLAIMCHECK_S3_REGION", &self.region),
            ("CLAIMCHECK_S3_FORCE_PATH_STYLE", "true"),
            ("AWS_ACCESS_KEY_ID", &self.access_key),
            ("AWS_SECRET_ACCESS_KEY", &self.secret_key),
            ("CLAIMCHECK_KEY_PREFIX", prefix),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect()
    }

    /// A worker's environment: [`S3Target::env`] and `DATABASE_URL`.
    pub fn worker_env(&self, database_url: &str, prefix: &str) -> Vec<(&'static str, String)> {
        let mut env = vec![("DATABASE_URL", database_url.to_owned())];
        env.extend(self.env(prefix));
        env
    }
}

/// A filesystem store in a fresh temporary directory (removed when the
/// returned guard drops), signing download URLs for [`FS_BASE_URL`].
pub fn fs_store() -> (FsStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir for the fs store");
    let signer =
        UrlSigner::new(FS_BASE_URL.parse().expect("base URL"), FS_SIGNING_KEY).expect("signer");
    let store = FsStore::new(dir.path().to_owned(), Some(signer)).expect("fs store");
    (store, dir)
}

/// Deterministic pseudo-random bytes: chunk `index` of the body `seed`.
fn chunk(seed: u64, index: u64, len: u64) -> Bytes {
    // splitmix64: fast, and different seeds give unrelated bodies.
    let mut state = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(len as usize + 8);
    while (out.len() as u64) < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len as usize);
    out.into()
}

/// The chunks of [`random_body`]`(seed, len)`, for hashing several bodies
/// as one (the parts of a multipart upload).
pub fn random_chunks(seed: u64, len: u64) -> impl Iterator<Item = Bytes> {
    (0..len.div_ceil(CHUNK)).map(move |i| chunk(seed, i, CHUNK.min(len - i * CHUNK)))
}

/// A streamed body of `len` pseudo-random bytes (from `seed`), made 64 KiB at
/// a time as it is read: never `len` bytes in memory.
pub fn random_body(seed: u64, len: u64) -> ByteStream {
    futures::stream::iter(random_chunks(seed, len).map(Ok)).boxed()
}

/// The SHA-256 (hex) of [`random_body`]`(seed, len)`.
pub fn random_sha256(seed: u64, len: u64) -> String {
    random_sha256_concat(&[(seed, len)])
}

/// The SHA-256 (hex) of several [`random_body`]s `(seed, len)` one after the
/// other (the object a multipart upload of them makes).
pub fn random_sha256_concat(bodies: &[(u64, u64)]) -> String {
    let mut hasher = Sha256::new();
    for &(seed, len) in bodies {
        random_chunks(seed, len).for_each(|c| hasher.update(&c));
    }
    hex::encode(hasher.finalize())
}

/// Bytes `range` of a [`random_body`] of `seed` (of any length that holds
/// them: a body's bytes do not depend on its length), chunk by chunk.
pub fn random_range_chunks(seed: u64, range: Range<u64>) -> impl Iterator<Item = Bytes> {
    let first = range.start / CHUNK;
    let end = if range.is_empty() {
        first
    } else {
        range.end.div_ceil(CHUNK)
    };
    (first..end).map(move |i| {
        let at = i * CHUNK;
        let from = range.start.saturating_sub(at);
        let to = (range.end - at).min(CHUNK);
        chunk(seed, i, to).slice(from as usize..)
    })
}

/// The SHA-256 (hex) of byte ranges of [`random_body`]s `(seed, range)`, one
/// after the other (an object assembled from copied ranges).
pub fn random_sha256_ranges(ranges: &[(u64, Range<u64>)]) -> String {
    let mut hasher = Sha256::new();
    for (seed, range) in ranges {
        random_range_chunks(*seed, range.clone()).for_each(|c| hasher.update(&c));
    }
    hex::encode(hasher.finalize())
}

/// The bytes of [`random_body`]`(seed, len)`, for small bodies a test compares whole.
pub fn random_bytes(seed: u64, len: u64) -> Vec<u8> {
    random_chunks(seed, len).flat_map(|c| c.to_vec()).collect()
}

/// A body that yields the first `ok_bytes` of [`random_body`]`(seed, ..)`,
/// then fails like a client hanging up mid-upload.
pub fn failing_body(seed: u64, ok_bytes: u64) -> ByteStream {
    let failure = futures::stream::once(async {
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client disconnected (test)",
        ))
    });
    random_body(seed, ok_bytes).chain(failure).boxed()
}

/// A body that yields `len` bytes and then never ends (a client that stopped
/// sending): for cancellation tests.
pub fn stalled_body(seed: u64, len: u64) -> ByteStream {
    random_body(seed, len)
        .chain(futures::stream::poll_fn(|_| Poll::Pending))
        .boxed()
}

/// A body of the given bytes in one chunk.
pub fn bytes_body(bytes: impl Into<Bytes>) -> ByteStream {
    futures::stream::once(futures::future::ready(Ok(bytes.into()))).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ranges_are_slices_of_the_body() {
        let whole = random_bytes(9, 3 * CHUNK + 17);
        for range in [
            0..1,
            5..CHUNK,
            CHUNK - 1..CHUNK + 1,
            100..3 * CHUNK + 17,
            7..7,
        ] {
            let got: Vec<u8> = random_range_chunks(9, range.clone())
                .flat_map(|c| c.to_vec())
                .collect();
            assert_eq!(
                got,
                whole[range.start as usize..range.end as usize],
                "{range:?}"
            );
        }
    }
}

//! Chunked uploads of 0 bytes: one empty part, and no multipart session.
//!
//! S3 servers disagree about empty parts (Garage refuses an empty UploadPart
//! body), and a session of no bytes buys nothing: the claim opens no session,
//! its one part is recorded without touching the store, and complete writes
//! the empty object with a plain put. Every store then behaves the same.

use futures::StreamExt;

use super::{append::Appended, multipart::PartReceipt, UploadError, Uploads};
use crate::{
    domain::{composite_sha256, Claim, Part},
    store::{
        body::{at_most, is_over_limit},
        ByteStream,
    },
};

/// The SHA-256 of no bytes.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

impl Uploads {
    /// Records part 1 of a 0-byte upload (its length was checked: 0).
    pub(super) async fn put_empty_part(
        &self,
        claim: &Claim,
        sha256: Option<&str>,
    ) -> Result<PartReceipt, UploadError> {
        if sha256.is_some_and(|want| !want.eq_ignore_ascii_case(EMPTY_SHA256)) {
            return Err(UploadError::ChecksumMismatch {
                actual: EMPTY_SHA256.into(),
            });
        }
        let part = Part {
            part_number: 1,
            size: 0,
            sha256: Some(EMPTY_SHA256.into()),
            etag: String::new(),
        };
        if !self.parts.upsert(claim.id, &part).await? {
            return Err(UploadError::Conflict(
                "the upload is no longer pending".into(),
            ));
        }
        self.claims.touch(claim.id, self.limits.claim_ttl).await?;
        Ok(PartReceipt {
            part_number: 1,
            size: 0,
            sha256: part.sha256,
        })
    }

    /// Complete of a 0-byte upload, with the claim's writer lock held: the
    /// empty object is put, then the claim marked.
    pub(super) async fn complete_empty(&self, claim: &Claim) -> Result<Claim, UploadError> {
        if self.parts.list(claim.id).await?.is_empty() {
            return Err(UploadError::MissingParts(vec![1]));
        }
        let empty: ByteStream = Box::pin(futures::stream::empty());
        self.store
            .put(&claim.key, empty, 0, &claim.content_type)
            .await?;
        let sha256 = composite_sha256([Some(EMPTY_SHA256)]);
        self.finish(claim, sha256.as_deref()).await
    }

    /// A 0-byte upload: an empty chunk at offset 0 finishes it.
    pub(super) async fn append_to_empty(
        &self,
        claim: &Claim,
        body: ByteStream,
    ) -> Result<Appended, UploadError> {
        let mut body = at_most(body, 0);
        // Only empty chunks get through `at_most`.
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(_) => {}
                Err(e) if is_over_limit(&e) => return Err(UploadError::PastLength { length: 0 }),
                Err(e) => return Err(UploadError::BodyFailed(e.to_string())),
            }
        }
        // A size declared 0 after it was deferred: the session opened for
        // the bound goes unused (the reaper takes it if this abort fails).
        if let Some(upload_id) = &claim.upload_id {
            let _ = self.store.abort_multipart(&claim.key, upload_id).await;
        }
        self.put_empty_part(claim, None).await?;
        Ok(Appended::Finished(Box::new(
            self.complete_empty(claim).await?,
        )))
    }
}

/// Whether a claim is a 0-byte chunked upload (no session, see the module).
pub(super) fn is_empty_chunked(claim: &Claim) -> bool {
    claim.size == 0 && claim.part_count.is_some()
}

//! Cutting parts: sending them to the store and recording them, the
//! commits of an append, and its end.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::Appended;
use crate::{
    db::{AppendCommit, Committed},
    domain::{composite_sha256, Claim, Part},
    store::{ByteStream, CompletedPart, StoreError},
    uploads::{UploadError, Uploads},
};

impl Uploads {
    /// Sends a full part to the store and records it (with the chunk's
    /// other parts when the chunk counts only whole).
    pub(super) async fn cut_part(
        &self,
        claim: &Claim,
        cut: &mut Cutter,
        bytes: Bytes,
    ) -> Result<(), UploadError> {
        let part = self.send_part(claim, cut.next, bytes).await?;
        cut.end += part.size as u64;
        cut.next += 1;
        // The earlier tail was the front of the first part cut.
        cut.commit.drop_tail |= cut.carried > 0;
        cut.carried = 0;
        cut.commit.parts.push(part);
        if !cut.whole_only {
            self.commit(cut).await?;
        }
        Ok(())
    }

    /// Records the parts cut so far and `rest` (the bytes after them; its
    /// front may be the earlier tail, still stored) as the new tail.
    pub(super) async fn commit_tail(
        &self,
        cut: &mut Cutter,
        rest: Bytes,
    ) -> Result<chrono::DateTime<chrono::Utc>, UploadError> {
        let carried = cut.carried as usize;
        cut.commit.tail = (cut.end + cut.carried, rest.slice(carried..));
        cut.carried = rest.len() as u64;
        self.commit(cut).await
    }

    pub(super) async fn commit(
        &self,
        cut: &mut Cutter,
    ) -> Result<chrono::DateTime<chrono::Utc>, UploadError> {
        match self.tails.commit(&cut.commit).await? {
            Committed::Done { expires_at } => {
                cut.recorded.append(&mut cut.commit.parts);
                cut.commit.drop_tail = false;
                cut.commit.tail = (0, Bytes::new());
                Ok(expires_at)
            }
            Committed::LockLost => Err(UploadError::Busy(
                "another request took this upload over".into(),
            )),
        }
    }

    /// The last chunk: records the parts before the last one, sends the last
    /// one, assembles the object and marks the claim uploaded.
    pub(super) async fn finish_append(
        &self,
        claim: &Claim,
        mut cut: Cutter,
        last: Bytes,
    ) -> Result<Appended, UploadError> {
        if !cut.commit.parts.is_empty() {
            self.commit(&mut cut).await?;
        }
        let mut parts = cut.recorded;
        if !last.is_empty() {
            parts.push(self.send_final_part(claim, cut.next, last).await?);
        }
        let upload_id = claim.upload_id.as_deref().ok_or(UploadError::NotFound)?;
        let completed: Vec<CompletedPart> = parts
            .iter()
            .map(|p| CompletedPart {
                part_number: p.part_number as u32,
                etag: p.etag.clone(),
            })
            .collect();
        match self
            .store
            .complete_multipart(&claim.key, upload_id, &completed)
            .await
        {
            Ok(()) => {}
            // Assembled by a writer that died before marking the claim.
            Err(StoreError::NoSuchUpload) if self.holds_whole_object(claim).await => {}
            Err(StoreError::NoSuchUpload) => {
                return Err(UploadError::Conflict("the upload was aborted".into()))
            }
            Err(e) => return Err(e.into()),
        }
        let sha256 = composite_sha256(parts.iter().map(|p| p.sha256.as_deref()));
        // Marking it uploaded drops its tail in the same statement.
        let claim = self.finish(claim, sha256.as_deref()).await?;
        Ok(Appended::Finished(Box::new(claim)))
    }

    /// The final part; a session a dead writer already assembled is no error.
    pub(super) async fn send_final_part(
        &self,
        claim: &Claim,
        n: u32,
        bytes: Bytes,
    ) -> Result<Part, UploadError> {
        let size = bytes.len() as i64;
        match self.send_part(claim, n, bytes).await {
            Err(UploadError::Conflict(_)) if self.holds_whole_object(claim).await => Ok(Part {
                part_number: n as i32,
                size,
                sha256: None,
                etag: String::new(),
            }),
            other => other,
        }
    }

    /// Sends `bytes` as part `n` of the claim's session.
    pub(in crate::uploads) async fn send_part(
        &self,
        claim: &Claim,
        n: u32,
        bytes: Bytes,
    ) -> Result<Part, UploadError> {
        let upload_id = claim.upload_id.as_deref().ok_or(UploadError::NotFound)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let len = bytes.len() as u64;
        let body: ByteStream = Box::pin(futures::stream::once(async move { Ok(bytes) }));
        let etag = self
            .store
            .upload_part(&claim.key, upload_id, n, body, len)
            .await
            .map_err(|e| match e {
                StoreError::NoSuchUpload => {
                    UploadError::Conflict("the upload was completed or aborted".into())
                }
                other => other.into(),
            })?;
        Ok(Part {
            part_number: n as i32,
            size: len as i64,
            sha256: Some(sha256),
            etag,
        })
    }
}

/// Where an append is while it cuts parts.
pub(super) struct Cutter {
    /// What the next commit records.
    pub(super) commit: AppendCommit,
    /// Bytes of the stored tail at the front of what is not cut yet.
    pub(super) carried: u64,
    /// Where the parts cut (recorded or not) end in the object.
    pub(super) end: u64,
    /// The next part's number.
    pub(super) next: u32,
    /// The parts recorded, in order.
    pub(super) recorded: Vec<Part>,
    /// Record nothing until the whole chunk is in (it has a checksum).
    pub(super) whole_only: bool,
}

/// The parts numbered from 1 without a gap.
pub(super) fn contiguous_parts(parts: &[Part]) -> Vec<Part> {
    parts
        .iter()
        .zip(1..)
        .take_while(|(p, n)| p.part_number == *n)
        .map(|(p, _)| p.clone())
        .collect()
}

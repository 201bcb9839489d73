//! Appends at an offset: what a resumable protocol (tus) does with each
//! chunk, of any size, on any pod.
//!
//! One writer at a time per upload (the claim's writer lock; a second one
//! is refused at once, so the client retries). The writer cuts the chunk,
//! after the bytes kept from earlier chunks (the tail), into store parts of
//! the claim's part size; each full part goes to the store and is recorded
//! with the tail it consumed dropped, in one fenced commit. Bytes short of
//! a part become the new tail. So the offset (parts plus tail) is durable
//! whenever it is reported, and a body cut off midway keeps what arrived.
//!
//! A chunk with a checksum counts only as a whole: its parts go to the
//! store as they fill, but are recorded in one commit after the checksum
//! matched. Parts sent but never recorded are overwritten by the next
//! chunk's and never assembled (complete lists the recorded ones).
//!
//! The part that ends the upload is never recorded before the object is
//! assembled: a pending claim's recorded offset stays short of its size,
//! so a client never sees "all bytes received" for an upload that a dying
//! pod left unassembled; its retry of the last chunk finishes the job.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    checksum::{ChunkChecksum, Hashed},
    complete::WRITER_LEASE,
    empty::is_empty_chunked,
    UploadError, Uploads,
};
use crate::{
    db::{claims::WriterLock, AppendCommit, Committed, Tail},
    domain::{composite_sha256, Claim, Part},
    store::{
        body::{at_most, is_over_limit},
        split::PartSplitter,
        ByteStream, CompletedPart, StoreError,
    },
};

/// A chunk to append. Built with [`Append::new`] and its setters.
pub struct Append {
    offset: u64,
    len: Option<u64>,
    upload_length: Option<u64>,
    checksum: Option<ChunkChecksum>,
    body: ByteStream,
}

impl Append {
    /// `body`, to go at byte `offset` (which must be the upload's offset).
    pub fn new(offset: u64, body: ByteStream) -> Self {
        Self {
            offset,
            len: None,
            upload_length: None,
            checksum: None,
            body,
        }
    }

    /// The body's declared length, when known: a chunk that would go past
    /// the upload's length is refused before a byte is read.
    pub fn len(mut self, len: u64) -> Self {
        self.len = Some(len);
        self
    }

    /// The upload's size, declared with this chunk when it was deferred (the
    /// same size again is no error).
    pub fn upload_length(mut self, len: u64) -> Self {
        self.upload_length = Some(len);
        self
    }

    /// The digest the whole chunk must have.
    pub fn checksum(mut self, checksum: ChunkChecksum) -> Self {
        self.checksum = Some(checksum);
        self
    }
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// The bytes are durable; the upload goes on from `offset`.
    Partial {
        /// The upload's offset now.
        offset: u64,
        /// When the claim expires now (each append slides it).
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    /// The upload reached its length: the object is whole, the claim is
    /// uploaded.
    Finished(Box<Claim>),
}

impl Uploads {
    /// Appends a chunk at the upload's offset, under the claim's writer
    /// lock: [`UploadError::Busy`] at once when another request holds it,
    /// [`UploadError::OffsetMismatch`] (nothing stored) when `chunk` is not
    /// at the upload's offset.
    pub async fn append(
        &self,
        owner: &str,
        id: Uuid,
        chunk: Append,
    ) -> Result<Appended, UploadError> {
        let claim = self.get_pending(owner, id).await?;
        if claim.resumable.is_none() {
            return Err(UploadError::Conflict(
                "this upload takes its parts by number, not appends".into(),
            ));
        }
        match self.claims.lock_writer(id, WRITER_LEASE).await? {
            WriterLock::Acquired(token) => {
                let work = self.append_locked(&claim, token, chunk);
                let result = self.with_writer(id, token, work).await;
                // Best effort: a lock not released runs out by itself.
                let _ = self.claims.unlock_writer(id, token).await;
                result
            }
            WriterLock::Busy => Err(UploadError::Busy(
                "another request is writing this upload".into(),
            )),
            // Finished, discarded or swept meanwhile: say which.
            WriterLock::NotPending => {
                self.get_pending(owner, id).await?;
                Err(UploadError::NotFound)
            }
        }
    }

    /// The upload's offset (its contiguous parts' bytes, then its tail's),
    /// its tail and those parts.
    async fn append_offset(&self, claim: &Claim) -> Result<(u64, Tail, Vec<Part>), UploadError> {
        let parts = contiguous_parts(&self.parts.list(claim.id).await?);
        let parts_end: u64 = parts.iter().map(|p| p.size as u64).sum();
        let tail = self.tails.get(claim.id).await?;
        if !tail.is_empty() && tail.start != parts_end {
            return Err(UploadError::Internal(format!(
                "claim {}'s tail starts at {} but its parts end at {parts_end}",
                claim.id, tail.start
            )));
        }
        Ok((parts_end + tail.len(), tail, parts))
    }

    async fn append_locked(
        &self,
        claim: &Claim,
        token: Uuid,
        chunk: Append,
    ) -> Result<Appended, UploadError> {
        let (offset, tail, parts) = self.append_offset(claim).await?;
        if chunk.offset != offset {
            return Err(UploadError::OffsetMismatch { expected: offset });
        }
        let claim = &match chunk.upload_length {
            Some(len) => self.declare_length(claim, token, len, offset).await?,
            None => claim.clone(),
        };
        // Until its size is declared, an upload goes on but cannot finish.
        let open_ended = claim.resumable.as_ref().is_some_and(|r| r.length_deferred);
        let size = claim.size as u64;
        if chunk.len.is_some_and(|len| len > size - offset) {
            return Err(UploadError::PastLength { length: size });
        }
        if is_empty_chunked(claim) {
            return self.append_to_empty(claim, chunk.body).await;
        }
        let part_size = claim
            .part_size
            .ok_or_else(|| UploadError::Conflict("not a chunked upload".into()))?;
        let body = at_most(chunk.body, size - offset);
        let (body, hashed) = match &chunk.checksum {
            Some(c) => {
                let (body, hashed) = Hashed::tap(body, c.algorithm);
                (body, Some(hashed))
            }
            None => (body, None),
        };
        let mut cut = Cutter {
            commit: AppendCommit {
                claim_id: claim.id,
                writer_token: token,
                ttl: self.limits.claim_ttl,
                parts: Vec::new(),
                drop_tail: false,
                tail: (0, Bytes::new()),
            },
            carried: tail.len(),
            end: offset - tail.len(),
            next: parts.len() as u32 + 1,
            recorded: parts,
            whole_only: chunk.checksum.is_some(),
        };
        let mut splitter = PartSplitter::new(tail.joined(), body, part_size as usize);
        let mut last = None;
        loop {
            match splitter.next_part().await {
                Ok(Some(part)) if !open_ended && cut.end + part.len() as u64 == size => {
                    last = Some(part)
                }
                Ok(Some(part)) => self.cut_part(claim, &mut cut, part).await?,
                Ok(None) => break,
                Err(e) if is_over_limit(&e) => {
                    return Err(UploadError::PastLength { length: size })
                }
                Err(e) => {
                    let rest = splitter.remainder();
                    // What arrived stays, unless the chunk counts only whole
                    // or it would complete the upload (see the module).
                    if !cut.whole_only && last.is_none() && cut.end + (rest.len() as u64) < size {
                        self.commit_tail(&mut cut, rest).await?;
                    }
                    return Err(UploadError::BodyFailed(e.to_string()));
                }
            }
        }
        let rest = last.unwrap_or_else(|| splitter.remainder());
        if let (Some(want), Some(hashed)) = (&chunk.checksum, hashed) {
            let actual = hashed.digest();
            if actual != want.digest {
                return Err(UploadError::ChecksumMismatch {
                    actual: hex::encode(actual),
                });
            }
        }
        if !open_ended && cut.end + rest.len() as u64 == size {
            return self.finish_append(claim, cut, rest).await;
        }
        let expires_at = self.commit_tail(&mut cut, rest).await?;
        Ok(Appended::Partial {
            offset: cut.end + cut.carried,
            expires_at,
        })
    }

    /// Sends a full part to the store and records it (with the chunk's
    /// other parts when the chunk counts only whole).
    async fn cut_part(
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
    async fn commit_tail(
        &self,
        cut: &mut Cutter,
        rest: Bytes,
    ) -> Result<chrono::DateTime<chrono::Utc>, UploadError> {
        let carried = cut.carried as usize;
        cut.commit.tail = (cut.end + cut.carried, rest.slice(carried..));
        cut.carried = rest.len() as u64;
        self.commit(cut).await
    }

    async fn commit(&self, cut: &mut Cutter) -> Result<chrono::DateTime<chrono::Utc>, UploadError> {
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
    async fn finish_append(
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
    async fn send_final_part(
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
    pub(super) async fn send_part(
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
struct Cutter {
    /// What the next commit records.
    commit: AppendCommit,
    /// Bytes of the stored tail at the front of what is not cut yet.
    carried: u64,
    /// Where the parts cut (recorded or not) end in the object.
    end: u64,
    /// The next part's number.
    next: u32,
    /// The parts recorded, in order.
    recorded: Vec<Part>,
    /// Record nothing until the whole chunk is in (it has a checksum).
    whole_only: bool,
}

/// The parts numbered from 1 without a gap.
fn contiguous_parts(parts: &[Part]) -> Vec<Part> {
    parts
        .iter()
        .zip(1..)
        .take_while(|(p, n)| p.part_number == *n)
        .map(|(p, _)| p.clone())
        .collect()
}

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
use uuid::Uuid;

mod parts;

use parts::{contiguous_parts, Cutter};

use super::{
    checksum::{ChunkChecksum, Hashed},
    complete::WRITER_LEASE,
    empty::is_empty_chunked,
    UploadError, Uploads,
};
use crate::{
    db::{claims::WriterLock, AppendCommit},
    domain::{Claim, Part},
    store::{
        body::{at_most, is_over_limit},
        split::PartSplitter,
        ByteStream, MAX_PARTS, MIN_PART_SIZE,
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
    /// its tail's length (not its bytes: most appends need only that) and
    /// those parts.
    async fn append_offset(&self, claim: &Claim) -> Result<(u64, u64, Vec<Part>), UploadError> {
        let parts = contiguous_parts(&self.parts.list(claim.id).await?);
        let parts_end: u64 = parts.iter().map(|p| p.size as u64).sum();
        let (start, len) = self.tails.extent(claim.id).await?;
        if len > 0 && start != parts_end {
            return Err(UploadError::Internal(format!(
                "claim {}'s tail starts at {start} but its parts end at {parts_end}",
                claim.id
            )));
        }
        Ok((parts_end + len, len, parts))
    }

    /// The stored tail's bytes, when this chunk may cut a part (they are
    /// its front) or end the upload; else none: the chunk only adds to it.
    async fn carried(
        &self,
        claim: &Claim,
        tail_len: u64,
        chunk_len: Option<u64>,
        ends: bool,
    ) -> Result<Bytes, UploadError> {
        // Enough for S3's least part: the chunk's end may close one.
        let needed =
            tail_len > 0 && chunk_len.is_none_or(|len| tail_len + len >= MIN_PART_SIZE || ends);
        if !needed {
            return Ok(Bytes::new());
        }
        let tail = self.tails.bytes(claim.id).await?;
        match tail.len() as u64 == tail_len {
            true => Ok(tail),
            // Only the writer-lock holder changes the tail.
            false => Err(UploadError::Internal(format!(
                "claim {}'s tail changed under its writer",
                claim.id
            ))),
        }
    }

    async fn append_locked(
        &self,
        claim: &Claim,
        token: Uuid,
        chunk: Append,
    ) -> Result<Appended, UploadError> {
        let (offset, tail_len, parts) = self.append_offset(claim).await?;
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
        let ends = !open_ended && chunk.len.is_some_and(|len| offset + len == size);
        let carried = self.carried(claim, tail_len, chunk.len, ends).await?;
        // Never more than declared: the tail left out of the buffer above
        // counts on it.
        let limit = chunk.len.unwrap_or(size - offset);
        let body = at_most(chunk.body, limit);
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
            carried: carried.len() as u64,
            end: offset - carried.len() as u64,
            next: parts.len() as u32 + 1,
            recorded: parts,
            whole_only: chunk.checksum.is_some(),
        };
        let mut splitter = PartSplitter::new(carried, body, part_size as usize);
        let mut last = None;
        loop {
            match splitter.next_part().await {
                Ok(Some(part)) if !open_ended && cut.end + part.len() as u64 == size => {
                    last = Some(part)
                }
                Ok(Some(part)) => self.cut_part(claim, &mut cut, part).await?,
                Ok(None) => break,
                Err(e) if is_over_limit(&e) && limit == size - offset => {
                    return Err(UploadError::PastLength { length: size })
                }
                Err(e) if is_over_limit(&e) => {
                    return Err(UploadError::Invalid(
                        "the body is longer than its declared length".into(),
                    ))
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
        // What is left closes a part of its own when S3 allows it (at least
        // 5 MiB) and the parts left can still hold the rest of the upload:
        // chunks of 5 MiB and more then never pass through the tail.
        let rest = match closes_a_part(&cut, rest.len() as u64, size, part_size as u64) {
            true => {
                self.cut_part(claim, &mut cut, rest).await?;
                Bytes::new()
            }
            false => rest,
        };
        let expires_at = self.commit_tail(&mut cut, rest).await?;
        Ok(Appended::Partial {
            offset: cut.end + cut.carried,
            expires_at,
        })
    }
}

/// Whether `rest` bytes at the end of a chunk may close a part (rather than
/// wait in the tail for a full one): S3 takes them as a part, and parts of
/// `part_size` can still carry the rest of the upload within S3's 10,000.
fn closes_a_part(cut: &Cutter, rest: u64, size: u64, part_size: u64) -> bool {
    let after = size.saturating_sub(cut.end + rest);
    let parts_needed = u64::from(cut.next) + after.div_ceil(part_size.max(1));
    rest >= MIN_PART_SIZE && rest < part_size && parts_needed <= u64::from(MAX_PARTS)
}

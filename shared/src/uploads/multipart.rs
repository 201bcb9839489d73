//! Chunked uploads: init, parts (through the API or straight to S3),
//! status for resuming, and complete.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{
    choose_part_size,
    empty::is_empty_chunked,
    single::{check_filename, check_sha256_hex},
    Started, UploadError, Uploads,
};

use crate::{
    db::claims::{Created, NewClaim},
    domain::{part_layout, Claim, ClaimStatus, Part},
    store::{ByteStream, PresignedRequest, Sha256Tap, StoreError, MAX_PARTS},
};

/// A chunked upload to start.
#[derive(Debug, Clone)]
pub struct InitMultipart {
    /// The client's filename.
    pub filename: String,
    /// The object's content type.
    pub content_type: String,
    /// The whole object's size in bytes.
    pub size: u64,
    /// Bytes per part (the last part: the remainder); chosen when absent.
    pub part_size: Option<u64>,
    /// `pub/` or `priv/`.
    pub public: bool,
}

/// A part as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartReceipt {
    /// 1-based.
    pub part_number: u32,
    /// Bytes.
    pub size: u64,
    /// Hex SHA-256; null for parts sent straight to S3.
    pub sha256: Option<String>,
}

/// A claim and the parts received so far.
#[derive(Debug, Clone)]
pub struct UploadStatus {
    /// The claim.
    pub claim: Claim,
    /// Parts received, by number.
    pub parts: Vec<PartReceipt>,
}

impl Uploads {
    /// Starts a chunked upload: the claim is written first, then the store's
    /// session is opened, then its id recorded; each step is undone if a
    /// later one fails.
    pub async fn init_multipart(
        &self,
        owner: &str,
        req: InitMultipart,
        idempotency_key: Option<&str>,
    ) -> Result<Started, UploadError> {
        let (new, content_type) = self.chunked_claim(owner, &req)?;
        self.start_chunked(new, &content_type, idempotency_key)
            .await
    }

    /// The claim of a chunked upload of `req`, its size, content type,
    /// filename and part size checked (the part size chosen when absent),
    /// and the content type as it will be stored. Every chunked start
    /// (REST, resumable, a concatenation) declares this much.
    pub(super) fn chunked_claim(
        &self,
        owner: &str,
        req: &InitMultipart,
    ) -> Result<(NewClaim, String), UploadError> {
        self.limits.check_size(req.size)?;
        let content_type = self.limits.content_types.check(&req.content_type)?;
        check_filename(&req.filename)?;
        let part_size = choose_part_size(req.size, req.part_size, self.limits.part_size)?;
        let (part_count, _) = part_layout(req.size, part_size);
        let parts = Some((part_size as i64, part_count as i32));
        let new = self.new_claim(
            owner,
            &req.filename,
            &content_type,
            req.size,
            req.public,
            parts,
        );
        Ok((new, content_type))
    }

    /// Creates a chunked upload's claim (or finds the one an earlier request
    /// made with the same idempotency key), with its store session.
    pub(super) async fn start_chunked(
        &self,
        new: NewClaim,
        content_type: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Started, UploadError> {
        let created = self.create_claim(&new, idempotency_key).await?;
        match created {
            // No session for 0 bytes: see `empty`.
            Created::New(claim) if is_empty_chunked(&claim) => Ok(Started::Created(claim)),
            Created::New(claim) => {
                let origin = ClaimOrigin::ThisRequest;
                Ok(Started::Created(
                    self.open_session(claim, content_type, origin).await?,
                ))
            }
            // Finished meanwhile (by the sweeper's recovery, say), or with its
            // session: the answer is that claim, never a session opened on a
            // finished object.
            Created::Existing(claim)
                if is_empty_chunked(&claim)
                    || claim.upload_id.is_some()
                    || claim.status != ClaimStatus::Pending =>
            {
                Ok(Started::Replayed(claim))
            }
            // A retry of an init whose process died between the claim and the
            // session: open the session now rather than hand back a claim no
            // part can ever be sent to.
            Created::Existing(claim) => {
                let origin = ClaimOrigin::Retry;
                Ok(Started::Replayed(
                    self.open_session(claim, content_type, origin).await?,
                ))
            }
        }
    }

    /// Opens the store's session for a claim and records its id. When that
    /// fails, the session never outlives the failure, and a claim this
    /// request created is dropped with it. If another request recorded a
    /// session first, ours is aborted and theirs is the answer.
    async fn open_session(
        &self,
        claim: Claim,
        content_type: &str,
        origin: ClaimOrigin,
    ) -> Result<Claim, UploadError> {
        let fresh = origin == ClaimOrigin::ThisRequest;
        let upload_id = match self.store.create_multipart(&claim.key, content_type).await {
            Ok(upload_id) => upload_id,
            Err(e) => {
                if fresh {
                    let _ = self.claims.delete_pending(claim.id, true).await;
                }
                return Err(e.into());
            }
        };
        match self.claims.set_upload_id(claim.id, &upload_id).await {
            Ok(true) => Ok(Claim {
                upload_id: Some(upload_id),
                ..claim
            }),
            outcome => {
                let _ = self.store.abort_multipart(&claim.key, &upload_id).await;
                if fresh {
                    let _ = self.claims.delete_pending(claim.id, true).await;
                }
                outcome?;
                match self.claims.get(claim.id).await? {
                    Some(current) if !fresh && current.upload_id.is_some() => Ok(current),
                    _ => Err(UploadError::NotFound),
                }
            }
        }
    }

    /// Stores part `n` (streamed, exactly its expected length, checked
    /// against the client's SHA-256 when sent), replacing an earlier upload
    /// of the same part.
    pub async fn put_part(
        &self,
        owner: &str,
        id: Uuid,
        n: u32,
        len: Option<u64>,
        sha256: Option<&str>,
        body: ByteStream,
    ) -> Result<PartReceipt, UploadError> {
        let claim = by_number(self.get_pending(owner, id).await?)?;
        let len = len.ok_or(UploadError::LengthRequired)?;
        let expected = expected_part_size(&claim, n)?;
        if len != expected {
            return Err(UploadError::Invalid(format!(
                "part {n} must be {expected} bytes, not {len}"
            )));
        }
        if let Some(sha) = sha256 {
            check_sha256_hex(sha)?;
        }
        if is_empty_chunked(&claim) {
            return self.put_empty_part(&claim, sha256).await;
        }
        let upload_id = claim.upload_id.as_deref().ok_or(UploadError::NotFound)?;
        self.claims.touch(id, self.limits.claim_ttl).await?;
        let (body, digest) = Sha256Tap::new(body);
        let etag = self
            .store
            .upload_part(&claim.key, upload_id, n, Box::pin(body), len)
            .await
            .map_err(|e| match e {
                StoreError::NoSuchUpload => {
                    UploadError::Conflict("the upload was completed or aborted".into())
                }
                other => other.into(),
            })?;
        let Some(actual) = digest.digest_of(len).map(hex::encode) else {
            return Err(UploadError::Internal(
                "the store finished a part without reading its whole body".into(),
            ));
        };
        if sha256.is_some_and(|want| !want.eq_ignore_ascii_case(&actual)) {
            // The store holds the refused bytes now (S3 cannot drop one part
            // of a session): recorded as refused, complete names the part
            // missing until the client sends it again, even when it reads
            // the session back for presigned parts.
            self.parts.refuse(id, n as i32, &etag).await?;
            return Err(UploadError::ChecksumMismatch { actual });
        }
        let part = Part {
            part_number: n as i32,
            size: len as i64,
            sha256: Some(actual),
            etag,
        };
        if !self.parts.upsert(id, &part).await? {
            return Err(UploadError::Conflict(
                "the upload is no longer pending".into(),
            ));
        }
        self.claims.touch(id, self.limits.claim_ttl).await?;
        Ok(receipt(&part))
    }

    /// A URL the client PUTs part `n` to, straight to the store (S3 only).
    pub async fn presign_part(
        &self,
        owner: &str,
        id: Uuid,
        n: u32,
    ) -> Result<PresignedRequest, UploadError> {
        let claim = by_number(self.get_pending(owner, id).await?)?;
        let len = expected_part_size(&claim, n)?;
        if is_empty_chunked(&claim) {
            return Err(UploadError::Invalid(
                "a 0-byte upload's part goes through the API, not to the store".into(),
            ));
        }
        let upload_id = claim.upload_id.as_deref().ok_or(UploadError::NotFound)?;
        let presigned = self
            .store
            .presign_upload_part(&claim.key, upload_id, n, len, self.limits.presign_ttl)
            .await?;
        if !self.claims.set_direct_parts(id).await?
            || !self.claims.touch(id, self.limits.claim_ttl).await?
        {
            return Err(UploadError::Conflict(
                "the upload is no longer pending".into(),
            ));
        }
        Ok(presigned)
    }

    /// The claim and the parts received so far (read back from the store too
    /// when parts may have gone there directly).
    pub async fn status(&self, owner: &str, id: Uuid) -> Result<UploadStatus, UploadError> {
        let claim = self.get_owned(owner, id).await?;
        let parts = if claim.status == ClaimStatus::Pending {
            self.received_parts(&claim)
                .await?
                .values()
                .map(|(p, _)| p.clone())
                .collect()
        } else {
            self.parts.list(id).await?.iter().map(receipt).collect()
        };
        Ok(UploadStatus { claim, parts })
    }

    /// Parts by number with their etags: those the API recorded, and, for a
    /// claim with presigned parts, those the store holds (the store's copy
    /// wins: a direct re-upload replaces a part sent through the API).
    pub(super) async fn received_parts(
        &self,
        claim: &Claim,
    ) -> Result<BTreeMap<u32, (PartReceipt, String)>, UploadError> {
        let mut parts: BTreeMap<u32, (PartReceipt, String)> = self
            .parts
            .list(claim.id)
            .await?
            .iter()
            .map(|p| (p.part_number as u32, (receipt(p), p.etag.clone())))
            .collect();
        if let (true, Some(upload_id)) = (claim.direct_parts, &claim.upload_id) {
            let refused = self.parts.refused(claim.id).await?;
            for stored in self.store.list_parts(&claim.key, upload_id).await? {
                if refused.get(&stored.part_number) == Some(&stored.etag) {
                    // The bytes refused for their checksum are still the store's
                    // copy of this part: it stays missing.
                    parts.remove(&stored.part_number);
                    continue;
                }
                let recorded = parts
                    .get(&stored.part_number)
                    .filter(|(_, etag)| *etag == stored.etag);
                let sha256 = recorded.and_then(|(p, _)| p.sha256.clone());
                let part = PartReceipt {
                    part_number: stored.part_number,
                    size: stored.size,
                    sha256,
                };
                parts.insert(stored.part_number, (part, stored.etag));
            }
        }
        Ok(parts)
    }
}

/// Whose claim a session is opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClaimOrigin {
    /// This request created it: a failure drops it.
    ThisRequest,
    /// An earlier request did (a retry): it stays for that one.
    Retry,
}

/// `claim` if its parts come by number (the REST API's), else why not: a
/// resumable upload is appended to at an offset, and its last append
/// finishes it.
pub(super) fn by_number(claim: Claim) -> Result<Claim, UploadError> {
    match claim.resumable {
        None => Ok(claim),
        Some(_) => Err(UploadError::Conflict(
            "a resumable upload takes its bytes as appends at an offset (tus)".into(),
        )),
    }
}

/// The size part `n` must have, or [`UploadError::Invalid`] for a part number out of range.
pub(super) fn expected_part_size(claim: &Claim, n: u32) -> Result<u64, UploadError> {
    let (Some(part_size), Some(count)) = (claim.part_size, claim.part_count) else {
        return Err(UploadError::Conflict("not a chunked upload".into()));
    };
    let count = count as u32;
    if n == 0 || n > count || n > MAX_PARTS {
        return Err(UploadError::Invalid(format!(
            "part number must be between 1 and {count}"
        )));
    }
    let (_, size_of) = part_layout(claim.size as u64, part_size as u64);
    Ok(size_of(n))
}

fn receipt(p: &Part) -> PartReceipt {
    PartReceipt {
        part_number: p.part_number as u32,
        size: p.size as u64,
        sha256: p.sha256.clone(),
    }
}

//! Concatenation: a final upload assembled from the owner's finished
//! partial uploads (tus `Upload-Concat`), inside the store.
//!
//! Where S3's part rules allow (every partial but the last at least 5 MiB),
//! each partial becomes parts of the final by `copy_part` (S3
//! UploadPartCopy): no byte passes through the API. Otherwise the partials
//! are read back (`get`) and cut into parts of the server's size here. The
//! final is `uploaded` when this returns; the partials' claims and objects
//! then go through the delete queue.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use uuid::Uuid;

use super::{InitMultipart, Started, UploadError, Uploads};
use crate::{
    db::claims::request_fingerprint,
    domain::{composite_sha256, Claim, ClaimStatus, Concat, Part, Resumable},
    store::{
        split::PartSplitter, ByteStream, CompletedPart, ObjectStore, MAX_PART_SIZE, MIN_PART_SIZE,
    },
};

/// A final upload to assemble.
#[derive(Debug, Clone, Default)]
pub struct Concatenate {
    /// The partial uploads, in order.
    pub partials: Vec<Uuid>,
    /// The client's filename.
    pub filename: String,
    /// The object's content type.
    pub content_type: String,
    /// `pub/` or `priv/`.
    pub public: bool,
    /// The client's metadata, kept as sent.
    pub metadata: Option<String>,
}

impl Uploads {
    /// Assembles the final upload from `req.partials`: each must be one of
    /// the owner's finished partial uploads ([`UploadError::NotFound`] for
    /// an unknown or foreign one, [`UploadError::Conflict`] for one not
    /// finished or not partial).
    pub async fn concatenate(
        &self,
        owner: &str,
        req: Concatenate,
        idempotency_key: Option<&str>,
    ) -> Result<Started, UploadError> {
        let partials = self.finished_partials(owner, &req.partials).await?;
        let declared = InitMultipart {
            size: partials.iter().map(|c| c.size as u64).sum(),
            filename: req.filename,
            content_type: req.content_type,
            part_size: None,
            public: req.public,
        };
        let (mut new, content_type) = self.chunked_claim(owner, &declared)?;
        new.resumable = Some(Resumable {
            length_deferred: false,
            metadata: req.metadata,
            concat: Some(Concat::Final),
        });
        new.fingerprint = request_fingerprint(&new, "concatenate");
        // The partials' bytes become the final's: held once, not twice.
        new.releases = partials.iter().map(|c| c.id).collect();
        let claim = match self
            .start_chunked(new, &content_type, idempotency_key)
            .await?
        {
            Started::Replayed(c) if c.status == ClaimStatus::Uploaded => {
                return Ok(Started::Replayed(c))
            }
            started => started.claim().clone(),
        };
        let assembled = match claim.upload_id.as_deref() {
            None => self.put_empty_part(&claim, None).await.map(|_| None),
            Some(upload_id) => self.assemble(&claim, upload_id, &partials).await,
        };
        let finished = match assembled {
            Ok(None) if claim.upload_id.is_none() => self.complete_empty(&claim).await,
            Ok(sha256) => self.finish(&claim, sha256.as_deref()).await,
            Err(e) => Err(e),
        };
        let finished = match finished {
            Ok(c) => c,
            Err(e) => {
                // The partials stay; the final goes, with its session.
                if let Some(upload_id) = &claim.upload_id {
                    let _ = self.store.abort_multipart(&claim.key, upload_id).await;
                }
                let _ = self.claims.delete_pending(claim.id, true).await;
                return Err(e);
            }
        };
        for partial in &partials {
            // Queued with the claim's removal (the worker deletes the object).
            self.claims.discard_uploaded(partial.id).await?;
        }
        Ok(Started::Created(finished))
    }

    async fn finished_partials(
        &self,
        owner: &str,
        ids: &[Uuid],
    ) -> Result<Vec<Claim>, UploadError> {
        if ids.is_empty() {
            return Err(UploadError::Invalid(
                "a final upload names at least one partial".into(),
            ));
        }
        let mut partials = Vec::with_capacity(ids.len());
        for id in ids {
            let claim = self.get_owned(owner, *id).await?;
            let partial = claim.resumable.as_ref().and_then(|r| r.concat) == Some(Concat::Partial);
            if !partial {
                return Err(UploadError::Conflict(format!(
                    "upload {id} is not a partial upload"
                )));
            }
            if claim.status != ClaimStatus::Uploaded {
                return Err(UploadError::Conflict(format!(
                    "partial upload {id} is not finished"
                )));
            }
            partials.push(claim);
        }
        Ok(partials)
    }

    /// Puts the partials' bytes into the final's session and completes it;
    /// the composite SHA-256 when every part's is known (parts cut here,
    /// not copied in the store).
    async fn assemble(
        &self,
        claim: &Claim,
        upload_id: &str,
        partials: &[Claim],
    ) -> Result<Option<String>, UploadError> {
        let copyable = partials
            .iter()
            .rev()
            .skip(1)
            .all(|p| p.size as u64 >= MIN_PART_SIZE);
        let parts = if copyable {
            self.copy_parts(claim, upload_id, partials).await?
        } else {
            self.cut_parts(claim, partials).await?
        };
        let completed: Vec<CompletedPart> = parts
            .iter()
            .map(|p| CompletedPart {
                part_number: p.part_number as u32,
                etag: p.etag.clone(),
            })
            .collect();
        self.store
            .complete_multipart(&claim.key, upload_id, &completed)
            .await?;
        Ok(composite_sha256(parts.iter().map(|p| p.sha256.as_deref())))
    }

    /// Each partial as parts of at most S3's largest, copied in the store.
    async fn copy_parts(
        &self,
        claim: &Claim,
        upload_id: &str,
        partials: &[Claim],
    ) -> Result<Vec<Part>, UploadError> {
        let mut parts = Vec::new();
        for partial in partials {
            let size = partial.size as u64;
            let pieces = size.div_ceil(MAX_PART_SIZE).max(1);
            let piece = size.div_ceil(pieces);
            for i in 0..pieces {
                let range = (i * piece)..((i + 1) * piece).min(size);
                let n = parts.len() as u32 + 1;
                let len = range.end - range.start;
                let etag = self
                    .store
                    .copy_part(&partial.key, range, &claim.key, upload_id, n)
                    .await?;
                parts.push(Part {
                    part_number: n as i32,
                    size: len as i64,
                    sha256: None,
                    etag,
                });
            }
        }
        Ok(parts)
    }

    /// The partials read back in order and cut into parts of the final's
    /// part size (some partial but the last is under S3's least part).
    async fn cut_parts(&self, claim: &Claim, partials: &[Claim]) -> Result<Vec<Part>, UploadError> {
        let keys: Vec<String> = partials.iter().map(|p| p.key.clone()).collect();
        let store: Arc<dyn ObjectStore> = self.store.clone();
        let body: ByteStream = futures::stream::iter(keys)
            .then(move |key| {
                let store = store.clone();
                async move { store.get(&key).await.map_err(std::io::Error::other) }
            })
            .try_flatten()
            .boxed();
        let part_size = claim.part_size.unwrap_or(claim.size).max(1) as usize;
        let mut splitter = PartSplitter::new(Bytes::new(), body, part_size);
        let mut parts = Vec::new();
        loop {
            let bytes = match splitter.next_part().await {
                Ok(Some(bytes)) => bytes,
                Ok(None) => break,
                Err(e) => {
                    return Err(UploadError::Internal(format!(
                        "reading a partial upload: {e}"
                    )))
                }
            };
            parts.push(self.send_part(claim, parts.len() as u32 + 1, bytes).await?);
        }
        let rest = splitter.remainder();
        if !rest.is_empty() {
            parts.push(self.send_part(claim, parts.len() as u32 + 1, rest).await?);
        }
        Ok(parts)
    }
}

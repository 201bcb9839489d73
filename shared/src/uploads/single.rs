//! Single-shot uploads: the whole object in one request body.

use super::{Started, UploadError, Uploads};
use crate::{
    db::claims::Created,
    domain::{Claim, ClaimStatus},
    input,
    store::{ByteStream, Sha256Tap},
};

/// A single-shot upload's request, parsed.
#[derive(Debug, Clone)]
pub struct SingleUpload {
    /// The client's filename.
    pub filename: String,
    /// The declared content type.
    pub content_type: String,
    /// The declared length in bytes (`None`: [`UploadError::LengthRequired`]).
    pub len: Option<u64>,
    /// `pub/` or `priv/`.
    pub public: bool,
    /// The SHA-256 the client says the bytes have, hex.
    pub sha256: Option<String>,
    /// The client's idempotency key, if any.
    pub idempotency_key: Option<String>,
}

impl Uploads {
    /// Checks a single-shot request before its body is read: length
    /// required, too large, content type, then the rest of the request,
    /// in the contract's order.
    pub fn check_single(&self, req: &SingleUpload) -> Result<(u64, String), UploadError> {
        let len = req.len.ok_or(UploadError::LengthRequired)?;
        self.limits.check_size(len)?;
        let content_type = self.limits.content_types.check(&req.content_type)?;
        check_filename(&req.filename)?;
        if let Some(sha) = &req.sha256 {
            check_sha256_hex(sha)?;
        }
        Ok((len, content_type))
    }

    /// Stores a single-shot upload: a pending claim first, then the body
    /// streamed to the store with its SHA-256 computed on the way, then the
    /// claim marked uploaded. An earlier upload found by its idempotency key
    /// is [`Started::Replayed`] (the body then goes unread).
    pub async fn put_single(
        &self,
        owner: &str,
        req: SingleUpload,
        body: ByteStream,
    ) -> Result<Started, UploadError> {
        let (len, content_type) = self.check_single(&req)?;
        let new = self.new_claim(owner, &req.filename, &content_type, len, req.public, None);
        let created = self
            .create_claim(&new, req.idempotency_key.as_deref())
            .await?;
        let claim = match created {
            Created::New(claim) => claim,
            Created::Existing(claim) => {
                return match claim.status {
                    ClaimStatus::Uploaded => Ok(Started::Replayed(claim)),
                    ClaimStatus::Pending => Err(UploadError::Conflict(
                        "an upload with this idempotency key is still in progress".into(),
                    )),
                }
            }
        };

        let (body, digest) = Sha256Tap::new(body);
        if let Err(e) = self
            .store
            .put(&claim.key, Box::pin(body), len, &content_type)
            .await
        {
            // A failed put may still have left the object (a lost response,
            // a rename that landed before its directory sync failed):
            // dropping the claim queues the key's delete either way.
            self.drop_failed(&claim).await?;
            return Err(e.into());
        }
        // A store that reports success has read the whole declared length
        // (an empty body may never be polled at all: its digest is that of
        // no bytes).
        let Some(actual) = digest.digest_of(len).map(hex::encode) else {
            self.drop_failed(&claim).await?;
            return Err(UploadError::Internal(
                "the store finished without reading the whole body".into(),
            ));
        };
        if req
            .sha256
            .as_deref()
            .is_some_and(|want| !want.eq_ignore_ascii_case(&actual))
        {
            // Nothing is stored after a checksum mismatch: the object goes now (its delete
            // is queued with the claim's removal all the same, should this
            // one fail).
            let _ = self.store.delete(&claim.key).await;
            self.drop_failed(&claim).await?;
            return Err(UploadError::ChecksumMismatch { actual });
        }
        Ok(Started::Created(self.finish(&claim, Some(&actual)).await?))
    }

    /// Undoes a failed single-shot upload: the claim goes and, in the same
    /// transaction, its key's delete is queued (whatever the store kept of
    /// the body). When the claim is gone already, whoever removed it queued
    /// the key. A database that cannot be reached fails the request; the
    /// pending claim then expires and the sweeper queues the key.
    async fn drop_failed(&self, claim: &Claim) -> Result<(), UploadError> {
        self.claims.delete_pending(claim.id, true).await?;
        Ok(())
    }
}

/// [`UploadError::Invalid`] for an empty, overlong ([`input::FILENAME`]) or control-character
/// filename.
pub(super) fn check_filename(name: &str) -> Result<(), UploadError> {
    let max = input::FILENAME.max_len;
    if name.trim().is_empty() || name.len() > max || name.chars().any(char::is_control) {
        return Err(UploadError::Invalid(format!(
            "filename must be 1 to {max} bytes without control characters"
        )));
    }
    Ok(())
}

/// [`UploadError::Invalid`] unless `sha` is 64 hex digits.
pub(super) fn check_sha256_hex(sha: &str) -> Result<(), UploadError> {
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(UploadError::Invalid(
            "a SHA-256 must be 64 hex digits".into(),
        ));
    }
    Ok(())
}

//! Resumable uploads: what tus starts. Appended to at an offset
//! ([`Uploads::append`]), their size known at the start or declared with a
//! later append, alone or as partials of a concatenation.

use uuid::Uuid;

use super::{InitMultipart, Started, UploadError, Uploads};
use crate::{
    db::claims::request_fingerprint,
    domain::{part_layout, Claim, ClaimStatus, Concat, Resumable},
};

/// A resumable upload to start.
#[derive(Debug, Clone, Default)]
pub struct StartResumable {
    /// The client's filename.
    pub filename: String,
    /// The object's content type.
    pub content_type: String,
    /// The size in bytes; `None` when the client declares it later.
    pub size: Option<u64>,
    /// `pub/` or `priv/`.
    pub public: bool,
    /// The client's metadata, kept as sent.
    pub metadata: Option<String>,
    /// A partial upload, to be concatenated later.
    pub partial: bool,
}

/// A resumable upload and how far it has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumableState {
    /// The claim.
    pub claim: Claim,
    /// Bytes received (the size once uploaded).
    pub offset: u64,
}

impl Uploads {
    /// Starts a resumable upload: a pending claim with its store session,
    /// in parts of the server's size (no session for a known size of 0).
    pub async fn start_resumable(
        &self,
        owner: &str,
        req: StartResumable,
        idempotency_key: Option<&str>,
    ) -> Result<Started, UploadError> {
        // A deferred size is bounded by the limit: the claim holds that
        // bound until the client declares the size.
        let declared = InitMultipart {
            size: req.size.unwrap_or(self.limits.max_upload_size),
            filename: req.filename,
            content_type: req.content_type,
            part_size: None,
            public: req.public,
        };
        let (mut new, content_type) = self.chunked_claim(owner, &declared)?;
        new.resumable = Some(Resumable {
            length_deferred: req.size.is_none(),
            metadata: req.metadata,
            concat: req.partial.then_some(Concat::Partial),
        });
        new.fingerprint = request_fingerprint(&new, "resumable");
        self.start_chunked(new, &content_type, idempotency_key)
            .await
    }

    /// The caller's resumable upload and its offset, in one read of the
    /// database (no store call: tus clients ask this often).
    pub async fn resumable(&self, owner: &str, id: Uuid) -> Result<ResumableState, UploadError> {
        let Some((claim, offset)) = self.claims.get_with_offset(id).await? else {
            return Err(UploadError::NotFound);
        };
        if claim.owner != owner || claim.resumable.is_none() {
            return Err(UploadError::NotFound);
        }
        let offset = match claim.status {
            ClaimStatus::Uploaded => claim.size as u64,
            ClaimStatus::Pending => offset,
        };
        Ok(ResumableState { claim, offset })
    }

    /// Declares the size of an upload whose size was deferred, with the
    /// writer lock held; a size declared again must be the same.
    pub(super) async fn declare_length(
        &self,
        claim: &Claim,
        token: Uuid,
        len: u64,
        offset: u64,
    ) -> Result<Claim, UploadError> {
        let deferred = claim.resumable.as_ref().is_some_and(|r| r.length_deferred);
        if !deferred {
            return match claim.size as u64 == len {
                true => Ok(claim.clone()),
                false => Err(UploadError::Invalid(format!(
                    "the upload's length is {} already",
                    claim.size
                ))),
            };
        }
        self.limits.check_size(len)?;
        if len < offset {
            return Err(UploadError::Invalid(format!(
                "the length {len} is less than the {offset} bytes already received"
            )));
        }
        let part_size = claim.part_size.unwrap_or(len as i64).max(1) as u64;
        let (part_count, _) = part_layout(len, part_size);
        match self
            .claims
            .set_length(claim.id, token, len as i64, part_count as i32)
            .await?
        {
            Some(claim) => Ok(claim),
            None => Err(UploadError::Busy(
                "another request took this upload over".into(),
            )),
        }
    }
}

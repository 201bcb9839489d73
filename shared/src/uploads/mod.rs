//! The upload service: what the API's upload endpoints do, without HTTP.
//!
//! Every flow writes the claim first and the object second, so a crash in
//! between leaves a pending claim the sweeper finds, never an object nobody
//! knows. Whoever loses a race cleans up after itself: a put or complete that
//! finds its claim gone queues its object's delete.

mod append;
mod checksum;
mod complete;
mod concat;
mod empty;
mod error;
mod limits;
mod multipart;
mod progress;
mod resumable;
mod single;

use std::sync::Arc;

use crate::db::Pool;
use uuid::Uuid;

pub use append::{Append, Appended};
pub use checksum::{ChecksumAlgorithm, ChunkChecksum};
pub use concat::Concatenate;
pub use error::UploadError;
pub use limits::{choose_part_size, ContentTypes, Limits};
pub use multipart::{InitMultipart, PartReceipt, UploadStatus};
pub use progress::{PartProgress, Progress};
pub use resumable::{ResumableState, StartResumable};
pub use single::SingleUpload;

use crate::{
    db::{
        claims::{request_fingerprint, CreateError, Created, NewClaim, Transition},
        deletes::NewDelete,
        ClaimStore, DeleteQueue, PartStore, TailStore,
    },
    domain::{object_key, Claim, ClaimStatus, DeleteReason},
    store::{ObjectStore, StoreError},
};

/// What a start (single-shot or chunked) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// A new upload.
    Created(Claim),
    /// An earlier upload, found by the request's idempotency key: a retry,
    /// nothing new was started.
    Replayed(Claim),
}

impl Started {
    /// The upload's claim, either way.
    pub fn claim(&self) -> &Claim {
        match self {
            Started::Created(c) | Started::Replayed(c) => c,
        }
    }
}

/// The upload service, shared by every request of an API process.
#[derive(Clone, Debug)]
pub struct Uploads {
    claims: ClaimStore,
    parts: PartStore,
    tails: TailStore,
    queue: DeleteQueue,
    store: Arc<dyn ObjectStore>,
    limits: Arc<Limits>,
    /// `claimcheck_quota_refusals_total`, when counted.
    refusals: Option<prometheus::IntCounterVec>,
}

impl Uploads {
    /// A service over `pool` and `store`.
    pub fn new(pool: Pool, store: Arc<dyn ObjectStore>, limits: Limits) -> Self {
        Self {
            claims: ClaimStore::new(pool.clone()),
            parts: PartStore::new(pool.clone()),
            tails: TailStore::new(pool.clone()),
            queue: DeleteQueue::new(pool),
            store,
            limits: Arc::new(limits),
            refusals: None,
        }
    }

    /// Counts starts refused by a quota in `counter` (labelled by quota).
    pub fn counting_refusals(mut self, counter: prometheus::IntCounterVec) -> Self {
        self.refusals = Some(counter);
        self
    }

    /// Creates a claim (or finds the one its idempotency key made) within
    /// the owner's cap and quotas, counting a refusal.
    async fn create_claim(
        &self,
        new: &NewClaim,
        idempotency_key: Option<&str>,
    ) -> Result<Created, UploadError> {
        let caps = self.limits.caps();
        match self
            .claims
            .create_idempotent(new, &caps, idempotency_key)
            .await
        {
            Err(CreateError::Refused(refused)) => {
                if let Some(counter) = &self.refusals {
                    counter.with_label_values(&[refused.quota.as_str()]).inc();
                }
                Err(CreateError::Refused(refused).into())
            }
            other => Ok(other?),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The caller's own claim, else [`UploadError::NotFound`] (also for
    /// another owner's claim: the answer must not tell them apart).
    pub async fn get_owned(&self, owner: &str, id: Uuid) -> Result<Claim, UploadError> {
        match self.claims.get(id).await? {
            Some(c) if c.owner == owner => Ok(c),
            _ => Err(UploadError::NotFound),
        }
    }

    /// The caller's claim if it is pending and unexpired (else expired, or a
    /// conflict).
    async fn get_pending(&self, owner: &str, id: Uuid) -> Result<Claim, UploadError> {
        self.pending(self.get_owned(owner, id).await?)
    }

    /// `claim` if it is pending and unexpired, else why not.
    fn pending(&self, claim: Claim) -> Result<Claim, UploadError> {
        match claim.status {
            ClaimStatus::Uploaded => Err(UploadError::Conflict(
                "the upload is already complete".into(),
            )),
            ClaimStatus::Pending if is_expired(&claim) => Err(UploadError::Expired),
            ClaimStatus::Pending => Ok(claim),
        }
    }

    /// The caller's uploads, newest first.
    pub async fn list(
        &self,
        owner: &str,
        status: Option<ClaimStatus>,
        limit: i64,
        cursor: Option<Uuid>,
    ) -> Result<Vec<Claim>, UploadError> {
        Ok(self
            .claims
            .list_by_owner(owner, status, limit, cursor)
            .await?)
    }

    /// Drops an upload: a pending one's session is aborted before answering
    /// (queued instead when the store fails); an uploaded, unconsumed one's
    /// object is queued for delete (`discarded`).
    pub async fn discard(&self, owner: &str, id: Uuid) -> Result<(), UploadError> {
        let claim = self.get_owned(owner, id).await?;
        if claim.status == ClaimStatus::Uploaded {
            return match self.claims.discard_uploaded(id).await? {
                Some(_) => Ok(()),
                None => Err(UploadError::NotFound),
            };
        }
        // A single-shot body may still be on its way, or a complete racing
        // this discard may have assembled the object: the key's delete is
        // queued with the claim's removal either way (the worker skips a
        // key that turns out live). A session the store could not abort now
        // is queued with it.
        let aborted = match &claim.upload_id {
            Some(upload_id) => match self.store.abort_multipart(&claim.key, upload_id).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, claim = %id, "abort failed; queued instead");
                    false
                }
            },
            None => true,
        };
        match self.claims.delete_pending(id, aborted).await? {
            Some(_) => Ok(()),
            // A complete won the race: the claim is uploaded now; discard that.
            None => match self.claims.discard_uploaded(id).await? {
                Some(_) => Ok(()),
                None => Err(UploadError::NotFound),
            },
        }
    }

    /// A new pending claim of `owner`'s, with a server-chosen key.
    fn new_claim(
        &self,
        owner: &str,
        filename: &str,
        content_type: &str,
        size: u64,
        public: bool,
        parts: Option<(i64, i32)>,
    ) -> NewClaim {
        let id = Uuid::now_v7();
        let mut new = NewClaim {
            id,
            key: object_key(
                &self.limits.key_prefix,
                public,
                id,
                filename,
                chrono::Utc::now(),
            ),
            owner: owner.to_owned(),
            filename: filename.to_owned(),
            content_type: content_type.to_owned(),
            size: size as i64,
            public,
            parts,
            ttl: self.limits.claim_ttl,
            resumable: None,
            fingerprint: String::new(),
            releases: Vec::new(),
        };
        let kind = if new.parts.is_some() {
            "multipart"
        } else {
            "single"
        };
        new.fingerprint = request_fingerprint(&new, kind);
        new
    }

    /// Marks a claim whose object the store now holds whole as uploaded,
    /// with its checksum: the last step of every upload. A claim that ran
    /// out meanwhile is removed (its key queued): left with its whole
    /// object, the sweeper would recover it to `uploaded` after this request
    /// was told it expired. A claim gone meanwhile (discarded or swept while
    /// the bytes landed) leaves an object that is ours to clean up.
    async fn finish(&self, claim: &Claim, sha256: Option<&str>) -> Result<Claim, UploadError> {
        let ttl = self.limits.unconsumed_ttl;
        match self.claims.mark_uploaded(claim.id, sha256, ttl).await? {
            Transition::Done(c) | Transition::AlreadyDone(c) => Ok(c),
            Transition::Expired(_) => {
                self.claims.delete_pending(claim.id, true).await?;
                Err(UploadError::Expired)
            }
            Transition::NotFound => {
                self.orphaned(claim).await?;
                Err(UploadError::NotFound)
            }
        }
    }

    /// Queues the delete of an object this request wrote but lost the race
    /// for (its claim was swept, discarded or expired meanwhile), unless the
    /// key is live by now: a racing complete may have finished the same
    /// claim and the business consumed it. A queue that cannot be written is
    /// retried briefly, then fails the request: an unrecorded object would
    /// leak.
    async fn orphaned(&self, claim: &Claim) -> Result<(), UploadError> {
        let item = NewDelete {
            key: claim.key.clone(),
            upload_id: None,
            reason: DeleteReason::Discarded,
        };
        let mut pause = std::time::Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match self.queue.enqueue_unless_live(&item).await {
                Ok(queued) => {
                    if !queued {
                        tracing::info!(key = %claim.key, "key is live again; nothing to clean up");
                    }
                    return Ok(());
                }
                Err(e) if attempt < 4 => {
                    tracing::warn!(error = %e, key = %claim.key, attempt, "could not queue an orphaned object's delete; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 4;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::error!(error = %e, key = %claim.key, "could not queue an orphaned object's delete; the audit will report it");
                    return Err(e.into());
                }
            }
        }
    }
}

/// The one rule for "the object is whole": the store holds an object at the
/// claim's key of exactly the claim's declared size. `head` is the store's
/// answer for the key; `Ok(false)` for no object or another size (a torn
/// or foreign object), the store's error when it could not tell.
/// Complete uses it after a lost session, the sweeper before it recovers an
/// expired claim.
pub fn object_is_whole(
    claim: &Claim,
    head: Result<crate::store::ObjectMeta, StoreError>,
) -> Result<bool, StoreError> {
    match head {
        Ok(meta) => Ok(i64::try_from(meta.size).ok() == Some(claim.size)),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

fn is_expired(claim: &Claim) -> bool {
    claim.expires_at.is_some_and(|t| t <= chrono::Utc::now())
}

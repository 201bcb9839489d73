//! Complete: assembling a chunked upload's parts into its object, one
//! complete per claim at a time across all pods (the claim's writer lock).

use uuid::Uuid;

use super::{empty::is_empty_chunked, multipart::by_number, object_is_whole, UploadError, Uploads};
use crate::{
    db::claims::WriterLock,
    domain::{composite_sha256, Claim, ClaimStatus},
    store::{check_layout, CompletedPart, StoreError},
};

/// How long a complete waits for a concurrent complete of the same claim
/// before answering that it is busy.
const COMPLETE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
/// The writer lock's lease; renewed every third of it while the work lasts.
pub(super) const WRITER_LEASE: std::time::Duration = std::time::Duration::from_secs(10);
/// How often a waiting complete looks again.
const WRITER_POLL: std::time::Duration = std::time::Duration::from_millis(100);

impl Uploads {
    /// Assembles the parts into the object and marks the claim uploaded.
    /// Idempotent: once uploaded, returns the same claim.
    ///
    /// Concurrent completes of one claim (a double click, a retry after a
    /// timeout, on any pods) are serialised by the claim's writer lock: one
    /// does the work, the others wait for it and answer with its outcome, or
    /// [`UploadError::Busy`] when it takes longer than [`COMPLETE_WAIT`].
    pub async fn complete(&self, owner: &str, id: Uuid) -> Result<Claim, UploadError> {
        let deadline = tokio::time::Instant::now() + COMPLETE_WAIT;
        loop {
            let claim = self.get_owned(owner, id).await?;
            if claim.status == ClaimStatus::Uploaded {
                return Ok(claim);
            }
            let claim = by_number(self.pending(claim)?)?;
            match self.claims.lock_writer(id, WRITER_LEASE).await? {
                WriterLock::Acquired(token) => {
                    let work = self.complete_locked(&claim);
                    let result = self.with_writer(id, token, work).await;
                    // Best effort: a lock not released runs out by itself.
                    let _ = self.claims.unlock_writer(id, token).await;
                    return result;
                }
                // Gone, or uploaded meanwhile: the next round says which.
                WriterLock::NotPending => {}
                WriterLock::Busy if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(WRITER_POLL).await;
                }
                WriterLock::Busy => {
                    return Err(UploadError::Busy(
                        "another request is completing this upload".into(),
                    ))
                }
            }
        }
    }

    /// Runs `work` while renewing the writer lock of claim `id`, so a long
    /// assembly keeps it and a dead pod's lock runs out within one lease.
    ///
    /// The renewals are a future of their own, polled beside `work`: a
    /// renewal updates the claim row, which `work`'s own transaction may hold
    /// (an append's commit locks it first), and a renewal awaited in place of
    /// `work` would wait for a transaction that could never go on, a
    /// deadlock PostgreSQL cannot see (the fault suite's Garage scenario hit
    /// it when a part upload stalled across a renewal).
    pub(super) async fn with_writer<T>(
        &self,
        id: Uuid,
        token: Uuid,
        work: impl std::future::Future<Output = Result<T, UploadError>>,
    ) -> Result<T, UploadError> {
        let renewals = async {
            let mut renew = tokio::time::interval(WRITER_LEASE / 3);
            renew.tick().await; // the first tick is immediate
            loop {
                renew.tick().await;
                if let Err(e) = self.claims.renew_writer(id, token, WRITER_LEASE).await {
                    tracing::warn!(error = %e, claim = %id, "could not renew the writer lock");
                }
            }
        };
        tokio::select! {
            result = work => result,
            never = renewals => never,
        }
    }

    /// Complete's work, with the claim's writer lock held: no other complete
    /// of this claim runs meanwhile.
    async fn complete_locked(&self, claim: &Claim) -> Result<Claim, UploadError> {
        if is_empty_chunked(claim) {
            return self.complete_empty(claim).await;
        }
        let upload_id = claim.upload_id.clone().ok_or(UploadError::NotFound)?;
        let received = self.received_parts(claim).await?;
        // The REST contract names every part of its fixed layout not yet
        // received, also those after the last one received.
        if let Some(count) = claim.part_count {
            let count = count as u32;
            let missing: Vec<u32> = (1..=count).filter(|n| !received.contains_key(n)).collect();
            if !missing.is_empty() {
                return Err(UploadError::MissingParts(missing));
            }
        }
        let sizes = received.iter().map(|(n, (p, _))| (*n, p.size)).collect();
        check_layout(&sizes, claim.size as u64)?;
        let completed: Vec<CompletedPart> = received
            .iter()
            .map(|(n, (_, etag))| CompletedPart {
                part_number: *n,
                etag: etag.clone(),
            })
            .collect();
        if let Err(e) = self
            .store
            .complete_multipart(&claim.key, &upload_id, &completed)
            .await
        {
            // No other complete runs now, so a session that is gone was
            // either assembled by a process that died before marking the
            // claim (the object is whole: finish the job), or aborted.
            match e {
                StoreError::NoSuchUpload if self.holds_whole_object(claim).await => {}
                StoreError::NoSuchUpload => {
                    return Err(UploadError::Conflict("the upload was aborted".into()))
                }
                e => return Err(e.into()),
            }
        }
        let sha256 = composite_sha256(received.values().map(|(p, _)| p.sha256.as_deref()));
        self.finish(claim, sha256.as_deref()).await
    }

    /// Whether the store holds the claim's whole object ([`object_is_whole`]);
    /// a store that cannot tell counts as no.
    pub(super) async fn holds_whole_object(&self, claim: &Claim) -> bool {
        object_is_whole(claim, self.store.head(&claim.key).await).unwrap_or(false)
    }
}

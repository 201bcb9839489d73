//! Listing for the audit and the reaper: objects page by page, sessions
//! all at once. Kept apart from `s3.rs` because both walk pages by hand.

use chrono::{DateTime, Utc};

use super::{errors::map_sdk_error, S3Store};
use crate::store::{ListedObject, MultipartSession, StoreError};

impl S3Store {
    /// One `ListObjectsV2` page under `prefix` (checked by the caller).
    pub(super) async fn objects_page(
        &self,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<(Vec<ListedObject>, Option<String>), StoreError> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(1000)
            .set_continuation_token(continuation)
            .send()
            .await
            .map_err(|e| map_sdk_error("ListObjectsV2", e))?;
        let objects = page
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ListedObject {
                    key: o.key()?.to_owned(),
                    size: u64::try_from(o.size().unwrap_or_default()).unwrap_or_default(),
                })
            })
            .collect();
        let next = match page.is_truncated() {
            Some(true) => page.next_continuation_token().map(str::to_owned),
            _ => None,
        };
        Ok((objects, next))
    }

    /// Every session under `prefix` (checked by the caller) created before
    /// `older_than`, following `ListMultipartUploads`' markers.
    pub(super) async fn sessions_before(
        &self,
        prefix: &str,
        older_than: DateTime<Utc>,
    ) -> Result<Vec<MultipartSession>, StoreError> {
        let mut sessions = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        // No paginator exists for this operation: follow the two markers.
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await
                .map_err(|e| map_sdk_error("ListMultipartUploads", e))?;
            for upload in page.uploads() {
                let (Some(key), Some(upload_id), Some(initiated)) =
                    (upload.key(), upload.upload_id(), upload.initiated())
                else {
                    continue;
                };
                let Some(initiated) =
                    DateTime::from_timestamp(initiated.secs(), initiated.subsec_nanos())
                else {
                    continue;
                };
                if initiated < older_than {
                    sessions.push(MultipartSession {
                        key: key.to_owned(),
                        upload_id: upload_id.to_owned(),
                        initiated,
                    });
                }
            }
            let next = (
                page.next_key_marker()
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned),
                page.next_upload_id_marker()
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned),
            );
            // Stop on a server that says "truncated" without moving on.
            if page.is_truncated() != Some(true)
                || next.0.is_none()
                || next == (key_marker.clone(), id_marker.clone())
            {
                break;
            }
            (key_marker, id_marker) = next;
        }
        Ok(sessions)
    }
}

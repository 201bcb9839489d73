//! Parts of a multipart session: listing them, and checking a complete
//! request against them before sending it.

use super::{errors::map_sdk_error, S3Store};
use crate::store::{CompletedPart, StoreError, StoredPart, MIN_PART_SIZE};

impl S3Store {
    /// Every part of a session (`ListParts` pages of up to 1000).
    pub(super) async fn all_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<StoredPart>, StoreError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
                .send()
                .await
                .map_err(|e| map_sdk_error("ListParts", e))?;
            for part in page.parts() {
                parts.push(StoredPart {
                    part_number: u32::try_from(part.part_number().unwrap_or_default())
                        .unwrap_or_default(),
                    size: u64::try_from(part.size().unwrap_or_default()).unwrap_or_default(),
                    etag: part.e_tag().unwrap_or_default().to_owned(),
                });
            }
            let next = page.next_part_number_marker().map(str::to_owned);
            // Stop on a server that says "truncated" without moving on.
            if page.is_truncated() != Some(true) || next.is_none() || next == marker {
                break;
            }
            marker = next;
        }
        parts.sort_by_key(|p| p.part_number);
        Ok(parts)
    }
}

/// Checks a complete request against the parts the server holds, as S3 would:
/// ascending part numbers, each part present with that ETag, every part but the
/// last at least [`MIN_PART_SIZE`].
pub(super) fn check_complete(
    requested: &[CompletedPart],
    stored: &[StoredPart],
) -> Result<(), StoreError> {
    if requested.is_empty() {
        return Err(StoreError::InvalidPart(
            "a multipart upload needs at least one part".into(),
        ));
    }
    for (i, part) in requested.iter().enumerate() {
        let n = part.part_number;
        if i > 0 && requested[i - 1].part_number >= n {
            return Err(StoreError::InvalidPart(format!(
                "parts must be listed in ascending order: {} then {n}",
                requested[i - 1].part_number
            )));
        }
        let held = stored
            .binary_search_by_key(&n, |p| p.part_number)
            .map(|at| &stored[at])
            .map_err(|_| StoreError::InvalidPart(format!("part {n} was not uploaded")))?;
        if held.etag.trim_matches('"') != part.etag.trim_matches('"') {
            return Err(StoreError::InvalidPart(format!(
                "part {n}: ETag does not match"
            )));
        }
        if i + 1 < requested.len() && held.size < MIN_PART_SIZE {
            return Err(StoreError::InvalidPart(format!(
                "part {n} has {} bytes; every part but the last needs at least {MIN_PART_SIZE}",
                held.size
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(n: u32, size: u64, etag: &str) -> StoredPart {
        StoredPart {
            part_number: n,
            size,
            etag: etag.into(),
        }
    }

    fn req(n: u32, etag: &str) -> CompletedPart {
        CompletedPart {
            part_number: n,
            etag: etag.into(),
        }
    }

    #[test]
    fn complete_requests_are_checked_like_s3_does() {
        let big = MIN_PART_SIZE;
        let held = [
            stored(1, big, "\"a\""),
            stored(2, big, "\"b\""),
            stored(3, 10, "\"c\""),
        ];
        assert!(check_complete(&[req(1, "\"a\""), req(2, "b"), req(3, "\"c\"")], &held).is_ok());
        assert!(
            check_complete(&[req(1, "a"), req(3, "c")], &held).is_ok(),
            "gaps are fine"
        );
        let invalid = |parts: &[CompletedPart]| {
            matches!(
                check_complete(parts, &held),
                Err(StoreError::InvalidPart(_))
            )
        };
        assert!(invalid(&[]));
        assert!(invalid(&[req(2, "b"), req(1, "a")]), "order");
        assert!(invalid(&[req(1, "a"), req(1, "a")]), "duplicate");
        assert!(invalid(&[req(1, "x")]), "etag");
        assert!(invalid(&[req(4, "d")]), "missing");
        assert!(invalid(&[req(3, "c"), req(4, "d")]), "small non-final part");
    }
}

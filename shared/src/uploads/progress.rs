//! Progress: how far a chunked upload has come, as a protocol that resumes
//! at a byte offset (tus) asks it.

use uuid::Uuid;

use super::{UploadError, Uploads};
use crate::domain::ClaimStatus;

/// A received part as progress reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartProgress {
    /// 1-based.
    pub part_number: u32,
    /// Bytes.
    pub size: u64,
    /// The store's ETag of the part (what complete assembles).
    pub etag: String,
    /// Hex SHA-256; `None` for parts sent straight to the store.
    pub sha256: Option<String>,
}

/// How far an upload has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Bytes received without a hole from byte 0: the parts numbered from 1
    /// with no gap, then the appended bytes short of a part.
    /// The whole size once the upload is complete.
    pub offset: u64,
    /// The parts received, by part number (empty once complete: the object
    /// is whole and the part rows are gone).
    pub parts: Vec<PartProgress>,
}

impl Uploads {
    /// The upload's progress: the contiguous byte offset and the parts with
    /// their ETags and SHA-256, read back from the store too when parts may
    /// have gone there directly (as [`Uploads::status`]).
    pub async fn progress(&self, owner: &str, id: Uuid) -> Result<Progress, UploadError> {
        let claim = self.get_owned(owner, id).await?;
        if claim.status == ClaimStatus::Uploaded {
            return Ok(Progress {
                offset: claim.size as u64,
                parts: Vec::new(),
            });
        }
        let parts: Vec<PartProgress> = self
            .received_parts(&claim)
            .await?
            .into_iter()
            .map(|(part_number, (p, etag))| PartProgress {
                part_number,
                size: p.size,
                etag,
                sha256: p.sha256,
            })
            .collect();
        // Bytes appended past the last full part count when they follow on.
        let mut offset = contiguous_bytes(&parts);
        // Its length only: progress never needs the bytes.
        let (start, len) = self.tails.extent(id).await?;
        if len > 0 && start == offset {
            offset += len;
        }
        Ok(Progress { offset, parts })
    }
}

/// The bytes of parts 1..=k, k the last part before the first gap. `parts`
/// is ordered by part number.
pub(super) fn contiguous_bytes(parts: &[PartProgress]) -> u64 {
    parts
        .iter()
        .zip(1u32..)
        .take_while(|(p, n)| p.part_number == *n)
        .map(|(p, _)| p.size)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(part_number: u32, size: u64) -> PartProgress {
        PartProgress {
            part_number,
            size,
            etag: format!("e{part_number}"),
            sha256: None,
        }
    }

    #[test]
    fn the_offset_stops_at_the_first_gap() {
        assert_eq!(contiguous_bytes(&[]), 0);
        assert_eq!(contiguous_bytes(&[part(2, 5)]), 0);
        assert_eq!(contiguous_bytes(&[part(1, 5), part(2, 7), part(4, 9)]), 12);
        assert_eq!(contiguous_bytes(&[part(1, 5), part(2, 7), part(3, 1)]), 13);
    }
}

//! S3's multipart limits, in one place: the S3 store enforces them before a
//! request goes out (Garage does not enforce all of them itself), the
//! filesystem store enforces the same ones so both behave alike, and the
//! upload layer and the configuration check part sizes against them.

use std::{collections::BTreeMap, ops::Range};

use super::StoreError;

/// The smallest non-final part S3 accepts.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// The largest part S3 accepts.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// The most parts one multipart upload may have.
pub const MAX_PARTS: u32 = 10_000;

/// Refuses part numbers and sizes S3 would refuse.
pub fn check_part(part_number: u32, len: u64) -> Result<(), StoreError> {
    if !(1..=MAX_PARTS).contains(&part_number) {
        return Err(StoreError::InvalidPart(format!(
            "part number {part_number} is outside 1..={MAX_PARTS}"
        )));
    }
    if len > MAX_PART_SIZE {
        return Err(StoreError::InvalidPart(format!(
            "part of {len} bytes is larger than 5 GiB"
        )));
    }
    Ok(())
}

/// Refuses a copy of bytes `range` of an object of `size` bytes as part
/// `part_number` ([`ObjectStore::copy_part`](super::ObjectStore::copy_part))
/// with [`StoreError::InvalidPart`]: an empty or reversed range (S3's
/// `bytes=first-last` cannot name one), a range that does not lie inside the
/// object, and what [`check_part`] refuses. Returns the range's length.
///
/// Checked by the store before anything is copied, so a refused copy leaves
/// the session as it was, and both stores refuse the same ranges.
pub fn check_copy_range(
    part_number: u32,
    range: &Range<u64>,
    size: u64,
) -> Result<u64, StoreError> {
    if range.start >= range.end {
        return Err(StoreError::InvalidPart(format!(
            "the byte range {range:?} is empty: a copied part needs at least one byte"
        )));
    }
    if range.end > size {
        return Err(StoreError::InvalidPart(format!(
            "the byte range {range:?} ends past the source object's {size} bytes"
        )));
    }
    let len = range.end - range.start;
    check_part(part_number, len)?;
    Ok(len)
}

/// Why a set of parts cannot be assembled into the declared object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// Part numbers below the highest one received are absent (or no part
    /// arrived for a non-empty object).
    #[error("parts missing: {0:?}")]
    Missing(Vec<u32>),
    /// More parts than S3 assembles.
    #[error("{0} parts; at most {MAX_PARTS} can be assembled")]
    TooManyParts(u32),
    /// A part other than the last is below [`MIN_PART_SIZE`].
    #[error("part {part_number} is {size} bytes; every part but the last must be at least 5 MiB")]
    PartTooSmall {
        /// The part.
        part_number: u32,
        /// Its size in bytes.
        size: u64,
    },
    /// A part is above [`MAX_PART_SIZE`].
    #[error("part {part_number} is {size} bytes; a part may be at most 5 GiB")]
    PartTooLarge {
        /// The part.
        part_number: u32,
        /// Its size in bytes.
        size: u64,
    },
    /// The parts do not add up to the object's declared size.
    #[error("the parts hold {actual} bytes, the upload declared {declared}")]
    SizeMismatch {
        /// The declared size.
        declared: u64,
        /// The parts' total.
        actual: u64,
    },
}

/// Checks S3's rules for assembling `sizes` (bytes by part number) into an
/// object of `declared` bytes: parts numbered 1..=N without gaps, N at most
/// [`MAX_PARTS`], every part at most [`MAX_PART_SIZE`] and every part but the
/// last at least [`MIN_PART_SIZE`], the sizes summing to `declared`.
///
/// Checked at complete rather than per part, so a protocol may cut parts of
/// any size (tus appends) while one with a fixed layout (the REST API's
/// `part_size`) checks its own layout on top when a part arrives. Gaps are
/// reported before sizes: a client that is still sending parts learns which
/// ones, not that the total is short.
pub fn check_layout(sizes: &BTreeMap<u32, u64>, declared: u64) -> Result<(), LayoutError> {
    let Some((&last, _)) = sizes.last_key_value() else {
        // Zero bytes need no part at all; anything else needs part 1.
        return match declared {
            0 => Ok(()),
            _ => Err(LayoutError::Missing(vec![1])),
        };
    };
    let missing: Vec<u32> = (1..last).filter(|n| !sizes.contains_key(n)).collect();
    if !missing.is_empty() {
        return Err(LayoutError::Missing(missing));
    }
    if last > MAX_PARTS {
        return Err(LayoutError::TooManyParts(last));
    }
    let mut total: u64 = 0;
    for (&part_number, &size) in sizes {
        if size > MAX_PART_SIZE {
            return Err(LayoutError::PartTooLarge { part_number, size });
        }
        if part_number != last && size < MIN_PART_SIZE {
            return Err(LayoutError::PartTooSmall { part_number, size });
        }
        total = total.saturating_add(size);
    }
    if total != declared {
        return Err(LayoutError::SizeMismatch {
            declared,
            actual: total,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn layout(sizes: &[u64]) -> BTreeMap<u32, u64> {
        (1..).zip(sizes.iter().copied()).collect()
    }

    #[test]
    fn parts_of_any_size_above_the_minimum_assemble() {
        let sizes = layout(&[5 * MIB, 7 * MIB + 3, 6 * MIB, 1]);
        assert_eq!(check_layout(&sizes, 18 * MIB + 4), Ok(()));
        assert_eq!(check_layout(&layout(&[3]), 3), Ok(()));
        assert_eq!(
            check_layout(&layout(&[MAX_PART_SIZE]), MAX_PART_SIZE),
            Ok(())
        );
        assert_eq!(check_layout(&BTreeMap::new(), 0), Ok(()));
    }

    #[test]
    fn gaps_are_named_before_sizes_are_judged() {
        let mut sizes = layout(&[MIB, 5 * MIB, 5 * MIB, MIB]);
        sizes.remove(&2);
        sizes.remove(&3);
        assert_eq!(
            check_layout(&sizes, 100),
            Err(LayoutError::Missing(vec![2, 3]))
        );
        assert_eq!(
            check_layout(&BTreeMap::new(), 1),
            Err(LayoutError::Missing(vec![1]))
        );
    }

    #[test]
    fn short_non_final_parts_are_refused() {
        let sizes = layout(&[5 * MIB, 5 * MIB - 1, 5 * MIB]);
        assert_eq!(
            check_layout(&sizes, 15 * MIB - 1),
            Err(LayoutError::PartTooSmall {
                part_number: 2,
                size: 5 * MIB - 1
            })
        );
    }

    #[test]
    fn oversized_parts_and_too_many_parts_are_refused() {
        let sizes = layout(&[MAX_PART_SIZE + 1]);
        assert!(matches!(
            check_layout(&sizes, MAX_PART_SIZE + 1),
            Err(LayoutError::PartTooLarge { part_number: 1, .. })
        ));
        let sizes: BTreeMap<u32, u64> = (1..=MAX_PARTS + 1).map(|n| (n, 5 * MIB)).collect();
        assert_eq!(
            check_layout(&sizes, u64::from(MAX_PARTS + 1) * 5 * MIB),
            Err(LayoutError::TooManyParts(MAX_PARTS + 1))
        );
    }

    #[test]
    fn the_total_must_be_the_declared_size() {
        let sizes = layout(&[5 * MIB, 2]);
        assert_eq!(
            check_layout(&sizes, 5 * MIB + 3),
            Err(LayoutError::SizeMismatch {
                declared: 5 * MIB + 3,
                actual: 5 * MIB + 2
            })
        );
    }

    #[test]
    fn copied_ranges_must_be_non_empty_and_inside_the_object() {
        assert_eq!(check_copy_range(1, &(0..10), 10).unwrap(), 10);
        assert_eq!(check_copy_range(2, &(9..10), 10).unwrap(), 1);
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 6..5;
        for (n, range) in [(1, 5..5), (1, reversed), (1, 0..11), (1, 10..12), (0, 0..1)] {
            assert!(
                matches!(
                    check_copy_range(n, &range, 10),
                    Err(StoreError::InvalidPart(_))
                ),
                "{n} {range:?}"
            );
        }
        let huge = MAX_PART_SIZE * 2;
        assert!(matches!(
            check_copy_range(1, &(0..MAX_PART_SIZE + 1), huge),
            Err(StoreError::InvalidPart(_))
        ));
    }

    #[test]
    fn part_numbers_and_sizes_outside_s3_limits_are_refused() {
        assert!(check_part(1, 0).is_ok());
        assert!(check_part(MAX_PARTS, MAX_PART_SIZE).is_ok());
        for (n, len) in [(0, 1), (MAX_PARTS + 1, 1), (1, MAX_PART_SIZE + 1)] {
            assert!(
                matches!(check_part(n, len), Err(StoreError::InvalidPart(_))),
                "{n} {len}"
            );
        }
    }
}

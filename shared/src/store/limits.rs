//! S3's multipart limits, in one place: the S3 store enforces them before a
//! request goes out (Garage does not enforce all of them itself), the
//! filesystem store enforces the same ones so both behave alike, and the
//! upload layer and the configuration check part sizes against them.

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

#[cfg(test)]
mod tests {
    use super::*;

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

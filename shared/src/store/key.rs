//! Which object keys a store accepts.
//!
//! The server chooses every key (`[prefix]pub|priv/YYYY/MM/DD/<uuid>[.ext]`), so
//! the rule can be strict: relative, `/`-separated, no empty, `.` or `..`
//! segment, no segment starting with `.` (the filesystem store keeps its
//! staging area in dot-directories), no backslash or control character. On the
//! filesystem store this is what keeps a key from escaping the root.

use super::StoreError;

/// The longest key S3 accepts, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// Checks `key` against the rule above.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let bad = |why: &str| Err(StoreError::InvalidKey(format!("{why}: {key:?}")));
    if key.is_empty() {
        return bad("empty key");
    }
    if key.len() > MAX_KEY_LEN {
        return bad("longer than 1024 bytes");
    }
    if key.chars().any(|c| c == '\\' || c.is_control()) {
        return bad("backslash or control character");
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return bad("empty path segment (leading, trailing or double slash)");
        }
        if segment.starts_with('.') {
            return bad("segment starting with a dot");
        }
    }
    Ok(())
}

/// Checks a listing prefix: empty, or a key-like string that may end in `/`.
pub fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    match prefix.strip_suffix('/') {
        _ if prefix.is_empty() => Ok(()),
        Some(inner) => validate_key(inner),
        None => validate_key(prefix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_server_chosen_keys() {
        for key in ["priv/2026/11/23/0193abc.pdf", "pub/a", "tenant-1/priv/x"] {
            assert!(validate_key(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn refuses_keys_that_could_escape_or_collide() {
        for key in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            ".staging/x",
            "a/.tmp",
            "a\\..\\b",
            "a\0b",
            "a\nb",
        ] {
            assert!(
                matches!(validate_key(key), Err(StoreError::InvalidKey(_))),
                "{key:?}"
            );
        }
        assert!(validate_key(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn prefixes_may_end_in_a_slash() {
        assert!(validate_prefix("").is_ok());
        assert!(validate_prefix("t1/").is_ok());
        assert!(validate_prefix("t1/priv").is_ok());
        assert!(validate_prefix("../").is_err());
    }
}

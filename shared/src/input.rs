//! The bounds on every string a client sends, in one place.
//!
//! PostgreSQL `text` cannot hold NUL (the statement fails), and a btree index
//! entry cannot exceed about 2.7 KB (the insert fails): both would surface as
//! a 500. Checking each string against its field's bound first turns them
//! into the 400 they are. Lengths are in bytes (UTF-8).

/// A kind of client-supplied string and its longest accepted length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextField {
    /// The name the error message uses.
    pub name: &'static str,
    /// Longest accepted value, in bytes.
    pub max_len: usize,
}

/// An owner (principal id): token minting, consume bodies.
pub const OWNER: TextField = TextField::new("owner", 255);
/// An object key: consume, deletes, `/v1/objects/{key}`, download URLs.
/// S3's own limit.
pub const KEY: TextField = TextField::new("key", crate::store::key::MAX_KEY_LEN);
/// A filename: uploads and download filenames (most filesystems' limit).
pub const FILENAME: TextField = TextField::new("filename", 255);
/// A content type, parameters included.
pub const CONTENT_TYPE: TextField = TextField::new("content type", 255);
/// An `Idempotency-Key` header.
pub const IDEMPOTENCY_KEY: TextField = TextField::new("Idempotency-Key", 255);
/// A token's name (a label for people).
pub const TOKEN_NAME: TextField = TextField::new("token name", 255);

/// Why a string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// It contains a NUL character.
    #[error("{0} must not contain NUL characters")]
    Nul(&'static str),
    /// It is longer than its field allows.
    #[error("{name} is longer than {max_len} bytes")]
    TooLong {
        /// The field.
        name: &'static str,
        /// Its bound.
        max_len: usize,
    },
}

impl TextField {
    /// A field called `name` of at most `max_len` bytes.
    pub const fn new(name: &'static str, max_len: usize) -> Self {
        Self { name, max_len }
    }

    /// Refuses a value with a NUL character or longer than the bound.
    pub fn check(&self, value: &str) -> Result<(), TextError> {
        if value.len() > self.max_len {
            return Err(TextError::TooLong {
                name: self.name,
                max_len: self.max_len,
            });
        }
        if value.contains('\0') {
            return Err(TextError::Nul(self.name));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_nul_and_overlong_values() {
        assert_eq!(OWNER.check("alice"), Ok(()));
        assert_eq!(OWNER.check(&"a".repeat(255)), Ok(()));
        assert_eq!(
            OWNER.check(&"a".repeat(256)),
            Err(TextError::TooLong {
                name: "owner",
                max_len: 255
            })
        );
        assert_eq!(OWNER.check("al\0ice"), Err(TextError::Nul("owner")));
        assert_eq!(KEY.max_len, 1024);
    }
}

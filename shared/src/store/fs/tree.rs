//! `list_objects` for the filesystem store: a walk of the tree in S3's key
//! order (bytewise), skipping the subtrees a page cannot need. Blocking code.

use std::{io, path::Path};

use super::files::io_error;
use crate::store::{ListedObject, StoreError};

/// Objects per page, as S3 returns at most.
const PAGE: usize = 1000;

/// One page of objects under `prefix` after `continuation` (the last key of
/// the previous page), and the token for the next page.
pub(super) fn list_page(
    root: &Path,
    prefix: &str,
    continuation: Option<&str>,
) -> Result<(Vec<ListedObject>, Option<String>), StoreError> {
    let mut walk = Walk {
        prefix,
        after: continuation,
        found: Vec::new(),
    };
    walk.dir(root, "")?;
    let mut found = walk.found;
    // One more than a page was looked for, to know whether another page exists.
    let next = (found.len() > PAGE).then(|| {
        found.truncate(PAGE);
        found[PAGE - 1].key.clone()
    });
    Ok((found, next))
}

struct Walk<'a> {
    prefix: &'a str,
    after: Option<&'a str>,
    found: Vec<ListedObject>,
}

impl Walk<'_> {
    fn full(&self) -> bool {
        self.found.len() > PAGE
    }

    /// Visits `dir`, whose keys all start with `base` (`""` or `a/b/`).
    fn dir(&mut self, dir: &Path, base: &str) -> Result<(), StoreError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()), // deleted meanwhile
            Err(e) => return Err(io_error(e)),
        };
        // (sort name, key, is directory): a directory sorts as "name/", which
        // puts `a-b` before `a/...` as S3's bytewise key order does.
        let mut children = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error)?;
            let Ok(name) = entry.file_name().into_string() else {
                continue; // not UTF-8: no key of ours
            };
            if name.starts_with('.') {
                continue; // .tmp, .staging, and nothing a key can name
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let key = format!("{base}{name}");
            if kind.is_dir() {
                children.push((format!("{key}/"), entry.path(), true));
            } else if kind.is_file() {
                children.push((key, entry.path(), false));
            }
        }
        children.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (key, path, is_dir) in children {
            if self.full() {
                break;
            }
            if is_dir {
                if self.wants_under(&key) {
                    self.dir(&path, &key)?;
                }
            } else if key.starts_with(self.prefix)
                && self.after.is_none_or(|after| key.as_str() > after)
            {
                match std::fs::metadata(&path) {
                    Ok(meta) => self.found.push(ListedObject {
                        key,
                        size: meta.len(),
                    }),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {} // deleted meanwhile
                    Err(e) => return Err(io_error(e)),
                }
            }
        }
        Ok(())
    }

    /// Whether a key starting with `dir_key` (ending in `/`) can be on the page.
    fn wants_under(&self, dir_key: &str) -> bool {
        let matches_prefix = dir_key.starts_with(self.prefix) || self.prefix.starts_with(dir_key);
        // Past the continuation key: if `after` sorts after `dir_key` without
        // starting with it, it sorts after every key under it too.
        let already_listed = self
            .after
            .is_some_and(|after| after > dir_key && !after.starts_with(dir_key));
        matches_prefix && !already_listed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_bytewise_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ["a-b", "a/c", "a/d/e", "a0", "b", "ab/x"];
        for key in keys {
            let path = dir.path().join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, key).unwrap();
        }
        std::fs::create_dir_all(dir.path().join(".staging/x")).unwrap();
        std::fs::write(dir.path().join(".staging/x/session.json"), "{}").unwrap();
        let (page, next) = list_page(dir.path(), "", None).unwrap();
        let listed: Vec<_> = page.iter().map(|o| o.key.as_str()).collect();
        let mut expected = keys.to_vec();
        expected.sort();
        assert_eq!(listed, expected);
        assert_eq!(next, None);
        let (page, _) = list_page(dir.path(), "a/", None).unwrap();
        assert_eq!(
            page.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
            ["a/c", "a/d/e"]
        );
        let (page, _) = list_page(dir.path(), "a", Some("a/c")).unwrap();
        assert_eq!(
            page.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
            ["a/d/e", "a0", "ab/x"]
        );
        assert_eq!(page[0].size, 5);
    }
}

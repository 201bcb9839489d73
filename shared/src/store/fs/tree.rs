//! `list_objects` for the filesystem store: a walk of the tree in S3's key
//! order (bytewise), skipping the subtrees a page cannot need. Blocking code.
//!
//! Each page walks down to where the last one stopped, so without help a
//! directory of 100,000 objects would be read and sorted again for each of
//! its 100 pages. [`DirCache`] keeps the sorted listings of the last few
//! directories read, valid while the directory's mtime is unchanged.

use std::{
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

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
    cache: &DirCache,
) -> Result<(Vec<ListedObject>, Option<String>), StoreError> {
    let mut walk = Walk {
        prefix,
        after: continuation,
        found: Vec::new(),
        cache,
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
    cache: &'a DirCache,
}

/// A directory entry: its name with `/` appended for a directory (so it
/// sorts as S3 sorts the keys under it), and whether it is one.
type Child = (String, bool);

/// How many directory listings [`DirCache`] keeps.
const CACHED_DIRS: usize = 8;

/// A directory modified this recently is not cached: timestamps are coarse,
/// and an entry added in the same tick as the read would go unseen.
const SETTLED: Duration = Duration::from_secs(2);

/// The sorted listings of the directories read last (see the module
/// documentation). Shared by the clones of one store.
#[derive(Debug, Default, Clone)]
pub(super) struct DirCache(Arc<Mutex<Vec<CachedDir>>>);

/// A directory, its mtime when read, and its entries in key order.
type CachedDir = (PathBuf, SystemTime, Arc<Vec<Child>>);

impl DirCache {
    /// `dir`'s entries in key order; `None` when it is gone.
    fn children(&self, dir: &Path) -> Result<Option<Arc<Vec<Child>>>, StoreError> {
        let modified = match std::fs::metadata(dir).and_then(|m| m.modified()) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(e)),
        };
        if let Ok(cached) = self.0.lock() {
            if let Some((_, _, children)) =
                cached.iter().find(|(p, t, _)| p == dir && *t == modified)
            {
                return Ok(Some(children.clone()));
            }
        }
        let Some(children) = read_children(dir)? else {
            return Ok(None);
        };
        let children = Arc::new(children);
        let settled = modified.elapsed().is_ok_and(|age| age > SETTLED);
        if let (true, Ok(mut cached)) = (settled, self.0.lock()) {
            cached.retain(|(p, _, _)| p != dir);
            if cached.len() >= CACHED_DIRS {
                cached.remove(0);
            }
            cached.push((dir.to_owned(), modified, children.clone()));
        }
        Ok(Some(children))
    }
}

/// Reads and sorts `dir`'s entries; `None` when it is gone.
fn read_children(dir: &Path) -> Result<Option<Vec<Child>>, StoreError> {
    #[cfg(test)]
    tests::READS.with(|r| r.borrow_mut().push(dir.to_owned()));
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None), // deleted meanwhile
        Err(e) => return Err(io_error(e)),
    };
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
        if kind.is_dir() {
            children.push((format!("{name}/"), true));
        } else if kind.is_file() {
            children.push((name, false));
        }
    }
    // A directory sorts as "name/", which puts `a-b` before `a/...` as S3's
    // bytewise key order does.
    children.sort_unstable();
    Ok(Some(children))
}

impl Walk<'_> {
    fn full(&self) -> bool {
        self.found.len() > PAGE
    }

    /// Visits `dir`, whose keys all start with `base` (`""` or `a/b/`).
    fn dir(&mut self, dir: &Path, base: &str) -> Result<(), StoreError> {
        let Some(children) = self.cache.children(dir)? else {
            return Ok(());
        };
        for (name, is_dir) in children.iter() {
            if self.full() {
                break;
            }
            let key = format!("{base}{name}");
            let path = dir.join(name.trim_end_matches('/'));
            if *is_dir {
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
    use std::cell::RefCell;

    thread_local! {
        /// Directories [`read_children`] read on this thread.
        pub(super) static READS: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    }

    #[test]
    fn a_settled_directory_is_read_once_for_all_its_pages() {
        let dir = tempfile::tempdir().unwrap();
        let day = dir.path().join("priv/d");
        std::fs::create_dir_all(&day).unwrap();
        for i in 0..2500 {
            std::fs::write(day.join(format!("{i:05}")), "x").unwrap();
        }
        let past = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::open(&day)
            .unwrap()
            .set_modified(past)
            .unwrap();
        let cache = DirCache::default();
        let (mut pages, mut listed, mut next) = (0, 0, None);
        loop {
            let (page, token) = list_page(dir.path(), "", next.as_deref(), &cache).unwrap();
            pages += 1;
            listed += page.len();
            match token {
                Some(t) => next = Some(t),
                None => break,
            }
        }
        assert_eq!((pages, listed), (3, 2500));
        let reads = READS.with(|r| r.borrow().iter().filter(|p| **p == day).count());
        assert_eq!(
            reads, 1,
            "the day's directory is read once, not once per page"
        );
        // A change to the directory is seen at once.
        std::fs::write(day.join("99999"), "x").unwrap();
        let (page, _) =
            list_page(dir.path(), "", Some(&format!("priv/d/{:05}", 2499)), &cache).unwrap();
        assert_eq!(
            page.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
            ["priv/d/99999"]
        );
    }

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
        let (page, next) = list_page(dir.path(), "", None, &DirCache::default()).unwrap();
        let listed: Vec<_> = page.iter().map(|o| o.key.as_str()).collect();
        let mut expected = keys.to_vec();
        expected.sort();
        assert_eq!(listed, expected);
        assert_eq!(next, None);
        let (page, _) = list_page(dir.path(), "a/", None, &DirCache::default()).unwrap();
        assert_eq!(
            page.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
            ["a/c", "a/d/e"]
        );
        let (page, _) = list_page(dir.path(), "a", Some("a/c"), &DirCache::default()).unwrap();
        assert_eq!(
            page.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
            ["a/d/e", "a0", "ab/x"]
        );
        assert_eq!(page[0].size, 5);
    }
}

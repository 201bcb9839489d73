//! Temp files, durable renames and I/O error mapping for the filesystem store.

use std::{
    io,
    path::{Path, PathBuf},
};

use crate::store::StoreError;

/// Renames a finished temp file to `dest` and makes the rename durable: the
/// entry in its directory, and the entry of every directory on the way that
/// this call created (a crash must not lose a published object with a
/// directory that never reached the disk).
pub(super) fn publish(temp: TempFile, root: &Path, dest: &Path) -> Result<(), StoreError> {
    let parent = dest
        .parent()
        .ok_or_else(|| StoreError::Other(format!("{} has no parent", dest.display())))?;
    // A delete of the last object in `parent` may remove the (empty) directory
    // between our create_dir_all and rename: then create it again.
    let mut attempts = 0;
    let mut created = Vec::new();
    loop {
        created.extend(create_dirs(root, parent)?);
        match std::fs::rename(&temp.path, dest) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 5 => attempts += 1,
            Err(e) => return Err(io_error(e)),
        }
    }
    temp.disarm();
    sync_dir(parent)?;
    // Deepest first: each new directory's entry lives in its parent.
    created.sort_unstable_by_key(|d| std::cmp::Reverse(d.components().count()));
    created.dedup();
    for dir in &created {
        if let Some(up) = dir.parent() {
            sync_dir(up)?;
        }
    }
    Ok(())
}

/// `create_dir_all(dir)`, returning the directories it created (those
/// between `root` and `dir` that did not exist).
fn create_dirs(root: &Path, dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| *d != root && !d.is_dir())
        .map(Path::to_path_buf)
        .collect();
    std::fs::create_dir_all(dir).map_err(io_error)?;
    Ok(missing)
}

/// Removes the objects at `paths` (a missing one counts as removed), then
/// the directories under `root` that this left empty. Returns the error of
/// each path that could not be removed, by index into `paths`.
///
/// A removal counts once the directory holding its entry is synced: a crash
/// must not bring a deleted object back. When the object's directory was
/// removed too (left empty), that is the first ancestor still standing.
///
/// One call for a whole batch: the delete worker hands over up to a lease's
/// keys at once, and a blocking task per key cost a thread switch each.
pub(super) fn remove_files(root: &Path, paths: &[PathBuf]) -> Vec<(usize, StoreError)> {
    let mut failed = Vec::new();
    let mut parents: std::collections::BTreeMap<&Path, Vec<usize>> = Default::default();
    for (i, path) in paths.iter().enumerate() {
        match std::fs::remove_file(path) {
            Ok(()) => parents
                .entry(path.parent().unwrap_or(root))
                .or_default()
                .push(i),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => failed.push((i, io_error(e))),
        }
    }
    // Deepest first, so a directory emptied by removing its last child
    // directory is seen empty in turn. Best effort: a put racing with this
    // retries its rename (see `publish`), and a directory that is not empty
    // simply stays.
    for (parent, removed) in parents.into_iter().rev() {
        let mut dir = parent;
        while dir != root {
            match std::fs::remove_dir(dir) {
                // Emptied (or emptied and removed by an earlier pass of this
                // loop): go up.
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => break,
            }
            match dir.parent() {
                Some(up) => dir = up,
                None => break,
            }
        }
        // `dir` is the first directory still standing: it holds the entry
        // of the last thing removed (the file itself, or its emptied
        // directory). Until that is synced the removal is not durable, and
        // the rows are retried (deletes are idempotent).
        if let Err(e) = sync_dir(dir) {
            failed.extend(removed.into_iter().map(|i| (i, clone_error(&e))));
        }
    }
    failed
}

/// [`remove_files`] on one blocking task per directory of `paths`, side by
/// side; the errors by index into `paths`. Unlinks in one directory contend
/// on its lock, so threads there are slower than one, and each task syncs
/// its directory once for all its removals; directories apart do not
/// contend.
pub(super) async fn remove_files_by_directory(
    root: &Path,
    paths: Vec<PathBuf>,
) -> Vec<(usize, StoreError)> {
    let mut by_directory: std::collections::BTreeMap<PathBuf, (Vec<usize>, Vec<PathBuf>)> =
        Default::default();
    for (i, path) in paths.into_iter().enumerate() {
        let parent = path.parent().unwrap_or(root).to_path_buf();
        let (indexes, paths) = by_directory.entry(parent).or_default();
        indexes.push(i);
        paths.push(path);
    }
    let tasks = by_directory.into_values().map(|(indexes, paths)| {
        let root = root.to_path_buf();
        async move {
            let removal = blocking(move || Ok(remove_files(&root, &paths))).await;
            match removal {
                Ok(failed) => failed
                    .into_iter()
                    .map(|(i, e)| (indexes[i], e))
                    .collect::<Vec<_>>(),
                Err(e) => indexes.iter().map(|&i| (i, clone_error(&e))).collect(),
            }
        }
    });
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
}

fn clone_error(e: &StoreError) -> StoreError {
    StoreError::Other(e.to_string())
}

/// Makes a rename or removal in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(test)]
    tests::SYNCED.with(|s| s.borrow_mut().push(dir.to_path_buf()));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error)
}

/// Runs blocking filesystem work on tokio's blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Other(format!("filesystem task failed: {e}")))?
}

/// Maps an I/O error (see the module documentation).
pub(super) fn io_error(e: io::Error) -> StoreError {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            StoreError::Unavailable(format!("filesystem full: {e}"))
        }
        _ => StoreError::Other(format!("filesystem: {e}")),
    }
}

/// Like [`io_error`], with "not found" meaning `missing`.
pub(super) fn not_found_as(missing: StoreError) -> impl FnOnce(io::Error) -> StoreError {
    move |e| {
        if e.kind() == io::ErrorKind::NotFound {
            missing
        } else {
            io_error(e)
        }
    }
}

/// A temp file that is removed unless [`disarm`](TempFile::disarm)ed: on every
/// error path, and when the writing future is dropped (the client went away
/// and the request's task was cancelled mid-body).
pub(super) struct TempFile {
    pub(super) path: PathBuf,
    armed: bool,
}

impl TempFile {
    pub(super) fn new(path: PathBuf) -> Self {
        Self { path, armed: true }
    }

    /// The file was renamed away: nothing to clean up.
    pub(super) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let path = std::mem::take(&mut self.path);
        let remove = move || {
            if let Err(e) = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir_all(&path))
            {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove temp file");
                }
            }
        };
        // Unlinking a large file can take a while: keep it off the runtime's
        // worker threads when there is a runtime.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        /// Directories [`sync_dir`] synced on this thread.
        pub(super) static SYNCED: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    }

    fn synced() -> Vec<PathBuf> {
        SYNCED.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }

    #[test]
    fn publish_syncs_the_directory_and_every_directory_it_created() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        std::fs::create_dir_all(root.join("priv")).unwrap();
        let temp = root.join("tmpfile");
        std::fs::write(&temp, "x").unwrap();
        synced();
        let dest = root.join("priv/2026/11/29/object");
        publish(TempFile::new(temp), root, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"x");
        let got = synced();
        for dir in ["priv/2026/11/29", "priv/2026/11", "priv/2026", "priv"] {
            assert!(got.contains(&root.join(dir)), "{dir} not synced: {got:?}");
        }
        assert!(
            !got.contains(&root.to_path_buf()),
            "priv existed: root needs no sync"
        );
    }

    #[test]
    fn remove_files_syncs_the_directory_of_every_removal() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        for key in ["a/b/c", "keep/x", "keep/y"] {
            let path = root.join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, key).unwrap();
        }
        synced();
        assert!(remove_files(root, &[root.join("a/b/c"), root.join("keep/x")]).is_empty());
        let got = synced();
        assert!(got.contains(&root.join("keep")), "keep/x's unlink: {got:?}");
        assert!(
            got.contains(&root.to_path_buf()),
            "a/ removed from the root: {got:?}"
        );
    }

    #[test]
    fn remove_files_prunes_every_directory_it_empties_and_no_other() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        for key in ["a/b/c", "a/b/d", "a/e", "keep/x", "keep/y"] {
            let path = root.join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, key).unwrap();
        }
        let paths: Vec<_> = ["a/b/c", "a/b/d", "a/e", "keep/x", "missing/z"]
            .iter()
            .map(|key| root.join(key))
            .collect();
        assert!(
            remove_files(root, &paths).is_empty(),
            "a missing file counts as removed"
        );
        assert!(!root.join("a").exists(), "a/b emptied, then a");
        assert!(root.join("keep/y").exists());
        assert!(!root.join("keep/x").exists());
        assert!(root.exists(), "the root stays");
    }

    #[tokio::test]
    async fn removal_by_directory_reports_each_failure_by_its_index_in_the_call() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        for key in ["a/x", "b/y", "b/z", "b/dir/inner"] {
            let path = root.join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, key).unwrap();
        }
        let paths: Vec<_> = ["b/y", "a/x", "b/dir", "c/missing", "b/z"]
            .iter()
            .map(|key| root.join(key))
            .collect();
        let failed = remove_files_by_directory(root, paths).await;
        assert_eq!(failed.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [2]);
        assert!(!root.join("a").exists(), "a/x removed, then a");
        assert!(!root.join("b/y").exists() && !root.join("b/z").exists());
        assert!(
            root.join("b/dir/inner").exists(),
            "a directory is no object"
        );
    }

    #[test]
    fn remove_files_reports_each_failure_by_index() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        std::fs::create_dir_all(root.join("dir/inner")).unwrap();
        std::fs::write(root.join("file"), "x").unwrap();
        // A directory is no object: remove_file refuses it.
        let failed = remove_files(root, &[root.join("dir"), root.join("file")]);
        assert_eq!(failed.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0]);
        assert!(root.join("dir/inner").exists());
        assert!(!root.join("file").exists());
    }
}

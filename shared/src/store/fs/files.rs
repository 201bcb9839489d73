//! Temp files, durable renames and I/O error mapping for the filesystem store.

use std::{
    io,
    path::{Path, PathBuf},
};

use crate::store::StoreError;

/// Renames a finished temp file to `dest` and syncs the directory entry.
pub(super) fn publish(temp: TempFile, root: &Path, dest: &Path) -> Result<(), StoreError> {
    let parent = dest
        .parent()
        .expect("a key has a parent: the root at least");
    // A delete of the last object in `parent` may remove the (empty) directory
    // between our create_dir_all and rename: then create it again.
    let mut attempts = 0;
    loop {
        std::fs::create_dir_all(parent).map_err(io_error)?;
        match std::fs::rename(&temp.path, dest) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 5 => attempts += 1,
            Err(e) => return Err(io_error(e)),
        }
    }
    temp.disarm();
    sync_dir(parent)?;
    if parent != root {
        // Best effort for the directories create_dir_all may have made.
        let _ = sync_dir(root);
    }
    Ok(())
}

/// Makes a rename or removal in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
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

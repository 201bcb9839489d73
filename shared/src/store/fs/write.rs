//! Writing files of the filesystem store: bodies streamed into synced temp
//! files under `.tmp/` (renamed into place by the callers in `fs.rs`), and
//! the removal of temp files a crash left behind.

use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};

use futures::StreamExt;
use tokio::io::{AsyncWriteExt, BufWriter};

use super::{
    files::{io_error, TempFile},
    multipart, FsStore,
};
use crate::store::{into_store_error, ByteStream, ExactLength, StoreError};

/// Bytes gathered before each write to disk.
const WRITE_BUFFER: usize = 256 * 1024;
/// Temp files older than this are leftovers of a crash: [`FsStore::new`] removes them.
const STALE_TEMP_AGE: Duration = Duration::from_secs(24 * 3600);

impl FsStore {
    // A crash mid-write leaves a temp file no guard removed. Other processes
    // sharing the root may be writing right now, so only old files go.
    pub(super) fn remove_stale_temp_files(&self) {
        let Ok(entries) = std::fs::read_dir(self.root.join(".tmp")) else {
            return;
        };
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > STALE_TEMP_AGE);
            if old {
                let path = entry.path();
                let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir_all(&path));
            }
        }
    }

    pub(super) fn temp_path(&self) -> PathBuf {
        self.root
            .join(".tmp")
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Streams `body` (exactly `len` bytes) into a fresh temp file, synced to
    /// disk. A [`TempKind::Part`] starts with a [`multipart::HEADER_LEN`]-byte
    /// header holding its ETag, which is returned.
    pub(super) async fn write_temp(
        &self,
        body: ByteStream,
        len: u64,
        kind: TempKind,
    ) -> Result<(TempFile, Option<String>), StoreError> {
        let temp = TempFile::new(self.temp_path());
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp.path)
            .await
            .map_err(io_error)?;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        let etag = (kind == TempKind::Part).then(multipart::new_etag);
        if let Some(etag) = &etag {
            out.write_all(&multipart::header(etag))
                .await
                .map_err(io_error)?;
        }
        let mut body = ExactLength::new(body, len);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(into_store_error)?;
            out.write_all(&chunk).await.map_err(io_error)?;
        }
        out.flush().await.map_err(io_error)?;
        out.into_inner().sync_all().await.map_err(io_error)?;
        Ok((temp, etag))
    }
}

/// What a temp file will become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TempKind {
    /// An object: the body alone.
    Object,
    /// A multipart part: an ETag header, then the body.
    Part,
}

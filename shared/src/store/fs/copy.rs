//! Reading objects of the filesystem store back: whole
//! ([`ObjectStore::get`]), or a byte range stored as a part of a multipart
//! session ([`ObjectStore::copy_part`]). Both open the file with
//! [`FsStore::open`], as the API's download route does, and stream it.

use std::{io::SeekFrom, ops::Range};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{files::io_error, FsStore};
use crate::store::{check_copy_range, ByteStream, ObjectStore, StoreError};

/// Bytes read from disk at a time: large enough that a multi-GiB object is
/// not read in thousands of small syscalls, small enough that a reader
/// holds little memory (one chunk at a time).
const READ_CHUNK: usize = 128 * 1024;

impl FsStore {
    /// [`ObjectStore::get`]: the open file, read in chunks. The file stays
    /// open while the stream lives, so an object replaced or deleted meanwhile
    /// is still read whole, as it was when the call returned.
    pub(super) async fn read_object(&self, key: &str) -> Result<ByteStream, StoreError> {
        let (file, _) = self.open(key).await?;
        Ok(ReaderStream::with_capacity(file, READ_CHUNK).boxed())
    }

    /// [`ObjectStore::copy_part`]: the range of the source file, checked
    /// against its size, streamed into [`ObjectStore::upload_part`] so the
    /// part is written, hashed and published like any uploaded part. A range
    /// outside the file is [`StoreError::InvalidPart`] before the session
    /// is touched.
    pub(super) async fn copy_range(
        &self,
        src_key: &str,
        range: Range<u64>,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> Result<String, StoreError> {
        let (mut file, size) = self.open(src_key).await?;
        let len = check_copy_range(part_number, &range, size)?;
        file.seek(SeekFrom::Start(range.start))
            .await
            .map_err(io_error)?;
        // Objects are replaced by rename, never rewritten in place: the open
        // file keeps `size` bytes, and `upload_part` checks it got `len`.
        let body = ReaderStream::with_capacity(file.take(len), READ_CHUNK).boxed();
        self.upload_part(key, upload_id, part_number, body, len)
            .await
    }
}

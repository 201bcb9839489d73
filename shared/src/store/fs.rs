//! [`FsStore`]: objects as files under one directory.
//!
//! Layout under the root:
//! - `<key>`: the objects (keys are checked by [`validate_key`], whose segments
//!   never start with a dot, so they can neither escape the root nor collide
//!   with the two private directories below);
//! - `.tmp/`: files being written; each is renamed into place once complete
//!   and synced, so readers see the old object or the whole new one;
//! - `.staging/<upload id>/`: multipart sessions (see `multipart.rs`).
//!
//! The root may be shared by several processes (API and worker): every change
//! is a rename, and nothing assumes it is the only writer.
//!
//! I/O errors: "not found" becomes the variant the operation calls for; a full
//! disk or quota ([`std::io::ErrorKind::StorageFull`], `QuotaExceeded`) becomes
//! [`StoreError::Unavailable`] because it can pass once space is freed; the
//! rest is [`StoreError::Other`].

mod copy;
mod files;
mod multipart;
mod tree;
mod write;

use std::{
    io,
    ops::Range,
    path::{Path, PathBuf},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use super::signed_url::{SignatureError, UrlSigner};

use self::files::{blocking, io_error, not_found_as, publish, TempFile};
use self::write::TempKind;
use super::{
    check_part, validate_key, validate_prefix, ByteStream, CompletedPart, DeleteBatching,
    DownloadResponse, ListedObject, MultipartSession, ObjectMeta, ObjectStore, PresignedRequest,
    StoreError, StoredPart,
};

/// An object store on a local (or mounted) filesystem.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
    signer: Option<UrlSigner>,
    listings: tree::DirCache,
}

impl FsStore {
    /// Opens (creating if needed) a store rooted at `root`. `signer` makes
    /// [`ObjectStore::presign_get`] available; without it that call is
    /// [`StoreError::Unsupported`]. Blocking: call it at start-up.
    pub fn new(root: PathBuf, signer: Option<UrlSigner>) -> io::Result<FsStore> {
        std::fs::create_dir_all(root.join(".tmp"))?;
        std::fs::create_dir_all(root.join(".staging"))?;
        let store = FsStore {
            root,
            signer,
            listings: tree::DirCache::default(),
        };
        store.remove_stale_temp_files();
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `key` lives on disk (for serving downloads).
    pub fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    /// Opens the object `key` for reading, with its size.
    pub async fn open(&self, key: &str) -> Result<(tokio::fs::File, u64), StoreError> {
        let path = self.path_of(key)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(not_found_as(StoreError::NotFound))?;
        let meta = file.metadata().await.map_err(io_error)?;
        if !meta.is_file() {
            return Err(StoreError::NotFound);
        }
        Ok((file, meta.len()))
    }

    /// The signer of download URLs, if the store has one (the API checks
    /// incoming `/v1/files/...` requests with it).
    pub fn signer(&self) -> Option<&UrlSigner> {
        self.signer.as_ref()
    }
}

#[async_trait]
impl ObjectStore for FsStore {
    fn kind(&self) -> &'static str {
        "fs"
    }

    fn served_by_api(&self) -> Option<&FsStore> {
        Some(self)
    }

    fn delete_batching(&self) -> DeleteBatching {
        DeleteBatching::Whole
    }

    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        len: u64,
        _content_type: &str, // the database keeps it; files have nowhere to
    ) -> Result<(), StoreError> {
        let dest = self.path_of(key)?;
        let (temp, _) = self.write_temp(body, len, TempKind::Object).await?;
        let root = self.root.clone();
        blocking(move || publish(temp, &root, &dest)).await
    }

    async fn create_multipart(&self, key: &str, content_type: &str) -> Result<String, StoreError> {
        validate_key(key)?;
        let (root, key, content_type) =
            (self.root.clone(), key.to_owned(), content_type.to_owned());
        blocking(move || multipart::create(&root, &key, &content_type)).await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        len: u64,
    ) -> Result<String, StoreError> {
        validate_key(key)?;
        check_part(part_number, len)?;
        let dir = self.session_dir(key, upload_id).await?;
        let (temp, etag) = self.write_temp(body, len, TempKind::Part).await?;
        let etag = etag.expect("write_temp makes an ETag for a part");
        blocking(move || multipart::store_part(temp, &dir, part_number)).await?;
        Ok(etag)
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<StoredPart>, StoreError> {
        validate_key(key)?;
        let dir = self.session_dir(key, upload_id).await?;
        blocking(move || multipart::list_parts(&dir)).await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), StoreError> {
        let dest = self.path_of(key)?;
        let dir = self.session_dir(key, upload_id).await?;
        let (root, temp, parts) = (self.root.clone(), self.temp_path(), parts.to_vec());
        // One blocking task: the parts are copied file to file (the kernel may
        // do it without a trip through user space), away from the runtime.
        blocking(move || multipart::complete(&root, &dir, &parts, TempFile::new(temp), &dest)).await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        match self.session_dir(key, upload_id).await {
            Ok(dir) => blocking(move || multipart::remove_session(&dir)).await,
            Err(StoreError::NoSuchUpload) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let paths = vec![self.path_of(key)?];
        let root = self.root.clone();
        let failed = blocking(move || Ok(files::remove_files(&root, &paths))).await?;
        failed.into_iter().next().map_or(Ok(()), |(_, e)| Err(e))
    }

    async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, StoreError)>, StoreError> {
        let mut failed = Vec::new();
        let mut valid = Vec::with_capacity(keys.len());
        let mut paths = Vec::with_capacity(keys.len());
        for key in keys {
            match self.path_of(key) {
                Ok(path) => {
                    valid.push(key);
                    paths.push(path);
                }
                Err(e) => failed.push((key.clone(), e)),
            }
        }
        let removal = files::remove_files_by_directory(&self.root, paths).await;
        failed.extend(removal.into_iter().map(|(i, e)| (valid[i].clone(), e)));
        Ok(failed)
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        let path = self.path_of(key)?;
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(not_found_as(StoreError::NotFound))?;
        if !meta.is_file() {
            return Err(StoreError::NotFound); // a "directory" of keys is no object
        }
        Ok(ObjectMeta {
            size: meta.len(),
            etag: None,
        })
    }

    async fn get(&self, key: &str) -> Result<ByteStream, StoreError> {
        self.read_object(key).await
    }

    async fn copy_part(
        &self,
        src_key: &str,
        range: Range<u64>,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> Result<String, StoreError> {
        self.copy_range(src_key, range, key, upload_id, part_number)
            .await
    }

    async fn presign_upload_part(
        &self,
        _key: &str,
        _upload_id: &str,
        _part_number: u32,
        _len: u64,
        _expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        Err(StoreError::Unsupported {
            store: "fs",
            what: "presigned part uploads",
        })
    }

    async fn presign_get(
        &self,
        key: &str,
        expires_in: Duration,
        response: &DownloadResponse,
    ) -> Result<PresignedRequest, StoreError> {
        validate_key(key)?;
        let signer = self.signer.as_ref().ok_or(StoreError::Unsupported {
            store: "fs",
            // Answered to the client as is: it names the missing setting.
            what: "download URLs for the filesystem store need CLAIMCHECK_URL_SIGNING_KEY \
                   (the same secret on every API pod)",
        })?;
        let expires_in = chrono::Duration::from_std(expires_in)
            .map_err(|_| StoreError::Other("download URL lifetime out of range".into()))?;
        // The URL carries whole seconds: report the expiry it really has.
        let expires_at = DateTime::from_timestamp((Utc::now() + expires_in).timestamp(), 0)
            .ok_or_else(|| StoreError::Other("download URL lifetime out of range".into()))?;
        Ok(PresignedRequest {
            url: signer.sign(key, expires_at, response),
            method: "GET",
            headers: Vec::new(),
            expires_at,
        })
    }

    async fn list_objects(
        &self,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<(Vec<ListedObject>, Option<String>), StoreError> {
        validate_prefix(prefix)?;
        let (root, prefix, cache) = (self.root.clone(), prefix.to_owned(), self.listings.clone());
        blocking(move || tree::list_page(&root, &prefix, continuation.as_deref(), &cache)).await
    }

    async fn list_multipart_uploads(
        &self,
        prefix: &str,
        older_than: DateTime<Utc>,
    ) -> Result<Vec<MultipartSession>, StoreError> {
        validate_prefix(prefix)?;
        let (root, prefix) = (self.root.clone(), prefix.to_owned());
        blocking(move || multipart::list_sessions(&root, &prefix, older_than)).await
    }
}

impl FsStore {
    /// The staging directory of a session, after checking it exists and is
    /// for `key`.
    async fn session_dir(&self, key: &str, upload_id: &str) -> Result<PathBuf, StoreError> {
        let (root, key, upload_id) = (self.root.clone(), key.to_owned(), upload_id.to_owned());
        blocking(move || multipart::session_dir(&root, &key, &upload_id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures::{stream, StreamExt};

    fn body(parts: Vec<&'static [u8]>) -> ByteStream {
        stream::iter(parts.into_iter().map(|p| Ok(Bytes::from_static(p)))).boxed()
    }

    fn temp_files(root: &Path) -> usize {
        std::fs::read_dir(root.join(".tmp")).unwrap().count()
    }

    #[tokio::test]
    async fn a_cancelled_put_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().to_owned(), None).unwrap();
        let endless = stream::once(async { Ok(Bytes::from_static(b"abc")) })
            .chain(stream::pending())
            .boxed();
        let put = store.put("a/b", endless, 10, "text/plain");
        assert!(tokio::time::timeout(Duration::from_millis(200), put)
            .await
            .is_err());
        for _ in 0..50 {
            if temp_files(dir.path()) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(temp_files(dir.path()), 0);
        assert!(matches!(store.head("a/b").await, Err(StoreError::NotFound)));
    }

    #[tokio::test]
    async fn put_replaces_and_delete_prunes_empty_directories() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().to_owned(), None).unwrap();
        store.put("x/y/z", body(vec![b"one"]), 3, "").await.unwrap();
        store
            .put("x/y/z", body(vec![b"tw", b"o!"]), 4, "")
            .await
            .unwrap();
        assert_eq!(std::fs::read(dir.path().join("x/y/z")).unwrap(), b"two!");
        store.delete("x/y/z").await.unwrap();
        assert!(!dir.path().join("x").exists());
        assert!(dir.path().join(".tmp").exists() && dir.path().join(".staging").exists());
        assert_eq!(temp_files(dir.path()), 0);
    }

    #[tokio::test]
    async fn a_bad_upload_id_is_no_such_upload() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().to_owned(), None).unwrap();
        for id in ["", "..", "../../etc", "0123456789abcdef0123456789abcdeg"] {
            assert!(
                matches!(
                    store.list_parts("a", id).await,
                    Err(StoreError::NoSuchUpload)
                ),
                "{id}"
            );
        }
    }
}

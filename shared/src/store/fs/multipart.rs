//! Multipart sessions of the filesystem store. Blocking code: the callers in
//! `fs.rs` run it on tokio's blocking pool.
//!
//! A session is `.staging/<upload id>/` holding `session.json` and one file per
//! part, `part-00001` .. `part-10000`. Each part file starts with a
//! [`HEADER_LEN`]-byte header holding its ETag, then the part's bytes: data and
//! ETag are renamed into place together, so a re-upload replaces both at once
//! and concurrent uploads of one part leave one whole upload, never a mix.
//!
//! Like S3, completing refuses (with [`StoreError::InvalidPart`]) a non-final
//! part smaller than [`MIN_PART_SIZE`]; uploading such a part is accepted,
//! since only complete knows which part is last.

use std::{
    fs::File,
    io::{self, Read, Seek},
    path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};

use super::files::{io_error, publish, sync_dir, TempFile};
use crate::store::{
    validate_key, CompletedPart, MultipartSession, StoreError, StoredPart, MIN_PART_SIZE,
};

/// Bytes before a part's data: its ETag, space-padded, then a newline.
pub(super) const HEADER_LEN: usize = 64;

#[derive(serde::Serialize, serde::Deserialize)]
struct Session {
    key: String,
    content_type: String,
    initiated: DateTime<Utc>,
}

/// A new part file's ETag: random, 32 hex digits. It tells one upload of a
/// part from another (complete refuses a part whose file was replaced since
/// the ETag it is given); it need not hash the bytes, which the API hashes
/// already (S3's ETag is an MD5 only because S3 computes one anyway).
pub(super) fn new_etag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The header that precedes a part's data.
pub(super) fn header(etag: &str) -> Vec<u8> {
    format!("{etag:<width$}\n", width = HEADER_LEN - 1).into_bytes()
}

fn part_path(dir: &Path, part_number: u32) -> PathBuf {
    dir.join(format!("part-{part_number:05}"))
}

fn staging(root: &Path) -> PathBuf {
    root.join(".staging")
}

/// Opens a session: its directory is filled under `.tmp/` and renamed into
/// `.staging/` whole, so no reader sees a session without its `session.json`.
pub(super) fn create(root: &Path, key: &str, content_type: &str) -> Result<String, StoreError> {
    let upload_id = uuid::Uuid::new_v4().simple().to_string();
    let temp = TempFile::new(root.join(".tmp").join(format!("{upload_id}.session")));
    std::fs::create_dir(&temp.path).map_err(io_error)?;
    let session = Session {
        key: key.to_owned(),
        content_type: content_type.to_owned(),
        initiated: Utc::now(),
    };
    let json = serde_json::to_vec(&session).expect("a session serializes");
    let mut file = File::create(temp.path.join("session.json")).map_err(io_error)?;
    io::Write::write_all(&mut file, &json).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    sync_dir(&temp.path)?;
    std::fs::rename(&temp.path, staging(root).join(&upload_id)).map_err(io_error)?;
    temp.disarm();
    sync_dir(&staging(root))?;
    Ok(upload_id)
}

fn read_session(dir: &Path) -> Result<Session, StoreError> {
    let json = std::fs::read(dir.join("session.json")).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => StoreError::NoSuchUpload,
        _ => io_error(e),
    })?;
    serde_json::from_slice(&json)
        .map_err(|e| StoreError::Other(format!("corrupt session {}: {e}", dir.display())))
}

/// The directory of session `upload_id`, which must exist and be for `key`.
pub(super) fn session_dir(root: &Path, key: &str, upload_id: &str) -> Result<PathBuf, StoreError> {
    // Only ids we could have made: anything else (`..`, `/`) never reaches a path.
    let well_formed = upload_id.len() == 32
        && upload_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return Err(StoreError::NoSuchUpload);
    }
    let dir = staging(root).join(upload_id);
    if read_session(&dir)?.key != key {
        return Err(StoreError::NoSuchUpload);
    }
    Ok(dir)
}

/// Moves a finished part file into its session, replacing an earlier upload.
pub(super) fn store_part(temp: TempFile, dir: &Path, part_number: u32) -> Result<(), StoreError> {
    match std::fs::rename(&temp.path, part_path(dir, part_number)) {
        Ok(()) => temp.disarm(),
        // The session was aborted or completed while the part was uploading.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::NoSuchUpload),
        Err(e) => return Err(io_error(e)),
    }
    sync_dir(dir)
}

/// Reads a part file's ETag and data size.
fn read_part(file: &mut File) -> io::Result<(String, u64)> {
    let mut header = [0u8; HEADER_LEN];
    file.read_exact(&mut header)?;
    let etag = String::from_utf8_lossy(&header).trim().to_owned();
    let size = file.metadata()?.len() - HEADER_LEN as u64;
    Ok((etag, size))
}

/// The parts a session holds, by part number.
pub(super) fn list_parts(dir: &Path) -> Result<Vec<StoredPart>, StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => StoreError::NoSuchUpload,
        _ => io_error(e),
    })?;
    let mut parts = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error)?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_prefix("part-"))
            .filter(|n| n.len() == 5)
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let mut file = match File::open(entry.path()) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // aborted meanwhile
            Err(e) => return Err(io_error(e)),
        };
        let (etag, size) = read_part(&mut file).map_err(io_error)?;
        parts.push(StoredPart {
            part_number: number,
            size,
            etag,
        });
    }
    parts.sort_by_key(|p| p.part_number);
    Ok(parts)
}

/// Checks the parts named by a complete request and concatenates them, in
/// order, into the object at `dest`; then ends the session.
pub(super) fn complete(
    root: &Path,
    dir: &Path,
    parts: &[CompletedPart],
    temp: TempFile,
    dest: &Path,
) -> Result<(), StoreError> {
    if parts.is_empty() {
        return Err(StoreError::InvalidPart(
            "a multipart upload needs at least one part".into(),
        ));
    }
    if let Some(w) = parts
        .windows(2)
        .find(|w| w[0].part_number >= w[1].part_number)
    {
        return Err(StoreError::InvalidPart(format!(
            "parts must be listed in ascending order: {} then {}",
            w[0].part_number, w[1].part_number
        )));
    }
    // Every part is opened and checked before any byte is copied; the copy then
    // reads these same open files, so a part re-uploaded meanwhile cannot slip
    // in unchecked.
    let mut opened = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let n = part.part_number;
        let mut file = match File::open(part_path(dir, n)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                read_session(dir)?; // NoSuchUpload if the whole session went away
                return Err(StoreError::InvalidPart(format!(
                    "part {n} was not uploaded"
                )));
            }
            Err(e) => return Err(io_error(e)),
        };
        let (etag, size) = read_part(&mut file).map_err(io_error)?;
        if etag != part.etag.trim_matches('"') {
            return Err(StoreError::InvalidPart(format!(
                "part {n}: ETag does not match"
            )));
        }
        if i + 1 < parts.len() && size < MIN_PART_SIZE {
            return Err(StoreError::InvalidPart(format!(
                "part {n} has {size} bytes; every part but the last needs at least {MIN_PART_SIZE}"
            )));
        }
        opened.push((file, size));
    }
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp.path)
        .map_err(io_error)?;
    for (file, size) in &mut opened {
        file.seek(io::SeekFrom::Start(HEADER_LEN as u64))
            .map_err(io_error)?;
        // File to file: std uses copy_file_range where the kernel has it.
        let copied = io::copy(&mut Read::take(&mut *file, *size), &mut out).map_err(io_error)?;
        if copied != *size {
            return Err(StoreError::Other(format!(
                "part file shrank while copying ({copied} of {size} bytes)"
            )));
        }
    }
    out.sync_all().map_err(io_error)?;
    drop(out);
    publish(temp, root, dest)?;
    if let Err(e) = remove_session(dir) {
        // The object is complete; the leftover session is swept as abandoned.
        tracing::warn!(dir = %dir.display(), error = %e, "could not remove a completed session");
    }
    Ok(())
}

/// Ends a session: renamed out of `.staging/` first (so it is gone at once
/// for every other caller, and a part still uploading fails with
/// `NoSuchUpload`), then deleted. A session already gone is success.
pub(super) fn remove_session(dir: &Path) -> Result<(), StoreError> {
    let root = dir
        .parent()
        .and_then(Path::parent)
        .expect("session directories are <root>/.staging/<id>");
    let name = dir.file_name().expect("a session directory has a name");
    let doomed = TempFile::new(root.join(".tmp").join(format!(
        "{}.ended-{}",
        name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    )));
    match std::fs::rename(dir, &doomed.path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            doomed.disarm();
            return Ok(());
        }
        Err(e) => {
            doomed.disarm();
            return Err(io_error(e));
        }
    }
    // The abort is durable once the session's entry is gone from the disk
    // too: a crash must not bring back a session whose parts were freed.
    sync_dir(&staging(root))?;
    let result = std::fs::remove_dir_all(&doomed.path).map_err(io_error);
    doomed.disarm(); // removed, or left for the stale temp sweep
    result
}

/// Sessions whose key starts with `prefix`, opened before `older_than`.
pub(super) fn list_sessions(
    root: &Path,
    prefix: &str,
    older_than: DateTime<Utc>,
) -> Result<Vec<MultipartSession>, StoreError> {
    let mut sessions = Vec::new();
    for entry in std::fs::read_dir(staging(root)).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let upload_id = entry.file_name().to_string_lossy().into_owned();
        let session = match read_session(&entry.path()) {
            Ok(s) => s,
            Err(StoreError::NoSuchUpload) => continue, // ended meanwhile
            Err(e) => {
                tracing::warn!(upload_id, error = %e, "skipping unreadable multipart session");
                continue;
            }
        };
        if session.key.starts_with(prefix)
            && session.initiated < older_than
            && validate_key(&session.key).is_ok()
        {
            sessions.push(MultipartSession {
                key: session.key,
                upload_id,
                initiated: session.initiated,
            });
        }
    }
    sessions.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
    Ok(sessions)
}

//! The audit: compares the bucket with the database, under the key prefix.
//!
//! Every object in the bucket must be accounted for by a claim, a registry
//! row or a delete-queue row; every registry row and uploaded claim must have
//! its object; every multipart session must belong to a claim or a queue row.
//! Pending claims legitimately have no object yet.
//!
//! Bounded memory whatever the bucket's size: the listing comes in key order
//! (bytewise, as S3 sorts), so each page is compared with the database rows
//! of the same key range (`COLLATE "C"`, read in chunks) and then dropped: a
//! sorted merge that holds one page and one chunk at a time, plus findings.
//!
//! The bucket is listed first and the database read afterwards, so an upload
//! or a delete finishing in between could look like an inconsistency: each
//! finding is checked a second time (store, then database) before it is
//! reported. Run it after incidents; it reads only.

use std::{collections::HashSet, fmt};

use chrono::Utc;
use uuid::Uuid;

use super::{JobContext, JobError};
use crate::{
    db::{DbError, KeyRange, ObjectRegistry, TailStore},
    store::{MultipartSession, StoreError},
};

/// What the audit found. Empty lists: the bucket and the database agree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Objects looked at.
    pub objects_scanned: usize,
    /// Multipart sessions looked at.
    pub sessions_scanned: usize,
    /// Objects no claim, registry row or queue row accounts for (leaked).
    pub unaccounted_objects: Vec<String>,
    /// Registry rows whose object is missing (lost data).
    pub registry_without_object: Vec<String>,
    /// Uploaded claims whose object is missing.
    pub claims_without_object: Vec<String>,
    /// Multipart sessions no claim or queue row knows (leaked parts).
    pub orphan_sessions: Vec<MultipartSession>,
    /// Finished uploads that still have appended bytes kept as a tail
    /// (`upload_tails`): stray rows.
    pub finished_with_tail: Vec<String>,
    /// The most keys (listed and read from the database) held at once: the
    /// audit's memory bound, one page plus one chunk, whatever the bucket's
    /// size.
    pub peak_keys_held: usize,
}

impl AuditReport {
    /// Whether nothing is out of place.
    pub fn is_clean(&self) -> bool {
        self.unaccounted_objects.is_empty()
            && self.registry_without_object.is_empty()
            && self.claims_without_object.is_empty()
            && self.orphan_sessions.is_empty()
            && self.finished_with_tail.is_empty()
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "scanned {} objects and {} multipart sessions",
            self.objects_scanned, self.sessions_scanned
        )?;
        let sections: [(&str, Vec<String>); 5] = [
            ("object not accounted for", self.unaccounted_objects.clone()),
            (
                "registry row without object",
                self.registry_without_object.clone(),
            ),
            (
                "uploaded claim without object",
                self.claims_without_object.clone(),
            ),
            (
                "multipart session without claim",
                self.orphan_sessions
                    .iter()
                    .map(|s| {
                        format!(
                            "{} upload_id={} initiated={}",
                            s.key, s.upload_id, s.initiated
                        )
                    })
                    .collect(),
            ),
            (
                "finished upload with a tail",
                self.finished_with_tail.clone(),
            ),
        ];
        for (what, items) in sections {
            for item in items {
                writeln!(f, "{what}: {item}")?;
            }
        }
        if self.is_clean() {
            writeln!(f, "clean: the bucket and the database agree")
        } else {
            writeln!(f, "INCONSISTENT")
        }
    }
}

/// Database rows read per statement while merging.
const CHUNK: i64 = 1000;

/// Runs the audit under [`super::JobSettings::key_prefix`].
pub async fn audit(ctx: &JobContext) -> Result<AuditReport, JobError> {
    let prefix = ctx.settings.key_prefix.as_str();
    let mut report = AuditReport::default();
    let mut candidates = Vec::new();
    let mut continuation = None;
    // The database's keys up to `done` were compared already.
    let mut done: Option<String> = None;
    loop {
        let (page, next) = ctx
            .store_call(ctx.store.list_objects(prefix, continuation))
            .await?;
        report.objects_scanned += page.len();
        let keys: Vec<String> = page.into_iter().map(|o| o.key).collect();
        candidates.extend(unaccounted(ctx, &keys).await?);
        // This page covers the keys up to its last one; the last page covers
        // the rest of the key space.
        let upto = match &next {
            Some(_) => keys.last().cloned().or_else(|| done.clone()),
            None => None,
        };
        let listed: HashSet<&str> = keys.iter().map(String::as_str).collect();
        for (side, findings) in [
            (Side::Registry, &mut report.registry_without_object),
            (Side::UploadedClaims, &mut report.claims_without_object),
        ] {
            let mut from = done.clone();
            loop {
                let range = KeyRange {
                    prefix,
                    after: from.as_deref(),
                    upto: upto.as_deref(),
                    limit: CHUNK,
                };
                let chunk = side.keys(ctx, &range).await?;
                report.peak_keys_held = report.peak_keys_held.max(keys.len() + chunk.len());
                for key in &chunk {
                    if !listed.contains(key.as_str()) && !exists(ctx, key).await? {
                        findings.push(key.clone());
                    }
                }
                if (chunk.len() as i64) < CHUNK {
                    break;
                }
                from = chunk.last().cloned();
            }
        }
        done = upto;
        match next {
            Some(token) => continuation = Some(token),
            None => break,
        }
    }
    // Second look: still there, and still unaccounted for.
    let mut still_there = Vec::new();
    for key in candidates {
        if exists(ctx, &key).await? {
            still_there.push(key);
        }
    }
    report.unaccounted_objects = unaccounted(ctx, &still_there).await?;

    let far_future = Utc::now() + chrono::Duration::days(1);
    let sessions = ctx
        .store_call(ctx.store.list_multipart_uploads(prefix, far_future))
        .await?;
    report.sessions_scanned = sessions.len();
    // A second look here too: a replicated store can list a session that
    // ended while one of its nodes was down (Garage 2.5 does once that node
    // is back, until its anti-entropy runs); ListParts answers for the
    // session itself, and one it does not find holds nothing to leak.
    for session in super::orphan_sessions(ctx, sessions).await? {
        match ctx
            .store_call(ctx.store.list_parts(&session.key, &session.upload_id))
            .await
        {
            Ok(_) => report.orphan_sessions.push(session),
            Err(StoreError::NoSuchUpload) => {}
            Err(e) => return Err(e.into()),
        }
    }
    report.finished_with_tail = TailStore::new(ctx.pool.clone())
        .finished_with_tail()
        .await?
        .iter()
        .map(Uuid::to_string)
        .collect();
    Ok(report)
}

/// The database rows the listing is compared with.
#[derive(Clone, Copy)]
enum Side {
    /// Registry rows: each must have its object.
    Registry,
    /// Uploaded claims: each must have its object.
    UploadedClaims,
}

impl Side {
    /// This side's keys in `range`.
    async fn keys(self, ctx: &JobContext, range: &KeyRange<'_>) -> Result<Vec<String>, DbError> {
        match self {
            Side::Registry => registry(ctx).keys_between(range).await,
            Side::UploadedClaims => ctx.claims.uploaded_keys_between(range).await,
        }
    }
}

/// Those of `keys` that no claim, registry row or queue row names.
async fn unaccounted(ctx: &JobContext, keys: &[String]) -> Result<Vec<String>, DbError> {
    registry(ctx).unaccounted(keys).await
}

fn registry(ctx: &JobContext) -> ObjectRegistry {
    ObjectRegistry::new(ctx.pool.clone())
}

async fn exists(ctx: &JobContext, key: &str) -> Result<bool, StoreError> {
    match ctx.store_call(ctx.store.head(key)).await {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

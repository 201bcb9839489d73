//! What a bucket lists and serves, checked against the database and the
//! bytes the clients sent.

use std::{collections::BTreeSet, time::Duration};

use claimcheck::db::Pool;
use claimcheck::store::{MultipartSession, ObjectStore, StoreError};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::uploads::Finished;
use crate::{
    jobs::exists,
    stores::{random_sha256_ranges, S3Target},
};

/// Reads `f`'s object through `node` and checks it is the bytes sent.
pub async fn read_back(node: &S3Target, f: &Finished) {
    let url = node
        .store()
        .await
        .presign_get(&f.key, Duration::from_secs(60), &Default::default())
        .await
        .expect("presign")
        .url;
    let res = reqwest::get(url).await.expect("GET the object");
    assert_eq!(res.status(), 200, "{}", f.key);
    let mut hasher = Sha256::new();
    let mut body = res.bytes_stream();
    while let Some(chunk) = body.next().await {
        hasher.update(chunk.expect("object bytes"));
    }
    assert_eq!(
        hex::encode(hasher.finalize()),
        random_sha256_ranges(&[(f.upload.seed, 0..f.upload.size)]),
        "{}: the bytes sent",
        f.key
    );
}

/// The keys `node` lists under `prefix` that no claim and no registry row
/// holds, each of which must answer HEAD with 404 (a key listed but
/// deleted; panics on one that exists: a leak). A replicated store can list
/// a key deleted while one of its nodes was down, once that node is back.
pub async fn listed_but_deleted(pool: &Pool, node: &S3Target, prefix: &str) -> BTreeSet<String> {
    let store = node.store().await;
    let mut listed = Vec::new();
    let mut token = None;
    loop {
        let (page, next) = store.list_objects(prefix, token).await.expect("list");
        listed.extend(page.into_iter().map(|o| o.key));
        match next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let held: BTreeSet<String> = pool
        .get()
        .await
        .expect("db connection")
        .query(
            "SELECT object_key FROM claimcheck.objects WHERE object_key = ANY($1)
             UNION SELECT object_key FROM claimcheck.upload_claims WHERE object_key = ANY($1)",
            &[&listed],
        )
        .await
        .expect("held keys")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let others: Vec<String> = listed.into_iter().filter(|k| !held.contains(k)).collect();
    let there = existing(&*store, &others).await;
    assert!(there.is_empty(), "objects no one holds: {there:?}");
    others.into_iter().collect()
}

/// Those of `keys` that `store` has, by HEAD (16 at a time): the second
/// look at keys a listing showed.
pub(super) async fn existing(store: &dyn ObjectStore, keys: &[String]) -> BTreeSet<String> {
    futures::stream::iter(keys)
        .map(|key| async move { exists(store, key).await.then(|| key.clone()) })
        .buffer_unordered(16)
        .filter_map(|k| async { k })
        .collect()
        .await
}

/// The multipart sessions `node` lists under `prefix`: those the store
/// still has, and those it lists but no longer has (`ListParts` answers
/// `NoSuchUpload`: completed or aborted while one of its nodes was down).
pub async fn sessions_listed(
    node: &S3Target,
    prefix: &str,
) -> (Vec<MultipartSession>, Vec<MultipartSession>) {
    let store = node.store().await;
    let far = chrono::Utc::now() + chrono::Duration::days(1);
    let mut live = Vec::new();
    let mut gone = Vec::new();
    for session in store
        .list_multipart_uploads(prefix, far)
        .await
        .expect("list sessions")
    {
        match store.list_parts(&session.key, &session.upload_id).await {
            Ok(_) => live.push(session),
            Err(StoreError::NoSuchUpload) => gone.push(session),
            Err(e) => panic!("list parts of {session:?}: {e}"),
        }
    }
    (live, gone)
}

//! Items 1 and 3 of the hardening issue: racing completes never delete a
//! consumed object, and every removed claim accounts for its key.

use std::{sync::Arc, time::Duration};

use claimcheck::{jobs::delete_worker, store::ObjectStore};
use claimcheck_tests::{
    app::{Store, TestApp},
    jobs::{context, exists, fast_settings},
    stores::random_bytes,
};
use futures::{future::join_all, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::store_of;

/// A one-part upload whose part is in; returns (id, key).
async fn one_part_upload(app: &TestApp, seed: u64) -> (String, String) {
    let claim = app.init(1024, None).await;
    let id = claim["id"].as_str().unwrap().to_owned();
    let res = app.put_part(&id, 1, random_bytes(seed, 1024)).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    (id, claim["key"].as_str().unwrap().to_owned())
}

/// A TCP proxy to `target` that holds each chunk from the client for
/// `delay` before passing it on: a slower route to the same server.
async fn slow_proxy(target: String, delay: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let (mut client_rx, mut client_tx) = client.into_split();
                let (mut server_rx, mut server_tx) = server.into_split();
                let upstream = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = client_rx.read(&mut buf).await {
                        tokio::time::sleep(delay).await;
                        if server_tx.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = server_tx.shutdown().await;
                };
                let downstream = async move {
                    let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
                };
                tokio::join!(upstream, downstream);
            });
        }
    });
    format!("http://{addr}")
}

/// 8 rounds of 8 concurrent completes of one claim, the claim consumed as
/// soon as the first 200 arrives (a double-clicked complete and an eager
/// business), then the delete worker drained: every consumed object is
/// still there, and no complete answered 5xx. Half the completes go through
/// a second process whose S3 requests arrive 300 ms late (on S3, a second
/// process slower to reach S3): their CompleteMultipartUpload lands after
/// the claim was consumed, which is where the old code queued the delete.
async fn racing_completes_never_delete_a_consumed_object(store: Store) {
    let app = Arc::new(TestApp::spawn(store).await);
    let other = Arc::new(match store {
        Store::S3 => {
            let garage = claimcheck_tests::stores::S3Target::shared().endpoint;
            let slow = slow_proxy(
                garage.trim_start_matches("http://").to_owned(),
                Duration::from_millis(300),
            )
            .await;
            app.another_with(&[("CLAIMCHECK_S3_ENDPOINT", &slow)]).await
        }
        Store::Fs => app.another().await,
    });
    let mut keys = Vec::new();
    for round in 0..8u64 {
        let (id, key) = one_part_upload(&app, round).await;
        let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
        let first_tx = Arc::new(std::sync::Mutex::new(Some(first_tx)));
        let completes = (0..8).map(|i| {
            // Half through another process: the race spans pods.
            let app = if i % 2 == 0 {
                app.clone()
            } else {
                other.clone()
            };
            let (id, first_tx) = (id.clone(), first_tx.clone());
            async move {
                let res = app.complete(&id).await;
                let status = res.status().as_u16();
                let body: Value = res.json().await.unwrap_or(Value::Null);
                if status == 200 {
                    if let Some(tx) = first_tx.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                }
                (status, body)
            }
        });
        let consumer = {
            let (app, key) = (app.clone(), key.clone());
            async move {
                if first_rx.await.is_ok() {
                    let res = app
                        .req(Method::POST, "/v1/claims/consume")
                        .json(&json!({"owner": "alice", "keys": [key]}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 200, "consume: {}", res.text().await.unwrap());
                }
            }
        };
        let (answers, ()) = tokio::join!(join_all(completes), consumer);
        let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
        assert!(
            statuses.iter().all(|s| [200, 404, 409].contains(s)),
            "round {round}: {statuses:?}"
        );
        assert!(statuses.contains(&200), "round {round}: {statuses:?}");
        for (status, body) in &answers {
            if *status == 200 {
                assert_eq!(body["key"], key.as_str(), "every 200 is the same claim");
                assert_eq!(body["status"], "uploaded");
            }
        }
        keys.push(key);
    }
    // No delete was queued for a consumed key (the worker's own check, item
    // 2, would park such a row rather than delete: this is item 1 alone).
    let queued = app
        .db
        .strings("SELECT object_key FROM claimcheck.pending_deletes")
        .await;
    assert!(
        queued.iter().all(|k| !keys.contains(k)),
        "deletes queued for consumed keys: {queued:?}"
    );
    let store: Arc<dyn ObjectStore> = store_of(&app).await.into();
    let ctx = context(&app.db, store.clone(), fast_settings(&app.prefix));
    delete_worker::drain(&ctx).await.unwrap();
    for key in &keys {
        assert!(
            exists(&*store, key).await,
            "consumed object {key} was deleted"
        );
    }
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.objects").await,
        8
    );
}

#[tokio::test]
async fn racing_completes_never_delete_a_consumed_object_s3() {
    racing_completes_never_delete_a_consumed_object(Store::S3).await;
}

#[tokio::test]
async fn racing_completes_never_delete_a_consumed_object_fs() {
    racing_completes_never_delete_a_consumed_object(Store::Fs).await;
}

/// A complete whose process died after the store assembled the object but
/// before it marked the claim, then a discard: the discard's abort finds no
/// session (success), and the object must still be queued, not leaked.
async fn a_discard_after_a_dead_complete_queues_the_assembled_object(store: Store) {
    let app = TestApp::spawn(store).await;
    let (id, key) = one_part_upload(&app, 7).await;
    let objects = store_of(&app).await;
    // What the dead complete did: the store's half only.
    let upload_id: String = app
        .db
        .client()
        .await
        .query_one(
            "SELECT upload_id FROM claimcheck.upload_claims WHERE object_key = $1",
            &[&key],
        )
        .await
        .unwrap()
        .get(0);
    let parts = objects.list_parts(&key, &upload_id).await.unwrap();
    let completed: Vec<_> = parts
        .iter()
        .map(|p| claimcheck::store::CompletedPart {
            part_number: p.part_number,
            etag: p.etag.clone(),
        })
        .collect();
    objects
        .complete_multipart(&key, &upload_id, &completed)
        .await
        .unwrap();
    let res = app
        .req(Method::DELETE, &format!("/v1/uploads/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let queued = app
        .db
        .strings("SELECT object_key FROM claimcheck.pending_deletes")
        .await;
    assert_eq!(
        queued,
        std::slice::from_ref(&key),
        "the discarded claim's key is queued"
    );
    let store: Arc<dyn ObjectStore> = objects.into();
    let ctx = context(&app.db, store.clone(), fast_settings(&app.prefix));
    delete_worker::drain(&ctx).await.unwrap();
    assert!(
        !exists(&*store, &key).await,
        "the assembled object is deleted"
    );
}

#[tokio::test]
async fn a_discard_after_a_dead_complete_queues_the_assembled_object_s3() {
    a_discard_after_a_dead_complete_queues_the_assembled_object(Store::S3).await;
}

#[tokio::test]
async fn a_discard_after_a_dead_complete_queues_the_assembled_object_fs() {
    a_discard_after_a_dead_complete_queues_the_assembled_object(Store::Fs).await;
}

/// A single-shot upload whose claim expires while its body streams is
/// answered 410, and its object is queued for delete: the sweeper never
/// "recovers" it to `uploaded` afterwards.
#[tokio::test]
async fn an_upload_answered_410_leaves_no_object_to_recover() {
    let app = TestApp::spawn_with(Store::Fs, &[("CLAIMCHECK_CLAIM_TTL", "1s")]).await;
    let len = 64 * 1024u64;
    let bytes = random_bytes(3, len);
    // The body takes about 2 s, longer than the claim's TTL.
    let body = futures::stream::iter(
        bytes
            .chunks(8 * 1024)
            .map(|c| c.to_vec())
            .collect::<Vec<_>>(),
    )
    .then(|chunk| async move {
        tokio::time::sleep(Duration::from_millis(250)).await;
        Ok::<_, std::io::Error>(chunk)
    });
    let res = app
        .req(Method::POST, "/v1/uploads?filename=slow.bin")
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", len)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 410, "{}", res.text().await.unwrap());
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.upload_claims")
            .await,
        0,
        "no claim left for the sweeper to recover"
    );
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.pending_deletes WHERE reason = 'discarded'")
            .await,
        1,
        "the written object is queued for delete"
    );
}

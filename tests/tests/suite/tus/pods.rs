//! No sticky sessions: any pod serves any request of an upload, one writer
//! at a time across pods, a dead pod's offset survives it, and an abandoned
//! upload leaves nothing behind.

use std::time::Duration;

use bytes::Bytes;
use claimcheck::jobs::{audit, delete_worker, sweeper};
use claimcheck_tests::{
    app::{Store, TestApp},
    jobs::{context, fast_settings, sessions},
    stores::{random_bytes, S3Target},
};
use futures::StreamExt;
use reqwest::Method;
use tokio::sync::oneshot;

use super::{claim_id, create, head_offset, hv, patch, stored_object, tus, FIVE_MIB_PARTS};

const MIB: u64 = 1024 * 1024;

/// A PATCH body that sends `first`, then waits for `gate` before `rest`
/// (a gate dropped unsent: the body never ends).
fn paused(first: Vec<u8>, rest: Vec<u8>, gate: oneshot::Receiver<()>) -> reqwest::Body {
    let first = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(first))]);
    let rest = futures::stream::once(async move {
        if gate.await.is_err() {
            futures::future::pending::<()>().await;
        }
        Ok(Bytes::from(rest))
    });
    reqwest::Body::wrap_stream(first.chain(rest))
}

fn paused_patch(
    app: &TestApp,
    path: &str,
    offset: u64,
    len: u64,
    body: reqwest::Body,
) -> reqwest::RequestBuilder {
    tus(app, Method::PATCH, path)
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", offset.to_string())
        .header("Content-Length", len.to_string())
        .body(body)
}

/// Waits until the upload's writer lock is held.
async fn until_locked(app: &TestApp, path: &str) {
    let sql = format!(
        "SELECT count(*) FROM claimcheck.upload_claims WHERE id = '{}' AND writer_until > now()",
        claim_id(path)
    );
    for _ in 0..400 {
        if app.sql_i64(&sql).await == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the PATCH never took the writer lock");
}

#[tokio::test]
async fn two_pods_serve_alternate_chunks_and_agree_on_the_offset() {
    let a = TestApp::spawn_with(Store::S3, &[FIVE_MIB_PARTS]).await;
    let b = a.another().await;
    let size = 7 * MIB + 11;
    let bytes = random_bytes(31, size);
    let path = create(&a, size).await;
    let mut offset = 0;
    for (i, len) in [MIB + 3, 3 * MIB, 2 * MIB, MIB].into_iter().enumerate() {
        let pod = if i % 2 == 0 { &a } else { &b };
        let end = (offset + len).min(size);
        let chunk = bytes[offset as usize..end as usize].to_vec();
        assert_eq!(patch(pod, &path, offset, chunk).await.status(), 204);
        offset = end;
        assert_eq!(
            (head_offset(&a, &path).await, head_offset(&b, &path).await),
            (end, end)
        );
    }
    let rest = bytes[offset as usize..].to_vec();
    assert_eq!(patch(&b, &path, offset, rest).await.status(), 204);
    let claim = a
        .get_json(&format!("/v1/uploads/{}", claim_id(&path)))
        .await;
    assert_eq!(claim["status"], "uploaded");
}

#[tokio::test]
async fn a_second_concurrent_patch_on_another_pod_is_locked_out() {
    let a = TestApp::spawn(Store::S3).await;
    let b = a.another().await;
    let size = 2 * MIB;
    let winner = random_bytes(32, size);
    let path = create(&a, size).await;
    let (go, gate) = oneshot::channel();
    let body = paused(
        winner[..MIB as usize].to_vec(),
        winner[MIB as usize..].to_vec(),
        gate,
    );
    let first = tokio::spawn(paused_patch(&a, &path, 0, size, body).send());
    until_locked(&a, &path).await;
    let res = patch(&b, &path, 0, random_bytes(33, size)).await;
    assert!(
        res.status() == 423 || res.status() == 409,
        "{}",
        res.status()
    );
    assert_eq!(hv(&res, "tus-resumable"), Some("1.0.0"));
    let metrics = b
        .http
        .get(format!("{}/metrics", b.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("claimcheck_tus_locked_total 1"),
        "{metrics}"
    );
    go.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap().status(), 204);
    assert!(
        stored_object(&b, &path).await == winner,
        "exactly the winner's bytes"
    );
}

#[tokio::test]
async fn after_kill_9_mid_patch_another_pod_resumes_from_a_durable_offset() {
    let b = TestApp::spawn_with(Store::S3, &[FIVE_MIB_PARTS]).await;
    let mut a = b.another().await;
    let size = 12 * MIB;
    let bytes = random_bytes(34, size);
    let path = create(&a, size).await;
    assert_eq!(
        patch(&a, &path, 0, bytes[..1000].to_vec()).await.status(),
        204
    );
    // 7 MiB more, then the body stalls: one full part is recorded, the rest
    // is in the dying pod's memory only.
    let (_never, gate) = oneshot::channel::<()>();
    let body = paused(bytes[1000..(7 * MIB) as usize].to_vec(), Vec::new(), gate);
    let _stalled = tokio::spawn(paused_patch(&a, &path, 1000, size - 1000, body).send());
    for _ in 0..400 {
        if head_offset(&b, &path).await >= 5 * MIB {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    a.kill().await;
    let offset = head_offset(&b, &path).await;
    assert!(
        offset >= 5 * MIB,
        "a recorded part survives the pod: {offset}"
    );
    // tus clients retry a 423 until the dead pod's lock runs out (seconds).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let res = patch(&b, &path, offset, bytes[offset as usize..].to_vec()).await;
        if res.status() == 204 {
            break;
        }
        assert_eq!(res.status(), 423, "{:?}", res.text().await);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead pod's lock never ran out"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        stored_object(&b, &path).await == bytes,
        "the object is exactly the bytes sent"
    );
}

#[tokio::test]
async fn an_abandoned_upload_is_swept_with_its_parts_tail_and_session() {
    let app =
        TestApp::spawn_with(Store::S3, &[("CLAIMCHECK_CLAIM_TTL", "2s"), FIVE_MIB_PARTS]).await;
    let path = create(&app, 20 * MIB).await;
    // A full part in the store's session and 1 MiB in the tail.
    assert_eq!(
        patch(&app, &path, 0, random_bytes(35, 6 * MIB))
            .await
            .status(),
        204
    );
    let id = claim_id(&path);
    let rows = |table: &str, column: &str| {
        format!("SELECT count(*) FROM claimcheck.{table} WHERE {column} = '{id}'")
    };
    assert_eq!(app.sql_i64(&rows("upload_tails", "claim_id")).await, 1);
    assert_eq!(app.sql_i64(&rows("upload_parts", "claim_id")).await, 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let res = tus(&app, Method::HEAD, &path).send().await.unwrap();
    assert_eq!(
        res.status(),
        410,
        "an expired upload is gone for its client"
    );

    let store = S3Target::shared().store().await;
    let ctx = context(&app.db, store.clone(), fast_settings(&app.prefix));
    assert_eq!(sweeper::sweep_once(&ctx).await.unwrap().expired, 1);
    delete_worker::drain(&ctx).await.unwrap();
    for (table, column) in [
        ("upload_claims", "id"),
        ("upload_parts", "claim_id"),
        ("upload_tails", "claim_id"),
    ] {
        assert_eq!(app.sql_i64(&rows(table, column)).await, 0, "{table}");
    }
    assert!(
        sessions(&*store, &app.prefix).await.is_empty(),
        "the session is aborted"
    );
    let report = audit::audit(&ctx).await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.objects_scanned, 0);
}

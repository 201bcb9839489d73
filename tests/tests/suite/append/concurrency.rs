//! One writer at a time per upload, across processes: a second append is
//! refused at once and stores nothing; a writer that lost its lock writes
//! nothing; renewing the lock never stalls the writer.

use bytes::Bytes;
use claimcheck::{
    store::ByteStream,
    uploads::{Append, Appended, UploadError},
};
use claimcheck_tests::{
    core::{uploads, MIB},
    stores::{bytes_body, random_bytes},
};
use futures::StreamExt;
use tokio::sync::oneshot;

use super::{partial_offset, Appender};

/// `first`, then, once `gate` fires, `rest`: a client that pauses mid-body.
fn paused_body(first: Vec<u8>, rest: Vec<u8>, gate: oneshot::Receiver<()>) -> ByteStream {
    let first = futures::stream::iter([Ok(Bytes::from(first))]);
    let rest = futures::stream::once(async move {
        let _ = gate.await;
        Ok(Bytes::from(rest))
    });
    first.chain(rest).boxed()
}

/// Waits until the upload's writer lock is taken.
async fn until_locked(t: &Appender, id: uuid::Uuid) {
    let sql = format!(
        "SELECT count(*) FROM claimcheck.upload_claims
          WHERE id = '{id}' AND writer_until > now()"
    );
    for _ in 0..200 {
        if claimcheck_tests::jobs::count(&t.db, &sql).await == 1 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the first append never took the writer lock");
}

#[tokio::test]
async fn a_second_writer_on_another_process_is_refused_and_stores_nothing() {
    let t = Appender::new().await;
    let size = 7 * MIB;
    let bytes = random_bytes(6, size);
    let id = t.start(size).await;
    // Two cores over separate pools: two pods.
    let pod_b = uploads(&t.db, t.store.clone(), 5 * MIB);
    let (go, gate) = oneshot::channel();
    let body = paused_body(
        bytes[..MIB as usize].to_vec(),
        bytes[MIB as usize..(6 * MIB) as usize].to_vec(),
        gate,
    );
    let up = t.up.clone();
    let first = tokio::spawn(async move { up.append("o", id, Append::new(0, body)).await });
    until_locked(&t, id).await;

    // Several at once, at the offset the client believes in: all refused.
    let mut seconds = Vec::new();
    for i in 0..4u8 {
        let pod_b = pod_b.clone();
        seconds.push(tokio::spawn(async move {
            pod_b
                .append("o", id, Append::new(0, bytes_body(vec![i; 1000])).len(1000))
                .await
        }));
    }
    for second in seconds {
        let err = second.await.unwrap().unwrap_err();
        assert!(matches!(err, UploadError::Busy(_)), "{err:?}");
    }
    go.send(()).unwrap();
    let appended = first.await.unwrap().unwrap();
    assert_eq!(partial_offset(&appended), 6 * MIB);
    // The lock is free again: the rest goes through the other pod.
    let rest = &bytes[(6 * MIB) as usize..];
    let chunk = Append::new(6 * MIB, bytes_body(rest.to_vec())).len(rest.len() as u64);
    let Appended::Finished(claim) = pod_b.append("o", id, chunk).await.unwrap() else {
        panic!("the rest finishes the upload");
    };
    assert_eq!(
        t.object(&claim.key).await,
        bytes,
        "no byte of the refused writers"
    );
}

#[tokio::test]
async fn a_writer_that_lost_its_lock_records_nothing() {
    let t = Appender::new().await;
    let id = t.start(6 * MIB).await;
    let (go, gate) = oneshot::channel();
    let body = paused_body(vec![1u8; 1000], vec![2u8; 1000], gate);
    let up = t.up.clone();
    let stale = tokio::spawn(async move { up.append("o", id, Append::new(0, body)).await });
    until_locked(&t, id).await;
    // Its lease ran out (a stalled pod) and another writer took the lock.
    let db = t.db.client().await;
    db.execute(
        "UPDATE claimcheck.upload_claims SET writer_token = gen_random_uuid() WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap();
    go.send(()).unwrap();
    let err = stale.await.unwrap().unwrap_err();
    assert!(matches!(err, UploadError::Busy(_)), "{err:?}");
    assert_eq!(t.offset(id).await, 0);
    assert_eq!(t.tail_rows(id).await, 0);
}

#[tokio::test]
async fn renewing_the_writer_lock_never_waits_on_the_appends_own_transaction() {
    let t = Appender::new().await;
    let id = t.start(7 * MIB).await;
    // Another session holds the tails table, so the append's commit, once
    // its first statement has locked the claim row, waits past a renewal of
    // the writer lock (every 10 s / 3). The renewal updates that same row.
    let mut blocker = t.db.client().await;
    let held = blocker.transaction().await.unwrap();
    held.batch_execute("LOCK TABLE claimcheck.upload_tails IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let up = t.up.clone();
    let append = tokio::spawn(async move {
        let chunk = Append::new(0, bytes_body(random_bytes(9, 1000))).len(1000);
        up.append("o", id, chunk).await
    });
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    held.rollback().await.unwrap();
    // Before the fix the renewal ran in place of the append, waiting for the
    // row the append's paused transaction held: a deadlock PostgreSQL could
    // not see, and the append never answered.
    let appended = tokio::time::timeout(std::time::Duration::from_secs(10), append)
        .await
        .expect("the append finishes once the table is free")
        .unwrap()
        .unwrap();
    assert_eq!(partial_offset(&appended), 1000);
    assert_eq!(t.offset(id).await, 1000);
}

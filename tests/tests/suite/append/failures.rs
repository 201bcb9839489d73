//! Appends that fail store nothing they should not, and leave an offset a
//! client can resume from.

use bytes::Bytes;
use claimcheck::store::ByteStream;
use claimcheck::uploads::{Append, Appended, ChecksumAlgorithm, ChunkChecksum, UploadError};
use claimcheck_tests::{
    core::MIB,
    stores::{bytes_body, random_bytes},
};
use futures::StreamExt;
use sha1::Digest;

use super::{partial_offset, Appender};

#[tokio::test]
async fn an_append_at_another_offset_stores_nothing() {
    let t = Appender::new().await;
    let id = t.start(6 * MIB).await;
    let bytes = random_bytes(3, 6 * MIB);
    t.append(id, 0, &bytes[..100]).await;
    for wrong in [0, 99, 101, 5 * MIB] {
        let chunk = Append::new(wrong, bytes_body(bytes[..10].to_vec())).len(10);
        let err = t.up.append("o", id, chunk).await.unwrap_err();
        assert!(
            matches!(err, UploadError::OffsetMismatch { expected: 100 }),
            "{err:?}"
        );
    }
    assert_eq!(t.offset(id).await, 100);
    assert_eq!(t.tail_rows(id).await, 1);
}

#[tokio::test]
async fn a_chunk_past_the_upload_length_is_refused() {
    let t = Appender::new().await;
    let id = t.start(1000).await;
    // Declared too long: refused before a byte is read.
    let chunk = Append::new(0, bytes_body(vec![7u8; 1001])).len(1001);
    let err = t.up.append("o", id, chunk).await.unwrap_err();
    assert!(
        matches!(err, UploadError::PastLength { length: 1000 }),
        "{err:?}"
    );
    // Undeclared (a chunked request body): refused when the bytes go past.
    let chunk = Append::new(0, bytes_body(vec![7u8; 1001]));
    let err = t.up.append("o", id, chunk).await.unwrap_err();
    assert!(
        matches!(err, UploadError::PastLength { length: 1000 }),
        "{err:?}"
    );
    assert_eq!(t.offset(id).await, 0);
    assert_eq!(t.tail_rows(id).await, 0);
    // The right length still finishes it.
    let done = t.append(id, 0, &[7u8; 1000]).await;
    assert!(matches!(done, Appended::Finished(_)), "{done:?}");
}

#[tokio::test]
async fn a_chunk_whose_checksum_does_not_match_counts_for_nothing() {
    let t = Appender::new().await;
    let size = 12 * MIB;
    let bytes = random_bytes(4, size);
    let id = t.start(size).await;
    t.append(id, 0, &bytes[..MIB as usize]).await;
    // A chunk over a part boundary with a wrong SHA-1: its full part went to
    // the store as it filled, but neither it nor the tail is recorded.
    let chunk_bytes = &bytes[MIB as usize..(7 * MIB) as usize];
    let wrong = ChunkChecksum {
        algorithm: ChecksumAlgorithm::Sha1,
        digest: sha1::Sha1::digest(b"something else").to_vec(),
    };
    let chunk = Append::new(MIB, bytes_body(chunk_bytes.to_vec())).checksum(wrong);
    let err = t.up.append("o", id, chunk).await.unwrap_err();
    assert!(
        matches!(err, UploadError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(t.offset(id).await, MIB);
    assert_eq!(t.up.progress("o", id).await.unwrap().parts.len(), 0);
    // Sent again with its own digest: taken, and the object assembled from
    // the recorded parts only (the refused part 1 was overwritten).
    let right = ChunkChecksum {
        algorithm: ChecksumAlgorithm::Sha1,
        digest: sha1::Sha1::digest(chunk_bytes).to_vec(),
    };
    let chunk = Append::new(MIB, bytes_body(chunk_bytes.to_vec())).checksum(right);
    let appended = t.up.append("o", id, chunk).await.unwrap();
    assert_eq!(partial_offset(&appended), 7 * MIB);
    let Appended::Finished(claim) = t.append(id, 7 * MIB, &bytes[(7 * MIB) as usize..]).await
    else {
        panic!("the rest finishes the upload");
    };
    assert_eq!(t.object(&claim.key).await, bytes);
}

#[tokio::test]
async fn a_body_cut_off_midway_keeps_what_arrived_and_the_client_resumes() {
    let t = Appender::new().await;
    let size = 8 * MIB;
    let bytes = random_bytes(5, size);
    let id = t.start(size).await;
    t.append(id, 0, &bytes[..1000]).await;
    // The client hangs up 6 MiB into its chunk: one full part (with the
    // earlier tail at its front) is recorded, the bytes after it are the new
    // tail.
    let sent = 6 * MIB;
    let body = cut_off(&bytes[1000..(1000 + sent) as usize]);
    let err =
        t.up.append("o", id, Append::new(1000, body))
            .await
            .unwrap_err();
    assert!(matches!(err, UploadError::BodyFailed(_)), "{err:?}");
    let offset = t.offset(id).await;
    assert_eq!(offset, 1000 + sent, "every byte that arrived is kept");
    assert_eq!(t.up.progress("o", id).await.unwrap().parts.len(), 1);
    let Appended::Finished(claim) = t.append(id, offset, &bytes[offset as usize..]).await else {
        panic!("the rest finishes the upload");
    };
    assert_eq!(t.object(&claim.key).await, bytes);
}

#[tokio::test]
async fn appends_to_unknown_finished_or_foreign_uploads_are_refused() {
    let t = Appender::new().await;
    let id = t.start(10).await;
    let foreign = t.up.append(
        "someone-else",
        id,
        Append::new(0, bytes_body(vec![1u8; 10])),
    );
    assert!(matches!(foreign.await, Err(UploadError::NotFound)));
    let unknown = t.up.append(
        "o",
        uuid::Uuid::now_v7(),
        Append::new(0, bytes_body(vec![1u8; 10])),
    );
    assert!(matches!(unknown.await, Err(UploadError::NotFound)));
    t.append(id, 0, &[1u8; 10]).await;
    let again =
        t.up.append("o", id, Append::new(10, bytes_body(Vec::new())));
    assert!(matches!(again.await, Err(UploadError::Conflict(_))));
    t.up.discard("o", id).await.unwrap();
    let gone =
        t.up.append("o", id, Append::new(10, bytes_body(Vec::new())));
    assert!(matches!(gone.await, Err(UploadError::NotFound)));
}

/// `bytes` in 64 KiB chunks, then a failure like a client hanging up.
fn cut_off(bytes: &[u8]) -> ByteStream {
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let hang_up = std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "client went away (test)",
    );
    futures::stream::iter(chunks)
        .chain(futures::stream::iter([Err(hang_up)]))
        .boxed()
}

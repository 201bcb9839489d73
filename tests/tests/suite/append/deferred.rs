//! Resumable uploads whose size comes later, and the line between them and
//! the REST API's chunked uploads.

use claimcheck::uploads::{Append, Appended, InitMultipart, UploadError};
use claimcheck_tests::{
    core::MIB,
    stores::{bytes_body, random_bytes},
};

use super::{partial_offset, Appender};

#[tokio::test]
async fn a_deferred_size_is_declared_with_a_later_append_and_then_finishes() {
    let t = Appender::new().await;
    let id = t.start_sized(None).await;
    let state = t.up.resumable("o", id).await.unwrap();
    assert!(state.claim.resumable.as_ref().unwrap().length_deferred);
    let size = 6 * MIB + 5;
    let bytes = random_bytes(7, size);
    // Bytes before the size is known, across a part boundary: kept, and
    // never a finished upload however many arrive.
    let first = &bytes[..(5 * MIB + 1) as usize];
    let appended = t.append(id, 0, first).await;
    assert_eq!(partial_offset(&appended), 5 * MIB + 1);
    // A size short of what arrived is refused; nothing changes.
    let chunk = Append::new(5 * MIB + 1, bytes_body(Vec::new())).upload_length(10);
    let err = t.up.append("o", id, chunk).await.unwrap_err();
    assert!(matches!(err, UploadError::Invalid(_)), "{err:?}");
    // Over the size limit: refused too.
    let chunk = Append::new(5 * MIB + 1, bytes_body(Vec::new())).upload_length(2 << 30);
    let err = t.up.append("o", id, chunk).await.unwrap_err();
    assert!(matches!(err, UploadError::TooLarge { .. }), "{err:?}");
    // Declared with the last bytes: the upload finishes.
    let rest = bytes[(5 * MIB + 1) as usize..].to_vec();
    let chunk = Append::new(5 * MIB + 1, bytes_body(rest)).upload_length(size);
    let Appended::Finished(claim) = t.up.append("o", id, chunk).await.unwrap() else {
        panic!("declared with the last bytes, the upload finishes");
    };
    assert_eq!(claim.size as u64, size);
    assert!(!claim.resumable.unwrap().length_deferred);
    assert_eq!(t.object(&claim.key).await, bytes);
}

#[tokio::test]
async fn a_declared_size_cannot_change() {
    let t = Appender::new().await;
    let id = t.start(100).await;
    let same = Append::new(0, bytes_body(vec![1u8; 10])).upload_length(100);
    assert_eq!(
        partial_offset(&t.up.append("o", id, same).await.unwrap()),
        10
    );
    let other = Append::new(10, bytes_body(vec![1u8; 10])).upload_length(200);
    let err = t.up.append("o", id, other).await.unwrap_err();
    assert!(matches!(err, UploadError::Invalid(_)), "{err:?}");
    assert_eq!(t.offset(id).await, 10);
}

#[tokio::test]
async fn appends_and_numbered_parts_never_mix_on_one_upload() {
    let t = Appender::new().await;
    let resumable = t.start(6 * MIB).await;
    let part = t.up.put_part(
        "o",
        resumable,
        1,
        Some(5 * MIB),
        None,
        bytes_body(vec![0u8; 5 << 20]),
    );
    assert!(matches!(part.await, Err(UploadError::Conflict(_))));
    assert!(matches!(
        t.up.complete("o", resumable).await,
        Err(UploadError::Conflict(_))
    ));
    assert!(matches!(
        t.up.presign_part("o", resumable, 1).await,
        Err(UploadError::Conflict(_))
    ));
    let init = InitMultipart {
        filename: "b.bin".into(),
        content_type: "application/octet-stream".into(),
        size: 100,
        part_size: None,
        public: false,
    };
    let rest =
        t.up.init_multipart("o", init, None)
            .await
            .unwrap()
            .claim()
            .id;
    let appended =
        t.up.append("o", rest, Append::new(0, bytes_body(vec![1u8; 100])));
    assert!(matches!(appended.await, Err(UploadError::Conflict(_))));
    // The one-read state is for resumable uploads only.
    assert!(matches!(
        t.up.resumable("o", rest).await,
        Err(UploadError::NotFound)
    ));
    assert_eq!(t.offset(resumable).await, 0);
}

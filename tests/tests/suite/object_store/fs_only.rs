//! Cases for the filesystem store only: key escapes, signed download URLs.

use std::time::Duration;

use chrono::Utc;
use claimcheck::store::{
    fs::{SignatureError, UrlSigner},
    DownloadResponse, ObjectStore, StoreError,
};
use claimcheck_tests::stores::{random_body, FS_BASE_URL, FS_SIGNING_KEY};

use super::*;

// ---- filesystem only -------------------------------------------------------

#[tokio::test]
async fn fs_keys_cannot_escape_the_root() {
    let outside = tempfile::tempdir().unwrap();
    let root = outside.path().join("root");
    let signer = UrlSigner::new(FS_BASE_URL.parse().unwrap(), FS_SIGNING_KEY).unwrap();
    let store = claimcheck::store::fs::FsStore::new(root.clone(), Some(signer)).unwrap();
    // An absolute key is tried inside our temp dir, never on a real system file.
    let absolute = outside
        .path()
        .join("absolute")
        .to_string_lossy()
        .into_owned();
    let bad = [
        "../x",
        "a/../../b",
        ".staging/x",
        ".tmp/x",
        "a/./b",
        absolute.as_str(),
        "",
    ];
    let invalid = |r: Result<(), StoreError>| matches!(r, Err(StoreError::InvalidKey(_)));
    for key in bad {
        assert!(
            invalid(store.put(key, random_body(60, 10), 10, "text/plain").await),
            "put {key:?}"
        );
        assert!(
            invalid(store.create_multipart(key, "text/plain").await.map(drop)),
            "create {key:?}"
        );
        assert!(invalid(store.head(key).await.map(drop)), "head {key:?}");
        assert!(invalid(store.delete(key).await), "delete {key:?}");
        assert!(
            invalid(
                store
                    .presign_get(key, Duration::from_secs(5), &DownloadResponse::default())
                    .await
                    .map(drop)
            ),
            "{key:?}"
        );
        let id = store.create_multipart("ok", "text/plain").await.unwrap();
        assert!(invalid(
            store
                .upload_part(key, &id, 1, random_body(60, 10), 10)
                .await
                .map(drop)
        ));
    }
    assert!(matches!(
        store.head("/etc/passwd").await,
        Err(StoreError::InvalidKey(_))
    ));
    let outside_entries: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside_entries, ["root"], "nothing written beside the root");
    let mut inside: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    inside.sort();
    assert_eq!(inside, [".staging", ".tmp"]);
    assert_eq!(std::fs::read_dir(root.join(".tmp")).unwrap().count(), 0);
}

#[tokio::test]
async fn fs_download_urls_verify_and_expire() {
    let t = Ctx::fs();
    let key = t.key("report.pdf");
    t.put_random(&key, 70, 100).await;
    let name = "Rapport d'été \"final\".pdf";
    let response = DownloadResponse::new(Some("application/pdf"), Some(name));
    let signed = t
        .store
        .presign_get(&key, Duration::from_secs(120), &response)
        .await
        .unwrap();
    assert_eq!(signed.method, "GET");
    let url = url::Url::parse(&signed.url).unwrap();
    assert_eq!(url.path(), format!("/v1/files/{key}"));
    let signer = UrlSigner::new(FS_BASE_URL.parse().unwrap(), FS_SIGNING_KEY).unwrap();
    let now = Utc::now();
    assert_eq!(
        signer.verify(&key, url.query_pairs(), now),
        Ok(response.clone())
    );
    assert_eq!(
        signer.verify(&t.key("other"), url.query_pairs(), now),
        Err(SignatureError::Invalid)
    );
    let later = signed.expires_at + chrono::Duration::seconds(1);
    assert_eq!(
        signer.verify(&key, url.query_pairs(), later),
        Err(SignatureError::Expired)
    );
    let unsupported = t
        .store
        .presign_upload_part(&key, &"0".repeat(32), 1, 5, Duration::from_secs(60))
        .await;
    assert!(matches!(
        unsupported,
        Err(StoreError::Unsupported { store: "fs", .. })
    ));
}

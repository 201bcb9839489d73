//! The byte quota holds under concurrent starts from several pods: each
//! owner's starts pass the check one at a time (the owner's advisory lock,
//! held by the creating transaction), so exactly what fits is admitted.

use claimcheck_tests::app::{Store, TestApp};
use futures::future::join_all;
use serde_json::json;

use super::{set_quota, show_quota, Owner, Start};

#[tokio::test]
async fn fifty_concurrent_starts_from_two_pods_admit_exactly_what_fits() {
    let a = TestApp::spawn(Store::Fs).await;
    let b = a.another().await;
    let owner = Owner::new(&a, "racer").await;
    // 10 starts of 1,000 bytes fit, whichever kind and pod they come in by.
    set_quota(&a, &owner.name, json!({"bytes": 10_000})).await;
    let starts = (0..50).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let kind = [Start::Multipart, Start::Tus, Start::Single][i % 3];
        owner.start(app, kind, 1000)
    });
    let answers = join_all(starts).await;
    let mut admitted = 0;
    let mut refused = 0;
    for res in answers {
        match res.status().as_u16() {
            201 => admitted += 1,
            429 => {
                let body: serde_json::Value = res.json().await.unwrap();
                assert_eq!(body["code"], "quota_exceeded");
                assert_eq!(body["usage"], 10_000, "refused only when full: {body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", res.text().await.unwrap()),
        }
    }
    assert_eq!((admitted, refused), (10, 40));
    assert_eq!(owner.claims(&a).await, 10);
    let shown = show_quota(&b, &owner.name).await;
    assert_eq!(shown["usage"]["bytes"], 10_000, "{shown}");
    assert_eq!(shown["usage"]["daily_uploads"], 10);
}

//! Deliveries: signed per Standard Webhooks, retried with the same
//! `webhook-id` until a 2xx, parked dead and revived, and safe against
//! receivers that hang, redirect or answer without end.

use std::time::{Duration, Instant};

use claimcheck::{db::WebhookStore, jobs::webhooks};
use claimcheck_tests::db::TestDb;

use super::{insert_events, jobs, receiver::Receiver, receiver::Reply, register};

#[tokio::test]
async fn a_delivery_is_signed_so_a_standard_webhooks_library_verifies_it() {
    let db = TestDb::new().await;
    let (ctx, http) = jobs(&db, |_| {});
    let hook = Receiver::always(204).await;
    let secret = register(&db, &hook.url, &["upload.created"]).await;
    insert_events(&db, 1).await;
    let outcome = webhooks::drain(&ctx, &http).await.unwrap();
    assert_eq!((outcome.leased, outcome.done), (1, 1), "{outcome:?}");
    let got = hook.received();
    assert_eq!(got.len(), 1);
    // An independent implementation checks the signature.
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    verifier
        .verify(&got[0].body, &got[0].headers)
        .expect("a valid signature");
    // And refuses it under another secret.
    let other = standardwebhooks::Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    assert!(other.verify(&got[0].body, &got[0].headers).is_err());
    let event = got[0].json();
    assert_eq!(event["type"], "upload.created");
    assert_eq!(event["id"], got[0].id().as_str());
    assert_eq!(event["owner"], "o");
    assert!(
        event["occurred_at"].is_string() && event["data"].is_object(),
        "{event}"
    );
}

#[tokio::test]
async fn a_receiver_that_fails_three_times_gets_the_event_on_the_fourth_with_the_same_id() {
    let db = TestDb::new().await;
    let (ctx, http) = jobs(&db, |s| s.webhook_max_attempts = 5);
    let hook = Receiver::start(|n, _| Reply::Status(if n < 3 { 503 } else { 200 })).await;
    register(&db, &hook.url, &["*"]).await;
    insert_events(&db, 1).await;
    let outcome = webhooks::drain(&ctx, &http).await.unwrap();
    assert_eq!(
        (outcome.deferred, outcome.done, outcome.dead),
        (3, 1, 0),
        "{outcome:?}"
    );
    let ids: Vec<String> = hook.received().iter().map(|r| r.id()).collect();
    assert_eq!(ids.len(), 4);
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    let stats = WebhookStore::new(db.pool.clone()).stats().await.unwrap();
    assert_eq!((stats.done, stats.dead, stats.due), (1, 0, 0));
}

#[tokio::test]
async fn one_that_always_fails_ends_dead_and_retry_revives_it() {
    let db = TestDb::new().await;
    let (ctx, http) = jobs(&db, |s| s.webhook_max_attempts = 3);
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = healthy.clone();
    let hook = Receiver::start(move |_, _| {
        Reply::Status(if flag.load(std::sync::atomic::Ordering::SeqCst) {
            200
        } else {
            500
        })
    })
    .await;
    register(&db, &hook.url, &["*"]).await;
    insert_events(&db, 1).await;
    let outcome = webhooks::drain(&ctx, &http).await.unwrap();
    assert_eq!((outcome.deferred, outcome.dead), (2, 1), "{outcome:?}");
    let row = db
        .client()
        .await
        .query_one(
            "SELECT last_status, last_error, attempts FROM claimcheck.webhook_deliveries",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i32>>(0), Some(500));
    assert!(row.get::<_, String>(1).starts_with("HTTP 500"));
    assert_eq!(row.get::<_, i32>(2), 3);
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        WebhookStore::new(db.pool.clone())
            .retry_dead(None, &claimcheck::db::Actor::cli())
            .await
            .unwrap(),
        1
    );
    let outcome = webhooks::drain(&ctx, &http).await.unwrap();
    assert_eq!(outcome.done, 1, "{outcome:?}");
    assert_eq!(hook.received().len(), 4);
}

#[tokio::test]
async fn hanging_redirecting_and_endless_receivers_are_cut_short() {
    let db = TestDb::new().await;
    let (ctx, http) = jobs(&db, |s| {
        s.webhook_timeout = Duration::from_secs(1);
        s.webhook_max_attempts = 1;
    });
    let elsewhere = Receiver::always(200).await;
    let to = elsewhere.url.clone();
    let hung = Receiver::start(|_, _| Reply::Hang).await;
    let redirecting = Receiver::start(move |_, _| Reply::Redirect(to.clone())).await;
    let endless = Receiver::start(|_, _| Reply::Huge(256 << 20)).await;
    for hook in [&hung, &redirecting, &endless] {
        register(&db, &hook.url, &["*"]).await;
    }
    insert_events(&db, 1).await;
    let started = Instant::now();
    let outcome = webhooks::drain(&ctx, &http).await.unwrap();
    assert_eq!(outcome.dead, 3, "{outcome:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        elsewhere.received().is_empty(),
        "the redirect was not followed"
    );
    let rows = db
        .client()
        .await
        .query(
            "SELECT w.url, d.last_status, d.last_error FROM claimcheck.webhook_deliveries d
               JOIN claimcheck.webhook_endpoints w ON w.id = d.endpoint_id",
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let (url, status, error): (String, Option<i32>, String) =
            (row.get(0), row.get(1), row.get(2));
        if url == hung.url {
            assert_eq!(status, None);
            assert!(error.contains("timed out"), "{error}");
        } else if url == redirecting.url {
            assert_eq!(status, Some(302));
        } else {
            assert_eq!(status, Some(500));
            // The excerpt kept (and read) is capped, not 256 MiB.
            assert!(
                error.len() <= webhooks::send::EXCERPT + 20,
                "{}",
                error.len()
            );
        }
    }
}

#[tokio::test]
async fn delivered_events_past_the_retention_are_pruned_and_dead_ones_kept() {
    let db = TestDb::new().await;
    let (ctx, http) = jobs(&db, |s| {
        s.webhook_max_attempts = 1;
        s.event_retention = Duration::from_secs(60);
    });
    let ok = Receiver::always(200).await;
    register(&db, &ok.url, &["upload.created"]).await;
    let failing = Receiver::always(500).await;
    register(&db, &failing.url, &["upload.completed"]).await;
    let insert = "INSERT INTO claimcheck.events (type, owner, data) VALUES ($1, 'o', '{}')";
    let client = db.client().await;
    for kind in ["upload.created", "upload.completed", "upload.discarded"] {
        client.execute(insert, &[&kind]).await.unwrap();
    }
    webhooks::drain(&ctx, &http).await.unwrap();
    assert_eq!(
        webhooks::prune_once(&ctx).await.unwrap(),
        0,
        "nothing is old yet"
    );
    client
        .execute(
            "UPDATE claimcheck.events SET published_at = now() - interval '2 minutes'",
            &[],
        )
        .await
        .unwrap();
    // Delivered (created) and wanted by nobody (discarded) go; the one with
    // a dead delivery (completed) stays for its retry.
    assert_eq!(webhooks::prune_once(&ctx).await.unwrap(), 2);
    let left: Vec<String> = db.strings("SELECT type FROM claimcheck.events").await;
    assert_eq!(left, ["upload.completed"]);
    let deliveries: i64 = client
        .query_one("SELECT count(*) FROM claimcheck.webhook_deliveries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(deliveries, 1, "the delivered row went with its event");
}

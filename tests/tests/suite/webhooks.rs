//! Events and webhooks: the outbox written with every change (and only with
//! committed ones), numbered in commit order, delivered at least once with
//! retries, dead rows and signatures any Standard Webhooks library checks.

mod admin;
mod delivery;
mod outbox;
mod processes;
mod receiver;

use std::sync::Arc;

use claimcheck::{
    db::{Event, EventStore, WebhookStore},
    jobs::{webhooks, JobContext, JobSettings},
    store::ObjectStore,
};
use claimcheck_tests::{
    db::TestDb,
    jobs::{context, fast_settings},
    stores::{fs_store, test_prefix},
};

/// A job context on `db` with the filesystem store, and the deliveries'
/// HTTP client.
pub fn jobs(
    db: &TestDb,
    tune: impl FnOnce(&mut JobSettings),
) -> (JobContext, webhooks::send::HttpClient) {
    let (store, dir) = fs_store();
    // The store is not used by the webhook jobs; its directory may go.
    drop(dir);
    let mut settings = fast_settings(&test_prefix());
    tune(&mut settings);
    let http = webhooks::send::client(settings.webhook_timeout);
    let store: Arc<dyn ObjectStore> = Arc::new(store);
    (context(db, store, settings), http)
}

/// Registers `url` for `events` (`*`: all); returns the secret.
pub async fn register(db: &TestDb, url: &str, events: &[&str]) -> String {
    let events: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    WebhookStore::new(db.pool.clone())
        .create(url, &events, None, &claimcheck::db::Actor::cli())
        .await
        .unwrap()
        .1
}

/// Every published event, oldest first.
pub async fn published(db: &TestDb) -> Vec<Event> {
    EventStore::new(db.pool.clone())
        .list_after(0, 100_000)
        .await
        .unwrap()
}

/// Inserts `n` events behind the service's back (one statement).
pub async fn insert_events(db: &TestDb, n: i64) {
    db.client()
        .await
        .execute(
            "INSERT INTO claimcheck.events (type, owner, data)
             SELECT 'upload.created', 'o', jsonb_build_object('i', i)
               FROM generate_series(1, $1::bigint) AS i",
            &[&n],
        )
        .await
        .unwrap();
}

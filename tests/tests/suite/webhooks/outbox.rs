//! The outbox: an event exists exactly when its change committed, and ids
//! follow commit order.

use claimcheck::{
    db::{EventStore, EventType},
    jobs::{delete_worker, sweeper, webhooks},
};
use claimcheck_tests::{db::TestDb, jobs::PlantClaim};

use super::{jobs, published};

fn types(events: &[claimcheck::db::Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

#[tokio::test]
async fn a_consume_that_rolls_back_leaves_no_event_and_one_that_commits_leaves_one() {
    let db = TestDb::new().await;
    let (ctx, _) = jobs(&db, |_| {});
    let claim = PlantClaim::uploaded("priv/a.bin").plant(&db).await;
    let mut business = db.client().await;
    let consume = "SELECT count(*) FROM claimcheck.consume_claims('owner-1', ARRAY[$1])";
    let tx = business.transaction().await.unwrap();
    tx.query_one(consume, &[&claim.key]).await.unwrap();
    tx.rollback().await.unwrap();
    webhooks::publish_once(&ctx).await.unwrap();
    assert!(
        published(&db).await.is_empty(),
        "a rolled-back consume announces nothing"
    );

    let tx = business.transaction().await.unwrap();
    tx.query_one(consume, &[&claim.key]).await.unwrap();
    tx.commit().await.unwrap();
    webhooks::publish_once(&ctx).await.unwrap();
    let events = published(&db).await;
    assert_eq!(types(&events), ["object.consumed"]);
    let e = &events[0];
    assert_eq!(e.owner.as_deref(), Some("owner-1"));
    assert_eq!(e.data["key"], "priv/a.bin");
    assert!(e.data["consumed_at"].is_string(), "{}", e.data);

    // Scheduling its delete, and the worker deleting it, announce too.
    db.client()
        .await
        .execute(
            "SELECT claimcheck.schedule_delete($1, 'deleted')",
            &[&claim.key],
        )
        .await
        .unwrap();
    delete_worker::drain(&ctx).await.unwrap();
    webhooks::publish_once(&ctx).await.unwrap();
    let events = published(&db).await;
    assert_eq!(
        types(&events),
        [
            "object.consumed",
            "object.delete_scheduled",
            "object.deleted"
        ]
    );
    assert_eq!(events[1].data["reason"], "deleted");
    assert_eq!(events[2].data["key"], "priv/a.bin");
}

#[tokio::test]
async fn the_sweeper_announces_expired_claims() {
    let db = TestDb::new().await;
    let (ctx, _) = jobs(&db, |_| {});
    let prefix = ctx.settings.key_prefix.clone();
    PlantClaim::pending(&format!("{prefix}priv/p.bin"))
        .expired()
        .plant(&db)
        .await;
    sweeper::sweep_once(&ctx).await.unwrap();
    webhooks::publish_once(&ctx).await.unwrap();
    let events = published(&db).await;
    assert_eq!(types(&events), ["upload.expired"]);
    assert_eq!(events[0].data["status"], "pending");
    assert_eq!(EventType::parse("upload.expired"), Some(events[0].kind));
}

#[tokio::test]
async fn ids_follow_commit_order_and_an_open_transaction_holds_later_events_back() {
    let db = TestDb::new().await;
    let (ctx, _) = jobs(&db, |_| {});
    let insert =
        "INSERT INTO claimcheck.events (type, owner, data) VALUES ('upload.created', $1, '{}')";
    let mut first = db.client().await;
    let mut second = db.client().await;
    // `first` inserts, then stays open while `second` inserts and commits.
    let a = first.transaction().await.unwrap();
    a.execute(insert, &[&"first"]).await.unwrap();
    let b = second.transaction().await.unwrap();
    b.execute(insert, &[&"second"]).await.unwrap();
    b.commit().await.unwrap();
    let p = webhooks::publish_once(&ctx).await.unwrap();
    assert_eq!(
        p.events, 0,
        "nothing is numbered while an older transaction may still add events"
    );
    a.commit().await.unwrap();
    webhooks::publish_once(&ctx).await.unwrap();
    let events = published(&db).await;
    let owners: Vec<_> = events.iter().map(|e| e.owner.clone().unwrap()).collect();
    assert_eq!(owners, ["first", "second"]);
    assert!(events[0].id < events[1].id);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_and_publishers_number_every_event_once_in_order() {
    let db = TestDb::new().await;
    let (ctx, _) = jobs(&db, |_| {});
    // 8 connections commit 50 events each while 3 publishers run.
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let client = db.pool.clone();
            tokio::spawn(async move {
                let c = client.get().await.unwrap();
                for i in 0..50 {
                    c.execute(
                        "INSERT INTO claimcheck.events (type, owner, data)
                         VALUES ('upload.created', $1, jsonb_build_object('i', $2::int))",
                        &[&format!("w{w}"), &i],
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    let publishers: Vec<_> = (0..3)
        .map(|_| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                for _ in 0..30 {
                    webhooks::publish_once(&ctx).await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    for t in writers.into_iter().chain(publishers) {
        t.await.unwrap();
    }
    while webhooks::publish_once(&ctx).await.unwrap().events > 0 {}
    let events = EventStore::new(db.pool.clone())
        .list_after(0, 10_000)
        .await
        .unwrap();
    assert_eq!(events.len(), 400);
    // Each writer's events keep their order (its commits are sequential).
    for w in 0..8 {
        let mine: Vec<i64> = events
            .iter()
            .filter(|e| e.owner.as_deref() == Some(&format!("w{w}")))
            .map(|e| e.data["i"].as_i64().unwrap())
            .collect();
        assert_eq!(mine, (0..50).collect::<Vec<_>>(), "writer {w}");
    }
}

#[tokio::test]
async fn a_long_transaction_in_another_database_does_not_hold_publishing_back() {
    let db = TestDb::new().await;
    let (ctx, _) = jobs(&db, |_| {});
    // Another database of the cluster, with a transaction that has an id.
    let other_url = claimcheck_tests::required_env("DATABASE_URL");
    let mut other = claimcheck_tests::db::connect(&other_url).await;
    let open = other.transaction().await.unwrap();
    open.query_one("SELECT pg_current_xact_id()", &[])
        .await
        .unwrap();
    super::insert_events(&db, 1).await;
    let p = webhooks::publish_once(&ctx).await.unwrap();
    assert_eq!(
        p.events, 1,
        "only this database's writers hold publishing back"
    );
    open.rollback().await.unwrap();
}

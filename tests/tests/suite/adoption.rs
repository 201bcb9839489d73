//! Adoption from business code: `Files` and the SQL functions inside the
//! business's own transaction, against PostgreSQL and Garage. The HTTP API's
//! adoption routes are in `adoption/http.rs`.

mod http;

use std::time::Duration;

use claimcheck::{
    db::ClaimStore,
    files::{ConsumeError, Files},
    jobs::{delete_worker, sweeper},
    store::ObjectStore,
};
use claimcheck_tests::{
    db::TestDb,
    jobs::{context, count, exists, fast_settings, put_object, PlantClaim},
    stores::{s3_store, test_prefix},
};
use uuid::Uuid;

/// [`PlantClaim`]'s owner.
const OWNER: &str = "owner-1";

/// Plants an uploaded claim of `OWNER` for `key`, already past its
/// unconsumed TTL (so the sweeper wants it unless it is consumed).
async fn uploaded(db: &TestDb, key: &str) -> String {
    PlantClaim::uploaded(key).expired().plant(db).await.key
}

async fn queue(db: &TestDb) -> Vec<(String, String)> {
    db.client()
        .await
        .query(
            "SELECT object_key, reason FROM claimcheck.pending_deletes ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn registry(db: &TestDb) -> Vec<String> {
    db.strings("SELECT object_key FROM claimcheck.objects ORDER BY 1")
        .await
}

#[tokio::test]
async fn a_rollback_keeps_the_claim_and_a_commit_makes_the_object_permanent() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let store: std::sync::Arc<dyn ObjectStore> = std::sync::Arc::new(s3_store().await);
    let ctx = context(&db, store.clone(), fast_settings(&prefix));
    let (kept, left) = (format!("{prefix}kept.bin"), format!("{prefix}left.bin"));
    for key in [&kept, &left] {
        put_object(&*store, key, 1).await;
        uploaded(&db, key).await;
    }
    let claims = ClaimStore::new(db.pool.clone());
    let mut client = db.client().await;

    let mut tx = client.transaction().await.unwrap();
    let objects = Files::new(&mut tx)
        .consume(OWNER, std::slice::from_ref(&kept))
        .await
        .unwrap();
    assert_eq!(objects[0].key, kept);
    tx.rollback().await.unwrap();
    assert!(claims.get_by_key(&kept).await.unwrap().is_some());
    assert!(registry(&db).await.is_empty(), "the rollback undid it");

    let mut tx = client.transaction().await.unwrap();
    tx.execute("CREATE TABLE public.avatars (key text)", &[])
        .await
        .unwrap();
    Files::new(&mut tx)
        .consume(OWNER, std::slice::from_ref(&kept))
        .await
        .expect("still consumable after the rollback");
    tx.execute("INSERT INTO public.avatars VALUES ($1)", &[&kept])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(claims.get_by_key(&kept).await.unwrap().is_none());
    assert_eq!(registry(&db).await, std::slice::from_ref(&kept));

    // Both claims were past their unconsumed TTL: the sweeper takes the one
    // left behind and never the consumed one.
    let swept = sweeper::sweep_once(&ctx).await.unwrap();
    assert_eq!(swept.unconsumed, 1, "{swept:?}");
    assert_eq!(delete_worker::drain(&ctx).await.unwrap().done, 1);
    assert!(!exists(&*store, &left).await);
    assert!(
        exists(&*store, &kept).await,
        "a consumed object is permanent"
    );
    assert_eq!(registry(&db).await, std::slice::from_ref(&kept));
    store.delete(&kept).await.unwrap();
}

#[tokio::test]
async fn a_pending_key_among_uploaded_ones_consumes_nothing_and_is_named() {
    let db = TestDb::new().await;
    let (a, b) = (uploaded(&db, "k/a").await, uploaded(&db, "k/b").await);
    let pending = PlantClaim::pending("k/p").plant(&db).await.key;
    let mut client = db.client().await;
    let mut tx = client.transaction().await.unwrap();
    let mut files = Files::new(&mut tx);
    let keys = [a.clone(), pending.clone(), b.clone()];
    match files.consume(OWNER, &keys).await {
        Err(ConsumeError::Missing(missing)) => assert_eq!(missing, [pending]),
        other => panic!("expected Missing, got {other:?}"),
    }
    // The refusal left the transaction usable; committing it consumes nothing.
    tx.execute("SELECT 1", &[]).await.unwrap();
    tx.commit().await.unwrap();
    assert!(registry(&db).await.is_empty());
    assert_eq!(
        count(&db, "SELECT count(*) FROM claimcheck.upload_claims").await,
        3
    );
}

#[tokio::test]
async fn two_transactions_consuming_one_key_through_files_have_one_winner() {
    let db = TestDb::new().await;
    let key = uploaded(&db, "k/race").await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (url, key, barrier) = (db.url.clone(), key.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut client = claimcheck_tests::db::connect(&url).await;
                let mut tx = client.transaction().await.unwrap();
                barrier.wait().await;
                let result = Files::new(&mut tx).consume(OWNER, &[key]).await;
                // Hold the winner's locks a little: the loser must wait, not
                // slip past.
                tokio::time::sleep(Duration::from_millis(100)).await;
                tx.commit().await.unwrap();
                result
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let won = outcomes.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{outcomes:?}");
    assert!(outcomes
        .iter()
        .any(|r| matches!(r, Err(ConsumeError::Missing(m)) if *m == [key.clone()])));
    assert_eq!(registry(&db).await, [key]);
}

#[tokio::test]
async fn replace_queues_deletes_only_for_the_dropped_keys() {
    let db = TestDb::new().await;
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|k| format!("priv/att/{k}"));
    for key in [&a, &b, &c, &d] {
        uploaded(&db, key).await;
    }
    let mut client = db.client().await;

    // Nothing before: a replace with an empty old side only consumes.
    let mut tx = client.transaction().await.unwrap();
    let consumed = Files::new(&mut tx)
        .replace(OWNER, &[], &[a.clone(), b.clone()])
        .await
        .unwrap();
    assert_eq!(consumed.len(), 2);
    tx.commit().await.unwrap();

    // {a, b} -> {b, c}: c consumed, a queued as replaced, b untouched.
    let mut tx = client.transaction().await.unwrap();
    let consumed = Files::new(&mut tx)
        .replace(OWNER, &[a.clone(), b.clone()], &[b.clone(), c.clone()])
        .await
        .unwrap();
    assert_eq!(
        consumed.iter().map(|o| &o.key).collect::<Vec<_>>(),
        [&c],
        "only the new key is consumed"
    );
    tx.commit().await.unwrap();
    assert_eq!(queue(&db).await, [(a.clone(), "replaced".to_string())]);
    assert_eq!(registry(&db).await, [b.clone(), c.clone()]);

    // A replace whose new key cannot be consumed queues nothing either.
    let mut tx = client.transaction().await.unwrap();
    let refused = Files::new(&mut tx)
        .replace(
            OWNER,
            std::slice::from_ref(&b),
            &["priv/att/none".to_string()],
        )
        .await;
    assert!(matches!(refused, Err(ConsumeError::Missing(m)) if m == ["priv/att/none"]));
    tx.commit().await.unwrap();
    assert_eq!(queue(&db).await.len(), 1);

    // Empty new side: everything old goes. Then `delete` says `deleted`.
    let mut tx = client.transaction().await.unwrap();
    let mut files = Files::new(&mut tx);
    assert!(files
        .replace(OWNER, std::slice::from_ref(&b), &[])
        .await
        .unwrap()
        .is_empty());
    files
        .consume(OWNER, std::slice::from_ref(&d))
        .await
        .unwrap();
    files
        .delete(&[c.clone(), d.clone(), d.clone()])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let row = |k: &String, r: &str| (k.clone(), r.to_string());
    assert_eq!(
        queue(&db).await,
        [
            row(&a, "replaced"),
            row(&b, "replaced"),
            row(&c, "deleted"),
            row(&d, "deleted"),
        ]
    );
    assert!(registry(&db).await.is_empty());
}

/// The SQL API as the docs show it: a business role with only the documented
/// grants consumes and deletes inside its own transaction.
#[tokio::test]
async fn a_business_role_with_the_documented_grants_uses_the_sql_api() {
    let db = TestDb::new().await;
    let key = uploaded(&db, "priv/sql/a").await;
    let role = format!("app_{}", Uuid::new_v4().as_simple());
    let mut client = db.client().await;
    client
        .batch_execute(&format!(
            "CREATE ROLE {role};
             GRANT USAGE ON SCHEMA claimcheck TO {role};
             GRANT EXECUTE ON FUNCTION claimcheck.consume_claims(text, text[]),
                                       claimcheck.schedule_delete(text, text) TO {role};
             CREATE TABLE public.docs (key text);
             GRANT INSERT ON public.docs TO {role};"
        ))
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(&format!("SET LOCAL ROLE {role}"))
        .await
        .unwrap();
    let direct = tx
        .execute("DELETE FROM claimcheck.upload_claims", &[])
        .await;
    assert!(direct.is_err(), "the role cannot touch the tables directly");
    drop(tx);

    let tx = client.transaction().await.unwrap();
    tx.batch_execute(&format!("SET LOCAL ROLE {role}"))
        .await
        .unwrap();
    let row = tx
        .query_one(
            "SELECT object_key, filename FROM claimcheck.consume_claims($1, ARRAY[$2])",
            &[&OWNER, &key],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(1), "f.bin");
    tx.execute("INSERT INTO public.docs VALUES ($1)", &[&key])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(registry(&db).await, std::slice::from_ref(&key));

    let tx = client.transaction().await.unwrap();
    tx.batch_execute(&format!("SET LOCAL ROLE {role}"))
        .await
        .unwrap();
    tx.query_one("SELECT claimcheck.schedule_delete($1, 'deleted')", &[&key])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(registry(&db).await.is_empty());
    assert_eq!(queue(&db).await, [(key, "deleted".to_string())]);
    client
        .batch_execute(&format!(
            "DROP TABLE public.docs; DROP OWNED BY {role}; DROP ROLE {role};"
        ))
        .await
        .unwrap();
}

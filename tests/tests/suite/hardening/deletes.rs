//! Items 2, 4 and 18 of the hardening issue: a delete never removes a live
//! object, deletes stay inside the key space and off live claims, and the
//! sweeper and consume lock claims in one order.

use std::sync::Arc;

use claimcheck::{
    db::{settings, Adopter, ObjectRegistry, ScheduleError},
    domain::{ClaimStatus, DeleteReason},
    jobs::delete_worker,
    store::ObjectStore,
};
use claimcheck_tests::{
    app::{Store, TestApp},
    db::TestDb,
    jobs::{context, delete, exists, fast_settings, put_object, PlantClaim},
    stores::{fs_store, test_prefix},
};
use futures::future::join_all;
use reqwest::Method;
use serde_json::json;

/// Rows queued by mistake for a key with a registry row and for a key of an
/// uploaded claim: the worker parks both dead, saying why, and deletes
/// neither object; a row for a dead key still goes through.
#[tokio::test]
async fn the_worker_parks_rows_of_live_keys_instead_of_deleting() {
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let (store, _dir) = fs_store();
    let store: Arc<dyn ObjectStore> = Arc::new(store);
    let ctx = context(&db, store.clone(), fast_settings(&prefix));
    let (registered, claimed, gone) = (
        format!("{prefix}priv/registered"),
        format!("{prefix}priv/claimed"),
        format!("{prefix}priv/gone"),
    );
    for key in [&registered, &claimed, &gone] {
        put_object(&*store, key, 3).await;
    }
    PlantClaim::uploaded(&claimed).size(3).plant(&db).await;
    db.client()
        .await
        .execute(
            "INSERT INTO claimcheck.objects (object_key, owner, size, content_type, filename, public, created_at)
             VALUES ($1, 'owner-1', 3, 'text/plain', 'r.txt', false, now())",
            &[&registered],
        )
        .await
        .unwrap();
    ctx.queue
        .enqueue(&[
            delete(&registered, None),
            delete(&claimed, None),
            delete(&gone, None),
        ])
        .await
        .unwrap();

    let outcome = delete_worker::drain(&ctx).await.unwrap();
    assert_eq!((outcome.done, outcome.dead), (1, 2), "{outcome:?}");
    assert!(exists(&*store, &registered).await);
    assert!(exists(&*store, &claimed).await);
    assert!(!exists(&*store, &gone).await);
    let errors = db
        .strings(
            "SELECT object_key || ': ' || last_error FROM claimcheck.pending_deletes
              WHERE dead_at IS NOT NULL ORDER BY object_key",
        )
        .await;
    assert_eq!(errors.len(), 2);
    assert!(errors[0].contains("an uploaded claim"), "{errors:?}");
    assert!(errors[1].contains("a registry row"), "{errors:?}");
}

/// `POST /v1/deletes` refuses a key outside the key space (400) and a key
/// that is still an upload claim (409), queueing nothing of the request;
/// keys inside the key space with no claim are queued as before.
#[tokio::test]
async fn deletes_stay_inside_the_key_space_and_off_live_claims() {
    let app = TestApp::spawn(Store::Fs).await;
    let pending = app.init(1024, None).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let ours = format!("{}priv/2026/11/29/gone.bin", app.prefix);
    let neighbour = format!(
        "{}0/priv/2026/11/29/x.bin",
        app.prefix.trim_end_matches('/')
    );
    let post = |items: serde_json::Value| {
        app.req(Method::POST, "/v1/deletes")
            .json(&json!({ "items": items }))
            .send()
    };
    for (items, status) in [
        (
            json!([{"key": ours, "reason": "deleted"}, {"key": "other-app/logo.png", "reason": "deleted"}]),
            400,
        ),
        (json!([{"key": neighbour, "reason": "deleted"}]), 400),
        (
            json!([{"key": format!("{}tmp/x", app.prefix), "reason": "deleted"}]),
            400,
        ),
        (
            json!([{"key": ours, "reason": "replaced"}, {"key": pending, "reason": "deleted"}]),
            409,
        ),
    ] {
        let res = post(items.clone()).await.unwrap();
        assert_eq!(
            res.status().as_u16(),
            status,
            "{items}: {}",
            res.text().await.unwrap()
        );
        assert_eq!(
            app.sql_i64("SELECT count(*) FROM claimcheck.pending_deletes")
                .await,
            0,
            "{items}: nothing queued"
        );
    }
    let res = post(json!([{"key": ours, "reason": "deleted"}]))
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM claimcheck.pending_deletes")
            .await,
        1
    );
}

/// The SQL function refuses the same keys with the contract's SQLSTATEs,
/// and the key prefix a process records is the one it checks against.
#[tokio::test]
async fn schedule_delete_raises_22023_outside_the_key_space_and_55000_for_a_claim() {
    let db = TestDb::new().await;
    settings::record_key_prefix(&db.pool, "app1/")
        .await
        .unwrap();
    let refused = settings::record_key_prefix(&db.pool, "app10/").await;
    assert!(
        matches!(refused, Err(settings::PrefixError::Mismatch { .. })),
        "{refused:?}"
    );
    PlantClaim::uploaded("app1/priv/claimed")
        .size(3)
        .plant(&db)
        .await;
    let mut client = db.client().await;
    for (key, code) in [
        ("app10/priv/x", "22023"),
        ("priv/x", "22023"),
        ("app1/x", "22023"),
        ("app1/priv/claimed", "55000"),
    ] {
        let tx = client.transaction().await.unwrap();
        let err = tx
            .query_one("SELECT claimcheck.schedule_delete($1, 'deleted')", &[&key])
            .await
            .unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some(code), "{key}: {err}");
        drop(tx);
        let tx = client.transaction().await.unwrap();
        let typed = ObjectRegistry::schedule_delete_in(
            &tx,
            &Adopter::default(),
            key,
            DeleteReason::Deleted,
        )
        .await;
        match code {
            "22023" => assert!(matches!(typed, Err(ScheduleError::Invalid(_))), "{typed:?}"),
            _ => assert!(
                matches!(typed, Err(ScheduleError::LiveClaim(_))),
                "{typed:?}"
            ),
        }
    }
    let tx = client.transaction().await.unwrap();
    ObjectRegistry::schedule_delete_in(
        &tx,
        &Adopter::default(),
        "app1/pub/free",
        DeleteReason::Deleted,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// Sweeps and consumes of the same expired uploaded claims, from several
/// connections at once, with claim ids ordered against their keys: both
/// lock in key order, so none of them deadlocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sweeps_and_consumes_of_the_same_claims_never_deadlock() {
    let db = TestDb::new().await;
    let (store, _dir) = fs_store();
    let ctx = context(&db, Arc::new(store), fast_settings("t/"));
    for round in 0..6 {
        // Ids ascend where keys descend, so the primary key's order (by
        // which a plain `DELETE ... WHERE id = ANY(...)` locks) is the
        // opposite of the key order `consume_claims` locks in. Many rows,
        // so the two lockers overlap for long enough to meet.
        let ids: Vec<uuid::Uuid> = (0..2000).map(|_| uuid::Uuid::now_v7()).collect();
        let keys: Vec<String> = (0..2000)
            .map(|i| format!("t/priv/{round:02}/{:04}", 1999 - i))
            .collect();
        db.client()
            .await
            .execute(
                "INSERT INTO claimcheck.upload_claims
                   (id, object_key, owner, filename, content_type, size, status,
                    expires_at, uploaded_at)
                 SELECT id, key, 'owner-1', 'f.bin', 'application/octet-stream', 1,
                        'uploaded', now() - interval '1 second', now()
                   FROM unnest($1::uuid[], $2::text[]) AS t(id, key)",
                &[&ids, &keys],
            )
            .await
            .unwrap();
        // Connected first, so the consumes start with the sweeps.
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(db.client().await);
        }
        let consumes = clients.iter_mut().enumerate().map(|(i, client)| {
            let mut keys = keys.clone();
            if i % 2 == 1 {
                keys.reverse();
            }
            async move {
                let tx = client.transaction().await.unwrap();
                let sqlstate =
                    |e: tokio_postgres::Error| e.code().map_or(e.to_string(), |c| c.code().into());
                match tx
                    .query(
                        "SELECT object_key FROM claimcheck.consume_claims('owner-1', $1)",
                        &[&keys],
                    )
                    .await
                {
                    Ok(_) => tx.commit().await.map_err(sqlstate),
                    Err(e) => Err(sqlstate(e)),
                }
            }
        });
        let sweeps = (0..4).map(|i| {
            let (ctx, mut ids) = (&ctx, ids.clone());
            if i % 2 == 0 {
                ids.reverse();
            }
            async move {
                ctx.claims
                    .expire(&ids, ClaimStatus::Uploaded, DeleteReason::Unconsumed)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.sql_state().map_or(e.to_string(), |c| c.code().into()))
            }
        });
        let (consumed, swept) = tokio::join!(join_all(consumes), join_all(sweeps));
        for result in consumed.iter().chain(&swept) {
            if let Err(code) = result {
                // P0002 (a claim the other side took first) is fine.
                assert_ne!(code, "40P01", "round {round}: deadlock");
            }
        }
    }
}

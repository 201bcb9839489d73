//! Behind a transaction-pooling PgBouncer (Debian's 1.18, no prepared
//! statements there): named statements break, unnamed ones
//! (`CLAIMCHECK_DB_PREPARED_STATEMENTS=false`) do not.

use claimcheck::db::{self, Statements};
use claimcheck_tests::{db::TestDb, pooler::PgBouncer};
use futures::future::join_all;

/// 16 connections through 2 server connections, each running 40 rounds of
/// a lone statement, a cached one and a transaction; the errors they met.
async fn errors_through(url: &str, statements: Statements) -> Vec<String> {
    let pool = db::connect_with(url, 16, statements).expect("pool");
    let tasks = (0..16).map(|task| {
        let pool = pool.clone();
        async move {
            let mut errors = Vec::new();
            for round in 0..40i32 {
                let mut client = pool.get().await.expect("a connection");
                let n = task * 1000 + round;
                let lone = client.query_one("SELECT $1::int + 1", &[&n]).await;
                let cached = client.query_one_cached("SELECT $1::int * 2", &[&n]).await;
                for (what, result, want) in [("lone", lone, n + 1), ("cached", cached, n * 2)] {
                    match result {
                        Ok(row) => assert_eq!(row.get::<_, i32>(0), want, "{what}"),
                        Err(e) => errors.push(format!("{what}: {e:?}")),
                    }
                }
                let tx = client.transaction().await.expect("begin");
                let inside = tx
                    .execute_cached("SELECT pg_advisory_xact_lock($1)", &[&(n as i64)])
                    .await;
                if let Err(e) = inside {
                    errors.push(format!("transaction: {e:?}"));
                }
                let _ = tx.commit().await;
            }
            errors
        }
    });
    join_all(tasks).await.into_iter().flatten().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unnamed_statements_survive_a_transaction_pooler_and_named_ones_do_not() {
    let db = TestDb::new().await;
    let pg_port = url::Url::parse(&db.direct_url).unwrap().port().unwrap();
    let bouncer = PgBouncer::start(pg_port, 2);
    let url = bouncer.url_for(&db.direct_url);

    let unnamed = errors_through(&url, Statements::Unnamed).await;
    assert!(
        unnamed.is_empty(),
        "{} errors, first: {:?}",
        unnamed.len(),
        unnamed.first()
    );

    // The same through named statements: a statement parsed on one server
    // is bound on another, or a cached one is missing there.
    let named = errors_through(&url, Statements::Prepared).await;
    assert!(
        !named.is_empty(),
        "prepared statements were expected to break"
    );
    assert!(
        named
            .iter()
            .any(|e| e.contains("does not exist") || e.contains("already exists")),
        "{:?}",
        named.first()
    );
}

//! Migrations: apply to an empty database, re-run as a no-op, and run from
//! several processes of both binaries at once.

use claimcheck::db;
use claimcheck_tests::{binary, db::TestDb};

/// The migrations in the repository (`migrations/V*.sql`), so the count
/// follows each new one.
fn migration_files() -> i64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with('V') && name.ends_with(".sql")
        })
        .count() as i64
}

async fn history_rows(db: &TestDb) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM claimcheck.refinery_schema_history",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn apply_to_an_empty_database_then_again_as_a_no_op() {
    let db = TestDb::empty().await;
    let first = db::migrate(&db.url).await.unwrap();
    assert_eq!(
        first.applied.len() as i64,
        migration_files(),
        "{:?}",
        first.applied
    );
    let second = db::migrate(&db.url).await.unwrap();
    assert!(second.applied.is_empty(), "{:?}", second.applied);
    assert_eq!(history_rows(&db).await, migration_files());

    let tables: Vec<String> = db
        .client()
        .await
        .query(
            "SELECT table_name::text FROM information_schema.tables
              WHERE table_schema = 'claimcheck' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        tables,
        [
            "api_tokens",
            "audit_log",
            "events",
            "objects",
            "owner_daily_usage",
            "owner_pending",
            "owner_quotas",
            "pending_deletes",
            "refinery_schema_history",
            "settings",
            "upload_claims",
            "upload_parts",
            "upload_tails",
            "webhook_deliveries",
            "webhook_endpoints"
        ]
    );
}

#[tokio::test]
async fn several_processes_migrate_at_once() {
    let db = TestDb::empty().await;
    let mut children = Vec::new();
    for name in [
        "claimcheck-api",
        "claimcheck-worker",
        "claimcheck-api",
        "claimcheck-worker",
    ] {
        let child = tokio::process::Command::new(binary(name))
            .arg("migrate")
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
            .output();
        children.push(tokio::spawn(child));
    }
    for child in children {
        let out = child.await.unwrap().unwrap();
        assert!(
            out.status.success(),
            "migrate failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(history_rows(&db).await, migration_files());
}

#[tokio::test]
async fn migrate_without_a_database_fails_clearly() {
    let out = tokio::process::Command::new(binary("claimcheck-worker"))
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL is not set"));
}

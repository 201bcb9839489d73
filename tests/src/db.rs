//! A fresh database per test, dropped when the test ends.

use claimcheck::db::Pool;
use claimcheck::{
    db::{self, Actor},
    tokens::{NewToken, Scope, TokenStore},
};
use uuid::Uuid;

use crate::required_env;

/// A database of its own for one test, migrated, with a pool on it.
///
/// Dropped (with `WITH (FORCE)`, closing leftover connections) when the value
/// goes out of scope, also when the test fails.
///
/// With `CLAIMCHECK_TEST_PGBOUNCER_PORT` set (`scripts/test`'s PgBouncer
/// pass), [`TestDb::url`], the pool and the processes started on it go
/// through that PgBouncer in transaction mode with unnamed statements
/// ([`pooler_env`]); migrations, LISTEN and the test's own connections
/// ([`TestDb::client`]) go straight to PostgreSQL.
pub struct TestDb {
    /// Connection string of this database (through PgBouncer in its pass).
    pub url: String,
    /// Connection string of this database, straight to PostgreSQL.
    pub direct_url: String,
    /// The database's name.
    pub name: String,
    /// A pool of 32 connections on it.
    pub pool: Pool,
    admin_url: String,
}

impl TestDb {
    /// Creates and migrates a new database on the server `DATABASE_URL` names.
    pub async fn new() -> Self {
        let db = Self::empty().await;
        db::migrate(&db.direct_url).await.expect("migrations apply");
        db
    }

    /// Creates a new database without migrating it.
    pub async fn empty() -> Self {
        let admin_url = required_env("DATABASE_URL");
        let name = format!("cc_test_{}", Uuid::new_v4().as_simple());
        let admin = connect(&admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        let mut url = url::Url::parse(&admin_url).expect("DATABASE_URL is a URL");
        url.set_path(&format!("/{name}"));
        let direct_url = url.to_string();
        let (url, statements) = match pgbouncer_port() {
            Some(port) => {
                url.set_port(Some(port)).expect("a port");
                (url.to_string(), db::Statements::Unnamed)
            }
            None => (direct_url.clone(), db::Statements::Prepared),
        };
        let pool = db::connect_with(&url, 32, statements).expect("pool");
        Self {
            url,
            direct_url,
            name,
            pool,
            admin_url,
        }
    }

    /// The first column of every row `sql` returns, as text.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        self.client()
            .await
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// A plain connection of its own (for transactions a test drives by
    /// hand), straight to PostgreSQL.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.direct_url).await
    }

    /// The environment a process on [`TestDb::url`] needs besides
    /// `DATABASE_URL` ([`pooler_env`]).
    pub fn process_env(&self) -> Vec<(&'static str, String)> {
        pooler_env(&self.direct_url)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.pool.close();
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on:
        // drop the database from a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async move {
                    connect(&admin_url)
                        .await
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// The PgBouncer of `scripts/test`'s second pass, if this is it.
pub fn pgbouncer_port() -> Option<u16> {
    std::env::var("CLAIMCHECK_TEST_PGBOUNCER_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
}

/// What a claimcheck process needs behind a transaction-pooling PgBouncer
/// (unnamed statements, LISTEN and migrations on `direct_url`); nothing
/// outside the PgBouncer pass.
pub fn pooler_env(direct_url: &str) -> Vec<(&'static str, String)> {
    match pgbouncer_port() {
        Some(_) => vec![
            ("CLAIMCHECK_DB_PREPARED_STATEMENTS", "false".to_owned()),
            ("CLAIMCHECK_LISTEN_DATABASE_URL", direct_url.to_owned()),
        ],
        None => Vec::new(),
    }
}

/// [`pooler_env`] for a process whose `DATABASE_URL` is `url`: when `url`
/// goes through the PgBouncer of this pass, the same database straight on
/// PostgreSQL's port is its direct URL; otherwise nothing.
pub fn pooler_env_for(url: &str) -> Vec<(&'static str, String)> {
    let (Some(bouncer), Ok(mut parsed)) = (pgbouncer_port(), url::Url::parse(url)) else {
        return Vec::new();
    };
    if parsed.port() != Some(bouncer) {
        return Vec::new();
    }
    let admin = url::Url::parse(&required_env("DATABASE_URL")).expect("DATABASE_URL is a URL");
    parsed.set_port(admin.port()).expect("a port");
    pooler_env(parsed.as_str())
}

/// Mints a token for `owner` with `scopes` on `pool`'s database.
pub async fn token(pool: &Pool, owner: &str, scopes: &[Scope]) -> String {
    let new = NewToken::new(owner, scopes.iter().copied().collect());
    TokenStore::new(pool.clone())
        .create(&new, &Actor::cli())
        .await
        .expect("mint a token")
        .token
}

/// Opens a connection (with the TLS `url` asks for, as the service would)
/// and drives it on a background task.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = db::connect_one(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

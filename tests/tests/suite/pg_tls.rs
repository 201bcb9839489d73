//! TLS to PostgreSQL: every `sslmode` against a private cluster with
//! `ssl=on` and a certificate made here (CA-signed, for `localhost` only),
//! through the pool, a single connection (migrations, `dev`), and the delete
//! worker's LISTEN connection. One cluster serves every case: starting one
//! costs seconds on 2 cores.

mod cluster;

use std::{sync::Arc, time::Duration};

use claimcheck::{
    db::{self, DbError, TlsConfigError},
    jobs::{delete_worker, JobContext},
    metrics::Metrics,
    store::{fs::FsStore, ObjectStore},
};
use claimcheck_tests::jobs::{delete, exists, fast_settings, put_object};
use cluster::TlsCluster;
use tokio_util::sync::CancellationToken;

const SSL_OF_THIS_SESSION: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

/// Opens one connection to `url` and says whether it is encrypted.
async fn ssl_of(url: &str) -> Result<bool, DbError> {
    let (client, connection) = db::connect_one(url).await?;
    tokio::spawn(connection);
    Ok(client.query_one(SSL_OF_THIS_SESSION, &[]).await?.get(0))
}

/// The error `url` is refused with.
async fn refused(url: &str) -> String {
    match ssl_of(url).await {
        Ok(ssl) => panic!("{url} connected (ssl: {ssl}) but should be refused"),
        Err(e) => {
            eprintln!("TLS refused: {e}");
            e.to_string()
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_sslmode_against_a_server_with_ssl_on() {
    let pg = TlsCluster::start().await;
    let ca = pg.cert("ca.crt");
    let other = pg.cert("other-ca.crt");
    let (ca, other) = (ca.display(), other.display());

    // require: the pool connects, and the server sees TLS.
    let require = pg.url("127.0.0.1", "sslmode=require");
    let pool = db::connect(&require, 2).unwrap();
    let row = pool.get().await.unwrap();
    let ssl: bool = row
        .query_one(SSL_OF_THIS_SESSION, &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        ssl,
        "sslmode=require: pg_stat_ssl says the pool's connection is plain"
    );
    drop(row);

    // Migrations over TLS, with the full check.
    let full = pg.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let report = db::migrate(&full).await.expect("migrate over verify-full");
    assert!(
        report
            .applied
            .first()
            .is_some_and(|m| m.starts_with("V1__")),
        "every migration applied from the first: {:?}",
        report.applied
    );
    assert!(ssl_of(&full).await.unwrap(), "verify-full is encrypted");

    // verify-full with a root that did not sign the server's certificate.
    let wrong = pg.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={other}"),
    );
    let e = refused(&wrong).await;
    assert!(
        e.contains("certificate verify failed")
            && e.contains("sslmode=verify-full")
            && e.contains(&other.to_string())
            && e.contains("not signed by a trusted root"),
        "{e}"
    );
    // The pool refuses it the same way (the reason is in the message).
    let e = DbError::from(db::connect(&wrong, 1).unwrap().get().await.unwrap_err());
    assert!(e.is_unavailable(), "{e}");
    assert!(e.to_string().contains("certificate verify failed"), "{e}");

    // The certificate names localhost, not 127.0.0.1: verify-ca (chain
    // only) connects there, verify-full refuses the name.
    let ca_by_ip = pg.url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}"));
    assert!(ssl_of(&ca_by_ip).await.unwrap(), "verify-ca via 127.0.0.1");
    let full_by_ip = pg.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let e = refused(&full_by_ip).await;
    assert!(
        e.contains("certificate verify failed") && e.contains("not valid for name \"127.0.0.1\""),
        "{e}"
    );
    // verify-ca still checks the chain.
    let e = refused(&pg.url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={other}"),
    ))
    .await;
    assert!(
        e.contains("sslmode=verify-ca") && e.contains("not signed"),
        "{e}"
    );

    // As in libpq, require with a root certificate is verify-ca.
    let e = refused(&pg.url("127.0.0.1", &format!("sslmode=require&sslrootcert={other}"))).await;
    assert!(
        e.contains("certificate verify failed (sslmode=require (checked as verify-ca")
            && e.contains("not signed by a trusted root"),
        "{e}"
    );
    let require_ca = pg.url("127.0.0.1", &format!("sslmode=require&sslrootcert={ca}"));
    assert!(ssl_of(&require_ca).await.unwrap());

    // disable is plain; prefer, and no sslmode at all (libpq's default is
    // prefer), use TLS when the server has it; key=value strings work too.
    assert!(!ssl_of(&pg.url("127.0.0.1", "sslmode=disable"))
        .await
        .unwrap());
    assert!(ssl_of(&pg.url("127.0.0.1", "sslmode=prefer"))
        .await
        .unwrap());
    assert!(ssl_of(&pg.url("127.0.0.1", "")).await.unwrap());
    let key_values = format!(
        "host=localhost port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert='{ca}'",
        pg.port
    );
    assert!(ssl_of(&key_values).await.unwrap());

    // An unknown sslmode or a missing root file: a configuration error,
    // before any connection is tried.
    let e = db::connect(&pg.url("127.0.0.1", "sslmode=verify"), 1).unwrap_err();
    assert!(
        matches!(e, DbError::Config(TlsConfigError::UnknownSslMode(_))),
        "{e}"
    );
    assert!(
        !e.is_unavailable(),
        "a configuration error is not an outage"
    );
    let missing = pg.url(
        "localhost",
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.crt",
    );
    let e = refused(&missing).await;
    assert!(
        e.contains("sslrootcert /nonexistent/ca.crt: cannot read"),
        "{e}"
    );

    listen_connection_uses_tls(&pg, &full).await;

    // Without TLS on the server: prefer falls back to plain, require and
    // above are refused.
    pg.set_ssl(false).await;
    assert!(!ssl_of(&pg.url("127.0.0.1", "sslmode=prefer"))
        .await
        .unwrap());
    let e = refused(&require).await;
    assert!(e.contains("server does not support TLS"), "{e}");
    let e = refused(&full).await;
    assert!(e.contains("server does not support TLS"), "{e}");
}

/// The delete worker's LISTEN connection goes through the same TLS: the
/// server shows the LISTENing session encrypted, and a notification sent
/// over it wakes the worker (its poll interval is far longer than the test).
async fn listen_connection_uses_tls(pg: &TlsCluster, url: &str) {
    let root = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(root.path().to_owned(), None).unwrap());
    let mut settings = fast_settings("tls/");
    settings.poll_interval = Duration::from_secs(600);
    let ctx = JobContext::new(
        db::connect(url, 2).unwrap(),
        store.clone(),
        Metrics::new(),
        settings,
    );
    let cancel = CancellationToken::new();
    let worker = tokio::spawn(delete_worker::run(
        ctx.clone(),
        Some(url.to_owned()),
        cancel.clone(),
    ));

    let admin = claimcheck_tests::db::connect(&pg.url("127.0.0.1", "sslmode=disable")).await;
    let listening = format!("LISTEN {}", delete_worker::CHANNEL);
    let ssl = wait_for("a LISTEN session", || async {
        admin
            .query_opt(
                "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
                 WHERE a.query = $1",
                &[&listening],
            )
            .await
            .unwrap()
            .map(|row| row.get::<_, bool>(0))
    })
    .await;
    assert!(ssl, "the LISTEN connection is plain");

    put_object(&*store, "tls/a", 3).await;
    ctx.queue.enqueue(&[delete("tls/a", None)]).await.unwrap();
    wait_for("the notified worker deleting tls/a", || async {
        (!exists(&*store, "tls/a").await).then_some(())
    })
    .await;
    cancel.cancel();
    worker.await.unwrap();
}

/// Polls `probe` until it gives a value, or panics after 15 s naming `what`.
async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let limit = Duration::from_secs(15);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {what} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

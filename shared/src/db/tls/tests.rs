//! Parsing and configuration errors; the handshakes themselves are tested
//! against a real server in the test suite (`tests/tests/suite/pg_tls.rs`).

use std::path::PathBuf;

use super::*;

/// Parses with a default root file that does not exist.
fn parse(url: &str) -> Result<PgTarget, TlsConfigError> {
    PgTarget::parse_with_default_root(url, Some(PathBuf::from("/nonexistent/root.crt")))
}

fn tokio_mode(target: &PgTarget) -> tokio_postgres::config::SslMode {
    target.config.get_ssl_mode()
}

#[test]
fn without_sslmode_prefer_is_used_as_in_libpq() {
    let target = parse("postgres://u@db:6543/app").unwrap();
    assert_eq!(
        (target.mode, target.check),
        (SslMode::Prefer, Check::Nothing)
    );
    assert_eq!(tokio_mode(&target), tokio_postgres::config::SslMode::Prefer);
    assert_eq!(target.config.get_dbname(), Some("app"));
    assert_eq!(target.config.get_ports(), &[6543]);
}

#[test]
fn disable_and_require_without_a_root_check_nothing() {
    let target = parse("postgres://db/app?sslmode=disable").unwrap();
    assert_eq!(
        tokio_mode(&target),
        tokio_postgres::config::SslMode::Disable
    );
    let target = parse("host=db sslmode=require").unwrap();
    assert_eq!(
        (target.mode, target.check),
        (SslMode::Require, Check::Nothing)
    );
    assert_eq!(
        tokio_mode(&target),
        tokio_postgres::config::SslMode::Require
    );
}

#[test]
fn an_unknown_sslmode_is_a_clear_error() {
    let e = parse("postgres://db/app?sslmode=verify-everything").unwrap_err();
    assert_eq!(
        e.to_string(),
        "sslmode=\"verify-everything\" is not one of disable, prefer, require, verify-ca, verify-full"
    );
}

#[test]
fn verifying_without_a_root_certificate_says_what_to_set() {
    for mode in ["verify-ca", "verify-full"] {
        let e = parse(&format!("postgres://db/app?sslmode={mode}")).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, TlsConfigError::NoRootCert { .. }), "{msg}");
        assert!(msg.contains(&format!("sslmode={mode}")), "{msg}");
        assert!(
            msg.contains("sslrootcert=") && msg.contains("/nonexistent/root.crt"),
            "{msg}"
        );
    }
}

#[test]
fn an_unreadable_or_empty_sslrootcert_names_the_file() {
    let e =
        parse("postgres://db/app?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("sslrootcert /nonexistent/ca.pem: cannot read: "),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.crt");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let url = format!("sslmode=require sslrootcert='{}'", empty.display());
    let e = parse(&url).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("sslrootcert {}: no PEM certificate in it", empty.display())
    );
}

#[test]
fn sslrootcert_system_means_verify_full() {
    let e = parse("postgres://db/app?sslmode=require&sslrootcert=system").unwrap_err();
    assert!(
        matches!(
            e,
            TlsConfigError::SystemRootsNeedVerifyFull(SslMode::Require)
        ),
        "{e}"
    );
    // Without sslmode it is verify-full (when the system has roots at all).
    match parse("postgres://db/app?sslrootcert=system") {
        Ok(target) => assert_eq!(
            (target.mode, target.check),
            (SslMode::VerifyFull, Check::ChainAndHost)
        ),
        Err(e) => assert!(matches!(e, TlsConfigError::NoSystemRoots(_)), "{e}"),
    }
}

#[test]
fn prefer_ignores_sslrootcert_and_disable_reads_nothing() {
    let url = "postgres://db/app?sslmode=prefer&sslrootcert=/nonexistent/ca.pem";
    assert_eq!(parse(url).unwrap().check, Check::Nothing);
    let url = "postgres://db/app?sslmode=disable&sslrootcert=/nonexistent/ca.pem";
    assert_eq!(parse(url).unwrap().check, Check::Nothing);
}

#[test]
fn the_rest_of_the_string_is_still_checked_by_tokio_postgres() {
    let e = parse("postgres://db/app?sslmode=require&nonsense=1").unwrap_err();
    assert!(matches!(e, TlsConfigError::Parse(_)), "{e}");
    assert!(e.to_string().contains("nonsense"), "{e}");
}

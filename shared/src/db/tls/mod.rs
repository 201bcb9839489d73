//! TLS to PostgreSQL: `sslmode` and `sslrootcert` in a connection string,
//! honoured as libpq honours them, for every connection claimcheck opens
//! (the pool, migrations, the LISTEN connection, `dev`).
//!
//! | `sslmode` | TLS | server certificate |
//! | --- | --- | --- |
//! | `disable` | never | - |
//! | `prefer` (the default, as in libpq) | if the server offers it, else plain | not checked |
//! | `require` | always | not checked; with a root certificate, as `verify-ca` |
//! | `verify-ca` | always | chains to a root certificate |
//! | `verify-full` | always | chains to a root certificate and names the host |
//!
//! The root certificates are the PEM file `sslrootcert` names; without it,
//! `~/.postgresql/root.crt` when that file exists (libpq's default);
//! `sslrootcert=system` means the system's roots and, as in libpq, requires
//! `verify-full` (and makes it the default). `verify-ca`/`verify-full`
//! without any root certificate is a configuration error.
//!
//! Where this differs from libpq: `prefer` never checks the certificate
//! (libpq checks it when a root file exists and, if that fails, falls back to
//! a plain connection: no more protected than an unchecked one); an
//! `sslrootcert` that cannot be read is an error in every mode that would use
//! it (libpq silently skips the check under `require`); the hostname is
//! matched against the certificate's subjectAltName only (not its CN); the
//! `PGSSLMODE`/`PGSSLROOTCERT` variables are not read; `allow` is read as
//! `prefer` (tokio-postgres cannot try plain first).

mod connect;
mod conninfo;
mod verify;

use std::{fmt, path::PathBuf, str::FromStr, sync::Arc};

use rustls::{pki_types::CertificateDer, ClientConfig, RootCertStore};
use tokio_postgres::Socket;

pub use connect::{PgTls, PgTlsConnect, PgTlsStream};
pub use verify::Check;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, without checking its certificate.
    Prefer,
    /// TLS, certificate checked only when a root certificate is configured.
    Require,
    /// TLS, certificate chained to a root certificate.
    VerifyCa,
    /// TLS, certificate chained to a root certificate and naming the host.
    VerifyFull,
}

impl SslMode {
    /// The name used in connection strings.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = TlsConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => SslMode::Disable,
            // libpq's `allow` (plain first, TLS if the server insists) is
            // not offered by tokio-postgres; `prefer` is the nearest.
            "prefer" | "allow" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(TlsConfigError::UnknownSslMode(other.to_owned())),
        })
    }
}

/// Why a connection string's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// `sslmode` has a value libpq does not know.
    #[error("sslmode={0:?} is not one of disable, prefer, require, verify-ca, verify-full")]
    UnknownSslMode(String),
    /// The `sslrootcert` file cannot be read.
    #[error("sslrootcert {path}: cannot read: {source}")]
    RootCertUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The `sslrootcert` file holds no usable certificate.
    #[error("sslrootcert {path}: {reason}")]
    RootCertInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A verifying mode without any root certificate to verify against.
    #[error(
        "sslmode={mode} needs a root certificate: set sslrootcert=/path/to/root.crt \
         (or sslrootcert=system for the system's roots); the default {default} does not exist"
    )]
    NoRootCert {
        /// The mode asked for.
        mode: SslMode,
        /// libpq's default file, which is missing.
        default: String,
    },
    /// `sslrootcert=system` with a weaker mode than `verify-full`.
    #[error(
        "sslmode={0} may not be used with sslrootcert=system (use verify-full): any \
         certificate the system trusts, for any host, would pass"
    )]
    SystemRootsNeedVerifyFull(SslMode),
    /// `sslrootcert=system` but the system has no root certificates.
    #[error("sslrootcert=system: no root certificate could be loaded from the system: {0}")]
    NoSystemRoots(String),
    /// tokio-postgres rejected the rest of the connection string.
    #[error("{}", super::with_causes(.0))]
    Parse(#[from] tokio_postgres::Error),
    /// rustls refused the configuration (not expected with its defaults).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A connection (the half to drive) opened by [`PgTarget::connect`].
pub type PgConnection = tokio_postgres::Connection<Socket, PgTlsStream>;

/// A connection string made ready to connect: tokio-postgres's settings and
/// the TLS connector its `sslmode` and `sslrootcert` ask for.
#[derive(Clone)]
pub struct PgTarget {
    /// Everything but TLS, and the TLS mode tokio-postgres itself handles
    /// (whether to ask the server for TLS and whether to insist).
    pub config: tokio_postgres::Config,
    /// The rustls connector, with the certificate check of [`Self::check`].
    pub tls: PgTls,
    /// The `sslmode` in force.
    pub mode: SslMode,
    /// How much of the server's certificate is checked.
    pub check: Check,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The config holds the password: show only what TLS is about.
        f.debug_struct("PgTarget")
            .field("mode", &self.mode)
            .field("check", &self.check)
            .finish_non_exhaustive()
    }
}

impl PgTarget {
    /// Parses `url` (a `postgres://` URL or a `key=value` string) and reads
    /// the root certificates it names.
    pub fn parse(url: &str) -> Result<Self, TlsConfigError> {
        let default_root =
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".postgresql/root.crt"));
        Self::parse_with_default_root(url, default_root)
    }

    /// [`Self::parse`] with libpq's default root file at `default_root`.
    fn parse_with_default_root(
        url: &str,
        default_root: Option<PathBuf>,
    ) -> Result<Self, TlsConfigError> {
        let split = conninfo::split(url);
        let mut config = tokio_postgres::Config::from_str(&split.rest)?;
        let system = split.sslrootcert.as_deref() == Some("system");
        let mode = match split.sslmode.as_deref() {
            Some(mode) => mode.parse()?,
            None if system => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if system && mode != SslMode::VerifyFull {
            return Err(TlsConfigError::SystemRootsNeedVerifyFull(mode));
        }
        // The root file that applies: the one named, else libpq's default
        // when it exists (only then does it upgrade `require`).
        let root_file = match &split.sslrootcert {
            Some(_) if system => None,
            Some(named) => Some(PathBuf::from(named)),
            None => default_root.clone().filter(|path| path.exists()),
        };
        let has_roots = system || root_file.is_some();
        let check = match mode {
            SslMode::Disable | SslMode::Prefer => Check::Nothing,
            SslMode::Require if has_roots => Check::Chain,
            SslMode::Require => Check::Nothing,
            SslMode::VerifyCa if has_roots => Check::Chain,
            SslMode::VerifyFull if has_roots => Check::ChainAndHost,
            SslMode::VerifyCa | SslMode::VerifyFull => {
                return Err(TlsConfigError::NoRootCert {
                    mode,
                    default: default_root.map_or_else(
                        || "~/.postgresql/root.crt (HOME is not set)".to_owned(),
                        |path| path.display().to_string(),
                    ),
                })
            }
        };
        let roots = match (check, &root_file) {
            (Check::Nothing, _) => RootCertStore::empty(),
            _ if system => system_roots()?,
            (_, Some(path)) => roots_from_file(path)?,
            (_, None) => unreachable!("a check needs roots, which were found above"),
        };
        // What an error names: the mode, and the roots when there are any.
        let as_verify_ca = if mode == SslMode::Require && has_roots {
            " (checked as verify-ca: a root certificate is set)"
        } else {
            ""
        };
        let described = match (&root_file, system) {
            (_, true) => format!("sslmode={mode}, sslrootcert=system"),
            (Some(path), _) => format!(
                "sslmode={mode}{as_verify_ca}, sslrootcert {}",
                path.display()
            ),
            (None, _) => format!("sslmode={mode}"),
        };
        config.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        Ok(Self {
            config,
            tls: connector(check, roots, described)?,
            mode,
            check,
        })
    }

    /// Opens one connection (not pooled); the caller drives the returned
    /// [`PgConnection`].
    pub async fn connect(
        &self,
    ) -> Result<(tokio_postgres::Client, PgConnection), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }
}

/// A rustls connector doing `check` against `roots`, with the aws-lc-rs
/// provider (the one aws-sdk-s3 already builds), chosen explicitly because
/// rustls has no process default when more than one provider is compiled in.
fn connector(
    check: Check,
    roots: RootCertStore,
    described: String,
) -> Result<PgTls, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = verify::PgVerifier::new(check, roots, provider.clone());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(PgTls::new(config, described))
}

/// Every certificate of the PEM file at `path`.
fn roots_from_file(path: &PathBuf) -> Result<RootCertStore, TlsConfigError> {
    use rustls::pki_types::pem::PemObject;
    let invalid = |reason: String| TlsConfigError::RootCertInvalid {
        path: path.clone(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|source| TlsConfigError::RootCertUnreadable {
        path: path.clone(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| invalid(format!("not a PEM certificate file: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| invalid(format!("unusable certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(invalid("no PEM certificate in it".to_owned()));
    }
    Ok(roots)
}

/// The system's root certificates (`sslrootcert=system`).
fn system_roots() -> Result<RootCertStore, TlsConfigError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(TlsConfigError::NoSystemRoots(if errors.is_empty() {
            "none installed".to_owned()
        } else {
            errors.join("; ")
        }));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests;

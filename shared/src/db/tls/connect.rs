//! The TLS connector handed to tokio-postgres and deadpool: rustls through
//! `tokio-postgres-rustls`, with a failed certificate check reworded to say
//! which setting refused it (`sslmode=verify-full, sslrootcert /etc/ca.crt`).

use std::{convert::Infallible, future::Future, io, pin::Pin, sync::Arc};

use rustls::{CertificateError, ClientConfig};
use tokio_postgres::{
    tls::{MakeTlsConnect, TlsConnect},
    Socket,
};
use tokio_postgres_rustls::MakeRustlsConnect;

type RustlsConnect = <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;

/// The stream of a connection opened with [`PgTls`].
pub type PgTlsStream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

/// A [`MakeTlsConnect`] for every connection claimcheck opens.
#[derive(Clone)]
pub struct PgTls {
    inner: MakeRustlsConnect,
    /// The settings behind the check, for error messages.
    settings: Arc<str>,
}

impl PgTls {
    /// A connector for `config`; `settings` describes its check.
    pub(crate) fn new(config: ClientConfig, settings: String) -> Self {
        Self {
            inner: MakeRustlsConnect::new(config),
            settings: settings.into(),
        }
    }
}

impl MakeTlsConnect<Socket> for PgTls {
    type Stream = PgTlsStream;
    type TlsConnect = PgTlsConnect;
    type Error = Infallible;

    fn make_tls_connect(&mut self, hostname: &str) -> Result<PgTlsConnect, Infallible> {
        Ok(PgTlsConnect {
            inner: MakeTlsConnect::<Socket>::make_tls_connect(&mut self.inner, hostname)?,
            settings: self.settings.clone(),
        })
    }
}

/// One handshake of [`PgTls`].
pub struct PgTlsConnect {
    inner: RustlsConnect,
    settings: Arc<str>,
}

impl TlsConnect<Socket> for PgTlsConnect {
    type Stream = PgTlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PgTlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        let handshake = self.inner.connect(stream);
        let settings = self.settings;
        Box::pin(async move { handshake.await.map_err(|e| explain(e, &settings)) })
    }
}

/// Rewords a certificate rejected by the check: rustls says only
/// "invalid peer certificate: UnknownIssuer".
fn explain(e: io::Error, settings: &str) -> io::Error {
    let rejected = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let Some(rustls::Error::InvalidCertificate(cert)) = rejected else {
        return e;
    };
    let reason = match cert {
        CertificateError::UnknownIssuer => {
            "the server's certificate is not signed by a trusted root (UnknownIssuer)".to_owned()
        }
        other => other.to_string(),
    };
    io::Error::new(
        e.kind(),
        format!("certificate verify failed ({settings}): {reason}"),
    )
}

//! The server certificate check for each `sslmode`.
//!
//! rustls always checks the hostname with the chain; libpq's `require` checks
//! nothing and `verify-ca` checks the chain but not the name, so one verifier
//! of our own does all three, built from rustls' webpki pieces.

use std::{fmt, sync::Arc};

use rustls::{
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        verify_server_cert_signed_by_trust_anchor, verify_server_name,
    },
    crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider},
    pki_types::{CertificateDer, ServerName, UnixTime},
    server::ParsedCertificate,
    DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
};

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing (`prefer`, and `require` without a root certificate): the
    /// connection is encrypted but the server is not authenticated.
    Nothing,
    /// It chains to a root certificate (`verify-ca`, `require` with one).
    Chain,
    /// It chains to a root certificate and names the host (`verify-full`).
    ChainAndHost,
}

/// A [`ServerCertVerifier`] for one [`Check`]. Its errors are rustls' own,
/// so the right TLS alert reaches the server; [`super::connect`] adds which
/// setting failed to the message.
pub(crate) struct PgVerifier {
    check: Check,
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl PgVerifier {
    pub(crate) fn new(check: Check, roots: RootCertStore, provider: Arc<CryptoProvider>) -> Self {
        Self {
            check,
            roots: Arc::new(roots),
            provider,
        }
    }
}

impl fmt::Debug for PgVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgVerifier")
            .field("check", &self.check)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for PgVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if self.check == Check::Nothing {
            return Ok(ServerCertVerified::assertion());
        }
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        if self.check == Check::ChainAndHost {
            verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    // The handshake signatures are checked in every mode: they cost nothing
    // and prove the server holds the key of the certificate it sent.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

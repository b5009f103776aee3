//! TLS for this node's requests to other members' REST APIs (the leader
//! race, failover checks), with the rules Python Patroni's daemon applies
//! to its own HTTP client (`PatroniRequest(config, insecure=True)`):
//!
//! - a client certificate is presented when `ctl.certfile` is set (key
//!   from `ctl.keyfile`, else from the certificate file; encrypted PKCS#8
//!   keys with `ctl.keyfile_password`);
//! - with a client certificate, the server's certificate is verified
//!   against `ctl.cacert`, else `restapi.cafile`, but not its host name
//!   (members are addressed by IP and the daemon is "insecure" there);
//! - without one, the server's certificate is not verified at all.
//!
//! As on the server side ([`super::self_signed`]), a server certificate
//! that is itself one of the CA file's certificates is accepted even when
//! it is marked `CA:TRUE`, as OpenSSL does.
//!
//! Difference: without a CA file, Python would verify against the system
//! trust store; here that case is refused with an error (no system store
//! is bundled), so the caller can say so instead of silently trusting.
//!
//! The result plugs into reqwest with `ClientBuilder::use_preconfigured_tls`.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};

use super::self_signed::ca_used_as_end_entity;
use super::{read_certs, read_key, TlsError};

/// The files for member-to-member requests (`ctl.*`, `restapi.cafile`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberTlsOptions {
    /// `ctl.cacert`, else `restapi.cafile`.
    pub cacert: Option<PathBuf>,
    /// `ctl.certfile`: presented as the client certificate.
    pub certfile: Option<PathBuf>,
    /// `ctl.keyfile`; the key is read from `certfile` when absent.
    pub keyfile: Option<PathBuf>,
    pub keyfile_password: Option<String>,
}

/// A rustls client configuration for requests to other members.
pub fn member_client_config(o: &MemberTlsOptions) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS setup failed: {e}")))?;
    let Some(certfile) = o.certfile.as_deref() else {
        let verifier = Arc::new(NoServerCheck { provider });
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth());
    };
    let cafile = o.cacert.as_deref().ok_or_else(|| {
        TlsError(
            "a client certificate (ctl.certfile) is configured, but neither ctl.cacert nor \
             restapi.cafile names the CA to check the other members' certificates"
                .into(),
        )
    })?;
    let anchors = read_certs(cafile)?;
    let mut roots = RootCertStore::empty();
    for cert in &anchors {
        roots
            .add(cert.clone())
            .map_err(|e| TlsError(format!("bad CA certificate in {}: {e}", cafile.display())))?;
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| TlsError(format!("CA file {}: {e}", cafile.display())))?;
    let verifier = Arc::new(NoHostNameCheck { inner, anchors });
    let chain = read_certs(certfile)?;
    let keyfile = o.keyfile.as_deref().unwrap_or(certfile);
    let key = read_key(keyfile, o.keyfile_password.as_deref())?;
    builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(|e| {
            TlsError(format!(
                "client certificate {} and key {} do not work together: {e}",
                certfile.display(),
                keyfile.display()
            ))
        })
}

/// webpki's chain check without the host-name check, accepting a server
/// certificate that is one of the CA file's certificates.
#[derive(Debug)]
struct NoHostNameCheck {
    inner: Arc<WebPkiServerVerifier>,
    anchors: Vec<CertificateDer<'static>>,
}

fn name_mismatch(err: &rustls::Error) -> bool {
    matches!(
        err,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    )
}

impl ServerCertVerifier for NoHostNameCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(e) if name_mismatch(&e) => Ok(ServerCertVerified::assertion()),
            Err(e)
                if ca_used_as_end_entity(&e)
                    && self
                        .anchors
                        .iter()
                        .any(|a| a.as_ref() == end_entity.as_ref()) =>
            {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// No check of the server's certificate (Patroni's `CERT_NONE` when no
/// client certificate is configured); the handshake signatures are still
/// verified, so the peer holds the key of the certificate it sent.
#[derive(Debug)]
struct NoServerCheck {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoServerCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::super::self_signed::tests::openssl_self_signed;
    use super::super::{TlsAcceptor, TlsOptions, VerifyClient};
    use super::*;
    use rustls::{ClientConnection, ServerConnection};

    /// Run a handshake in memory; `Err` with the first side's error.
    fn handshake(client: ClientConfig, server: Arc<rustls::ServerConfig>) -> Result<(), String> {
        let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
        let mut c = ClientConnection::new(Arc::new(client), name).map_err(|e| e.to_string())?;
        let mut s = ServerConnection::new(server).map_err(|e| e.to_string())?;
        for _ in 0..20 {
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).map_err(|e| e.to_string())?;
            }
            let mut slice = &buf[..];
            while !slice.is_empty() {
                s.read_tls(&mut slice).map_err(|e| e.to_string())?;
            }
            s.process_new_packets()
                .map_err(|e| format!("server: {e}"))?;
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).map_err(|e| e.to_string())?;
            }
            let mut slice = &buf[..];
            while !slice.is_empty() {
                c.read_tls(&mut slice).map_err(|e| e.to_string())?;
            }
            c.process_new_packets()
                .map_err(|e| format!("client: {e}"))?;
        }
        Err("handshake did not finish".into())
    }

    fn server(dir: &std::path::Path, name: &str, cafile: &str) -> Arc<rustls::ServerConfig> {
        let acceptor = TlsAcceptor::load(TlsOptions {
            certfile: dir.join(format!("{name}.crt")),
            keyfile: Some(dir.join(format!("{name}.key"))),
            cafile: Some(dir.join(format!("{cafile}.crt"))),
            verify_client: VerifyClient::Required,
            ..TlsOptions::default()
        })
        .expect("server TLS");
        acceptor.config().expect("loaded")
    }

    fn member(dir: &std::path::Path, name: &str, cafile: &str) -> MemberTlsOptions {
        MemberTlsOptions {
            cacert: Some(dir.join(format!("{cafile}.crt"))),
            certfile: Some(dir.join(format!("{name}.crt"))),
            keyfile: Some(dir.join(format!("{name}.key"))),
            keyfile_password: None,
        }
    }

    #[test]
    fn members_sharing_the_suites_self_signed_certificate_talk_to_each_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        openssl_self_signed(d, "batman");
        openssl_self_signed(d, "joker");

        let ok = member_client_config(&member(d, "batman", "batman")).expect("client");
        assert_eq!(handshake(ok, server(d, "batman", "batman")), Ok(()));

        // Our certificate is not in the server's CA file: the server refuses.
        let theirs = member_client_config(&member(d, "joker", "batman")).expect("client");
        let err = handshake(theirs, server(d, "batman", "batman")).expect_err("refused");
        assert!(err.starts_with("server:"), "{err}");

        // The server's certificate is not in our CA file: we refuse it.
        let wrong_ca = member_client_config(&member(d, "batman", "joker")).expect("client");
        let err = handshake(wrong_ca, server(d, "batman", "batman")).expect_err("refused");
        assert!(err.starts_with("client:"), "{err}");
    }

    #[test]
    fn without_a_client_certificate_the_server_is_not_checked_and_a_ca_is_required_with_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        openssl_self_signed(d, "batman");
        let anon = member_client_config(&MemberTlsOptions::default()).expect("client");
        // A server that does not ask for client certificates accepts us,
        // whatever its certificate.
        let acceptor = TlsAcceptor::load(TlsOptions {
            certfile: d.join("batman.crt"),
            keyfile: Some(d.join("batman.key")),
            ..TlsOptions::default()
        })
        .expect("server TLS");
        assert_eq!(
            handshake(anon.clone(), acceptor.config().expect("cfg")),
            Ok(())
        );
        // One that requires them refuses us.
        let err = handshake(anon, server(d, "batman", "batman")).expect_err("refused");
        assert!(err.starts_with("server:"), "{err}");

        let mut no_ca = member(d, "batman", "batman");
        no_ca.cacert = None;
        let err = member_client_config(&no_ca).expect_err("needs a CA");
        assert!(err.0.contains("ctl.cacert"), "{}", err.0);
    }

    #[test]
    fn reqwest_takes_the_configuration_as_its_rustls_backend() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        openssl_self_signed(d, "batman");
        let cfg = member_client_config(&member(d, "batman", "batman")).expect("client");
        // A rustls version mismatch would be "Unknown TLS backend" here.
        let built = reqwest::Client::builder()
            .use_preconfigured_tls(cfg)
            .build();
        assert!(built.is_ok(), "{built:?}");
    }
}

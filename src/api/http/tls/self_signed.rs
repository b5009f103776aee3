//! Client certificates that are themselves trusted CA certificates.
//!
//! A common small setup (and the one Patroni's own acceptance suite uses)
//! is one self-signed certificate, made with `openssl req -x509`, used as
//! the REST API's certificate, as every client's certificate and as the
//! CA file. `openssl req -x509` marks it `CA:TRUE`. OpenSSL, which Python
//! Patroni uses, accepts such a client certificate because it is found in
//! the trust store as it is. webpki refuses any `CA:TRUE` certificate as
//! an end entity (`CaUsedAsEndEntity`), so without this wrapper every such
//! client fails the handshake with "certificate unknown".
//!
//! The wrapper accepts exactly that case: webpki's only objection is
//! `CaUsedAsEndEntity` (it checks the validity period before the basic
//! constraints, so the certificate is in its validity period) and the
//! presented certificate is byte for byte one of the certificates of
//! `cafile`. The TLS handshake signature checks are unchanged: the client
//! still proves it holds the certificate's private key.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError};

#[derive(Debug)]
pub struct TrustedSelfSigned {
    inner: Arc<dyn ClientCertVerifier>,
    anchors: Vec<CertificateDer<'static>>,
}

impl TrustedSelfSigned {
    /// Wrap webpki's verifier; `anchors` are the certificates of `cafile`.
    pub fn new(
        inner: Arc<dyn ClientCertVerifier>,
        anchors: Vec<CertificateDer<'static>>,
    ) -> TrustedSelfSigned {
        TrustedSelfSigned { inner, anchors }
    }

    fn is_anchor(&self, cert: &CertificateDer<'_>) -> bool {
        self.anchors.iter().any(|a| a.as_ref() == cert.as_ref())
    }
}

/// Whether webpki refused the certificate only for being a CA.
pub(super) fn ca_used_as_end_entity(err: &rustls::Error) -> bool {
    match err {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(e))) => matches!(
            e.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

impl ClientCertVerifier for TrustedSelfSigned {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Err(e) if ca_used_as_end_entity(&e) && self.is_anchor(end_entity) => {
                Ok(ClientCertVerified::assertion())
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// A self-signed `CA:TRUE` certificate made the way Patroni's
    /// acceptance suite makes its one certificate.
    pub(in crate::api::http::tls) fn openssl_self_signed(dir: &Path, name: &str) -> PathBuf {
        let cert = dir.join(format!("{name}.crt"));
        let status = Command::new("openssl")
            .args(["req", "-nodes", "-new", "-x509", "-subj"])
            .arg(format!("/CN={name}.patroni"))
            .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
            .arg(dir.join(format!("{name}.key")))
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("the openssl command line tool is needed for this test");
        assert!(status.status.success(), "openssl failed: {status:?}");
        cert
    }

    pub(in crate::api::http::tls) fn der(path: &Path) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(path).expect("certificate")
    }

    #[test]
    fn a_client_certificate_found_in_cafile_is_accepted_even_when_it_is_a_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let trusted = openssl_self_signed(dir.path(), "batman");
        let stranger = openssl_self_signed(dir.path(), "joker");
        let provider = Arc::new(rustls::crypto::ring::default_provider());

        for mode in [
            super::super::VerifyClient::Required,
            super::super::VerifyClient::Optional,
        ] {
            let verifier =
                super::super::client_verifier(&trusted, mode, provider.clone()).expect("verifier");
            assert_eq!(
                verifier.client_auth_mandatory(),
                mode == super::super::VerifyClient::Required
            );
            assert!(verifier
                .verify_client_cert(&der(&trusted), &[], UnixTime::now())
                .is_ok());
            // Not in cafile: still refused, with webpki's reason.
            let err = verifier
                .verify_client_cert(&der(&stranger), &[], UnixTime::now())
                .expect_err("a certificate outside cafile must be refused");
            assert!(
                matches!(err, rustls::Error::InvalidCertificate(_)),
                "{err:?}"
            );
        }
    }

    #[test]
    fn webpki_alone_refuses_the_ca_certificate_and_time_is_still_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let trusted = openssl_self_signed(dir.path(), "batman");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der(&trusted)).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("verifier");
        // What the wrapper exists for.
        let err = inner
            .verify_client_cert(&der(&trusted), &[], UnixTime::now())
            .expect_err("webpki refuses CA:TRUE end entities");
        assert!(ca_used_as_end_entity(&err), "{err:?}");

        // Thirty years on the certificate (valid 30 days) has expired: the
        // wrapper passes webpki's refusal through.
        let wrapped = TrustedSelfSigned::new(inner, vec![der(&trusted)]);
        let later = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            UnixTime::now().as_secs() + 30 * 365 * 86400,
        ));
        let err = wrapped
            .verify_client_cert(&der(&trusted), &[], later)
            .expect_err("an expired certificate must be refused");
        assert!(!ca_used_as_end_entity(&err), "{err:?}");
    }
}

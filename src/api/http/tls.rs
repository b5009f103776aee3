//! TLS termination for the REST API (`restapi.certfile` and friends), on
//! rustls with the ring provider, so no OpenSSL is linked.
//!
//! The acceptor keeps its options (file paths) and the currently loaded
//! rustls configuration behind a lock. [`TlsAcceptor::reload`] reads the
//! files again and swaps the configuration: the listener is never dropped,
//! connections already running keep the old configuration and new ones get
//! the new one. A failed reload keeps the previous configuration.
//!
//! # Differences from Python Patroni (which uses OpenSSL through `ssl`)
//!
//! - `keyfile_password`: rustls cannot decrypt keys, so encrypted PKCS#8
//!   keys (`BEGIN ENCRYPTED PRIVATE KEY`: PBES2 with PBKDF2 or scrypt and
//!   AES-CBC, or 3DES) are decrypted with the RustCrypto `pkcs8` crate.
//!   The legacy OpenSSL encryption inside `BEGIN RSA/EC PRIVATE KEY`
//!   (`Proc-Type: 4,ENCRYPTED`) is not supported: such a key is refused
//!   with an error naming the file; convert it with
//!   `openssl pkcs8 -topk8 -in old.key -out new.key` (it keeps a password).
//! - `ciphers`: an OpenSSL cipher string only restricts TLS 1.2 suites (as
//!   with OpenSSL, TLS 1.3 suites are not affected). rustls offers only
//!   ECDHE with AES-GCM or ChaCha20-Poly1305; explicit names of those
//!   suites (`ECDHE-RSA-AES128-GCM-SHA256`, ...) select and order them and
//!   `!NAME`/`-NAME` removes them. Everything else (keywords such as `HIGH`
//!   or `!aNULL`, CBC/RSA-kx suites rustls does not implement) is ignored
//!   with a warning. TLS 1.0/1.1 are never offered.
//! - `verify_client: optional|required` needs `cafile`: OpenSSL would fall
//!   back to the system trust store, we refuse with an error instead of
//!   trusting every public CA for client authentication.
//! - An unknown `verify_client` value is logged and treated as `none`, like
//!   Python.

pub mod client;
mod self_signed;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite};

/// `restapi.verify_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyClient {
    /// No client certificate is requested.
    #[default]
    None,
    /// A certificate is requested; without one, reads work but modifying
    /// requests get `403 client certificate required`.
    Optional,
    /// The handshake fails without a valid client certificate.
    Required,
}

impl VerifyClient {
    /// Case-insensitive, like Patroni's `.lower()`; unknown values are
    /// logged and mean `none` (OpenSSL's default verify mode).
    pub fn parse(text: &str) -> VerifyClient {
        match text.to_lowercase().as_str() {
            "none" => VerifyClient::None,
            "optional" => VerifyClient::Optional,
            "required" => VerifyClient::Required,
            _ => {
                log::error!(target: "patroni.api", "Bad value in the \"restapi.verify_client\": {text}");
                VerifyClient::None
            }
        }
    }
}

/// The TLS part of the `restapi` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsOptions {
    pub certfile: PathBuf,
    /// When absent the key is read from `certfile`.
    pub keyfile: Option<PathBuf>,
    pub keyfile_password: Option<String>,
    pub cafile: Option<PathBuf>,
    pub ciphers: Option<String>,
    pub verify_client: VerifyClient,
}

/// Why a TLS configuration could not be loaded; always names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// The server side of TLS with hot reload.
pub struct TlsAcceptor {
    state: RwLock<State>,
}

struct State {
    options: TlsOptions,
    loaded: Option<Loaded>,
}

/// What one connection is served with: taken once before its handshake,
/// so a reload in the middle of a request cannot mix two configurations.
#[derive(Clone)]
pub struct Loaded {
    pub config: Arc<ServerConfig>,
    pub verify_client: VerifyClient,
    /// DER of the leaf certificate, to tell whether a reload changed it.
    leaf: Vec<u8>,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read();
        f.debug_struct("TlsAcceptor")
            .field("certfile", &state.options.certfile)
            .field("verify_client", &state.options.verify_client)
            .field("loaded", &state.loaded.is_some())
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// An acceptor that has not read its files yet (see [`Self::reload`]).
    pub fn new(options: TlsOptions) -> TlsAcceptor {
        TlsAcceptor {
            state: RwLock::new(State {
                options,
                loaded: None,
            }),
        }
    }

    /// Build and load at once.
    pub fn load(options: TlsOptions) -> Result<TlsAcceptor, TlsError> {
        let acceptor = TlsAcceptor::new(options);
        acceptor.reload()?;
        Ok(acceptor)
    }

    // A panic while the lock was held cannot leave the state half written
    // (every write is a single assignment), so a poisoned lock is usable.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The options in use.
    pub fn options(&self) -> TlsOptions {
        self.read().options.clone()
    }

    /// What new connections get, `None` until a load worked.
    pub fn current(&self) -> Option<Loaded> {
        self.read().loaded.clone()
    }

    /// The rustls configuration new connections get.
    pub fn config(&self) -> Option<Arc<ServerConfig>> {
        self.current().map(|l| l.config)
    }

    /// Read certificate, key and CA again. `Ok(true)` when the served
    /// certificate changed (Patroni's `reload_local_certificate` answer);
    /// on error the previous configuration stays in use.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let options = self.options();
        self.reconfigure(options)
    }

    /// Switch to other options (a configuration reload changed paths,
    /// `verify_client` or `ciphers`). Files are read before anything is
    /// swapped: on error the previous options and files stay in use.
    pub fn reconfigure(&self, options: TlsOptions) -> Result<bool, TlsError> {
        let loaded = build(&options)?;
        let mut state = self.write();
        let changed = state
            .loaded
            .as_ref()
            .is_none_or(|old| old.leaf != loaded.leaf);
        *state = State {
            options,
            loaded: Some(loaded),
        };
        Ok(changed)
    }
}

fn build(o: &TlsOptions) -> Result<Loaded, TlsError> {
    let chain = read_certs(&o.certfile)?;
    let leaf = chain
        .first()
        .map(|c| c.as_ref().to_vec())
        .ok_or_else(|| TlsError(format!("no certificate found in {}", o.certfile.display())))?;
    let keyfile = o.keyfile.as_deref().unwrap_or(&o.certfile);
    let key = read_key(keyfile, o.keyfile_password.as_deref())?;

    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(ciphers) = o.ciphers.as_deref() {
        provider.cipher_suites = select_suites(ciphers, &provider.cipher_suites);
    }
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS setup failed: {e}")))?;
    let builder = match o.verify_client {
        VerifyClient::None => builder.with_no_client_auth(),
        mode => {
            let cafile = o.cafile.as_deref().ok_or_else(|| {
                TlsError(
                    "restapi.verify_client needs restapi.cafile to check client certificates"
                        .into(),
                )
            })?;
            let verifier = client_verifier(cafile, mode, provider)?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // No ALPN list: like Python's ssl server, ignore what the client offers
    // (a list would make rustls refuse clients that offer only `h2`).
    let config = builder.with_single_cert(chain, key).map_err(|e| {
        TlsError(format!(
            "certificate {} and key {} do not work together: {e}",
            o.certfile.display(),
            keyfile.display()
        ))
    })?;
    Ok(Loaded {
        config: Arc::new(config),
        verify_client: o.verify_client,
        leaf,
    })
}

/// The client certificate check for `verify_client: optional|required`:
/// webpki against the certificates of `cafile`, plus OpenSSL's acceptance
/// of a client certificate that is itself one of them (see
/// [`self_signed`]).
fn client_verifier(
    cafile: &Path,
    mode: VerifyClient,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let anchors = read_certs(cafile)?;
    let mut roots = RootCertStore::empty();
    for cert in &anchors {
        roots
            .add(cert.clone())
            .map_err(|e| TlsError(format!("bad CA certificate in {}: {e}", cafile.display())))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let verifier = if mode == VerifyClient::Optional {
        verifier.allow_unauthenticated()
    } else {
        verifier
    };
    let verifier = verifier
        .build()
        .map_err(|e| TlsError(format!("CA file {}: {e}", cafile.display())))?;
    Ok(Arc::new(self_signed::TrustedSelfSigned::new(
        verifier, anchors,
    )))
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("cannot read {}: {e}", path.display())))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("bad PEM in {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "no PEM certificate found in {}",
            path.display()
        )));
    }
    Ok(certs)
}

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// The first PKCS#8, PKCS#1 (RSA) or SEC1 (EC) key in the file; an
/// encrypted PKCS#8 key is decrypted with `password`.
fn read_key(path: &Path, password: Option<&str>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_file(path)?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(TlsError(format!(
            "private key {} uses the legacy OpenSSL encryption, which is not supported; \
             convert it to encrypted PKCS#8 (openssl pkcs8 -topk8 -in <file> -out <new file>)",
            path.display()
        )));
    }
    if let Some(start) = text.find(ENCRYPTED_BEGIN) {
        let block = text[start..]
            .find(ENCRYPTED_END)
            .map(|end| &text[start..start + end + ENCRYPTED_END.len()])
            .ok_or_else(|| TlsError(format!("unterminated encrypted key in {}", path.display())))?;
        let password = password.ok_or_else(|| {
            TlsError(format!(
                "private key {} is encrypted and restapi.keyfile_password is not set",
                path.display()
            ))
        })?;
        return decrypt_pkcs8(block, password).map_err(|e| {
            TlsError(format!(
                "cannot decrypt private key {}: {e}",
                path.display()
            ))
        });
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        TlsError(format!(
            "no usable private key (PKCS#8, RSA or EC PEM) in {}: {e}",
            path.display()
        ))
    })
}

/// Decrypt one `ENCRYPTED PRIVATE KEY` PEM block.
fn decrypt_pkcs8(pem: &str, password: &str) -> Result<PrivateKeyDer<'static>, String> {
    use pkcs8::der::Decode;
    let (_, doc) = pkcs8::Document::from_pem(pem).map_err(|e| format!("bad PEM: {e}"))?;
    let info = pkcs8::EncryptedPrivateKeyInfo::from_der(doc.as_bytes())
        .map_err(|e| format!("bad encrypted key: {e}"))?;
    let plain = info
        .decrypt(password)
        .map_err(|e| format!("{e} (wrong restapi.keyfile_password?)"))?;
    Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()))
}

/// rustls suites by their OpenSSL names. TLS 1.3 suites appear here only
/// so that naming them is not reported as ignored.
fn openssl_name(suite: &SupportedCipherSuite) -> &'static str {
    use rustls::CipherSuite as C;
    match suite.suite() {
        C::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        C::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        C::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => "",
    }
}

/// Apply an OpenSSL cipher string to the TLS 1.2 suites (see the module
/// doc); TLS 1.3 suites are always kept.
fn select_suites(spec: &str, all: &[SupportedCipherSuite]) -> Vec<SupportedCipherSuite> {
    let is13 = |s: &SupportedCipherSuite| s.tls13().is_some();
    let find = |name: &str| {
        all.iter()
            .find(|s| openssl_name(s).eq_ignore_ascii_case(name))
            .copied()
    };
    let mut named: Vec<SupportedCipherSuite> = Vec::new();
    let mut removed: Vec<SupportedCipherSuite> = Vec::new();
    let mut ignored: Vec<&str> = Vec::new();
    for token in spec
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let (negated, name) = match token.strip_prefix(['!', '-']) {
            Some(rest) => (true, rest),
            None => (false, token.trim_start_matches('+')),
        };
        match find(name) {
            Some(s) if negated => removed.push(s),
            Some(s) if !is13(&s) && !named.contains(&s) => named.push(s),
            Some(_) => {}
            None => ignored.push(token),
        }
    }
    if !ignored.is_empty() {
        log::warn!(
            target: "patroni.api",
            "restapi.ciphers: ignoring {} (only ECDHE AES-GCM/CHACHA20 suite names are understood)",
            ignored.join(":")
        );
    }
    let tls12: Vec<SupportedCipherSuite> = if named.is_empty() {
        all.iter().filter(|s| !is13(s)).copied().collect()
    } else {
        named
    };
    all.iter()
        .filter(|s| is13(s))
        .copied()
        .chain(tls12)
        .filter(|s| !removed.contains(s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(suites: &[SupportedCipherSuite]) -> Vec<&'static str> {
        suites.iter().map(openssl_name).collect()
    }

    #[test]
    fn cipher_string_selects_and_orders_tls12_suites_only() {
        let all = rustls::crypto::ring::default_provider().cipher_suites;
        let got = select_suites(
            "ECDHE-RSA-AES256-GCM-SHA384:HIGH:!aNULL:ecdhe-rsa-aes128-gcm-sha256",
            &all,
        );
        let n = names(&got);
        let tls12: Vec<_> = n.iter().filter(|x| !x.starts_with("TLS_")).collect();
        assert_eq!(
            tls12,
            [
                &"ECDHE-RSA-AES256-GCM-SHA384",
                &"ECDHE-RSA-AES128-GCM-SHA256"
            ]
        );
        assert!(n.contains(&"TLS_AES_256_GCM_SHA384"));
    }

    #[test]
    fn keywords_only_keep_everything_and_negation_removes() {
        let all = rustls::crypto::ring::default_provider().cipher_suites;
        assert_eq!(select_suites("HIGH:!aNULL", &all).len(), all.len());
        let got = select_suites("DEFAULT:!ECDHE-ECDSA-CHACHA20-POLY1305", &all);
        assert_eq!(got.len(), all.len() - 1);
        assert!(!names(&got).contains(&"ECDHE-ECDSA-CHACHA20-POLY1305"));
    }

    #[test]
    fn verify_client_values() {
        assert_eq!(VerifyClient::parse("Required"), VerifyClient::Required);
        assert_eq!(VerifyClient::parse("optional"), VerifyClient::Optional);
        assert_eq!(VerifyClient::parse("bogus"), VerifyClient::None);
    }

    #[test]
    fn missing_and_bad_files_name_the_file() {
        let dir = std::env::temp_dir().join(format!("patroni-tls-unit-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let missing = dir.join("nope.pem");
        let err = TlsAcceptor::load(TlsOptions {
            certfile: missing.clone(),
            ..TlsOptions::default()
        })
        .err()
        .map(|e| e.0)
        .unwrap_or_default();
        assert!(err.contains("nope.pem"), "{err}");

        let garbage = dir.join("garbage.pem");
        let _ = std::fs::write(&garbage, "not a pem at all");
        let err = read_certs(&garbage).err().map(|e| e.0).unwrap_or_default();
        assert!(err.contains("garbage.pem"), "{err}");

        let enc = dir.join("enc.key");
        let _ = std::fs::write(
            &enc,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let err = read_key(&enc, None).err().map(|e| e.0).unwrap_or_default();
        assert!(
            err.contains("enc.key") && err.contains("keyfile_password"),
            "{err}"
        );
        let err = read_key(&enc, Some("pw"))
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(err.contains("enc.key") && err.contains("decrypt"), "{err}");

        let legacy = dir.join("legacy.key");
        let _ = std::fs::write(
            &legacy,
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        );
        let err = read_key(&legacy, Some("pw"))
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(
            err.contains("legacy.key") && err.contains("legacy"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

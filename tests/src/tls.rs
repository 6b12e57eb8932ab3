//! Certificates made at test time: a throwaway CA ([`TestCa`]) that issues the HTTPS stand-in servers'
//! certificates, and the client configuration that trusts it.
//!
//! The function under test trusts the CA through `OTEL_EXPORTER_OTLP_CERTIFICATE` (a PEM file from
//! [`TestCa::pem_file`]), the way it would trust a private CA in production; nothing is added to the
//! machine's trust store.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::util::random_hex;
use crate::{Error, Result};

/// A certificate authority generated for one test: its key never leaves the process.
pub struct TestCa {
    name: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl fmt::Debug for TestCa {
    /// The name only: the key is not for printing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa").field("name", &self.name).finish()
    }
}

impl TestCa {
    /// Generates a CA key (ECDSA P-256) and its self-signed certificate.
    pub fn new() -> Result<TestCa> {
        // A name of its own: a client trusting another test CA then finds no issuer for this one's
        // certificates (UnknownIssuer), as with any unrelated CA, rather than a same-named issuer
        // whose signature does not verify.
        let name = format!("tracekit test CA {}", random_hex(8));
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(tls_error("the CA"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, name.as_str());
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(tls_error("the CA key"))?;
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(tls_error("the CA"))?;
        Ok(TestCa { name, issuer })
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// Writes [`TestCa::pem`] to a new file under the system's temporary directory and returns its
    /// path: the value for `OTEL_EXPORTER_OTLP_CERTIFICATE`. The file is left behind (it is public).
    pub fn pem_file(&self) -> Result<PathBuf> {
        let path = std::env::temp_dir().join(format!("tracekit-test-ca-{}.pem", random_hex(16)));
        std::fs::write(&path, self.pem()).map_err(Error::io(format!(
            "writing the CA certificate to {}",
            path.display()
        )))?;
        Ok(path)
    }

    /// A server configuration presenting a fresh leaf certificate for `names`, signed by this CA. A
    /// name that parses as an IP address becomes an IP subject-alt name, any other a DNS name. Offers
    /// HTTP/1.1 only in ALPN, as the stand-in servers speak nothing else.
    pub fn server_config(&self, names: &[&str]) -> Result<Arc<ServerConfig>> {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let what = format!("a certificate for {names:?}");
        let mut params = CertificateParams::new(names).map_err(tls_error(&what))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "tracekit test server");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(tls_error(&what))?;
        let certificate = params
            .signed_by(&key, &self.issuer)
            .map_err(tls_error(&what))?;
        let chain = vec![certificate.der().clone(), self.der()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_error(&what))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(tls_error(&what))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// A client configuration that trusts this CA and nothing else.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.der())
            .map_err(tls_error("the CA as a root"))?;
        client_config(roots)
    }
}

/// A client configuration trusting exactly `roots` (possibly none), with the same explicit provider as
/// the servers.
pub fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error("a client configuration"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// aws-lc-rs, named explicitly: ring is in the dependency graph too, and rustls' provider-less
/// builders panic when they cannot pick one.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_error<E: fmt::Display>(what: &str) -> impl FnOnce(E) -> Error {
    let what = what.to_owned();
    move |error| Error::Tls(format!("generating {what}: {error}"))
}

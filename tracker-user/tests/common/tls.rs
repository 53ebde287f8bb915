//! TLS for the HTTPS and WSS tests: a self-signed certificate made by the
//! test (rcgen, no system tool needed) and a rustls client that trusts it.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::http::{HttpConn, HTTP_TIMEOUT};

pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A self-signed certificate for `localhost` and 127.0.0.1 / ::1, its PEM
/// files written into a directory.
pub struct TestCert {
    pub der: CertificateDer<'static>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl TestCert {
    /// Makes a new key and certificate and writes `NAME.crt` and `NAME.key`
    /// into `dir`.
    pub fn new(dir: &Path, name: &str) -> TestCert {
        let ck = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])
        .expect("generate a self-signed certificate");
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, ck.cert.pem()).unwrap();
        std::fs::write(&key_path, ck.signing_key.serialize_pem()).unwrap();
        TestCert {
            der: ck.cert.der().clone(),
            cert_path,
            key_path,
        }
    }

    /// `[tls]` section naming the files.
    pub fn config_section(&self) -> String {
        format!(
            "[tls]\ncertificate_path = \"{}\"\nprivate_key_path = \"{}\"\n",
            self.cert_path.display(),
            self.key_path.display()
        )
    }

    /// Writes this certificate and key over `other`'s files (for reloads).
    pub fn copy_to(&self, cert_path: &Path, key_path: &Path) {
        // Write to a temp name and rename, so the tracker never reads half a file.
        for (from, to) in [(&self.cert_path, cert_path), (&self.key_path, key_path)] {
            let tmp = to.with_extension("tmp");
            std::fs::copy(from, &tmp).unwrap();
            std::fs::rename(&tmp, to).unwrap();
        }
    }
}

/// A client config trusting exactly `roots`.
pub fn client_config(roots: &[&CertificateDer<'static>]) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for r in roots {
        store.add((*r).clone()).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS connection to `addr` (named by its IP), handshake done.
pub fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> TlsStream {
    try_connect(addr, config).unwrap_or_else(|e| panic!("TLS handshake with {addr}: {e}"))
}

pub fn try_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<TlsStream> {
    let tcp = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    tcp.set_read_timeout(Some(HTTP_TIMEOUT))?;
    tcp.set_nodelay(true)?;
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// The leaf certificate the server presented.
pub fn peer_leaf(stream: &TlsStream) -> CertificateDer<'static> {
    stream
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("server presented no certificate")
        .clone()
        .into_owned()
}

/// An HTTPS connection.
pub fn https(addr: SocketAddr, config: Arc<ClientConfig>) -> HttpConn<TlsStream> {
    HttpConn::new(connect(addr, config), &addr.to_string())
}

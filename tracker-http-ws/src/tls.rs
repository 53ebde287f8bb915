//! The TLS configuration every TLS listener serves, reloadable in place.
//!
//! Socket workers take the current config (a lock-free `ArcSwap` load) for
//! each connection they accept; [`SharedTls::reload`] swaps in a new one.
//! A connection keeps the config it started with, so a reload drops
//! nothing, and a reload that fails keeps the old certificate.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::settings::TlsPaths;

/// Why the certificate or key could not be used; says which file and what
/// is wrong with it.
#[derive(Debug)]
pub struct TlsError {
    /// The file at fault; `None` when the pair is at fault together.
    path: Option<PathBuf>,
    message: String,
}

impl TlsError {
    fn file(path: &Path, message: impl Into<String>) -> Self {
        Self {
            path: Some(path.to_owned()),
            message: message.into(),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}: {}", path.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for TlsError {}

/// A reloadable rustls server config shared by every socket worker.
pub struct SharedTls {
    paths: TlsPaths,
    current: ArcSwap<ServerConfig>,
}

impl fmt::Debug for SharedTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTls")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl SharedTls {
    /// Reads the certificate chain and private key (PEM) and builds the
    /// config; fails with the file and what is wrong with it.
    pub fn load(paths: &TlsPaths) -> Result<Self, TlsError> {
        let config = build_config(paths)?;
        Ok(Self {
            paths: paths.clone(),
            current: ArcSwap::from_pointee(config),
        })
    }

    /// Reads the same files again. On error the old config stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build_config(&self.paths)?;
        self.current.store(Arc::new(config));
        Ok(())
    }

    /// The config new connections get.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    pub fn paths(&self) -> &TlsPaths {
        &self.paths
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::file(path, format!("cannot read: {e}")))
}

fn pem_problem(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } | pem::Error::IllegalSectionStart { .. } => {
            format!("not valid PEM ({e})")
        }
        pem::Error::Base64Decode(_) => format!("not valid PEM ({e})"),
        other => other.to_string(),
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::file(path, pem_problem(&e)))?;
    if certs.is_empty() {
        return Err(TlsError::file(
            path,
            "no certificate in file (expected PEM \"BEGIN CERTIFICATE\" blocks, leaf first)",
        ));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::file(
            path,
            "no private key in file (expected a PEM PKCS#8, PKCS#1 or SEC1 key)",
        ),
        e => TlsError::file(path, pem_problem(&e)),
    })
}

fn build_config(paths: &TlsPaths) -> Result<ServerConfig, TlsError> {
    let certs = load_certs(&paths.certificate)?;
    let key = load_key(&paths.private_key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError {
            path: None,
            message: format!("TLS set-up failed: {e}"),
        })?
        .with_no_client_auth();
    builder.with_single_cert(certs, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError {
            path: None,
            message: format!(
                "the private key {} does not match the certificate {}",
                paths.private_key.display(),
                paths.certificate.display()
            ),
        },
        rustls::Error::General(_) => {
            TlsError::file(&paths.private_key, format!("unusable private key ({e})"))
        }
        e => TlsError::file(&paths.certificate, format!("unusable certificate ({e})")),
    })
}

/// The TLS session of a new connection on `spec` (`Some(None)` without
/// TLS); `None` when one cannot be made.
pub(crate) fn new_session(
    tls: Option<&SharedTls>,
    missing_logged: &mut bool,
    spec: crate::settings::ListenerSpec,
) -> Option<Option<Box<rustls::ServerConnection>>> {
    if !spec.tls {
        return Some(None);
    }
    let Some(shared) = tls else {
        if !*missing_logged {
            log::error!("{} listener {} has no TLS config", spec.scheme(), spec.addr);
            *missing_logged = true;
        }
        return None;
    };
    match rustls::ServerConnection::new(shared.current()) {
        Ok(c) => Some(Some(Box::new(c))),
        Err(e) => {
            log::warn!("TLS session: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
        paths: TlsPaths,
    }

    fn files(cert: &str, key: &str) -> Files {
        let dir = tempfile::tempdir().unwrap();
        let paths = TlsPaths {
            certificate: dir.path().join("cert.pem"),
            private_key: dir.path().join("key.pem"),
        };
        std::fs::write(&paths.certificate, cert).unwrap();
        std::fs::write(&paths.private_key, key).unwrap();
        Files { dir, paths }
    }

    fn self_signed() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    fn error(paths: &TlsPaths) -> String {
        SharedTls::load(paths).unwrap_err().to_string()
    }

    #[test]
    fn loads_a_good_pair() {
        let (cert, key) = self_signed();
        let f = files(&cert, &key);
        SharedTls::load(&f.paths).unwrap();
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let (cert, key) = self_signed();
        let (other_cert, _) = self_signed();

        let f = files(&cert, &key);
        std::fs::remove_file(&f.paths.certificate).unwrap();
        let e = error(&f.paths);
        assert!(e.contains("cert.pem") && e.contains("cannot read"), "{e}");

        let f = files("hello", &key);
        let e = error(&f.paths);
        assert!(
            e.contains("cert.pem") && e.contains("no certificate"),
            "{e}"
        );

        let f = files(&key, &key);
        let e = error(&f.paths);
        assert!(
            e.contains("cert.pem") && e.contains("no certificate"),
            "{e}"
        );

        let f = files(&cert, &cert);
        let e = error(&f.paths);
        assert!(e.contains("key.pem") && e.contains("no private key"), "{e}");

        let broken = "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n";
        let f = files(&cert, broken);
        let e = error(&f.paths);
        assert!(e.contains("key.pem") && e.contains("PEM"), "{e}");

        let garbage_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let f = files(&cert, garbage_key);
        let e = error(&f.paths);
        assert!(e.contains("key.pem"), "{e}");

        let f = files(&other_cert, &key);
        let e = error(&f.paths);
        assert!(e.contains("does not match"), "{e}");
        assert!(e.contains("cert.pem") && e.contains("key.pem"), "{e}");
        drop(f.dir);
    }

    #[test]
    fn reload_swaps_or_keeps() {
        let (cert, key) = self_signed();
        let f = files(&cert, &key);
        let tls = SharedTls::load(&f.paths).unwrap();
        let first = tls.current();

        std::fs::write(&f.paths.certificate, "garbage").unwrap();
        assert!(tls.reload().is_err());
        assert!(
            Arc::ptr_eq(&first, &tls.current()),
            "a bad file keeps the old config"
        );

        let (cert2, key2) = self_signed();
        std::fs::write(&f.paths.certificate, cert2).unwrap();
        std::fs::write(&f.paths.private_key, key2).unwrap();
        tls.reload().unwrap();
        assert!(!Arc::ptr_eq(&first, &tls.current()));
    }
}

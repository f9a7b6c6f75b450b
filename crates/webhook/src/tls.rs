//! A serving certificate that follows its files.
//!
//! The pair is re-read when `tls.crt` or `tls.key` changes (checked at most once a second, on
//! handshakes and readiness probes), which also covers Kubernetes' atomic symlink swap of a
//! mounted Secret. A missing, half-written or mismatched pair is logged and the last good one
//! stays in use: a bad file never takes the server down.

use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the files are looked at.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What identifies a version of a file without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(metadata: &Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            inode: metadata.ino(),
        }
    }
}

#[derive(Default)]
struct State {
    checked_at: Option<Instant>,
    stamps: Option<(Stamp, Stamp)>,
    current: Option<Arc<CertifiedKey>>,
}

/// Serves the pair at `cert_path`/`key_path`, reloading it when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<State>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("loaded", &self.current.is_some())
            .finish()
    }
}

impl ReloadingCert {
    pub fn new(dir: &Path, provider: Arc<CryptoProvider>) -> Self {
        let resolver = ReloadingCert {
            cert_path: dir.join("tls.crt"),
            key_path: dir.join("tls.key"),
            provider,
            state: Mutex::new(State::default()),
        };
        resolver.refresh(true);
        resolver
    }

    /// Whether a certificate is loaded (after looking at the files if it is time to).
    pub fn is_ready(&self) -> bool {
        self.refresh(false);
        self.state.lock().unwrap().current.is_some()
    }

    /// Looks at the files (at most once per interval unless `force`) and reloads on change.
    pub fn refresh(&self, force: bool) {
        let mut state = self.state.lock().unwrap();
        let due = state
            .checked_at
            .is_none_or(|at| at.elapsed() >= CHECK_INTERVAL);
        if !force && !due {
            return;
        }
        state.checked_at = Some(Instant::now());
        let stamps = match (
            std::fs::metadata(&self.cert_path),
            std::fs::metadata(&self.key_path),
        ) {
            (Ok(cert), Ok(key)) => (Stamp::of(&cert), Stamp::of(&key)),
            (Err(e), _) | (_, Err(e)) => {
                if state.stamps.take().is_some() || state.current.is_none() {
                    tracing::warn!(
                        "serving certificate not readable in {}: {e}",
                        self.cert_path.display()
                    );
                }
                return;
            }
        };
        if state.stamps.as_ref() == Some(&stamps) {
            return;
        }
        state.stamps = Some(stamps);
        match self.load() {
            Ok(key) => {
                let first = state.current.is_none();
                state.current = Some(Arc::new(key));
                tracing::info!(
                    path = %self.cert_path.display(),
                    "{} serving certificate",
                    if first { "loaded" } else { "reloaded" }
                );
            }
            Err(e) => tracing::warn!(
                path = %self.cert_path.display(),
                "keeping the previous serving certificate: {e}"
            ),
        }
    }

    fn load(&self) -> Result<CertifiedKey, String> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert_path)
            .map_err(|e| format!("tls.crt: {e}"))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tls.crt: {e}"))?;
        if certs.is_empty() {
            return Err("tls.crt holds no certificate".into());
        }
        let key =
            PrivateKeyDer::from_pem_file(&self.key_path).map_err(|e| format!("tls.key: {e}"))?;
        let certified = CertifiedKey::from_der(certs, key, &self.provider)
            .map_err(|e| format!("tls.crt and tls.key: {e}"))?;
        Ok(certified)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh(false);
        self.state.lock().unwrap().current.clone()
    }
}

/// A rustls server configuration serving `resolver`'s certificate over HTTP/2 and HTTP/1.1.
pub fn server_config(
    resolver: Arc<ReloadingCert>,
    provider: Arc<CryptoProvider>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

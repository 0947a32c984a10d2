//! TLS for `wss://` through rustls 0.23 with the ring crypto provider.
//!
//! Certificates are always verified: against the Mozilla roots by default, or only
//! against the roots given in [`TlsConfig`]. There is no way to turn verification
//! off and no plaintext fallback: a `wss://` URL either gets a verified TLS
//! connection or a connect error.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::config::TlsConfig;
use crate::error::ConfigError;

/// The configuration with the Mozilla roots, built once per process: a root store
/// is large, and every client without custom roots shares it.
static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();

/// The rustls client configuration for these settings.
pub(crate) fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>, ConfigError> {
    if tls.root_certificates.is_empty() {
        if let Some(config) = DEFAULT.get() {
            return Ok(config.clone());
        }
        let config = build(tls)?;
        return Ok(DEFAULT.get_or_init(|| config).clone());
    }
    build(tls)
}

fn build(tls: &TlsConfig) -> Result<Arc<ClientConfig>, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidSetting {
        name: "tls",
        reason,
    };
    let mut roots = RootCertStore::empty();
    if tls.root_certificates.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    } else {
        for der in &tls.root_certificates {
            roots
                .add(CertificateDer::from(der.clone()))
                .map_err(|e| invalid(format!("bad root certificate: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

//! TLS: the process-wide rustls crypto provider and the server configuration.

use std::sync::Once;

use axum_server::tls_rustls::RustlsConfig;

use crate::config::TlsConfig;

/// Installs the `ring` provider as rustls' process default (once). Two
/// providers are compiled in (ring for the HTTP clients, aws-lc-rs for axum-server),
/// so rustls cannot pick one by itself.
pub fn ensure_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Loads the certificate chain and private key (PEM) for TLS termination.
pub async fn server_config(tls: &TlsConfig) -> anyhow::Result<RustlsConfig> {
    ensure_crypto_provider();
    RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot load TLS certificate {} / key {}: {e}",
                tls.cert.display(),
                tls.key.display()
            )
        })
}

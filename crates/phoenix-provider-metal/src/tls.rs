//! TLS for everything the metal provider reaches over HTTP(S): rustls with
//! the aws-lc-rs crypto provider (the one the AWS SDK uses, so the workspace
//! carries a single TLS stack and never `ring`), roots from the system store.

/// Installs aws-lc-rs as rustls' process-wide provider unless one is already
/// installed. reqwest is built without a provider of its own (so it cannot
/// pull in `ring`) and panics on building a client when none is installed.
pub fn ensure_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing one is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

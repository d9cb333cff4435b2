//! TLS termination (cargo feature `tls`, on by default): the rustls server config built once
//! from KrakenD's service `tls` object (PEM files, `min_version`), the handshake bounded by the
//! head timeout. The TLS stream is then served through the same hyper adapter as plain TCP
//! (`http::io::Io`), under the same deadlines. rustls runs on the `ring` provider (Rust, C and
//! assembly; builds for 32-bit ARM with a plain C cross compiler).

use std::io;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Builds the server config: the certificate chain and key from PEM files; TLS 1.2 and 1.3, or
/// 1.3 only; ALPN `http/1.1`. The message says what is wrong, for the config error.
pub fn server_config(public_key: &str, private_key: &str, tls13_only: bool) -> Result<Arc<ServerConfig>, String> {
    // Read bounded, from regular files only (a path to /dev/zero or a FIFO is an error).
    let pem = crate::config::read_named_file(public_key)
        .map_err(|e| format!("cannot read certificates from \"{public_key}\": {e}"))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("\"{public_key}\": {e}"))?;
    if certs.is_empty() {
        return Err(format!("\"{public_key}\" holds no certificate"));
    }
    let pem = crate::config::read_named_file(private_key).map_err(|e| format!("\"{private_key}\": {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| format!("\"{private_key}\": {e}"))?;
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS12, &rustls::version::TLS13]
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not make a server identity: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Completes a server handshake within the head timeout (a client that connects and says
/// nothing holds a slot no longer than a slow plain-text head would).
pub async fn accept(
    config: &Arc<ServerConfig>,
    stream: TcpStream,
    timeout: std::time::Duration,
) -> io::Result<TlsStream<TcpStream>> {
    let handshake = tokio_rustls::TlsAcceptor::from(config.clone()).accept(stream);
    crate::runtime::within(timeout, handshake)
        .await
        .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")))
}

//! TLS termination (cargo feature `tls`, on by default): the rustls server config built once
//! from the PEM certificate chain and key that KrakenD's service `tls` object names (config
//! reads the files), the handshake bounded by the head timeout. The TLS stream is then served
//! through the same hyper adapter as plain TCP (`http::io::Io`), under the same deadlines.
//! rustls runs on the `ring` provider (Rust, C and assembly; builds for 32-bit ARM with a plain
//! C cross compiler).

use std::io;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Why [`server_config`] refused its PEM; the caller names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadPem {
    /// The certificate chain does not parse.
    Chain(String),
    /// The chain holds no certificate.
    NoCertificate,
    /// The private key does not parse, or there is none.
    Key(String),
    /// Both parse, but rustls refuses to build a server from them; the whole message.
    Refused(String),
}

/// Builds the server config from a PEM certificate chain (leaf first) and a PEM private key;
/// TLS 1.2 and 1.3, or 1.3 only; ALPN `http/1.1`.
pub fn server_config(chain: &[u8], key: &[u8], tls13_only: bool) -> Result<Arc<ServerConfig>, BadPem> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<_, _>>()
        .map_err(|e| BadPem::Chain(e.to_string()))?;
    if certs.is_empty() {
        return Err(BadPem::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| BadPem::Key(e.to_string()))?;
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS12, &rustls::version::TLS13]
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .map_err(|e| BadPem::Refused(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| BadPem::Refused(format!("the certificate and key do not make a server identity: {e}")))?;
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

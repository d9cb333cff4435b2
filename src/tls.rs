//! TLS termination (cargo feature `tls`, on by default): the rustls server config built once
//! from KrakenD's service `tls` object (PEM files, `min_version`), the handshake bounded by the
//! head timeout, and a hyper IO adapter over the TLS stream that keeps the connection's
//! deadlines ([`Watch`]): idle keep-alive, whole-head, write stall. rustls runs on the `ring`
//! provider (Rust, C and assembly; builds for 32-bit ARM with a plain C cross compiler).

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_lite::{AsyncRead, AsyncWrite};
use hyper::rt::{Read, ReadBufCursor, Write};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::http::io::Watch;

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
pub async fn accept<S>(
    config: &Arc<ServerConfig>,
    stream: S,
    timeout: std::time::Duration,
) -> io::Result<futures_rustls::server::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = futures_rustls::TlsAcceptor::from(config.clone()).accept(stream);
    crate::runtime::within(timeout, handshake)
        .await
        .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")))
}

/// A TLS stream as hyper IO, under the connection's [`Watch`].
pub struct TlsIo<S> {
    inner: S,
    watch: Rc<Watch>,
}

impl<S> TlsIo<S> {
    /// Wraps an established TLS stream.
    pub fn new(inner: S, watch: Rc<Watch>) -> TlsIo<S> {
        TlsIo { inner, watch }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Read for TlsIo<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, mut buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut scratch = [0u8; 4096];
        let want = scratch.len().min(buf.remaining());
        match Pin::new(&mut this.inner).poll_read(cx, &mut scratch[..want]) {
            Poll::Ready(Ok(n)) => {
                this.watch.received(&scratch[..n], Instant::now());
                buf.put_slice(&scratch[..n]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if this.watch.read_expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client read deadline passed",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Write for TlsIo<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.watch.wrote();
                Poll::Ready(r)
            }
            Poll::Pending if this.watch.write_expired(cx) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "response write stalled")))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

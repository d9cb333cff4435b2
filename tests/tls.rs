//! TLS termination over real sockets (cargo feature `tls`): a self-signed certificate made by
//! the test, a real rustls client completing requests, plain HTTP sent to the TLS port failing
//! cleanly (the gateway keeps serving), and config errors for unreadable or mismatched PEMs.
#![cfg(feature = "tls")]

mod common;

use std::io::{Read, Write};
use std::sync::Arc;

use common::*;

struct Pki {
    dir: std::path::PathBuf,
    cert_der: rustls::pki_types::CertificateDer<'static>,
}

fn pki(name: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!("gatelet-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    Pki {
        cert_der: cert.der().clone(),
        dir,
    }
}

fn tls_config(p: &Pki, extra: &str) -> String {
    format!(
        r#"{{"version": 3, "echo_endpoint": true, "tls": {{"public_key": "{}", "private_key": "{}"{extra}}}, "endpoints": []}}"#,
        p.dir.join("cert.pem").display(),
        p.dir.join("key.pem").display()
    )
}

fn client(p: &Pki) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(p.cert_der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn https_get(config: &Arc<rustls::ClientConfig>, addr: std::net::SocketAddr, target: &str) -> Response {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, connect(addr));
    write!(
        tls,
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    parse_response(&raw)
        .unwrap_or_else(|| panic!("no response: {:?}", String::from_utf8_lossy(&raw)))
        .0
}

#[test]
fn a_real_tls_client_is_served_and_plain_http_on_the_tls_port_fails_cleanly() {
    let p = pki("serve");
    let gw = gateway(&tls_config(&p, r#", "min_version": "TLS12""#));
    let client = client(&p);
    let r = https_get(&client, gw, "/__health");
    assert_eq!(r.status, 200, "{}", r.text());
    let echo = https_get(&client, gw, "/__echo/x?y=1");
    assert_eq!(echo.json()["req_uri"], "/__echo/x?y=1");

    // Plain HTTP to the TLS port: no crash, no answer in clear text, and the port keeps serving.
    let mut plain = connect(gw);
    plain.write_all(b"GET /__health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (raw, closed) = read_to_close(&mut plain);
    assert!(closed, "closed after a failed handshake");
    assert!(!raw.starts_with(b"HTTP/"), "never answered in clear text");
    assert_eq!(https_get(&client, gw, "/__health").status, 200);
    std::fs::remove_dir_all(&p.dir).ok();
}

#[test]
fn tls_config_errors_name_the_file() {
    let p = pki("errors");
    let other = pki("other");
    std::fs::copy(other.dir.join("key.pem"), p.dir.join("other-key.pem")).unwrap();
    let mismatched = format!(
        r#"{{"version": 3, "tls": {{"public_key": "{}", "private_key": "{}"}}, "endpoints": []}}"#,
        p.dir.join("cert.pem").display(),
        p.dir.join("other-key.pem").display()
    );
    let errors = gatelet::config::parse("t.json", &mismatched).unwrap_err();
    assert!(
        errors[0].message.contains("do not make a server identity"),
        "{}",
        errors[0]
    );
    let missing = tls_config(
        &Pki {
            dir: p.dir.join("nope"),
            cert_der: p.cert_der.clone(),
        },
        "",
    );
    let errors = gatelet::config::parse("t.json", &missing).unwrap_err();
    assert!(errors[0].message.contains("cannot read certificates"), "{}", errors[0]);
    assert_eq!(errors[0].path, "tls.public_key");
    let old = tls_config(&p, r#", "min_version": "TLS10""#);
    assert!(
        gatelet::config::parse("t.json", &old).unwrap_err()[0]
            .message
            .contains("not supported")
    );
    let off = tls_config(
        &Pki {
            dir: p.dir.join("nope"),
            cert_der: p.cert_der.clone(),
        },
        r#", "disabled": true"#,
    );
    assert!(
        gatelet::config::parse("t.json", &off).is_ok(),
        "disabled: the files are not read"
    );
    std::fs::remove_dir_all(&p.dir).ok();
    std::fs::remove_dir_all(&other.dir).ok();
}

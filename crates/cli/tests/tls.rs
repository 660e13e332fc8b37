//! HTTPS backends: a backend on a private CA is trusted only through `--backend-ca-file`; an
//! untrusted certificate is a 502 naming the TLS failure, never a fall back to plain HTTP; a
//! backend connection is kept and reused across calls.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::{Portico, fixture};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::json;

const PRIVATE: &str = "--allow-private-backends";

/// A private CA, and an HTTPS backend with a leaf it signed for 127.0.0.1 that answers with
/// the `X-Api-Key` it received.
struct TlsBackend {
    addr: SocketAddr,
    ca_pem: String,
    /// TCP connections accepted, and TLS handshakes completed.
    connections: Arc<AtomicUsize>,
    handshakes: Arc<AtomicUsize>,
}

impl TlsBackend {
    async fn start() -> TlsBackend {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Portico test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&leaf_key, &issuer).unwrap();

        let key = rustls_key(&leaf_key);
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let handshakes = Arc::new(AtomicUsize::new(0));
        let (counted, shaken) = (connections.clone(), handshakes.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                counted.fetch_add(1, Ordering::SeqCst);
                let (acceptor, shaken) = (acceptor.clone(), shaken.clone());
                tokio::spawn(async move {
                    // A client that does not trust the certificate ends the handshake here.
                    let Ok(tls) = acceptor.accept(stream).await else { return };
                    shaken.fetch_add(1, Ordering::SeqCst);
                    let service =
                        hyper::service::service_fn(|request: hyper::Request<hyper::body::Incoming>| async move {
                            let key = request.headers().get("x-api-key").map(|v| v.to_str().unwrap_or("").to_owned());
                            let body = format!("key={}", key.unwrap_or_default());
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(body))))
                        });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        TlsBackend { addr, ca_pem: ca.pem(), connections, handshakes }
    }
}

fn rustls_key(key: &rcgen::KeyPair) -> tokio_rustls::rustls::pki_types::PrivateKeyDer<'static> {
    tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into())
}

/// A connector on `backend` over HTTPS, and a connection with `secret`.
async fn connect(portico: &Portico, backend: &TlsBackend, secret: &str) -> String {
    let admin = portico.api();
    let mut definition = fixture::json("calls/api-key-header.json");
    definition["backend"]["scheme"] = json!("https");
    definition["backend"]["host"] = json!(backend.addr.to_string());
    let connector = common::id(&admin.create_connector(&json!({ "definition": definition })).await);
    let body = json!({"connectorId": connector, "parameters": {"api_key": secret}});
    common::id(&admin.create_connection(&body).await)
}

#[tokio::test]
async fn a_backend_on_a_private_ca_is_trusted_through_the_ca_file_and_its_connection_reused() {
    let backend = TlsBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &backend.ca_pem).unwrap();
    let portico = Portico::start_with(&[PRIVATE, "--backend-ca-file", ca_file.to_str().unwrap()]);
    let connection = connect(&portico, &backend, "tls-secret").await;
    let api = portico.api();
    for _ in 0..5 {
        let reply = api.get(&format!("/v1/connections/{connection}/proxy/ok")).await;
        assert_eq!((reply.status, reply.text.as_str()), (200, "key=tls-secret"));
    }
    // One client connection, one backend connection, one handshake.
    assert_eq!(backend.handshakes.load(Ordering::SeqCst), 1);
    assert_eq!(backend.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_502_naming_the_tls_failure_and_nothing_is_sent() {
    let backend = TlsBackend::start().await;
    let portico = Portico::start_with(&[PRIVATE]);
    let connection = connect(&portico, &backend, "never-sent").await;
    let reply = portico.api().get(&format!("/v1/connections/{connection}/proxy/ok")).await;
    let problem = reply.expect_problem(502, "backend-unreachable");
    let detail = problem.detail();
    assert!(detail.contains("TLS with the backend") && detail.contains("UnknownIssuer"), "{detail}");
    assert_eq!(backend.handshakes.load(Ordering::SeqCst), 0, "no request went out");
    assert!(!portico.stderr().contains("never-sent"));
}

#[test]
fn a_ca_file_that_is_missing_or_holds_no_certificate_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    for (file, expected) in
        [(dir.path().join("missing.pem"), "cannot read PEM certificates"), (empty, "no PEM certificate in the file")]
    {
        let output =
            common::serve_refused(&dir.path().join("data"), &["--backend-ca-file", file.to_str().unwrap()], &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(stderr.contains("--backend-ca-file") && stderr.contains(expected), "{stderr}");
    }
}

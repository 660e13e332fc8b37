//! Token, discovery and revocation requests under the address rule and the response size
//! limit, against servers on loopback that this test runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use portico_model::{GrantType, IdentityProvider, IdentityProviderCatalog, OAuth2};
use portico_oauth::{ClientCredentials, Flow, MAX_RESPONSE_BYTES, TokenError, http_client};
use portico_outbound::AddressPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What a test server answers after the request head.
#[derive(Clone, Copy)]
enum Answer {
    /// A token response padded to about `size` bytes, with its length.
    Token { size: usize },
    /// `size` bytes of JSON-looking filler, with a `Content-Length` when `declared`, else chunked.
    Huge { size: usize, declared: bool },
}

/// A server on loopback: how many connections it accepted and how many body bytes it managed
/// to write before the client stopped reading.
struct Server {
    base: String,
    accepted: Arc<AtomicUsize>,
    written: Arc<AtomicUsize>,
}

impl Server {
    async fn start(answer: Answer) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("its address"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicUsize::new(0));
        let (count, total) = (accepted.clone(), written.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let total = total.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let _ = answer_with(&mut stream, answer, &total).await;
                });
            }
        });
        Server { base, accepted, written }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }
}

async fn answer_with(stream: &mut tokio::net::TcpStream, answer: Answer, total: &AtomicUsize) -> std::io::Result<()> {
    match answer {
        Answer::Token { size } => {
            let token = r#"{"access_token":"at-1","token_type":"Bearer","expires_in":60,"pad":""#;
            let body = format!("{token}{}\"}}", "x".repeat(size.saturating_sub(token.len() + 2)));
            let head =
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
            total.fetch_add(body.len(), Ordering::SeqCst);
        }
        Answer::Huge { size, declared } => {
            let head = if declared {
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {size}\r\n\r\n")
            } else {
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_owned()
            };
            stream.write_all(head.as_bytes()).await?;
            let filler = vec![b' '; 64 * 1024];
            let mut sent = 0;
            while sent < size {
                if declared {
                    stream.write_all(&filler).await?;
                } else {
                    stream.write_all(format!("{:x}\r\n", filler.len()).as_bytes()).await?;
                    stream.write_all(&filler).await?;
                    stream.write_all(b"\r\n").await?;
                }
                sent += filler.len();
                total.fetch_add(filler.len(), Ordering::SeqCst);
            }
            if !declared {
                stream.write_all(b"0\r\n\r\n").await?;
            }
        }
    }
    stream.flush().await
}

/// A client-credentials flow whose token URL is `token_url`.
fn flow(token_url: &str) -> Flow {
    let mut oauth = OAuth2::new(IdentityProvider::new("oauth2"));
    oauth.grant = GrantType::ClientCredentials;
    oauth.token_url = Some(token_url.to_owned());
    let client = ClientCredentials { id: "portico".to_owned(), secret: Some("client-secret".into()) };
    portico_oauth::resolve(&oauth, &IdentityProviderCatalog::built_in(), Some(client), vec![]).expect("a flow")
}

const HUGE: usize = 200 * 1024 * 1024;

#[tokio::test]
async fn a_huge_token_response_is_cut_at_the_limit() {
    let http = http_client(AddressPolicy::allow_private());
    for declared in [false, true] {
        let server = Server::start(Answer::Huge { size: HUGE, declared }).await;
        let error = flow(&server.url("/token")).client_credentials(&http).await.unwrap_err();
        assert!(matches!(error, TokenError::TooLarge), "declared {declared}: {error:?}");
        assert!(error.to_string().contains(&MAX_RESPONSE_BYTES.to_string()), "{error}");
        // The client stopped reading: the server could not write much past what the sockets hold.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(server.written() < HUGE / 4, "declared {declared}: {} bytes were written", server.written());
    }
}

#[tokio::test]
async fn a_huge_discovery_document_is_cut_at_the_limit() {
    let http = http_client(AddressPolicy::allow_private());
    let server = Server::start(Answer::Huge { size: HUGE, declared: false }).await;
    let mut flow = flow("unused");
    flow.token_url = None;
    flow.discovery_url = Some(server.url("/.well-known/openid-configuration"));
    assert!(matches!(flow.discover(&http).await, Err(TokenError::TooLarge)));
}

#[tokio::test]
async fn a_response_within_the_limit_is_read() {
    let http = http_client(AddressPolicy::allow_private());
    let server = Server::start(Answer::Token { size: MAX_RESPONSE_BYTES - 16 }).await;
    let tokens = flow(&server.url("/token")).client_credentials(&http).await.expect("the tokens");
    assert_eq!(tokens.access_token.expose(), "at-1");
    let server = Server::start(Answer::Token { size: MAX_RESPONSE_BYTES + 16 }).await;
    let error = flow(&server.url("/token")).client_credentials(&http).await.unwrap_err();
    assert!(matches!(error, TokenError::TooLarge), "just past the limit: {error:?}");
}

#[tokio::test]
async fn identity_providers_on_private_addresses_are_refused_before_any_connection() {
    let http = http_client(AddressPolicy::public_only());
    let server = Server::start(Answer::Token { size: 100 }).await;
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let mut errors = Vec::new();
    for url in [
        server.url("/token"),
        format!("http://localhost:{port}/token"),
        format!("http://[::ffff:127.0.0.1]:{port}/token"),
        format!("http://127.0.0.1:{closed}/token"),
    ] {
        let error = flow(&url).client_credentials(&http).await.unwrap_err();
        assert!(matches!(error, TokenError::NotAllowed), "{url}: {error:?}");
        errors.push(error.to_string());
    }
    assert!(errors.windows(2).all(|pair| pair[0] == pair[1]), "an open port and a closed one look alike: {errors:?}");

    let mut discovery = flow("unused");
    discovery.token_url = None;
    discovery.discovery_url = Some(server.url("/.well-known/openid-configuration"));
    assert!(matches!(discovery.discover(&http).await, Err(TokenError::NotAllowed)));

    let mut revocation = flow(&server.url("/token"));
    revocation.revocation_url = Some(server.url("/revoke"));
    let refused = revocation.revoke(&http, &"a-token".into(), "access_token").await;
    assert!(matches!(refused, Err(TokenError::NotAllowed)), "{refused:?}");

    assert_eq!(server.accepted(), 0, "no request reached the loopback server");
    // With private addresses allowed, the same server answers.
    let allowed = http_client(AddressPolicy::allow_private());
    flow(&server.url("/token")).client_credentials(&allowed).await.expect("the tokens");
    assert_eq!(server.accepted(), 1);
}

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A loopback HTTP server that answers `200 ok` and counts the connections it accepted.
struct Listener {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Listener {
    async fn start() -> Listener {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let _ = stream.read(&mut buffer).await;
                    let _ =
                        stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                });
            }
        });
        Listener { port, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn client(policy: AddressPolicy) -> HttpClient {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5));
    HttpClient::new(builder, policy).expect("a client")
}

#[test]
fn this_hosts_own_addresses_are_refused_however_they_are_written() {
    let own: HashSet<IpAddr> = ["8.8.4.4".parse().unwrap(), "2606:4700::1".parse().unwrap()].into();
    let is_local = |ip: IpAddr| own.contains(&ip);
    let public = AddressPolicy { allow_private: false };
    for ip in ["8.8.4.4", "::ffff:8.8.4.4", "64:ff9b::8.8.4.4", "2002:808:404::1", "2606:4700::1"] {
        assert!(!public.allows(ip.parse().unwrap(), is_local), "{ip}");
    }
    for ip in ["8.8.8.8", "::ffff:8.8.8.8", "2606:4700::2"] {
        assert!(public.allows(ip.parse().unwrap(), is_local), "{ip}");
    }
    assert!(AddressPolicy::allow_private().allows("8.8.4.4".parse().unwrap(), is_local));
    // The real interfaces: loopback at least.
    assert_eq!(AddressPolicy::public_only().check("127.0.0.1".parse().unwrap()), Err(NotAllowed));
}

#[test]
fn private_addresses_pass_only_when_allowed() {
    let public = AddressPolicy::public_only();
    let private = AddressPolicy::allow_private();
    for ip in ["127.0.0.1", "10.0.0.1", "::1", "fd00::1", "169.254.169.254"] {
        assert_eq!(public.check(ip.parse().unwrap()), Err(NotAllowed), "{ip}");
        assert_eq!(private.check(ip.parse().unwrap()), Ok(()), "{ip}");
    }
    assert_eq!(public.check("192.0.2.1".parse().unwrap()), Err(NotAllowed));
    let mixed: Vec<SocketAddr> = vec!["93.184.216.34:443".parse().unwrap(), "127.0.0.1:443".parse().unwrap()];
    assert_eq!(public.check_all(&mixed), Err(NotAllowed), "one private answer refuses the name");
    assert_eq!(public.check_all(&mixed[..1]), Ok(()));
}

#[test]
fn urls_are_checked_by_their_literal_or_localhost_name() {
    let public = AddressPolicy::public_only();
    for url in [
        "http://127.0.0.1:9000/token",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a00:1]/",
        "http://0.0.0.0/",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:8080/",
        "http://LOCALHOST./",
        "http://portico.localhost/",
    ] {
        assert_eq!(public.check_url(&Url::parse(url).unwrap()), Err(NotAllowed), "{url}");
        assert_eq!(AddressPolicy::allow_private().check_url(&Url::parse(url).unwrap()), Ok(()), "{url}");
    }
    for url in
        ["https://id.example.com/token", "http://8.8.8.8/", "https://[2606:4700::1111]/", "http://localhost.example/"]
    {
        assert_eq!(public.check_url(&Url::parse(url).unwrap()), Ok(()), "{url}");
    }
}

#[tokio::test]
async fn a_literal_private_address_is_refused_before_any_connection() {
    let listener = Listener::start().await;
    let http = client(AddressPolicy::public_only());
    for host in ["127.0.0.1", "[::ffff:127.0.0.1]", "localhost"] {
        let url = format!("http://{host}:{}/token", listener.port);
        assert_eq!(http.post(&url).err(), Some(NotAllowed), "{url}");
    }
    assert_eq!(listener.accepted(), 0);
}

#[tokio::test]
async fn a_name_resolving_to_a_private_address_is_refused_before_any_connection() {
    let listener = Listener::start().await;
    let http = client(AddressPolicy::public_only());
    // Past the check by name: the resolver alone.
    let error = http.inner.get(format!("http://localhost:{}/", listener.port)).send().await.unwrap_err();
    assert!(is_refused(&error), "{error:?}");
    assert_eq!(listener.accepted(), 0);

    let unresolvable = http.inner.get("http://name.invalid/").send().await.unwrap_err();
    assert!(!is_refused(&unresolvable), "a name that does not resolve is not refused by the rule");
}

#[tokio::test]
async fn private_addresses_are_reached_when_allowed() {
    let listener = Listener::start().await;
    let http = client(AddressPolicy::allow_private());
    for host in ["127.0.0.1", "localhost"] {
        let response = http.get(&format!("http://{host}:{}/", listener.port)).unwrap().send().await.unwrap();
        assert_eq!(response.text().await.unwrap(), "ok");
    }
    assert_eq!(listener.accepted(), 2);
}

#[tokio::test]
async fn resolving_checks_every_address() {
    let public = AddressPolicy::public_only();
    assert!(matches!(public.resolve("localhost", 80).await, Err(ResolveError::NotAllowed(NotAllowed))));
    assert!(matches!(public.resolve("127.0.0.1", 80).await, Err(ResolveError::NotAllowed(NotAllowed))));
    assert!(matches!(public.resolve("name.invalid", 80).await, Err(ResolveError::Unresolved)));
    let allowed = AddressPolicy::allow_private().resolve("127.0.0.1", 8080).await.unwrap();
    assert_eq!(allowed, vec!["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]);
}

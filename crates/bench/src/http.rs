//! The few plain-HTTP calls the harness makes itself (Portico's set-up API, the checks before
//! measuring): one request per connection over hyper, nothing TLS, no proxy from the
//! environment, a 10 s limit.

use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;

/// Sends one request and returns the status and the body as text.
pub async fn call(
    method: Method,
    url: &str,
    headers: &[(String, String)],
    json: Option<&serde_json::Value>,
) -> anyhow::Result<(StatusCode, String)> {
    tokio::time::timeout(Duration::from_secs(10), send(method.clone(), url, headers, json))
        .await
        .with_context(|| format!("{method} {url}: no answer within 10 s"))?
        .with_context(|| format!("{method} {url}"))
}

async fn send(
    method: Method,
    url: &str,
    headers: &[(String, String)],
    json: Option<&serde_json::Value>,
) -> anyhow::Result<(StatusCode, String)> {
    let uri: Uri = url.parse()?;
    if uri.scheme_str() != Some("http") {
        bail!("only http:// URLs");
    }
    let authority = uri.authority().context("no host in the URL")?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((authority.host(), port)).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let body = match json {
        Some(value) => Bytes::from(serde_json::to_vec(value)?),
        None => Bytes::new(),
    };
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").parse()?;
    let map = request.headers_mut();
    map.insert(HOST, HeaderValue::from_str(authority.as_str())?);
    map.insert(CONNECTION, HeaderValue::from_static("close"));
    if json.is_some() {
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    for (name, value) in headers {
        map.append(HeaderName::from_bytes(name.as_bytes())?, HeaderValue::from_str(value)?);
    }
    let response = sender.send_request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    driver.abort();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_the_backend() {
        let backend = crate::backend::Backend::start("127.0.0.1:0".parse().unwrap(), Some(1)).unwrap();
        let base = format!("http://{}", backend.addr());
        let (status, body) = call(Method::GET, &format!("{base}/x"), &[], None).await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
        let headers = [("X-Api-Key".to_owned(), "k".to_owned())];
        let (_, echo) = call(Method::GET, &format!("{base}/echo-auth?api_key=q"), &headers, None).await.unwrap();
        assert_eq!(echo, "k||q");
        let json = serde_json::json!({"a": 1});
        assert_eq!(call(Method::POST, &base, &[], Some(&json)).await.unwrap().1, "ok");
        assert!(call(Method::GET, "https://127.0.0.1/", &[], None).await.is_err());
    }
}

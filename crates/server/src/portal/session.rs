//! Browser sessions: a tenant API key given once at sign-in, or a person signed in with OpenID
//! Connect, becomes an opaque random session id in an HttpOnly cookie. The key itself is never
//! kept: the session holds the principal it resolved to and how to look it up again (the key's
//! SHA-256, or the member's tenant and id), which it does whenever a key or member may have
//! changed (a revoked key or a removed member ends its sessions at their next request; a
//! changed role applies there).
//! Sessions live in memory (a restart signs everyone out) and are kept by the SHA-256 of their
//! id, so that the map holds nothing a cookie could be rebuilt from.
//!
//! Every form carries the session's CSRF token in a hidden field, checked on every POST; the
//! sign-in form, which has no session yet, pairs a short-lived cookie with its hidden field.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::state::AppState;
use portico_app::Principal;
use portico_app::access::{self, Action};

pub const SESSION_COOKIE: &str = "portico_session";
/// The sign-in form's CSRF cookie (double submit: there is no session to keep it in yet).
pub const SIGN_IN_COOKIE: &str = "portico_sign_in";
/// The hidden field of every form.
pub const CSRF_FIELD: &str = "csrf";

/// A session ends this long after sign-in, however busy.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// … or after this long without a request.
const IDLE: Duration = Duration::from_secs(2 * 3600);
/// OAuth sign-ins started from the portal that a session remembers at most.
const PENDING_SIGN_INS: usize = 32;

/// How a session's principal is looked up again.
#[derive(Clone)]
pub enum Proof {
    /// The SHA-256 of the API key signed in with.
    Key([u8; 32]),
    /// A person signed in with OpenID Connect, as this member of this tenant.
    Person { tenant_id: String, member_id: String },
}

/// What a signed-in browser has.
struct Session {
    principal: Principal,
    proof: Proof,
    /// The key cache's generation when the principal was looked up.
    generation: u64,
    csrf: String,
    ends_at: Instant,
    idle_until: Instant,
    /// A message for the next page (after a redirect).
    flash: Option<Flash>,
    /// OAuth sign-ins under way: the reference in their return URL → the connection.
    sign_ins: Vec<(String, String)>,
}

/// A one-time message shown on the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub kind: FlashKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    Success,
    Error,
}

impl Flash {
    pub fn success(message: impl Into<String>) -> Self {
        Flash { kind: FlashKind::Success, message: message.into() }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Flash { kind: FlashKind::Error, message: message.into() }
    }
}

/// The portal's sessions, by the SHA-256 of their id, and the sign-ins with OpenID Connect
/// under way.
#[derive(Default)]
pub struct Sessions {
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
    pub(super) people: super::people::PersonFlows,
}

impl Sessions {
    /// A new session for `principal`, proven by `proof` in the key cache's `generation`: the
    /// id to put in the cookie.
    pub fn create(&self, principal: Principal, proof: Proof, generation: u64) -> portico_secrets::SecretString {
        let id = portico_secrets::random_token();
        let now = Instant::now();
        let session = Session {
            principal,
            proof,
            generation,
            csrf: portico_secrets::random_token().expose().to_owned(),
            ends_at: now + LIFETIME,
            idle_until: now + IDLE,
            flash: None,
            sign_ins: Vec::new(),
        };
        let mut map = self.lock();
        map.retain(|_, s| s.is_live(now));
        map.insert(portico_secrets::api_key_digest(id.expose()), session);
        id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.by_digest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live session with this id, its idle time restarted.
    fn touch(&self, id: &str) -> Option<Touched> {
        let digest = portico_secrets::api_key_digest(id);
        let now = Instant::now();
        let mut map = self.lock();
        let session = map.get_mut(&digest)?;
        if !session.is_live(now) {
            map.remove(&digest);
            return None;
        }
        session.idle_until = now + IDLE;
        Some(Touched {
            signed: Signed { digest, principal: session.principal.clone(), csrf: session.csrf.clone() },
            proof: session.proof.clone(),
            generation: session.generation,
        })
    }

    /// A session's principal, looked up again in `generation`.
    fn renew(&self, digest: &[u8; 32], principal: Principal, generation: u64) {
        self.with(digest, |s| {
            s.principal = principal;
            s.generation = generation;
        });
    }

    fn remove(&self, digest: &[u8; 32]) {
        self.lock().remove(digest);
    }

    fn with<T>(&self, digest: &[u8; 32], f: impl FnOnce(&mut Session) -> T) -> Option<T> {
        self.lock().get_mut(digest).map(f)
    }
}

impl Session {
    fn is_live(&self, now: Instant) -> bool {
        now < self.ends_at && now < self.idle_until
    }
}

/// A live session as found, before its principal is checked again.
struct Touched {
    signed: Signed,
    proof: Proof,
    generation: u64,
}

/// A signed-in browser: the extractor of every portal page but sign-in. Without a live
/// session, the browser is sent to the sign-in page.
#[derive(Clone)]
pub struct Signed {
    digest: [u8; 32],
    pub principal: Principal,
    pub csrf: String,
}

impl Signed {
    /// The live session of a session cookie's value, its principal still valid: looked up
    /// again when a key or member may have changed since, and the session ended when it is
    /// not valid any more.
    pub async fn from_cookie(state: &AppState, id: &str) -> Option<Signed> {
        let Touched { mut signed, proof, generation } = state.portal.touch(id)?;
        let current = state.app.keys.generation();
        if generation == current {
            return Some(signed);
        }
        let renewed = match &proof {
            // A key the session proved before: not a guess, so no source to throttle.
            Proof::Key(key_digest) => state.app.authenticate_digest(key_digest, None).await,
            Proof::Person { tenant_id, member_id } => state.app.authenticate_member(tenant_id, member_id).await,
        };
        match renewed {
            Ok(principal) => {
                state.portal.renew(&signed.digest, principal.clone(), current);
                signed.principal = principal;
                Some(signed)
            }
            Err(portico_app::Error::Unauthenticated) => {
                tracing::info!("portal session ended: its key or membership is no longer valid");
                state.portal.remove(&signed.digest);
                None
            }
            // The store is away: the session stays as it was, checked again on the next page.
            Err(_) => Some(signed),
        }
    }

    /// Whether the use cases let this principal do `action`: what the portal offers (the use
    /// case still decides when it is asked).
    pub fn may(&self, action: Action) -> bool {
        access::require(&self.principal, action).is_ok()
    }

    /// Who is signed in, in words: the person's address, or "API key".
    pub fn who(&self) -> &str {
        self.principal.email().unwrap_or("API key")
    }

    /// Whether `given` is this session's CSRF token.
    pub fn csrf_matches(&self, given: Option<&str>) -> bool {
        given.is_some_and(|g| portico_secrets::constant_time_eq(g.as_bytes(), self.csrf.as_bytes()))
    }

    pub fn set_flash(&self, state: &AppState, flash: Flash) {
        state.portal.with(&self.digest, |s| s.flash = Some(flash));
    }

    pub fn take_flash(&self, state: &AppState) -> Option<Flash> {
        state.portal.with(&self.digest, |s| s.flash.take()).flatten()
    }

    /// Remembers that the sign-in whose return URL carries `reference` is for `connection`.
    pub fn remember_sign_in(&self, state: &AppState, reference: String, connection: String) {
        state.portal.with(&self.digest, |s| {
            if s.sign_ins.len() >= PENDING_SIGN_INS {
                s.sign_ins.remove(0);
            }
            s.sign_ins.push((reference, connection));
        });
    }

    /// The connection of a sign-in this session started, once.
    pub fn take_sign_in(&self, state: &AppState, reference: &str) -> Option<String> {
        state
            .portal
            .with(&self.digest, |s| {
                let at = s.sign_ins.iter().position(|(r, _)| r == reference)?;
                Some(s.sign_ins.remove(at).1)
            })
            .flatten()
    }

    pub fn sign_out(&self, state: &AppState) {
        state.portal.remove(&self.digest);
    }
}

impl FromRequestParts<Arc<AppState>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        if let Some(id) = cookie(&parts.headers, SESSION_COOKIE)
            && let Some(signed) = Signed::from_cookie(state, id).await
        {
            return Ok(signed);
        }
        // Back to the page asked for after signing in (GET pages only: a form post is lost).
        let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let target = if parts.method == axum::http::Method::GET && next != "/" {
            format!("/sign-in?next={}", url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>())
        } else {
            "/sign-in".to_owned()
        };
        Err(Redirect::to(&target).into_response())
    }
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// `Set-Cookie` for a cookie only this site's pages send back, never scripts.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Option<Duration>) -> HeaderValue {
    set_cookie_at(state, name, value, "/", max_age)
}

/// [`set_cookie`] for the pages under `path` only.
pub fn set_cookie_at(state: &AppState, name: &str, value: &str, path: &str, max_age: Option<Duration>) -> HeaderValue {
    let secure = if state.app.public_url.scheme() == "https" { "; Secure" } else { "" };
    let max_age = max_age.map(|d| format!("; Max-Age={}", d.as_secs())).unwrap_or_default();
    HeaderValue::from_str(&format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax{secure}{max_age}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` that removes a cookie.
pub fn clear_cookie(state: &AppState, name: &str) -> HeaderValue {
    set_cookie(state, name, "", Some(Duration::ZERO))
}

/// How long the session cookie is kept by the browser: as long as a session can live.
pub fn session_max_age() -> Duration {
    LIFETIME
}

/// A path of this site to go to after signing in; anything else goes to the start page.
///
/// The path is read as a browser reads it (the WHATWG URL rules: tabs and line breaks
/// dropped, `\\` read as `/`, so that `/\t/host` or `/\\host` is another origin) and the
/// path that the browser would then go to is what comes back.
pub fn safe_next(next: Option<&str>) -> String {
    static BASE: std::sync::LazyLock<url::Url> =
        std::sync::LazyLock::new(|| url::Url::parse("https://portal.invalid/").expect("a valid URL"));
    let resolved = next.filter(|n| n.starts_with('/')).and_then(|n| BASE.join(n).ok());
    match resolved {
        Some(url) if url.origin() == BASE.origin() => url[url::Position::BeforePath..].to_owned(),
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(sessions: &Sessions) -> portico_secrets::SecretString {
        sessions.create(Principal::operator("t"), Proof::Key([0; 32]), 0)
    }

    #[test]
    fn a_session_is_found_by_its_id_only() {
        let sessions = Sessions::default();
        let id = created(&sessions);
        let signed = sessions.touch(id.expose()).expect("a live session").signed;
        assert_eq!(&*signed.principal.tenant_id, "t");
        assert!(sessions.touch("not-a-session").is_none());
        // The map is keyed by a digest: the id itself is not stored.
        assert!(!sessions.lock().contains_key(id.expose().as_bytes()));
        sessions.remove(&signed.digest);
        assert!(sessions.touch(id.expose()).is_none());
    }

    #[test]
    fn csrf_tokens_are_compared_whole() {
        let sessions = Sessions::default();
        let id = created(&sessions);
        let signed = sessions.touch(id.expose()).unwrap().signed;
        assert!(signed.csrf_matches(Some(&signed.csrf.clone())));
        assert!(!signed.csrf_matches(Some(&signed.csrf[..10])));
        assert!(!signed.csrf_matches(Some("")));
        assert!(!signed.csrf_matches(None));
    }

    #[test]
    fn sign_in_returns_only_to_this_site() {
        assert_eq!(safe_next(Some("/connections/1")), "/connections/1");
        assert_eq!(safe_next(Some("/connections?after=x#top")), "/connections?after=x#top");
        for bad in [
            "//evil.example/x",
            "https://evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "\t//evil.example",
            " //evil.example",
            "/\\/evil.example",
            "\\\\evil.example",
            "x",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        // What stays on this site comes back as the browser would read it.
        assert_eq!(safe_next(Some("/a\\b")), "/a/b");
        assert_eq!(safe_next(Some("/a/../../b")), "/b");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; portico_session_x=2; portico_session=3"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("3"));
        assert_eq!(cookie(&headers, "b"), None);
    }
}

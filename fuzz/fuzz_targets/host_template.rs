//! A connector's host template filled in with a connection's values, through
//! `portico_runtime::prepare`.
//!
//! Input: the template, then the values of the parameters `a`, `b` and `s`, separated by zero
//! bytes (a value not given is not set).
//!
//! Property: whatever the values, the prepared target keeps what the template fixes of the
//! authority. Read as a URL, the template is `[scheme "://"] authority [path, query…]`, with
//! `@connectionParameters(…)` references anywhere; what its literal text fixes is kept:
//!
//! - the scheme, when the template writes it (else the backend's scheme);
//! - the host: all of it when no reference is in it, else the whole labels before the first
//!   reference and after the last one (`api.` in `api.@…`, `.example.com` in `@….example.com`);
//! - the port: the one written after a `:`, else the scheme's default when the host ends with
//!   literal text; a reference that ends the host may name a port.
//!
//! Only a template that is one reference before its path (`@connectionParameters('url')/api`)
//! lets a value choose the whole URL. The check applies to templates whose literal text is
//! lowercase ASCII letters, digits and `.-_:/?#=&` (other templates are only run).

#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use portico_model::{Connector, Segment, Template};
use portico_runtime::{PrepareError, Target, prepare};
use serde_json::{Value, json};

const NAMES: [&str; 3] = ["a", "b", "s"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.split('\0');
    let template = Template::new(parts.next().unwrap_or_default());
    let values: BTreeMap<String, Value> =
        NAMES.iter().zip(parts).map(|(name, value)| ((*name).to_owned(), Value::from(value))).collect();
    let mut connector = connector().clone();
    connector.backend.host_template = Some(template.clone());
    let prepared = prepare("t", "c", "k", Arc::new(connector), None, &values, &BTreeMap::new(), None, Arc::default());
    let target = match prepared {
        Ok(prepared) => prepared.target,
        Err(PrepareError::HostNotAllowed(name)) => {
            assert!(NAMES.iter().any(|n| n.eq_ignore_ascii_case(&name)), "{name}");
            return;
        }
        Err(PrepareError::InvalidBackend(shown)) => {
            assert_eq!(shown, template.as_str(), "an error shows the template, never its values");
            return;
        }
        Err(other) => panic!("{other}"),
    };
    if let Some(fixed) = Fixed::of(&template) {
        fixed.check(&target, &template, &values);
    }
});

/// What a template's literal text fixes of the authority.
#[derive(Debug)]
struct Fixed {
    /// `None`: a reference is part of it (`http` or `https` either way).
    scheme: Option<String>,
    host: Host,
    port: Port,
}

#[derive(Debug)]
enum Host {
    Exactly(String),
    /// Whole labels: the start, up to and with its last dot; the end, from its first dot.
    Around {
        start: String,
        end: String,
    },
}

#[derive(Debug)]
enum Port {
    Exactly(u16),
    Default,
    Any,
}

/// One character of literal text, or a reference.
#[derive(Clone, Copy, PartialEq)]
enum Token {
    Char(char),
    Reference,
}

impl Fixed {
    fn of(template: &Template) -> Option<Fixed> {
        let mut tokens = Vec::new();
        for segment in template.segments() {
            match segment {
                Segment::Literal(text) => {
                    if !text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_:/?#=&".contains(c)) {
                        return None;
                    }
                    tokens.extend(text.chars().map(Token::Char));
                }
                Segment::Param(_) => tokens.push(Token::Reference),
            }
        }
        let literal =
            |t: &[Token]| t.iter().map(|t| if let Token::Char(c) = t { *c } else { '\0' }).collect::<String>();
        // A scheme is what comes before the first `://`, if no path, query or fragment does.
        let separator = (0..tokens.len().saturating_sub(2))
            .find(|&i| tokens[i..i + 3] == [Token::Char(':'), Token::Char('/'), Token::Char('/')]);
        let (scheme, authority_start) = match separator {
            Some(i) if !tokens[..i].iter().any(|t| matches!(t, Token::Char('/' | '?' | '#'))) => {
                let scheme = &tokens[..i];
                let scheme_char = |t: &Token| match t {
                    Token::Char(c) => c.is_ascii_alphanumeric() || "+-.".contains(*c),
                    Token::Reference => true,
                };
                if scheme.is_empty() || !scheme.iter().all(scheme_char) {
                    return None;
                }
                (Some((!scheme.contains(&Token::Reference)).then(|| literal(scheme))), i + 3)
            }
            // A `://` after a path, query or fragment has begun is no scheme's.
            _ => (None, 0),
        };
        let rest = &tokens[authority_start..];
        let end = rest.iter().position(|t| matches!(t, Token::Char('/' | '?' | '#'))).unwrap_or(rest.len());
        let authority = &rest[..end];
        if scheme.is_none() && authority == [Token::Reference] {
            return None; // a whole URL from one value
        }
        let colons: Vec<usize> = (0..authority.len()).filter(|&i| authority[i] == Token::Char(':')).collect();
        let (host, port) = match colons.as_slice() {
            [] => (authority, None),
            [at] => (&authority[..*at], Some(&authority[at + 1..])),
            _ => return None,
        };
        let port = match port {
            Some(port) if port.contains(&Token::Reference) => Port::Any,
            Some(port) => Port::Exactly(literal(port).parse().ok()?),
            None if host.last() == Some(&Token::Reference) => Port::Any,
            None => Port::Default,
        };
        let host =
            match (host.iter().position(|t| *t == Token::Reference), host.iter().rposition(|t| *t == Token::Reference))
            {
                (Some(first), Some(last)) => {
                    let start = literal(&host[..first]);
                    let end = literal(&host[last + 1..]);
                    Host::Around {
                        start: start.rfind('.').map_or(String::new(), |dot| start[..=dot].to_owned()),
                        end: end.find('.').map_or(String::new(), |dot| end[dot..].to_owned()),
                    }
                }
                // An empty authority is no authority: the URL parser takes the path's first
                // segment as the host.
                _ if host.is_empty() => return None,
                _ => Host::Exactly(literal(host)),
            };
        // Without a scheme of its own, the template's URL takes the backend's.
        let scheme = scheme.unwrap_or_else(|| Some("https".to_owned()));
        Some(Fixed { scheme, host, port })
    }

    fn check(&self, target: &Target, template: &Template, values: &BTreeMap<String, Value>) {
        let context = || format!("{template} with {values:?} gave {target:?}; it fixes {self:?}");
        if let Some(scheme) = &self.scheme {
            assert_eq!(target.scheme.as_str(), scheme, "{}", context());
        }
        // An address literal is written anew by the URL parser (`1.2` is `1.0.0.2`).
        let address = target.host.parse::<std::net::IpAddr>().is_ok();
        match &self.host {
            Host::Exactly(host) if !address => assert_eq!(&target.host, host, "{}", context()),
            Host::Around { start, end } if !address => {
                assert!(target.host.starts_with(start.as_str()), "{}", context());
                assert!(target.host.ends_with(end.as_str()), "{}", context());
            }
            _ => {}
        }
        match self.port {
            Port::Exactly(port) => assert_eq!(target.port, port, "{}", context()),
            Port::Default => assert_eq!(target.authority.port(), None, "{}", context()),
            Port::Any => {}
        }
    }
}

/// An https connector without credential, whose backend the template replaces.
fn connector() -> &'static Connector {
    static CONNECTOR: OnceLock<Connector> = OnceLock::new();
    CONNECTOR.get_or_init(|| {
        serde_json::from_value(json!({
            "metadata": {"name": "fuzz", "displayName": "Fuzz"},
            "backend": {"scheme": "https", "host": "placeholder.example", "basePath": "/"},
            "connection": {"mode": "single", "parameters": [], "credential": {"kind": "none"}}
        }))
        .expect("a connector")
    })
}

//! What a connector may name, and what a connection's values may hold, where they are sent
//! as a header or a cookie: the one home of these rules, applied when a connector or a
//! connection is written (and again, as a last line, when a request is built).

/// Headers Portico sets itself on every backend request, or that frame the message: a
/// credential or a policy must not set them (a `Host` of its own would redirect the request
/// inside a shared backend; a `Content-Length` or `Transfer-Encoding` would split it).
pub const RESERVED_HEADERS: [&str; 11] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "http2-settings",
];

/// A `tchar` of RFC 9110 §5.6.2: what header and cookie names are made of.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(is_token_byte)
}

/// Why `name` cannot be a header a connector sets, if it cannot.
pub fn header_name_problem(name: &str) -> Option<String> {
    if !is_token(name) {
        return Some(format!(
            "'{}' is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)",
            name.escape_debug()
        ));
    }
    RESERVED_HEADERS
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(name))
        .then(|| format!("'{name}' is a header Portico sets itself; a connector cannot set it"))
}

/// Why `name` cannot be a cookie's name, if it cannot.
pub fn cookie_name_problem(name: &str) -> Option<String> {
    (!is_token(name)).then(|| {
        format!("'{}' is not a valid cookie name (letters, digits and !#$%&'*+-.^_`|~ only)", name.escape_debug())
    })
}

/// Whether `value` can be a header's value as it is: no line break, no other control
/// character but the tab.
pub fn is_header_value(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Whether `value` can be a cookie's value as it is (`cookie-octet`s of RFC 6265 §4.1.1): a
/// space, a quote, a comma, a semicolon or a backslash would end it or add another cookie.
pub fn is_cookie_value(value: &str) -> bool {
    value.bytes().all(|b| matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names() {
        for good in ["X-Api-Key", "Authorization", "Ocp-Apim-Subscription-Key", "x_key", "Cookie"] {
            assert_eq!(header_name_problem(good), None, "{good}");
        }
        for reserved in ["Host", "HOST", "content-length", "Transfer-Encoding", "Connection", "TE", "Upgrade"] {
            let problem = header_name_problem(reserved).unwrap_or_else(|| panic!("{reserved} is refused"));
            assert!(problem.contains("sets itself"), "{problem}");
        }
        for invalid in ["", "X Key", "X-Key:", "X-Key\r\nX-Other", "Ключ", "X(Key)"] {
            let problem = header_name_problem(invalid).unwrap_or_else(|| panic!("{invalid:?} is refused"));
            assert!(problem.contains("not a valid header name") && !problem.contains('\n'), "{problem}");
        }
    }

    #[test]
    fn cookie_names_and_values() {
        assert_eq!(cookie_name_problem("session_id"), None);
        assert!(cookie_name_problem("a=b").is_some());
        assert!(cookie_name_problem("a;b").is_some());
        assert!(is_cookie_value("s3cr3t-Token_~!"));
        for bad in ["v; admin=true", "v admin", "v,w", "\"v\"", "v\\w", "v\r\n"] {
            assert!(!is_cookie_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn header_values() {
        assert!(is_header_value("Bearer abc\tdef ~!é"));
        for bad in ["a\r\nX-Admin: 1", "a\nb", "a\0b", "a\u{7f}"] {
            assert!(!is_header_value(bad), "{bad:?}");
        }
    }
}

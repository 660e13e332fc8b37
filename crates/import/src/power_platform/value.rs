//! Loose reading of hand-written JSON: keys in any case, booleans written as strings.

use serde_json::{Map, Value};

pub(super) type Object = Map<String, Value>;

/// The member named `key`, else the first whose name differs only in ASCII case.
pub(super) fn get<'a>(object: &'a Object, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| object.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

pub(super) fn get_object<'a>(object: &'a Object, key: &str) -> Option<&'a Object> {
    get(object, key).and_then(Value::as_object)
}

pub(super) fn get_str<'a>(object: &'a Object, key: &str) -> Option<&'a str> {
    get(object, key).and_then(Value::as_str)
}

/// A string member with surrounding space removed; `None` when absent or blank.
pub(super) fn get_text(object: &Object, key: &str) -> Option<String> {
    get(object, key).and_then(scalar_text).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `true`, or a string reading `true` in any case: the files write both.
pub(super) fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::String(s) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// A scalar as text: strings as written, numbers and booleans printed; `None` otherwise.
pub(super) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Lowercase letters and digits only, so that `API Key`, `apiKey` and `api_key` compare equal.
pub(super) fn normalized(name: &str) -> String {
    name.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// `base` extended by one JSON-pointer token (RFC 6901 escaping).
pub(super) fn pointer(base: &str, token: &str) -> String {
    format!("{base}/{}", token.replace('~', "~0").replace('/', "~1"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_match_exactly_first_then_in_any_case() {
        let v = json!({"tokenUrl": "a", "TokenUrl": "b", "LoginUri": "c"});
        let o = v.as_object().unwrap();
        assert_eq!(get_str(o, "TokenUrl"), Some("b"));
        assert_eq!(get_str(o, "loginUri"), Some("c"));
        assert_eq!(get_str(o, "missing"), None);
    }

    #[test]
    fn booleans_come_as_strings_too() {
        assert!(truthy(&json!("TRUE")));
        assert!(truthy(&json!(true)));
        assert!(!truthy(&json!("false")));
        assert!(!truthy(&json!(1)));
    }

    #[test]
    fn pointers_escape_slashes_and_tildes() {
        assert_eq!(pointer("/paths", "/items/{id}"), "/paths/~1items~1{id}");
        assert_eq!(pointer("", "a~b"), "/a~0b");
        assert_eq!(normalized("API Key"), normalized("api_key"));
    }
}

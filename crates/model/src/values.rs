//! Checking the values a user gives for a connection against the parameter set.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{ApiKeyLocation, Credential, ParameterSet, ParameterType};

/// One problem with one field, named so that a form can show it beside the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        FieldError { field: field.to_owned(), message: message.into() }
    }
}

/// Values that passed the check, split into what may be shown and what must be sealed.
#[derive(Clone, Default, PartialEq)]
pub struct CheckedValues {
    /// Non-secret values under their declared names, defaults filled in.
    pub public: BTreeMap<String, Value>,
    /// Secret values under their declared names. Plaintext: seal it, never print it.
    pub secret: BTreeMap<String, String>,
}

impl fmt::Debug for CheckedValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedValues")
            .field("public", &self.public)
            .field("secret", &self.secret.keys().map(|k| (k, "[redacted]")).collect::<BTreeMap<_, _>>())
            .finish()
    }
}

impl ParameterSet {
    /// Checks `values` (parameter name → JSON value) against the set: unknown names, missing
    /// required values, wrong types and values outside the allowed list are each reported for
    /// their field. Names are matched case-insensitively and stored as declared.
    pub fn check_values(&self, values: &Map<String, Value>) -> Result<CheckedValues, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut checked = CheckedValues::default();
        for name in values.keys() {
            if self.parameter(name).is_none() {
                errors.push(FieldError::new(name, "is not a parameter of this connector"));
            }
        }
        for p in &self.parameters {
            let given = values.iter().find(|(k, _)| k.eq_ignore_ascii_case(&p.name)).map(|(_, v)| v);
            let value = match given {
                None | Some(Value::Null) => match p.default.as_deref().and_then(|d| typed(p.kind, d)) {
                    Some(default) => default,
                    // The platform fills a hidden value with a source (the signed-in tenant).
                    None if p.required && !(p.hidden && p.source.is_some()) => {
                        errors.push(FieldError::new(&p.name, "is required"));
                        continue;
                    }
                    None => continue,
                },
                Some(v) => v.clone(),
            };
            let text = match (p.kind, &value) {
                (
                    ParameterType::String | ParameterType::SecureString | ParameterType::GatewaySetting,
                    Value::String(s),
                ) => Some(s.as_str()),
                (ParameterType::Bool, Value::Bool(_)) | (ParameterType::Int, Value::Number(_))
                    if value.is_i64() || value.is_boolean() =>
                {
                    None
                }
                (kind, _) => {
                    errors.push(FieldError::new(&p.name, format!("must be {}", type_words(kind))));
                    continue;
                }
            };
            if let Some(text) = text {
                if p.required && text.trim().is_empty() {
                    errors.push(FieldError::new(&p.name, "is required"));
                    continue;
                }
                if !p.allowed_values.is_empty() && !p.allowed_values.iter().any(|a| a.value == text) {
                    let allowed: Vec<_> = p.allowed_values.iter().map(|a| a.value.as_str()).collect();
                    errors.push(FieldError::new(&p.name, format!("must be one of: {}", allowed.join(", "))));
                    continue;
                }
                if let Some(problem) = self.wire_problem(&p.name, text) {
                    errors.push(FieldError::new(&p.name, problem));
                    continue;
                }
                if self.is_secret(p) {
                    checked.secret.insert(p.name.clone(), text.to_owned());
                    continue;
                }
            }
            checked.public.insert(p.name.clone(), value);
        }
        if errors.is_empty() { Ok(checked) } else { Err(errors) }
    }
}

impl ParameterSet {
    /// Why the value of `parameter` cannot be sent where the credential sends it, if it cannot.
    fn wire_problem(&self, parameter: &str, text: &str) -> Option<&'static str> {
        let Credential::ApiKey { keys } = &self.credential else {
            return None;
        };
        keys.iter().filter(|key| key.parameter.eq_ignore_ascii_case(parameter)).find_map(|key| {
            let sent = format!("{}{text}", key.prefix.as_deref().unwrap_or(""));
            match key.location {
                ApiKeyLocation::Header if !crate::is_header_value(&sent) => {
                    Some("cannot be sent in a header: it holds a line break or another control character")
                }
                ApiKeyLocation::Cookie if !crate::is_cookie_value(&sent) => Some(
                    "cannot be sent as a cookie: it holds a space, a quote, a comma, a semicolon, a backslash or a \
                     control character",
                ),
                _ => None,
            }
        })
    }
}

/// A default (always written as text) as a value of the parameter's type.
pub(crate) fn typed(kind: ParameterType, text: &str) -> Option<Value> {
    match kind {
        ParameterType::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        ParameterType::Int => text.trim().parse::<i64>().ok().map(Value::from),
        _ => Some(Value::String(text.to_owned())),
    }
}

fn type_words(kind: ParameterType) -> &'static str {
    match kind {
        ParameterType::String | ParameterType::SecureString | ParameterType::GatewaySetting => "a string",
        ParameterType::Bool => "true or false",
        ParameterType::Int => "an integer",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{AllowedValue, ConnectionParameter, Credential};

    fn set() -> ParameterSet {
        let mut user = ConnectionParameter::new("username", ParameterType::String, "User");
        user.required = true;
        let mut pass = ConnectionParameter::new("password", ParameterType::SecureString, "Password");
        pass.required = true;
        let mut region = ConnectionParameter::new("region", ParameterType::String, "Region");
        region.allowed_values =
            vec![AllowedValue { value: "eu".into(), label: None }, AllowedValue { value: "us".into(), label: None }];
        region.default = Some("eu".into());
        let mut verbose = ConnectionParameter::new("verbose", ParameterType::Bool, "Verbose");
        verbose.default = Some("false".into());
        let mut retries = ConnectionParameter::new("retries", ParameterType::Int, "Retries");
        retries.default = Some("3".into());
        let mut tenant = ConnectionParameter::new("token:TenantId", ParameterType::String, "");
        tenant.required = true;
        tenant.hidden = true;
        tenant.source = Some("AzureActiveDirectoryTenant".into());
        ParameterSet {
            parameters: vec![user, pass, region, verbose, retries, tenant],
            credential: Credential::Basic { username: "username".into(), password: "password".into() },
            ..ParameterSet::default()
        }
    }

    #[test]
    fn good_values_are_split_into_public_and_secret() {
        let values = json!({"USERNAME": "alice", "password": "s3cret", "verbose": true});
        let checked = set().check_values(values.as_object().unwrap()).unwrap();
        assert_eq!(checked.public.get("username"), Some(&json!("alice")));
        assert_eq!(checked.public.get("region"), Some(&json!("eu")), "default filled in");
        assert_eq!(checked.public.get("verbose"), Some(&json!(true)));
        assert_eq!(checked.public.get("retries"), Some(&json!(3)), "an int default is an int");
        let defaults = set().check_values(json!({"username": "a", "password": "b"}).as_object().unwrap()).unwrap();
        assert_eq!(defaults.public.get("verbose"), Some(&json!(false)), "a bool default is a bool");
        assert_eq!(checked.secret.get("password").map(String::as_str), Some("s3cret"));
        assert!(!checked.public.contains_key("password"));
        assert!(!format!("{checked:?}").contains("s3cret"));
    }

    #[test]
    fn every_bad_field_is_named() {
        let values = json!({"password": 5, "region": "mars", "verbose": "yes", "colour": "red"});
        let errors = set().check_values(values.as_object().unwrap()).unwrap_err();
        let by_field: BTreeMap<_, _> = errors.iter().map(|e| (e.field.as_str(), e.message.as_str())).collect();
        assert_eq!(by_field["colour"], "is not a parameter of this connector");
        assert_eq!(by_field["username"], "is required");
        assert_eq!(by_field["password"], "must be a string");
        assert_eq!(by_field["region"], "must be one of: eu, us");
        assert_eq!(by_field["verbose"], "must be true or false");
        assert_eq!(errors.len(), 5);
    }

    #[test]
    fn blank_required_string_is_missing() {
        let values = json!({"username": "  ", "password": "x"});
        let errors = set().check_values(values.as_object().unwrap()).unwrap_err();
        assert_eq!(errors, vec![FieldError { field: "username".into(), message: "is required".into() }]);
    }

    #[test]
    fn a_key_that_would_break_its_header_or_cookie_is_refused() {
        let key = |parameter: &str, location| crate::ApiKey {
            parameter: parameter.into(),
            name: format!("k-{parameter}"),
            location,
            prefix: None,
        };
        let set = ParameterSet {
            parameters: vec![
                ConnectionParameter::new("header", ParameterType::SecureString, "Header key"),
                ConnectionParameter::new("cookie", ParameterType::SecureString, "Cookie key"),
                ConnectionParameter::new("query", ParameterType::SecureString, "Query key"),
            ],
            credential: Credential::ApiKey {
                keys: vec![
                    key("header", ApiKeyLocation::Header),
                    key("cookie", ApiKeyLocation::Cookie),
                    key("query", ApiKeyLocation::Query),
                ],
            },
            ..ParameterSet::default()
        };
        let bad = json!({"header": "k\r\nX-Admin: 1", "cookie": "v; admin=true", "query": "a b; c\r\n"});
        let errors = set.check_values(bad.as_object().unwrap()).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["header", "cookie"], "a query value is encoded, so any value goes: {errors:?}");
        assert!(errors[0].message.contains("header") && errors[1].message.contains("cookie"), "{errors:?}");
        assert!(!format!("{errors:?}").contains("admin"), "the value is not repeated: {errors:?}");
        let good = json!({"header": "k-1 2\t3", "cookie": "v1!~", "query": "x"});
        assert!(set.check_values(good.as_object().unwrap()).is_ok());
    }
}

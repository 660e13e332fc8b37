use std::fmt;

use serde::Deserialize;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A plaintext secret in memory: a password, an API key, a client secret, a token.
///
/// `Debug` and `Display` print `[redacted]`; the memory is zeroized on drop; the value is
/// reached only through [`SecretString::expose`], so every use is visible in the code. There is
/// deliberately no `Serialize`: a secret never ends up in a response or a log by accident.
/// Equality is not offered either; compare with [`crate::constant_time_eq`].
///
/// ```
/// fn deserializable<T: serde::de::DeserializeOwned>() {}
/// deserializable::<portico_secrets::SecretString>();
/// ```
///
/// ```compile_fail
/// fn serializable<T: serde::Serialize>() {}
/// serializable::<portico_secrets::SecretString>();
/// ```
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plaintext. Keep the borrow short and never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = "hunter2-very-secret";

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = SecretString::new(VALUE);
        for shown in [format!("{secret:?}"), format!("{secret}"), format!("{secret:#?}"), format!("{secret:>40}")] {
            assert!(!shown.contains(VALUE), "{shown}");
            assert!(!shown.contains("hunter"), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
    }

    #[test]
    fn a_struct_holding_a_secret_prints_it_redacted() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Login {
            user: String,
            password: SecretString,
        }
        let login = Login { user: "alice".into(), password: VALUE.into() };
        let shown = format!("{login:?}");
        assert!(shown.contains("alice"));
        assert!(!shown.contains(VALUE));
    }

    #[test]
    fn expose_gives_the_value() {
        let secret = SecretString::from(VALUE.to_owned());
        assert_eq!(secret.expose(), VALUE);
        assert_eq!(secret.len(), VALUE.len());
        assert!(!secret.is_empty());
        assert_eq!(secret.clone().expose(), VALUE);
    }

    #[test]
    fn deserializes_from_a_plain_string() {
        let secret: SecretString = serde_json::from_str(&format!("\"{VALUE}\"")).unwrap();
        assert_eq!(secret.expose(), VALUE);
    }

    #[test]
    fn zeroize_clears_the_value() {
        let mut secret = SecretString::new(VALUE);
        secret.zeroize();
        assert!(secret.is_empty());
    }
}

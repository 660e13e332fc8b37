//! Webhook signing as the Standard Webhooks specification says, so that any of its libraries
//! verifies what Portico sends: a secret `whsec_<base64 of random bytes>`; a delivery carries
//! `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`, which is
//! `v1,<base64 of HMAC-SHA256(secret bytes, "<id>.<timestamp>.<body>")>` — one per secret,
//! separated by spaces, while a rotated-out secret still signs.

use aes_gcm::aead::Generate;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::SecretString;

/// Every webhook secret starts with this.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn generate_secret() -> SecretString {
    let bytes = Zeroizing::new(<[u8; 32]>::generate());
    SecretString::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes.as_slice())))
}

/// The `v1,<signature>` of one message with one secret; `None` when the secret is not one of
/// ours (`whsec_` and base64).
pub fn sign(secret: &SecretString, message_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = Zeroizing::new(STANDARD.decode(secret.expose().strip_prefix(SECRET_PREFIX)?).ok()?);
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&key).ok()?;
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` header value: one signature per secret, space-separated.
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a SecretString>,
    message_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets.into_iter().filter_map(|secret| sign(secret, message_id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification and its libraries' tests.
    #[test]
    fn signs_the_specifications_example() {
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let signature = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#);
        assert_eq!(signature.as_deref(), Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
    }

    #[test]
    fn every_secret_signs_and_foreign_ones_are_left_out() {
        let (a, b) = (generate_secret(), generate_secret());
        assert!(a.expose().starts_with(SECRET_PREFIX) && a.expose() != b.expose());
        let header = signature_header([&a, &SecretString::from("not a secret"), &b], "msg_1", 5, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&a, "msg_1", 5, b"{}").unwrap());
        assert_ne!(parts[0], parts[1]);
        assert_ne!(sign(&a, "msg_1", 6, b"{}"), sign(&a, "msg_1", 5, b"{}"), "the timestamp is signed");
    }
}

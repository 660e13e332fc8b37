use aes_gcm::aead::Generate;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::SecretString;

/// Every API key starts with this, so a leaked one is easy to recognise (and to grep for).
pub const API_KEY_PREFIX: &str = "pk_";

/// Characters after the prefix: 32 random bytes in unpadded base64url.
const API_KEY_BODY_LEN: usize = 43;

/// A new API key: `pk_` followed by 43 characters of base64url (32 random bytes). Show it
/// once; store only [`api_key_hash`] of it.
pub fn generate_api_key() -> SecretString {
    let bytes = Zeroizing::new(<[u8; 32]>::generate());
    // Sized up front so the string never reallocates and leaves a copy behind.
    let mut key = String::with_capacity(API_KEY_PREFIX.len() + API_KEY_BODY_LEN);
    key.push_str(API_KEY_PREFIX);
    URL_SAFE_NO_PAD.encode_string(bytes.as_slice(), &mut key);
    SecretString::new(key)
}

/// 32 random bytes in unpadded base64url (43 characters): an OAuth `state`, a PKCE verifier.
pub fn random_token() -> SecretString {
    let bytes = Zeroizing::new(<[u8; 32]>::generate());
    let mut token = String::with_capacity(API_KEY_BODY_LEN);
    URL_SAFE_NO_PAD.encode_string(bytes.as_slice(), &mut token);
    SecretString::new(token)
}

/// The stored form of an API key: lowercase hex of its SHA-256. The key has 256 bits of
/// entropy, so a plain hash (no salt, no stretching) is enough and allows lookup by hash.
pub fn api_key_hash(key: &str) -> String {
    crate::hex(&api_key_digest(key))
}

/// The SHA-256 of an API key as bytes: the in-memory lookup key.
pub fn api_key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The stored form of a digest from [`api_key_digest`].
pub fn digest_hex(digest: &[u8; 32]) -> String {
    crate::hex(digest)
}

/// Does `text` have the shape of a key made by [`generate_api_key`]? A cheap check before
/// hashing and looking it up.
pub fn is_api_key_format(text: &str) -> bool {
    text.strip_prefix(API_KEY_PREFIX).is_some_and(|body| {
        body.len() == API_KEY_BODY_LEN && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Compares two byte strings in time that depends on their lengths only, not on where they
/// first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let key = generate_api_key();
        let text = key.expose();
        assert!(text.starts_with("pk_"));
        assert_eq!(text.len(), 3 + 43);
        assert!(is_api_key_format(text));
        let raw = URL_SAFE_NO_PAD.decode(&text[3..]).unwrap();
        assert_eq!(raw.len(), 32);
    }

    #[test]
    fn generated_keys_differ() {
        let keys: std::collections::HashSet<String> = (0..50).map(|_| generate_api_key().expose().to_owned()).collect();
        assert_eq!(keys.len(), 50);
    }

    #[test]
    fn the_hash_is_hex_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(api_key_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let key = generate_api_key();
        let hash = api_key_hash(key.expose());
        assert_eq!(hash.len(), 64);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert!(!hash.contains(key.expose()));
        assert_eq!(hash, api_key_hash(key.expose()));
    }

    #[test]
    fn format_check_rejects_other_strings() {
        assert!(!is_api_key_format(""));
        assert!(!is_api_key_format("pk_"));
        assert!(!is_api_key_format(&format!("sk_{}", "a".repeat(43))));
        assert!(!is_api_key_format(&format!("pk_{}", "a".repeat(42))));
        assert!(!is_api_key_format(&format!("pk_{}", "a".repeat(44))));
        assert!(!is_api_key_format(&format!("pk_{}+", "a".repeat(42))));
        assert!(is_api_key_format(&format!("pk_{}-_", "a".repeat(41))));
    }

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"sane"));
        assert!(!constant_time_eq(b"same", b"same!"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}

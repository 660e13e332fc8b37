//! Secrets: in memory, at rest, and the API keys of tenants.
//!
//! - [`SecretString`] holds a plaintext secret in memory. It never prints its value, is zeroized
//!   on drop, cannot be serialized, and hands the value out only through [`SecretString::expose`].
//! - [`MasterKey`] seals secrets for storage with AES-256-GCM: the sealed bytes name the format
//!   version and the key that sealed them, and are bound to associated data (the id of the row
//!   they belong to), so a value copied to another row does not open.
//! - [`generate_api_key`] and [`api_key_hash`]: a tenant's key is shown once and stored only as
//!   its SHA-256.
//! - [`webhook`]: webhooks' signing secrets and their Standard Webhooks signatures.
//!
//! Architecture invariant: nothing in this crate logs, and no error carries secret or sealed
//! bytes.

mod api_key;
mod key_ring;
mod master_key;
mod secret;
pub mod webhook;

pub use api_key::{
    API_KEY_PREFIX, api_key_digest, api_key_hash, constant_time_eq, digest_hex, generate_api_key, is_api_key_format,
    random_token,
};
pub use key_ring::{DataKey, KeyRing, UnwrapError};
pub use master_key::{
    KEY_FILE_NAME, KeyError, KeyFormatError, KeySource, MasterKey, OpenError, SEALED_HEADER_LEN, SEALED_VERSION,
    header_of,
};
pub use secret::SecretString;
pub use zeroize::Zeroizing;

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    out
}

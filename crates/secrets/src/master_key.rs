use std::fmt;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{AeadInOut, Generate, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::SecretString;

/// The first bytes of every sealed value: the format version.
pub const SEALED_VERSION: &[u8; 2] = b"v1";

/// The key file inside the data directory.
pub const KEY_FILE_NAME: &str = "master.key";

const KEY_LEN: usize = 32;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = SEALED_VERSION.len() + KEY_ID_LEN + NONCE_LEN;

/// The key that seals every secret at rest.
///
/// Its id (the first 8 hex characters of the SHA-256 of the key) is written into each sealed
/// value, so a value sealed by another key is reported as such instead of as tampering, and a
/// later key rotation knows what to re-seal.
#[derive(Clone)]
pub struct MasterKey {
    key: Zeroizing<[u8; KEY_LEN]>,
    id: String,
    cipher: Aes256Gcm,
}

/// Where [`MasterKey::load_or_create`] found the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The value the caller passed in (from `PORTICO_MASTER_KEY`).
    Environment,
    /// Read from the key file. `mode` holds its Unix permission bits (e.g. `0o600`); `None`
    /// where there are none.
    File { path: PathBuf, mode: Option<u32> },
    /// Neither given nor found: generated and written to `path` with mode 0600.
    Generated { path: PathBuf },
}

impl KeySource {
    /// Is the key file open to its group or to others? The caller should warn: anyone who can
    /// read it can open every stored secret.
    pub fn accessible_by_others(&self) -> bool {
        matches!(self, KeySource::File { mode: Some(mode), .. } if mode & 0o077 != 0)
    }
}

/// Why a text is not a master key. Never contains the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("the master key is not valid base64")]
    NotBase64,
    #[error("the master key is {0} bytes long, but must be 32 (44 characters of base64)")]
    WrongLength(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `origin` is `PORTICO_MASTER_KEY` or the key file's path.
    #[error("{origin}: {source}")]
    Invalid { origin: String, source: KeyFormatError },
    #[error("cannot read the master key file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot create the master key file {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// Why sealed bytes did not open. Never contains secret or sealed bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the sealed value has an unknown format version")]
    UnknownVersion,
    #[error("the sealed value was sealed by master key {found}, but the current master key is {expected}")]
    OtherKey { expected: String, found: String },
    #[error(
        "the sealed value was sealed by key {found}, which this instance does not hold (not the master key, nor a data key in the store)"
    )]
    UnknownKey { found: String },
    #[error("the sealed value is truncated")]
    Truncated,
    #[error("the sealed value failed authentication: it was altered, or belongs to another record")]
    AuthenticationFailed,
}

/// Standard or URL-safe base64, padded or not: a key pasted from anywhere is accepted.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

impl MasterKey {
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        let key = Zeroizing::new(*bytes);
        let id = crate::hex(&Sha256::digest(key.as_slice())[..KEY_ID_LEN / 2]);
        // From a borrowed slice: no unzeroized copy of the key on the stack.
        let cipher = Aes256Gcm::new_from_slice(key.as_slice()).expect("AES-256 key length");
        Self { key, id, cipher }
    }

    /// Parses a key from base64 (standard or URL-safe, padding optional, surrounding
    /// whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, KeyFormatError> {
        let text = text.trim();
        let decoded = STANDARD_LENIENT
            .decode(text)
            .or_else(|_| URL_SAFE_LENIENT.decode(text))
            .map(Zeroizing::new)
            .map_err(|_| KeyFormatError::NotBase64)?;
        let bytes: &[u8; KEY_LEN] =
            decoded.as_slice().try_into().map_err(|_| KeyFormatError::WrongLength(decoded.len()))?;
        Ok(Self::from_bytes(bytes))
    }

    /// A new random key.
    pub fn generate() -> Self {
        let bytes = Zeroizing::new(<[u8; KEY_LEN]>::generate());
        Self::from_bytes(&bytes)
    }

    /// The key in standard base64, as the key file and `PORTICO_MASTER_KEY` hold it.
    pub fn to_base64(&self) -> SecretString {
        SecretString::new(STANDARD.encode(self.key.as_slice()))
    }

    /// The key id: the first 8 hex characters of the SHA-256 of the key. Safe to show.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Finds the server's master key: `from_env` (the value of `PORTICO_MASTER_KEY`) wins;
    /// otherwise `<data_dir>/master.key` is read; otherwise a new key is generated and written
    /// there, the file created with mode 0600 from the start (and `data_dir` with 0700 if it
    /// is missing).
    ///
    /// A key file readable by others is not refused: its mode is in the returned
    /// [`KeySource`] so the caller can warn.
    pub fn load_or_create(data_dir: &Path, from_env: Option<&str>) -> Result<(MasterKey, KeySource), KeyError> {
        if let Some(text) = from_env {
            let key = MasterKey::from_base64(text)
                .map_err(|source| KeyError::Invalid { origin: "PORTICO_MASTER_KEY".to_owned(), source })?;
            return Ok((key, KeySource::Environment));
        }
        let path = data_dir.join(KEY_FILE_NAME);
        if let Some(loaded) = read_key_file(&path)? {
            return Ok(loaded);
        }
        let key = MasterKey::generate();
        match write_new_key_file(data_dir, &path, &key) {
            Ok(()) => Ok((key, KeySource::Generated { path })),
            // Another process created it first: use theirs.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => read_key_file(&path)?
                .ok_or_else(|| KeyError::Read { path: path.clone(), source: io::Error::from(io::ErrorKind::NotFound) }),
            Err(source) => Err(KeyError::Write { path, source }),
        }
    }

    /// Seals `plaintext` for storage, bound to `aad` (the id of the record it belongs to).
    ///
    /// Layout: `b"v1"` ‖ key id (8 ASCII bytes) ‖ 96-bit random nonce ‖ ciphertext ‖ 128-bit
    /// tag. The version and key id are authenticated too: the AEAD's associated data is
    /// `b"v1"` ‖ key id ‖ `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce = Nonce::generate();
        let mut sealed = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        sealed.extend_from_slice(SEALED_VERSION);
        sealed.extend_from_slice(self.id.as_bytes());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_inout_detached(&nonce, &self.bound_aad(aad), (&mut sealed[HEADER_LEN..]).into())
            // Only a plaintext over 64 GiB fails.
            .expect("AES-GCM plaintext too long");
        sealed.extend_from_slice(&tag);
        sealed
    }

    /// Opens what [`MasterKey::seal`] made with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let version = sealed.get(..SEALED_VERSION.len()).ok_or(OpenError::Truncated)?;
        if version != SEALED_VERSION {
            return Err(OpenError::UnknownVersion);
        }
        if sealed.len() < HEADER_LEN + TAG_LEN {
            return Err(OpenError::Truncated);
        }
        let key_id = &sealed[SEALED_VERSION.len()..SEALED_VERSION.len() + KEY_ID_LEN];
        if key_id != self.id.as_bytes() {
            let found = match std::str::from_utf8(key_id) {
                Ok(id) if id.bytes().all(|b| b.is_ascii_hexdigit()) => id.to_owned(),
                _ => "(not a key id)".to_owned(),
            };
            return Err(OpenError::OtherKey { expected: self.id.clone(), found });
        }
        let nonce = Nonce::try_from(&sealed[SEALED_VERSION.len() + KEY_ID_LEN..HEADER_LEN]).expect("nonce length");
        let (ciphertext, tag) = sealed[HEADER_LEN..].split_at(sealed.len() - HEADER_LEN - TAG_LEN);
        let tag = tag.try_into().expect("tag length");
        let mut plaintext = Zeroizing::new(ciphertext.to_vec());
        self.cipher
            .decrypt_inout_detached(&nonce, &self.bound_aad(aad), plaintext.as_mut_slice().into(), tag)
            .map_err(|_| OpenError::AuthenticationFailed)?;
        Ok(plaintext)
    }

    /// The raw key, for wrapping a data key under the master key (crate-internal).
    pub(crate) fn key_bytes(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// The first bytes of every value this key seals: version and key id. Safe to show.
    pub fn header(&self) -> Vec<u8> {
        header_of(&self.id)
    }

    /// The id of the key that sealed `sealed`, if it is in a known format.
    pub fn key_id_of(sealed: &[u8]) -> Option<&str> {
        if sealed.len() < HEADER_LEN + TAG_LEN || &sealed[..SEALED_VERSION.len()] != SEALED_VERSION {
            return None;
        }
        std::str::from_utf8(&sealed[SEALED_VERSION.len()..SEALED_VERSION.len() + KEY_ID_LEN]).ok()
    }

    fn bound_aad(&self, aad: &[u8]) -> Vec<u8> {
        let mut bound = Vec::with_capacity(SEALED_VERSION.len() + KEY_ID_LEN + aad.len());
        bound.extend_from_slice(SEALED_VERSION);
        bound.extend_from_slice(self.id.as_bytes());
        bound.extend_from_slice(aad);
        bound
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).field("key", &format_args!("[redacted]")).finish()
    }
}

/// The first bytes of a value sealed by key `id`: the version and the id.
pub fn header_of(id: &str) -> Vec<u8> {
    let mut header = SEALED_VERSION.to_vec();
    header.extend_from_slice(id.as_bytes());
    header
}

/// The length of [`header_of`]: what a store compares to find values not sealed by a key.
pub const SEALED_HEADER_LEN: usize = SEALED_VERSION.len() + KEY_ID_LEN;

/// `Ok(None)` when the file does not exist.
fn read_key_file(path: &Path) -> Result<Option<(MasterKey, KeySource)>, KeyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(KeyError::Read { path: path.to_owned(), source }),
    };
    let key = MasterKey::from_base64(&text)
        .map_err(|source| KeyError::Invalid { origin: path.display().to_string(), source })?;
    let mode = file_mode(path).map_err(|source| KeyError::Read { path: path.to_owned(), source })?;
    Ok(Some((key, KeySource::File { path: path.to_owned(), mode })))
}

#[cfg(unix)]
fn file_mode(path: &Path) -> io::Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt as _;
    Ok(Some(std::fs::metadata(path)?.permissions().mode() & 0o777))
}

#[cfg(not(unix))]
fn file_mode(_path: &Path) -> io::Result<Option<u32>> {
    Ok(None)
}

/// Creates the key file; fails with `AlreadyExists` rather than overwrite one.
fn write_new_key_file(data_dir: &Path, path: &Path, key: &MasterKey) -> io::Result<()> {
    let mut dirs = std::fs::DirBuilder::new();
    dirs.recursive(true);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        dirs.mode(0o700);
        // The mode applies at creation: the key is never in a file others could read.
        options.mode(0o600);
    }
    dirs.create(data_dir)?;
    let mut file = options.open(path)?;
    let encoded = key.to_base64();
    let written =
        file.write_all(encoded.expose().as_bytes()).and_then(|()| file.write_all(b"\n")).and_then(|()| file.sync_all());
    if let Err(error) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(error);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAINTEXT: &[u8] = b"{\"api_key\":\"s3cr3t-value\"}";

    fn key_of(byte: u8) -> MasterKey {
        MasterKey::from_bytes(&[byte; KEY_LEN])
    }

    #[test]
    fn the_key_id_is_the_start_of_the_sha256_of_the_key() {
        let key = key_of(0);
        // SHA-256 of 32 zero bytes starts with 66687aad.
        assert_eq!(key.id(), "66687aad");
        assert_eq!(MasterKey::generate().id().len(), 8);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = MasterKey::generate();
        let shown = format!("{key:?}");
        let encoded = key.to_base64();
        assert!(!shown.contains(encoded.expose()), "{shown}");
        assert!(shown.contains(key.id()));
        assert!(shown.contains("[redacted]"));
        assert_eq!(format!("{encoded}"), "[redacted]");
    }

    #[test]
    fn base64_round_trip_in_any_common_spelling() {
        let key = MasterKey::generate();
        let standard = key.to_base64();
        assert_eq!(standard.expose().len(), 44);
        let raw = STANDARD.decode(standard.expose()).unwrap();
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
        for text in [standard.expose().to_owned(), format!("  {}\n", standard.expose()), url_safe] {
            assert_eq!(MasterKey::from_base64(&text).unwrap().id(), key.id());
        }
    }

    #[test]
    fn from_base64_reports_what_is_wrong_without_echoing_the_input() {
        let error = MasterKey::from_base64("not*base64!").unwrap_err();
        assert_eq!(error, KeyFormatError::NotBase64);
        assert!(!error.to_string().contains("not*base64"));
        assert_eq!(MasterKey::from_base64(&STANDARD.encode([7u8; 16])).unwrap_err(), KeyFormatError::WrongLength(16));
        assert_eq!(MasterKey::from_base64("").unwrap_err(), KeyFormatError::WrongLength(0));
        let message = KeyFormatError::WrongLength(16).to_string();
        assert!(message.contains("16") && message.contains("32"), "{message}");
    }

    #[test]
    fn seal_then_open_round_trips() {
        let key = MasterKey::generate();
        let sealed = key.seal(PLAINTEXT, b"connection:A");
        assert_eq!(&*key.open(&sealed, b"connection:A").unwrap(), PLAINTEXT);
        assert_eq!(&*key.open(&key.seal(b"", b""), b"").unwrap(), b"");
    }

    #[test]
    fn the_sealed_layout_is_version_key_id_nonce_ciphertext_tag() {
        let key = MasterKey::generate();
        let sealed = key.seal(PLAINTEXT, b"aad");
        assert_eq!(sealed.len(), 2 + 8 + 12 + PLAINTEXT.len() + 16);
        assert_eq!(&sealed[..2], b"v1");
        assert_eq!(&sealed[2..10], key.id().as_bytes());
        assert_eq!(MasterKey::key_id_of(&sealed), Some(key.id()));
        assert!(!sealed.windows(PLAINTEXT.len()).any(|w| w == PLAINTEXT));
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let key = MasterKey::generate();
        let first = key.seal(PLAINTEXT, b"aad");
        let second = key.seal(PLAINTEXT, b"aad");
        assert_ne!(first[10..22], second[10..22]);
        assert_ne!(first, second);
    }

    #[test]
    fn a_value_sealed_for_connection_a_does_not_open_for_connection_b() {
        let key = MasterKey::generate();
        let sealed = key.seal(PLAINTEXT, b"0190a1b2-connection-A");
        assert_eq!(key.open(&sealed, b"0190a1b2-connection-B").unwrap_err(), OpenError::AuthenticationFailed);
        assert_eq!(key.open(&sealed, b"").unwrap_err(), OpenError::AuthenticationFailed);
    }

    #[test]
    fn any_flipped_bit_fails_authentication() {
        let key = MasterKey::generate();
        let sealed = key.seal(PLAINTEXT, b"aad");
        // Past the version and key id (those have errors of their own).
        for index in 10..sealed.len() {
            let mut altered = sealed.clone();
            altered[index] ^= 0x01;
            assert_eq!(key.open(&altered, b"aad").unwrap_err(), OpenError::AuthenticationFailed, "byte {index}");
        }
    }

    #[test]
    fn another_key_is_named_not_mistaken_for_tampering() {
        let (a, b) = (key_of(1), key_of(2));
        let sealed = a.seal(PLAINTEXT, b"aad");
        assert_eq!(
            b.open(&sealed, b"aad").unwrap_err(),
            OpenError::OtherKey { expected: b.id().to_owned(), found: a.id().to_owned() }
        );
    }

    #[test]
    fn a_rewritten_key_id_still_fails_authentication() {
        // The key id is bound into the associated data: claiming another id does not help.
        let (a, b) = (key_of(1), key_of(2));
        let mut sealed = a.seal(PLAINTEXT, b"aad");
        sealed[2..10].copy_from_slice(b.id().as_bytes());
        assert_eq!(b.open(&sealed, b"aad").unwrap_err(), OpenError::AuthenticationFailed);
    }

    #[test]
    fn unknown_versions_and_truncation_are_reported() {
        let key = MasterKey::generate();
        let sealed = key.seal(PLAINTEXT, b"aad");
        let mut v2 = sealed.clone();
        v2[1] = b'2';
        assert_eq!(key.open(&v2, b"aad").unwrap_err(), OpenError::UnknownVersion);
        assert_eq!(key.open(b"", b"aad").unwrap_err(), OpenError::Truncated);
        assert_eq!(key.open(b"v", b"aad").unwrap_err(), OpenError::Truncated);
        assert_eq!(key.open(&sealed[..HEADER_LEN + TAG_LEN - 1], b"aad").unwrap_err(), OpenError::Truncated);
        assert_eq!(key.open(&sealed[..sealed.len() - 1], b"aad").unwrap_err(), OpenError::AuthenticationFailed);
        assert_eq!(MasterKey::key_id_of(&v2), None);
    }

    #[test]
    fn open_errors_carry_no_secret_or_sealed_bytes() {
        let (a, b) = (key_of(1), key_of(2));
        let sealed = a.seal(PLAINTEXT, b"aad");
        let errors = [
            b.open(&sealed, b"aad").unwrap_err(),
            a.open(&sealed, b"other").unwrap_err(),
            a.open(&sealed[..5], b"aad").unwrap_err(),
            OpenError::UnknownVersion,
        ];
        let ciphertext = String::from_utf8_lossy(&sealed[HEADER_LEN..]).into_owned();
        for error in errors {
            for shown in [error.to_string(), format!("{error:?}")] {
                assert!(!shown.contains("s3cr3t"), "{shown}");
                assert!(!shown.contains(&ciphertext), "{shown}");
            }
        }
    }

    #[test]
    fn the_environment_value_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE_NAME), key_of(9).to_base64().expose()).unwrap();
        let env_key = key_of(3);
        let (key, source) = MasterKey::load_or_create(dir.path(), Some(env_key.to_base64().expose())).unwrap();
        assert_eq!(key.id(), env_key.id());
        assert_eq!(source, KeySource::Environment);
    }

    #[test]
    fn a_bad_environment_value_is_an_error_naming_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let error = MasterKey::load_or_create(dir.path(), Some("c2hvcnQ=")).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("PORTICO_MASTER_KEY") && message.contains("5 bytes"), "{message}");
        assert!(!message.contains("c2hvcnQ"), "{message}");
        assert!(!dir.path().join(KEY_FILE_NAME).exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_missing_key_is_generated_with_mode_0600_then_read_back() {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data").join("nested");
        let (created, source) = MasterKey::load_or_create(&data_dir, None).unwrap();
        let path = data_dir.join(KEY_FILE_NAME);
        assert_eq!(source, KeySource::Generated { path: path.clone() });
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(&data_dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode & 0o077, 0);

        let (loaded, source) = MasterKey::load_or_create(&data_dir, None).unwrap();
        assert_eq!(loaded.id(), created.id());
        assert_eq!(source, KeySource::File { path, mode: Some(0o600) });
        assert!(!source.accessible_by_others());
        let sealed = created.seal(PLAINTEXT, b"aad");
        assert_eq!(&*loaded.open(&sealed, b"aad").unwrap(), PLAINTEXT);
    }

    #[cfg(unix)]
    #[test]
    fn an_open_key_file_is_read_and_its_mode_reported() {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        let key = key_of(4);
        std::fs::write(&path, format!("{}\n", key.to_base64().expose())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (loaded, source) = MasterKey::load_or_create(dir.path(), None).unwrap();
        assert_eq!(loaded.id(), key.id());
        assert_eq!(source, KeySource::File { path, mode: Some(0o644) });
        assert!(source.accessible_by_others());
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        std::fs::write(&path, "%%% not a key %%%").unwrap();
        let error = MasterKey::load_or_create(dir.path(), None).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()) && message.contains("base64"), "{message}");
        assert!(!message.contains("not a key"), "{message}");
        // The bad file is left alone, never replaced by a new key.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "%%% not a key %%%");
    }
}

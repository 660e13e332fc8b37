use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portico_secrets::SecretString;
use sha2::{Digest, Sha256};

/// A PKCE pair (RFC 7636): the verifier stays with Portico, the S256 challenge goes in the
/// authorization URL.
pub struct Pkce {
    pub verifier: SecretString,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let verifier = portico_secrets::random_token();
        let challenge = Self::challenge_of(verifier.expose());
        Pkce { verifier, challenge }
    }

    /// `BASE64URL(SHA256(verifier))` (§4.2).
    pub fn challenge_of(verifier: &str) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_matches_the_rfc_example() {
        // RFC 7636 Appendix B.
        assert_eq!(
            Pkce::challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let pair = Pkce::new();
        assert_eq!(pair.verifier.expose().len(), 43);
        assert_eq!(pair.challenge, Pkce::challenge_of(pair.verifier.expose()));
    }
}

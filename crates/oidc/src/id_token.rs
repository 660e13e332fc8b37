//! ID token validation (OpenID Connect Core §3.1.3.7): the signature with `jsonwebtoken`, the
//! claims here, against a clock passed in.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use portico_secrets::constant_time_eq;
use serde_json::{Map, Value};

use crate::IdTokenProblem;

/// How far the provider's clock may be from ours, for `exp` and `iat`.
pub(crate) const CLOCK_SKEW_SECS: u64 = 60;

/// What the token must say.
pub(crate) struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// The algorithms the provider announces, all asymmetric.
    pub algorithms: &'a [Algorithm],
}

/// The claims Portico uses, from a verified token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Claims {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub name: Option<String>,
}

/// Verifies `token` against `keys` at `now` (seconds since the epoch). An
/// [`IdTokenProblem::UnknownKey`] may be cured by reading the JWKS again; nothing else is.
pub(crate) fn verify(token: &str, keys: &JwkSet, expected: &Expected<'_>, now: u64) -> Result<Claims, IdTokenProblem> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| IdTokenProblem::Malformed("not a signed JWT"))?;
    let algorithm = header.alg;
    if !expected.algorithms.contains(&algorithm) || algorithm.family() == AlgorithmFamily::Hmac {
        return Err(IdTokenProblem::Algorithm(format!("{algorithm:?}")));
    }
    let key = signing_key(keys, header.kid.as_deref(), algorithm)?;
    let key = DecodingKey::from_jwk(key).map_err(|_| IdTokenProblem::Signature)?;

    // Only the signature and the algorithm here; every claim is checked below, on our clock.
    let mut validation = Validation::new(algorithm);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims =
        jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => IdTokenProblem::Signature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => IdTokenProblem::Algorithm(format!("{algorithm:?}")),
            _ => IdTokenProblem::Malformed("the claims are not a JSON object"),
        })?;
    check_claims(&claims.claims, expected, now)
}

/// The provider's key for a token signed with `algorithm` and naming `kid`; without a `kid`,
/// the only key that fits (Core §10.1: a `kid` is required when there are several).
fn signing_key<'a>(keys: &'a JwkSet, kid: Option<&str>, algorithm: Algorithm) -> Result<&'a Jwk, IdTokenProblem> {
    let mut fitting = keys.keys.iter().filter(|key| fits(key, algorithm));
    let found = match kid {
        Some(kid) => fitting.find(|key| key.common.key_id.as_deref() == Some(kid)),
        None => fitting.next().filter(|_| fitting.next().is_none()),
    };
    found.ok_or_else(|| IdTokenProblem::UnknownKey { kid: kid.map(portico_oauth::brief) })
}

/// Whether `key` may verify a signature made with `algorithm`: a signing key of the right
/// type and curve, whose own `alg`, when it names one, is that algorithm.
fn fits(key: &Jwk, algorithm: Algorithm) -> bool {
    if matches!(key.common.public_key_use, Some(ref usage) if *usage != PublicKeyUse::Signature) {
        return false;
    }
    if let Some(named) = key.common.key_algorithm
        && named.to_string().parse::<Algorithm>().ok() != Some(algorithm)
    {
        return false;
    }
    match (&key.algorithm, algorithm.family()) {
        (AlgorithmParameters::RSA(_), AlgorithmFamily::Rsa) => true,
        (AlgorithmParameters::EllipticCurve(ec), AlgorithmFamily::Ec) => matches!(
            (&ec.curve, algorithm),
            (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
        ),
        (AlgorithmParameters::OctetKeyPair(okp), AlgorithmFamily::Ed) => okp.curve == EllipticCurve::Ed25519,
        _ => false,
    }
}

fn check_claims(claims: &Map<String, Value>, expected: &Expected<'_>, now: u64) -> Result<Claims, IdTokenProblem> {
    let issuer = string(claims, "iss")?.ok_or(IdTokenProblem::Malformed("no iss"))?;
    if issuer != expected.issuer {
        return Err(IdTokenProblem::Issuer { found: portico_oauth::brief(issuer) });
    }
    let subject = string(claims, "sub")?.filter(|s| !s.is_empty()).ok_or(IdTokenProblem::Malformed("no sub"))?;

    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(several)) => several
            .iter()
            .map(|audience| audience.as_str().ok_or(IdTokenProblem::Malformed("aud is not a list of strings")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(IdTokenProblem::Malformed("aud is neither a string nor a list")),
        None => return Err(IdTokenProblem::Malformed("no aud")),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(IdTokenProblem::Audience);
    }
    match string(claims, "azp")? {
        Some(party) if party != expected.client_id => return Err(IdTokenProblem::AuthorizedParty),
        None if audiences.len() > 1 => return Err(IdTokenProblem::AuthorizedParty),
        _ => {}
    }

    let expires = seconds(claims, "exp")?.ok_or(IdTokenProblem::Malformed("no exp"))?;
    if expires.saturating_add(CLOCK_SKEW_SECS) <= now {
        return Err(IdTokenProblem::Expired);
    }
    let issued = seconds(claims, "iat")?.ok_or(IdTokenProblem::Malformed("no iat"))?;
    if issued > now.saturating_add(CLOCK_SKEW_SECS) {
        return Err(IdTokenProblem::IssuedInFuture);
    }

    let nonce = string(claims, "nonce")?.ok_or(IdTokenProblem::Nonce)?;
    if !constant_time_eq(nonce.as_bytes(), expected.nonce.as_bytes()) {
        return Err(IdTokenProblem::Nonce);
    }

    Ok(Claims {
        subject: subject.to_owned(),
        email: string(claims, "email")?.filter(|email| !email.is_empty()).map(str::to_owned),
        email_verified: flag(claims.get("email_verified")),
        name: string(claims, "name")?.filter(|name| !name.is_empty()).map(str::to_owned),
    })
}

/// A string claim; a claim of another type is malformed, an absent one `None`.
fn string<'a>(claims: &'a Map<String, Value>, name: &'static str) -> Result<Option<&'a str>, IdTokenProblem> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(IdTokenProblem::Malformed(match name {
            "iss" => "iss is not a string",
            "sub" => "sub is not a string",
            "azp" => "azp is not a string",
            "nonce" => "nonce is not a string",
            "email" => "email is not a string",
            "name" => "name is not a string",
            _ => "a claim is not a string",
        })),
    }
}

/// A NumericDate claim (RFC 7519 §2: seconds, possibly fractional), whole seconds.
fn seconds(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, IdTokenProblem> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(number)) => match number.as_u64() {
            Some(whole) => Ok(Some(whole)),
            None => match number.as_f64() {
                Some(fractional) if fractional >= 0.0 && fractional.is_finite() => Ok(Some(fractional as u64)),
                _ => Err(IdTokenProblem::Malformed(if name == "exp" {
                    "exp is not a date"
                } else {
                    "iat is not a date"
                })),
            },
        },
        Some(_) => {
            Err(IdTokenProblem::Malformed(if name == "exp" { "exp is not a date" } else { "iat is not a date" }))
        }
    }
}

/// A boolean claim; some providers send `"true"` and `"false"` as strings.
pub(crate) fn flag(value: Option<&Value>) -> Option<bool> {
    match value? {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) if text.eq_ignore_ascii_case("true") => Some(true),
        Value::String(text) if text.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;
    use crate::test_provider::{SigningKey, now};

    const ISSUER: &str = "https://id.example";
    const CLIENT: &str = "portal";
    const NONCE: &str = "n-0S6_WzA2Mj";

    fn expected() -> Expected<'static> {
        Expected { issuer: ISSUER, client_id: CLIENT, nonce: NONCE, algorithms: &[Algorithm::EdDSA, Algorithm::RS256] }
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER, "sub": "alice", "aud": CLIENT, "exp": now() + 300, "iat": now(),
            "nonce": NONCE, "email": "alice@example.test", "email_verified": true, "name": "Alice",
        })
    }

    fn with(changes: Value) -> Value {
        let mut claims = claims();
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    }

    fn check(key: &SigningKey, claims: &Value) -> Result<Claims, IdTokenProblem> {
        verify(&key.sign(claims), &key.key_set(), &expected(), now())
    }

    #[test]
    fn a_good_token_gives_the_person() {
        let key = SigningKey::new("k1", 1);
        let person = check(&key, &claims()).unwrap();
        assert_eq!(
            person,
            Claims {
                subject: "alice".into(),
                email: Some("alice@example.test".into()),
                email_verified: Some(true),
                name: Some("Alice".into()),
            }
        );
        let minimal = check(&key, &with(json!({"email": null, "email_verified": null, "name": null}))).unwrap();
        assert_eq!((minimal.email, minimal.email_verified, minimal.name), (None, None, None));
    }

    #[test]
    fn each_claim_is_checked() {
        let key = SigningKey::new("k1", 1);
        let cases = [
            (json!({"iss": "https://evil.example"}), IdTokenProblem::Issuer { found: "https://evil.example".into() }),
            (json!({"iss": "https://id.example/"}), IdTokenProblem::Issuer { found: "https://id.example/".into() }),
            (json!({"aud": "another-client"}), IdTokenProblem::Audience),
            (json!({"aud": ["another-client", "third"]}), IdTokenProblem::Audience),
            (json!({"aud": [CLIENT, "another-client"]}), IdTokenProblem::AuthorizedParty),
            (json!({"aud": [CLIENT, "another-client"], "azp": "another-client"}), IdTokenProblem::AuthorizedParty),
            (json!({"azp": "another-client"}), IdTokenProblem::AuthorizedParty),
            (json!({"exp": now() - CLOCK_SKEW_SECS - 1}), IdTokenProblem::Expired),
            (json!({"iat": now() + CLOCK_SKEW_SECS + 5}), IdTokenProblem::IssuedInFuture),
            (json!({"nonce": "another-sign-in"}), IdTokenProblem::Nonce),
            (json!({"nonce": null}), IdTokenProblem::Nonce),
            (json!({"sub": null}), IdTokenProblem::Malformed("no sub")),
            (json!({"sub": ""}), IdTokenProblem::Malformed("no sub")),
            (json!({"exp": null}), IdTokenProblem::Malformed("no exp")),
            (json!({"exp": "tomorrow"}), IdTokenProblem::Malformed("exp is not a date")),
            (json!({"iat": null}), IdTokenProblem::Malformed("no iat")),
            (json!({"aud": 7}), IdTokenProblem::Malformed("aud is neither a string nor a list")),
        ];
        for (changes, problem) in cases {
            assert_eq!(check(&key, &with(changes.clone())), Err(problem), "{changes}");
        }
    }

    #[test]
    fn clocks_may_differ_by_the_allowed_skew() {
        let key = SigningKey::new("k1", 1);
        let slightly = json!({"exp": now() - CLOCK_SKEW_SECS + 5, "iat": now() + CLOCK_SKEW_SECS - 5});
        assert!(check(&key, &with(slightly)).is_ok());
        let fractional = json!({"exp": (now() + 300) as f64 + 0.5, "iat": now() as f64 - 0.25});
        assert!(check(&key, &with(fractional)).is_ok());
        let several = json!({"aud": ["another-client", CLIENT], "azp": CLIENT});
        assert!(check(&key, &with(several)).is_ok());
    }

    #[test]
    fn email_verified_may_come_as_a_string() {
        let key = SigningKey::new("k1", 1);
        assert_eq!(check(&key, &with(json!({"email_verified": "false"}))).unwrap().email_verified, Some(false));
        assert_eq!(check(&key, &with(json!({"email_verified": "TRUE"}))).unwrap().email_verified, Some(true));
        assert_eq!(check(&key, &with(json!({"email_verified": 1}))).unwrap().email_verified, None);
    }

    #[test]
    fn the_signature_must_be_the_providers() {
        let provider = SigningKey::new("k1", 1);
        // Another key calling itself k1: a forged token.
        let forger = SigningKey::new("k1", 2);
        assert_eq!(
            verify(&forger.sign(&claims()), &provider.key_set(), &expected(), now()),
            Err(IdTokenProblem::Signature)
        );

        let token = provider.sign(&claims());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut payload = claims();
        payload["sub"] = json!("mallory");
        parts[1] = base64_url(&payload.to_string());
        let tampered = parts.join(".");
        assert_eq!(verify(&tampered, &provider.key_set(), &expected(), now()), Err(IdTokenProblem::Signature));
    }

    #[test]
    fn the_key_is_chosen_by_kid_and_algorithm() {
        let one = SigningKey::new("k1", 1);
        let two = SigningKey::new("k2", 2);
        let both = JwkSet { keys: [one.key_set().keys, two.key_set().keys].concat() };
        assert!(verify(&two.sign(&claims()), &both, &expected(), now()).is_ok());
        assert_eq!(
            verify(&two.sign(&claims()), &one.key_set(), &expected(), now()),
            Err(IdTokenProblem::UnknownKey { kid: Some("k2".into()) })
        );

        // Without a kid: the only key fits; of several, none is guessed.
        let unnamed = one.sign_with_kid(&claims(), None);
        assert!(verify(&unnamed, &one.key_set(), &expected(), now()).is_ok());
        assert_eq!(verify(&unnamed, &both, &expected(), now()), Err(IdTokenProblem::UnknownKey { kid: None }));

        // A key the provider marks for encryption does not verify signatures.
        let mut encryption_only = one.key_set();
        encryption_only.keys[0].common.public_key_use = Some(PublicKeyUse::Encryption);
        assert_eq!(
            verify(&one.sign(&claims()), &encryption_only, &expected(), now()),
            Err(IdTokenProblem::UnknownKey { kid: Some("k1".into()) })
        );
    }

    #[test]
    fn only_announced_asymmetric_algorithms_are_accepted() {
        let key = SigningKey::new("k1", 1);
        let rsa_only = Expected { algorithms: &[Algorithm::RS256], ..expected() };
        assert_eq!(
            verify(&key.sign(&claims()), &key.key_set(), &rsa_only, now()),
            Err(IdTokenProblem::Algorithm("EdDSA".into()))
        );

        // HMAC with a secret the attacker knows (the public key, the client secret): refused
        // even when announced.
        let hmac = jsonwebtoken::encode(
            &Header { kid: Some("k1".into()), ..Header::new(Algorithm::HS256) },
            &claims(),
            &EncodingKey::from_secret(b"client-secret").unwrap(),
        )
        .unwrap();
        let announced = Expected { algorithms: &[Algorithm::HS256, Algorithm::EdDSA], ..expected() };
        assert_eq!(verify(&hmac, &key.key_set(), &announced, now()), Err(IdTokenProblem::Algorithm("HS256".into())));

        // `alg: none` is no algorithm at all.
        let unsigned =
            format!("{}.{}.", base64_url(r#"{"alg":"none","typ":"JWT"}"#), base64_url(&claims().to_string()));
        assert_eq!(
            verify(&unsigned, &key.key_set(), &expected(), now()),
            Err(IdTokenProblem::Malformed("not a signed JWT"))
        );
        assert_eq!(
            verify("not-a-token", &key.key_set(), &expected(), now()),
            Err(IdTokenProblem::Malformed("not a signed JWT"))
        );
    }

    fn base64_url(text: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }
}

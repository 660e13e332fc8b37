//! Portico's own definition format: full connectors round-trip, and every error names the
//! field at fault and where it is in the file.

use std::path::PathBuf;

use portico_import::definition::{import_bytes, import_value};
use portico_model::{Connector, Credential, Diagnostic, IdentityProviderCatalog};
use serde_json::Value;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/definition").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn connector(name: &str) -> Connector {
    let import = import_bytes(&fixture(name), name);
    assert!(import.diagnostics.is_empty(), "{name}: {:?}", import.diagnostics);
    import.connector.expect("a connector")
}

/// The single error of a definition that does not have the model's shape.
fn error(name: &str) -> Diagnostic {
    let import = import_bytes(&fixture(name), name);
    assert!(import.connector.is_none(), "{name} was accepted");
    assert_eq!(import.diagnostics.len(), 1, "{name}: {:?}", import.diagnostics);
    let d = import.diagnostics.into_iter().next().unwrap();
    assert!(d.is_error());
    d
}

#[test]
fn full_connectors_of_each_credential_kind_round_trip() {
    for (name, kind) in
        [("none.json", "none"), ("basic.json", "basic"), ("api-key.json", "apiKey"), ("oauth2.json", "multiple")]
    {
        let connector = connector(name);
        assert_eq!(connector.connection.auth_kind(), kind, "{name}");

        // Every field of the fixture was understood: writing the connector back gives the
        // fixture itself, so nothing was ignored or defaulted away.
        let written = serde_json::to_value(&connector).unwrap();
        let original: Value = serde_json::from_slice(&fixture(name)).unwrap();
        assert_eq!(written, original, "{name} is not in the model's own shape");

        let again = import_bytes(serde_json::to_string_pretty(&connector).unwrap().as_bytes(), name);
        assert_eq!(again.connector.as_ref(), Some(&connector), "{name}");
        assert_eq!(import_value(&written).connector, Some(connector.clone()), "{name}");

        let validated = import_bytes(&fixture(name), name).validated(&IdentityProviderCatalog::built_in());
        assert!(validated.is_ok(), "{name}: {:?}", validated.diagnostics);
    }
}

#[test]
fn the_oauth_fixture_has_every_grant_and_provider_style() {
    let connector = connector("oauth2.json");
    let providers: Vec<String> = connector
        .connection
        .sets()
        .iter()
        .map(|set| match &set.credential {
            Credential::OAuth2(o) => format!("{}/{}", o.identity_provider, o.grant.as_str()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(providers, ["oauth2/authorizationCode", "aad/authorizationCode", "oauth2generic/clientCredentials"]);
}

#[test]
fn unknown_credential_kind_names_the_tag() {
    let d = error("bad-credential-kind.json");
    assert_eq!(d.at, "bad-credential-kind.json:7:21");
    assert_eq!(
        d.message,
        "connection.credential.kind: unknown variant `magicKey`, expected one of `none`, `basic`, `apiKey`, `oauth2`"
    );
}

#[test]
fn unknown_api_key_location_names_the_key() {
    let d = error("bad-api-key-location.json");
    assert_eq!(d.at, "bad-api-key-location.json:11:50");
    assert_eq!(
        d.message,
        "connection.credential.keys[1].in: unknown variant `body`, expected one of `header`, `query`, `cookie`"
    );
}

#[test]
fn missing_field_names_the_object_that_lacks_it() {
    let d = error("missing-field.json");
    assert_eq!(d.at, "missing-field.json:12:11");
    assert_eq!(d.message, "connection.sets[1].parameters[1]: missing field `name`");
}

#[test]
fn wrong_type_names_the_field() {
    let d = error("wrong-type.json");
    assert_eq!(d.at, "wrong-type.json:7:60");
    assert_eq!(d.message, "connection.parameters[0].required: invalid type: string \"yes\", expected a boolean");
}

#[test]
fn unknown_parameter_type_names_the_field() {
    let d = error("unknown-parameter-type.json");
    assert_eq!(d.at, "unknown-parameter-type.json:8:25");
    assert_eq!(
        d.message,
        "connection.parameters[1].type: unknown variant `foo`, expected one of `string`, `securestring`, `bool`, `int`, `gatewaySetting`"
    );
}

#[test]
fn a_value_names_the_path_without_a_file() {
    let value: Value = serde_json::from_slice(&fixture("unknown-parameter-type.json")).unwrap();
    let import = import_value(&value);
    assert!(import.connector.is_none());
    assert_eq!(
        import.diagnostics,
        [Diagnostic::error(
            "connection.parameters[1].type",
            "unknown variant `foo`, expected one of `string`, `securestring`, `bool`, `int`, `gatewaySetting`"
        )]
    );
}

#[test]
fn errors_inside_flattened_and_tagged_parts_keep_their_path() {
    let cases = [
        (
            r#"{"metadata":{"name":"x","displayName":"X"},"backend":{"host":"h"},
               "connection":{"mode":"single","parameters":[{"name":"a","type":"string","label":5}]}}"#,
            "connection.parameters[0].label",
            "invalid type: integer `5`, expected a string",
        ),
        (
            r#"{"metadata":{"name":"x","displayName":"X"},"backend":{"host":"h"},
               "connection":{"mode":"single","credential":{"kind":"basic","username":"u","password":false}}}"#,
            "connection.credential.password",
            "invalid type: boolean `false`, expected a string",
        ),
        (
            r#"{"metadata":{"name":"x","displayName":"X"},"backend":{"host":"h"},
               "connection":{"mode":"single","credential":{"kind":"oauth2","identityProvider":"aad","scopes":"a b"}}}"#,
            "connection.credential.scopes",
            "invalid type: string \"a b\", expected a sequence",
        ),
        (
            r#"{"metadata":{"name":"x","displayName":"X"},"backend":{"host":"h"},
               "connection":{"mode":"choice","ui":{"label":[]},"sets":[]}}"#,
            "connection.ui.label",
            "invalid type: sequence, expected a string",
        ),
        (
            r#"{"metadata":{"name":"x","displayName":"X"},"backend":{"host":"h"},
               "connection":{"mode":"multiple","sets":[]}}"#,
            "connection.mode",
            "unknown variant `multiple`, expected `single` or `choice`",
        ),
        (
            r#"{"metadata":{"name":"x","displayName":"X"},"backend":{"host":"h"},"connection":{"mode":"single"},
               "policies":[{"policy":"setHeader","name":"X-A","value":"v"},{"policy":"setHeader","name":"X-B","value":7}]}"#,
            "policies[1].value",
            "invalid type: integer `7`, expected a string",
        ),
        (
            r#"{"metadata":{"name":"x","displayName":"X"},"backend":{"host":"h"},"connection":{"mode":"single"},
               "policies":[{"policy":"other","templateId":"x","parameters":{},"operations":"Op"}]}"#,
            "policies[0].operations",
            "invalid type: string \"Op\", expected a sequence",
        ),
        (
            r#"{"metadata":{"name":"x","displayName":"X"},"backend":{"host":"h"},"connection":{"mode":"single"},
               "policies":[{"policy":"other","templateId":"x","parameters":[]}]}"#,
            "policies[0].parameters",
            "invalid type: sequence, expected a map",
        ),
        (
            r#"{"metadata":{"name":"x","displayName":"X"},"backend":{"host":"h"},"connection":{"mode":"single"},
               "policies":[{"policy":"rewrite"}]}"#,
            "policies[0].policy",
            "unknown variant `rewrite`, expected one of `setHeader`, `setQueryParameter`, `other`",
        ),
        (
            r#"{"metadata":{"name":"x","displayName":5},"backend":{"host":"h"},"connection":{"mode":"single"}}"#,
            "metadata.displayName",
            "invalid type: integer `5`, expected a string",
        ),
        (r#"{"backend":{"host":"h"},"connection":{"mode":"single"}}"#, "connector", "missing field `metadata`"),
        (r#""x""#, "connector", "invalid type: string \"x\", expected struct Connector"),
    ];
    for (text, at, message) in cases {
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(import_value(&value).diagnostics, [Diagnostic::error(at, message)], "{text}");
    }
}

#[test]
fn file_errors_come_before_shape_errors() {
    let import = import_bytes(b"{\"metadata\": {\"name\": \"x\"\n \"displayName\": \"X\"}}", "c.json");
    assert!(import.connector.is_none());
    assert_eq!(import.diagnostics, [Diagnostic::error("c.json:2:2", "expected `,` or `}`")]);
}

#[test]
fn tolerated_oddities_stay_warnings_beside_the_connector() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(&fixture("none.json"));
    let import = import_bytes(&bytes, "none.json");
    assert_eq!(import.connector, Some(connector("none.json")));
    assert_eq!(import.diagnostics, [Diagnostic::warning("none.json", "UTF-8 byte-order mark ignored")]);
}

//! The rules a connector must satisfy, the connection form a user sees, and the templates
//! that fill connection parameters into requests.

use portico_model::{
    ApiKey, ApiKeyLocation, Backend, ConnectionParameter, ConnectionSpec, Connector, Credential, Destination,
    Diagnostic, GrantType, IdentityProvider, IdentityProviderCatalog, Metadata, OAuth2, Operation, ParameterSet,
    ParameterType, Policy, PolicyKind, Scheme, Severity, Template, UiText,
};

// --- Building connectors ---------------------------------------------------------------------

fn connector(connection: ConnectionSpec) -> Connector {
    Connector {
        metadata: Metadata { name: "test".into(), display_name: "Test".into(), ..Metadata::default() },
        backend: Backend {
            scheme: Scheme::Https,
            host: "api.example.com".into(),
            base_path: "/".into(),
            host_template: None,
        },
        operations: Vec::new(),
        connection,
        policies: Vec::new(),
        test_operation: None,
    }
}

fn single(parameters: Vec<ConnectionParameter>, credential: Credential) -> Connector {
    connector(ConnectionSpec::Single(ParameterSet { name: String::new(), ui: None, parameters, credential }))
}

fn set(name: &str, parameters: Vec<ConnectionParameter>, credential: Credential) -> ParameterSet {
    ParameterSet {
        name: name.into(),
        ui: Some(UiText { label: name.to_uppercase(), ..UiText::default() }),
        parameters,
        credential,
    }
}

fn text(name: &str, label: &str) -> ConnectionParameter {
    ConnectionParameter::new(name, ParameterType::String, label)
}

fn secret(name: &str, label: &str) -> ConnectionParameter {
    ConnectionParameter::new(name, ParameterType::SecureString, label)
}

fn hidden(mut p: ConnectionParameter) -> ConnectionParameter {
    p.hidden = true;
    p
}

fn required(mut p: ConnectionParameter) -> ConnectionParameter {
    p.required = true;
    p
}

fn basic(username: &str, password: &str) -> Credential {
    Credential::Basic { username: username.into(), password: password.into() }
}

fn key(parameter: &str, name: &str, location: ApiKeyLocation) -> ApiKey {
    ApiKey { parameter: parameter.into(), name: name.into(), location, prefix: None }
}

fn api_key(keys: Vec<ApiKey>) -> Credential {
    Credential::ApiKey { keys }
}

fn oauth(provider: &str) -> OAuth2 {
    OAuth2::new(IdentityProvider::new(provider))
}

fn oauth2(o: OAuth2) -> Credential {
    Credential::OAuth2(Box::new(o))
}

fn validate(c: &Connector) -> Vec<Diagnostic> {
    c.validate(&IdentityProviderCatalog::built_in())
}

/// Asserts the connector gives exactly these findings: severity, place and a telling part of
/// the message.
#[track_caller]
fn assert_findings(c: &Connector, expected: &[(Severity, &str, &str)]) {
    let found = validate(c);
    let matches = found.len() == expected.len()
        && found
            .iter()
            .zip(expected)
            .all(|(d, (severity, at, part))| d.severity == *severity && d.at == *at && d.message.contains(part));
    assert!(matches, "expected {expected:#?}\nfound {found:#?}");
}

#[track_caller]
fn assert_valid(c: &Connector) {
    assert_findings(c, &[]);
}

use Severity::{Error, Warning};

// --- Parameters --------------------------------------------------------------------------------

#[test]
fn a_connector_with_nothing_to_fill_in_is_valid() {
    assert_valid(&connector(ConnectionSpec::none()));
}

#[test]
fn visible_parameters_need_a_label() {
    let c = single(vec![text("host", ""), text("region", " ")], Credential::None);
    assert_findings(
        &c,
        &[
            (
                Error,
                "connection.parameters.host.label",
                "connection parameter 'host' is shown to users but has no label",
            ),
            (Error, "connection.parameters.region.label", "'region'"),
        ],
    );
}

#[test]
fn hidden_parameters_need_no_label() {
    assert_valid(&single(vec![hidden(text("token:TenantId", ""))], Credential::None));
}

#[test]
fn parameter_names_are_unique_ignoring_case() {
    let c = single(
        vec![secret("api_key", "Key"), secret("API_Key", "Key again")],
        api_key(vec![key("api_key", "X-Key", ApiKeyLocation::Header)]),
    );
    assert_findings(&c, &[(Error, "connection.parameters.API_Key", "duplicate connection parameter name 'API_Key'")]);
}

#[test]
fn a_parameter_needs_a_name() {
    let c = single(vec![text("", "Nameless")], Credential::None);
    assert_findings(&c, &[(Error, "connection.parameters", "has no name")]);
}

#[test]
fn a_default_outside_the_allowed_values_is_a_warning() {
    let mut p = text("region", "Region");
    p.allowed_values = vec![
        portico_model::AllowedValue { value: "eu".into(), label: None },
        portico_model::AllowedValue { value: "us".into(), label: Some("United States".into()) },
    ];
    p.default = Some("EU".into());
    let c = single(vec![p.clone()], Credential::None);
    assert_findings(
        &c,
        &[(Warning, "connection.parameters.region.default", "default 'EU' is not one of the allowed values")],
    );
    p.default = Some("us".into());
    assert_valid(&single(vec![p], Credential::None));
}

// --- Basic and API key ---------------------------------------------------------------------------

#[test]
fn basic_needs_both_parameters_declared() {
    assert_valid(&single(
        vec![text("username", "User"), secret("password", "Password")],
        basic("username", "password"),
    ));
    let c = single(vec![text("username", "User")], basic("username", "password"));
    assert_findings(
        &c,
        &[(Error, "connection.credential", "the basic-auth password parameter 'password' is not declared")],
    );
    let c = single(vec![secret("password", "Password")], basic("user", "PASSWORD"));
    assert_findings(
        &c,
        &[(Error, "connection.credential", "the basic-auth username parameter 'user' is not declared")],
    );
}

#[test]
fn api_key_parameters_are_matched_ignoring_case() {
    let c = single(vec![secret("API_KEY", "Key")], api_key(vec![key("api_key", "X-Key", ApiKeyLocation::Header)]));
    assert_valid(&c);
}

#[test]
fn an_api_key_needs_a_name_to_be_sent_under() {
    let c = single(vec![secret("api_key", "Key")], api_key(vec![key("api_key", " ", ApiKeyLocation::Header)]));
    assert_findings(&c, &[(Error, "connection.credential", "the API key 'api_key' has no name to send it under")]);
}

#[test]
fn an_api_key_must_be_bound_to_a_declared_parameter() {
    let c = single(vec![secret("api_key", "Key")], api_key(vec![key("apikey", "X-Key", ApiKeyLocation::Query)]));
    assert_findings(&c, &[(Error, "connection.credential", "the API-key parameter 'apikey' is not declared")]);
}

#[test]
fn an_api_key_credential_needs_a_key() {
    let c = single(vec![secret("api_key", "Key")], api_key(Vec::new()));
    assert_findings(&c, &[(Error, "connection.credential", "needs at least one key")]);
}

// --- OAuth 2.0 -------------------------------------------------------------------------------------

#[test]
fn generic_oauth2_needs_a_token_url() {
    let c = single(
        Vec::new(),
        oauth2(OAuth2 { authorization_url: Some("https://a.example/authorize".into()), ..oauth("oauth2") }),
    );
    assert_findings(&c, &[(Error, "connection.credential", "a Generic OAuth 2 connector needs a token URL")]);
}

#[test]
fn generic_oauth2_with_the_code_grant_needs_an_authorization_url() {
    let c = single(Vec::new(), oauth2(OAuth2 { token_url: Some("https://a.example/token".into()), ..oauth("oauth2") }));
    assert_findings(&c, &[(Error, "connection.credential", "authorization URL")]);
    let c = single(Vec::new(), oauth2(oauth("oauth2generic")));
    assert_findings(&c, &[(Error, "connection.credential", "needs a token URL and an authorization URL")]);
}

#[test]
fn client_credentials_need_no_authorization_url() {
    let o = OAuth2 {
        grant: GrantType::ClientCredentials,
        token_url: Some("https://a.example/token".into()),
        ..oauth("oauth2")
    };
    assert_valid(&single(Vec::new(), oauth2(o)));
}

#[test]
fn generic_oauth2_urls_may_come_from_templates() {
    let templates = portico_model::OAuthTemplates {
        authorization_url: Some("https://{Host}/authorize".into()),
        token_url: Some("https://{Host}/token".into()),
        ..Default::default()
    };
    assert_valid(&single(Vec::new(), oauth2(OAuth2 { templates: Some(templates), ..oauth("oauth2generic") })));
}

#[test]
fn known_providers_need_no_urls() {
    for provider in ["aad", "AADCertificate", "github", "GitHub", "google", "facebook", "docusign"] {
        assert_valid(&single(Vec::new(), oauth2(oauth(provider))));
    }
}

#[test]
fn an_unknown_provider_without_urls_is_only_a_warning() {
    let c = single(Vec::new(), oauth2(oauth("acme-sso")));
    assert_findings(
        &c,
        &[(
            Warning,
            "connection.credential",
            "identity provider 'acme-sso' (not in the catalog) connector needs a token URL",
        )],
    );
    let with_urls = OAuth2 {
        authorization_url: Some("https://sso.acme.example/authorize".into()),
        token_url: Some("https://sso.acme.example/token".into()),
        ..oauth("acme-sso")
    };
    assert_valid(&single(Vec::new(), oauth2(with_urls)));
}

#[test]
fn openid_connect_with_a_discovery_url_is_complete() {
    let o = OAuth2 {
        discovery_url: Some("https://id.example/.well-known/openid-configuration".into()),
        ..oauth("openidconnect")
    };
    assert_valid(&single(Vec::new(), oauth2(o)));
    assert_findings(&single(Vec::new(), oauth2(oauth("oidc"))), &[(Error, "connection.credential", "OpenID Connect")]);
}

#[test]
fn an_identity_provider_is_required() {
    let c = single(Vec::new(), oauth2(oauth(" ")));
    assert_findings(&c, &[(Error, "connection.credential.identityProvider", "has no identity provider")]);
}

#[test]
fn oauth_urls_must_be_absolute_http_urls() {
    let o = OAuth2 {
        authorization_url: Some("https://a.example/authorize".into()),
        token_url: Some("/token".into()),
        refresh_url: Some("ftp://a.example/refresh".into()),
        ..oauth("oauth2")
    };
    assert_findings(
        &single(Vec::new(), oauth2(o)),
        &[
            (Error, "connection.credential.tokenUrl", "tokenUrl '/token' is not a valid absolute URL"),
            (Error, "connection.credential.refreshUrl", "refreshUrl 'ftp://a.example/refresh' is not an http(s) URL"),
        ],
    );
}

#[test]
fn templated_oauth_urls_that_do_not_parse_are_only_warnings() {
    let o = OAuth2 {
        authorization_url: Some("{LoginUri}/authorize".into()),
        token_url: Some("@connectionParameters('host')/token".into()),
        ..oauth("oauth2")
    };
    assert_findings(
        &single(Vec::new(), oauth2(o)),
        &[
            (Warning, "connection.credential.authorizationUrl", "is not a valid absolute URL"),
            (Warning, "connection.credential.tokenUrl", "is not a valid absolute URL"),
        ],
    );
}

#[test]
fn urls_of_known_providers_are_checked_too() {
    let o = OAuth2 { token_url: Some("not a url".into()), ..oauth("github") };
    assert_findings(
        &single(Vec::new(), oauth2(o)),
        &[(Error, "connection.credential.tokenUrl", "'not a url' is not a valid absolute URL")],
    );
}

// --- Parameter sets ----------------------------------------------------------------------------------

#[test]
fn set_names_are_unique_ignoring_case() {
    let c = connector(ConnectionSpec::Choice {
        ui: None,
        sets: vec![set("keys", Vec::new(), Credential::None), set("Keys", Vec::new(), Credential::None)],
    });
    assert_findings(&c, &[(Error, "connection.sets.Keys", "duplicate parameter set name 'Keys'")]);
}

#[test]
fn a_choice_needs_named_sets() {
    assert_findings(
        &connector(ConnectionSpec::Choice { ui: None, sets: Vec::new() }),
        &[(Error, "connection.sets", "needs at least one set")],
    );
    let c = connector(ConnectionSpec::Choice { ui: None, sets: vec![set("", Vec::new(), Credential::None)] });
    assert_findings(&c, &[(Error, "connection.sets", "a parameter set has no name")]);
}

#[test]
fn findings_inside_a_set_name_the_set() {
    let c = connector(ConnectionSpec::Choice {
        ui: None,
        sets: vec![
            set("basic", vec![text("user", "User")], basic("user", "pass")),
            set("key", vec![secret("k", "")], api_key(vec![key("k", "X-Key", ApiKeyLocation::Header)])),
        ],
    });
    assert_findings(
        &c,
        &[
            (Error, "connection.sets.basic.credential", "'pass' is not declared"),
            (Error, "connection.sets.key.parameters.k.label", "has no label"),
        ],
    );
}

// --- References from templates ---------------------------------------------------------------------

#[test]
fn host_templates_and_policies_may_only_name_declared_parameters() {
    let mut c = single(vec![text("subdomain", "Subdomain")], Credential::None);
    c.backend.host_template =
        Some(Template::new("https://@connectionParameters('Subdomain').example.com/@connectionParameters('region')"));
    c.policies = vec![
        Policy {
            kind: PolicyKind::SetHeader {
                name: "X-Tenant".into(),
                value: Template::new("@connectionParameters('tenant')"),
            },
            operations: Vec::new(),
        },
        Policy {
            kind: PolicyKind::SetQueryParameter {
                name: "v".into(),
                value: Template::new("@connectionParameters('version','2')"),
            },
            operations: Vec::new(),
        },
    ];
    assert_findings(
        &c,
        &[
            (
                Warning,
                "backend.hostTemplate",
                "refers to connection parameter 'region', which the connector does not declare",
            ),
            (Warning, "policies", "refers to connection parameter 'tenant', which the connector does not declare"),
        ],
    );
}

#[test]
fn each_set_of_a_choice_must_declare_what_templates_use() {
    let mut c = connector(ConnectionSpec::Choice {
        ui: None,
        sets: vec![set("eu", vec![text("host", "Host")], Credential::None), set("us", Vec::new(), Credential::None)],
    });
    c.backend.host_template = Some(Template::new("https://@connectionParameters('host')"));
    assert_findings(&c, &[(Warning, "backend.hostTemplate", "which set 'us' does not declare")]);
}

// --- Connector-level rules ---------------------------------------------------------------------------

#[test]
fn metadata_and_backend_rules() {
    let mut c = connector(ConnectionSpec::none());
    c.metadata.display_name = " ".into();
    c.backend.host = String::new();
    c.backend.base_path = "api".into();
    assert_findings(
        &c,
        &[
            (Error, "metadata.displayName", "no display name"),
            (Error, "backend.host", "no host"),
            (Error, "backend.basePath", "must start with '/'"),
        ],
    );
    c.metadata.display_name = "Test".into();
    c.backend.base_path = "/".into();
    c.backend.host_template = Some(Template::new("https://example.com"));
    assert_valid(&c);
}

#[test]
fn operation_rules() {
    let op = |id: &str| Operation {
        id: id.into(),
        method: "GET".into(),
        path: "/".into(),
        summary: None,
        description: None,
        parameters: Vec::new(),
        visibility: Default::default(),
        deprecated: false,
        trigger: false,
    };
    let mut c = connector(ConnectionSpec::none());
    c.operations = vec![op("List"), op("List")];
    c.test_operation = Some("Ping".into());
    assert_findings(
        &c,
        &[
            (Warning, "operations.List", "operation id 'List' is used more than once"),
            (Warning, "testOperation", "the test operation 'Ping' is not an operation of this connector"),
        ],
    );
}

// --- The connection form -------------------------------------------------------------------------------

#[test]
fn form_for_basic_auth() {
    let mut username = required(secret("username", "User name"));
    username.clear_text = true;
    let password = required(secret("password", "Password"));
    let c = single(vec![username, password, text("note", "")], basic("username", "password"));
    let form = c.connection_form();
    assert_eq!(form.choice, None);
    let [set] = form.sets.as_slice() else { panic!("{form:?}") };
    assert_eq!(set.auth, "basic");
    assert_eq!(set.oauth, None);
    let [user, pass, note] = set.fields.as_slice() else { panic!("{set:?}") };
    assert_eq!((user.label.as_str(), user.secret, user.masked, user.required), ("User name", true, false, true));
    assert_eq!(user.sent_to, [Destination::BasicUsername]);
    assert_eq!((pass.label.as_str(), pass.secret, pass.masked, pass.required), ("Password", true, true, true));
    assert_eq!(pass.sent_to, [Destination::BasicPassword]);
    assert_eq!(pass.kind, "securestring");
    // A field without a label shows its name; one used nowhere is only stored.
    assert_eq!((note.label.as_str(), note.secret, note.masked, note.required), ("note", false, false, false));
    assert!(note.sent_to.is_empty());
}

#[test]
fn form_for_api_keys_in_header_and_query() {
    let c = single(
        vec![required(secret("api_key", "API key"))],
        api_key(vec![
            key("api_key", "X-Api-Key", ApiKeyLocation::Header),
            key("API_KEY", "key", ApiKeyLocation::Query),
        ]),
    );
    let form = c.connection_form();
    let field = &form.sets[0].fields[0];
    assert_eq!(form.sets[0].auth, "apiKey");
    assert!(field.secret && field.masked && field.required);
    assert_eq!(
        field.sent_to,
        [Destination::Header { name: "X-Api-Key".into() }, Destination::Query { name: "key".into() }]
    );
    assert_eq!(
        field.sent_to.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["header X-Api-Key", "query parameter key"]
    );
}

#[test]
fn form_for_oauth_sub_parameters_host_template_and_policies() {
    let o = OAuth2 { scopes: vec!["read".into()], ..oauth("aad") };
    let mut c = single(
        vec![hidden(text("token:TenantId", "")), text("host", "Host"), secret("tenantKey", "Tenant key")],
        oauth2(o),
    );
    c.backend.host_template = Some(Template::new("https://@connectionParameters('HOST')/api"));
    c.policies = vec![
        Policy {
            kind: PolicyKind::SetHeader {
                name: "X-Tenant-Key".into(),
                value: Template::new("@connectionParameters('tenantKey')"),
            },
            operations: Vec::new(),
        },
        Policy {
            kind: PolicyKind::Other {
                template_id: "routerequesttoendpoint".into(),
                parameters: [(
                    "x-ms-apimTemplateParameter.newPath".to_owned(),
                    serde_json::json!("/@connectionParameters('host')/x"),
                )]
                .into_iter()
                .collect(),
            },
            operations: Vec::new(),
        },
    ];
    let form = c.connection_form();
    let set = &form.sets[0];
    assert_eq!(set.auth, "oauth2");
    let sign_in = set.oauth.as_ref().expect("an OAuth sign-in");
    assert_eq!((sign_in.label.as_str(), sign_in.identity_provider.as_str()), ("Sign in", "aad"));
    assert_eq!((sign_in.grant, sign_in.scopes.as_slice()), (GrantType::AuthorizationCode, &["read".to_owned()][..]));
    let [tenant, host, tenant_key] = set.fields.as_slice() else { panic!("{set:?}") };
    assert!(tenant.hidden && !tenant.secret);
    assert_eq!(tenant.sent_to, [Destination::OAuthSignIn]);
    assert_eq!(host.sent_to, [Destination::Host, Destination::Policy { template_id: "routerequesttoendpoint".into() }]);
    assert_eq!(tenant_key.sent_to, [Destination::Header { name: "X-Tenant-Key".into() }]);
}

#[test]
fn form_for_a_choice_of_sets() {
    let c = connector(ConnectionSpec::Choice {
        ui: Some(UiText { label: "Authentication type".into(), ..UiText::default() }),
        sets: vec![
            set("key", vec![secret("api_key", "Key")], api_key(vec![key("api_key", "X-Key", ApiKeyLocation::Header)])),
            set("none", Vec::new(), Credential::None),
            set("host", vec![text("host", "Host")], Credential::None),
        ],
    });
    let form = c.connection_form();
    assert_eq!(form.choice.as_ref().map(|ui| ui.label.as_str()), Some("Authentication type"));
    let auths: Vec<(&str, &str)> = form.sets.iter().map(|s| (s.name.as_str(), s.auth)).collect();
    assert_eq!(auths, [("key", "apiKey"), ("none", "none"), ("host", "other")]);
    assert_eq!(form.sets[0].ui.as_ref().map(|ui| ui.label.as_str()), Some("KEY"));
}

// --- Templates ------------------------------------------------------------------------------------------

fn lookup<'v>(pairs: &'v [(&'v str, &'v str)]) -> impl FnMut(&str) -> Option<&'v str> {
    move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

#[test]
fn template_marker_is_matched_ignoring_case_and_spaces() {
    let t = Template::new("@CONNECTIONPARAMETERS( 'a' )-@connectionparameters('b' ,'x')");
    assert_eq!(t.render(lookup(&[("a", "1"), ("b", "2")])), "1-2");
    assert_eq!(t.render(lookup(&[])), "-x");
}

#[test]
fn template_references_side_by_side_and_repeated() {
    let t = Template::new("@connectionParameters('a')@connectionParameters('a')@connectionParameters('b')");
    assert_eq!(t.references().len(), 3);
    assert_eq!(t.render(lookup(&[("a", "x"), ("b", "y")])), "xxy");
}

#[test]
fn template_defaults_apply_only_when_there_is_no_value() {
    let t = Template::new("v=@connectionParameters('version','2.0')");
    assert_eq!(t.render(lookup(&[])), "v=2.0");
    assert_eq!(t.render(lookup(&[("version", "")])), "v=", "an empty value is a value");
    assert_eq!(t.render(lookup(&[("version", "3")])), "v=3");
}

#[test]
fn template_defaults_may_hold_brackets_and_commas() {
    let t = Template::new("@connectionParameters('a', 'x,y)z')!");
    assert_eq!(t.references()[0].default, Some("x,y)z"));
    assert_eq!(t.render(lookup(&[])), "x,y)z!");
}

#[test]
fn malformed_references_stay_literal_text() {
    for text in [
        "@connectionParameters(a)",
        "@connectionParameters(\"a\")",
        "@connectionParameters('a'",
        "@connectionParameters('a' 'b')",
        "@connectionParameters('a',)",
        "@connectionParameters(",
        "@connectionParameters('",
        "connectionParameters('a')",
    ] {
        let t = Template::new(text);
        assert!(t.references().is_empty(), "{text}");
        assert_eq!(t.render(|_| Some("V")), text);
    }
}

#[test]
fn a_malformed_reference_does_not_hide_a_good_one_after_it() {
    let t = Template::new("@connectionParameters(x) and @connectionParameters('a')");
    assert_eq!(t.render(lookup(&[("a", "1")])), "@connectionParameters(x) and 1");
}

#[test]
fn templates_keep_non_ascii_text() {
    let t = Template::new("Brønnøysund/@connectionParameters('å')/☃");
    assert_eq!(t.references()[0].name, "å");
    assert_eq!(t.render(lookup(&[("å", "æ")])), "Brønnøysund/æ/☃");
}

#[test]
fn a_missing_value_without_default_renders_as_nothing() {
    let t = Template::new("https://@connectionParameters('host')/api");
    assert_eq!(t.render(lookup(&[])), "https:///api");
}

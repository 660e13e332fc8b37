//! The OpenAPI 3.0 / 3.1 importer, on hand-made documents under `fixtures/openapi/`.

use std::path::{Path, PathBuf};

use portico_import::Import;
use portico_import::openapi::{import_bytes, import_file, import_value};
use portico_import::summary::AuthSummary;
use portico_model::{
    ApiKey, ApiKeyLocation, ConnectionSpec, Connector, Credential, Destination, GrantType, IdentityProviderCatalog,
    OAuth2, Operation, OperationParameter, ParameterLocation, ParameterSet, ParameterType, PolicyKind, Scheme,
    Visibility,
};
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openapi").join(name)
}

fn import(name: &str) -> Import {
    import_file(&fixture(name))
}

/// Imports a document that must pass the importer and the model's validation.
fn good(name: &str) -> (Connector, Import) {
    let import = import(name).validated(&IdentityProviderCatalog::built_in());
    let errors: Vec<String> = import.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}");
    let connector = import.connector.clone().unwrap_or_else(|| panic!("{name}: no connector"));
    (connector, import)
}

fn warnings(import: &Import) -> Vec<String> {
    import.warnings().map(ToString::to_string).collect()
}

fn errors(import: &Import) -> Vec<String> {
    import.errors().map(ToString::to_string).collect()
}

fn has(messages: &[String], needle: &str) -> bool {
    messages.iter().any(|m| m.contains(needle))
}

fn single(connector: &Connector) -> &ParameterSet {
    match &connector.connection {
        ConnectionSpec::Single(set) => set,
        other => panic!("expected a single set, got {other:#?}"),
    }
}

fn choice(connector: &Connector) -> &[ParameterSet] {
    match &connector.connection {
        ConnectionSpec::Choice { sets, .. } => sets,
        other => panic!("expected a choice, got {other:#?}"),
    }
}

fn oauth(set: &ParameterSet) -> &OAuth2 {
    match &set.credential {
        Credential::OAuth2(oauth) => oauth,
        other => panic!("expected OAuth 2.0, got {other:#?}"),
    }
}

fn keys(set: &ParameterSet) -> &[ApiKey] {
    match &set.credential {
        Credential::ApiKey { keys } => keys,
        other => panic!("expected API keys, got {other:#?}"),
    }
}

fn operation<'c>(connector: &'c Connector, id: &str) -> &'c Operation {
    connector.operation(id).unwrap_or_else(|| panic!("no operation {id}"))
}

fn parameter<'o>(op: &'o Operation, name: &str) -> &'o OperationParameter {
    op.parameters.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("{}: no parameter {name}", op.id))
}

fn key(parameter: &str, name: &str, location: ApiKeyLocation, prefix: Option<&str>) -> ApiKey {
    ApiKey { parameter: parameter.into(), name: name.into(), location, prefix: prefix.map(Into::into) }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

// ---- one kind of security scheme each ----

#[test]
fn http_basic_with_server_variables_in_yaml_3_0() {
    let (c, import) = good("basic-3.0.yaml");
    assert_eq!(c.metadata.name, "acme-orders");
    assert_eq!(c.metadata.display_name, "Acme Orders");
    assert_eq!(c.metadata.description.as_deref(), Some("Orders for Acme."));
    assert_eq!(c.metadata.version.as_deref(), Some("1.2.0"));
    assert_eq!(c.backend.scheme, Scheme::Https);
    assert_eq!(c.backend.host, "demo.acme.example.com:8443");
    assert_eq!(c.backend.base_path, "/api/v2");
    assert!(
        has(
            &warnings(&import),
            "2 servers are declared; Portico calls the first, 'https://demo.acme.example.com:8443/api/v2/'"
        ),
        "{:#?}",
        warnings(&import)
    );

    let ids: Vec<&str> = c.operations.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["listOrders", "createOrder", "getOrder", "deleteOrder"]);
    let list = operation(&c, "listOrders");
    assert_eq!((list.method.as_str(), list.path.as_str()), ("GET", "/orders"));
    assert_eq!(list.summary.as_deref(), Some("List orders"));
    let status = parameter(list, "status");
    assert_eq!(status.location, ParameterLocation::Query);
    assert!(!status.required);
    assert_eq!(status.schema_type.as_deref(), Some("string"));
    assert_eq!(status.default, Some(json!("open")));
    assert_eq!(status.enum_values, vec![json!("open"), json!("closed")]);
    let get = operation(&c, "getOrder");
    let order_id = parameter(get, "orderId");
    assert_eq!((order_id.location, order_id.required), (ParameterLocation::Path, true));
    assert_eq!(order_id.schema_type.as_deref(), Some("integer"));
    assert!(operation(&c, "deleteOrder").deprecated);
    assert!(!get.deprecated);
    let body = parameter(operation(&c, "createOrder"), "body");
    assert_eq!((body.location, body.required), (ParameterLocation::Body, true));
    assert_eq!(body.schema_type.as_deref(), Some("object"));

    let set = single(&c);
    assert_eq!(set.credential, Credential::Basic { username: "username".into(), password: "password".into() });
    let username = set.parameter("username").unwrap();
    assert_eq!(
        (username.kind, username.ui.label.as_str(), username.required),
        (ParameterType::String, "Username", true)
    );
    let password = set.parameter("password").unwrap();
    assert_eq!(
        (password.kind, password.ui.label.as_str(), password.required),
        (ParameterType::SecureString, "Password", true)
    );
    assert_eq!(AuthSummary::of(&c.connection).kind, "basic");
}

#[test]
fn http_bearer_in_json_3_1() {
    let (c, _) = good("bearer-3.1.json");
    assert_eq!(c.metadata.description.as_deref(), Some("Notes behind a bearer token."));
    assert_eq!(c.metadata.version.as_deref(), Some("2025-01"));
    assert_eq!(c.backend.base_url(), "https://notes.example.com");
    assert_eq!(c.backend.base_path, "/");
    // The path item comes from components.pathItems.
    assert_eq!(operation(&c, "listNotes").summary.as_deref(), Some("List notes"));
    let get = operation(&c, "getNote");
    assert!(parameter(get, "id").required, "path parameters are always required");
    assert_eq!(parameter(get, "fields").schema_type.as_deref(), Some("string"));
    assert!(get.parameters.iter().all(|p| p.name != "Accept"), "Accept headers are ignored");

    let set = single(&c);
    assert_eq!(keys(set), [key("bearer_token", "Authorization", ApiKeyLocation::Header, Some("Bearer "))]);
    let token = set.parameter("bearer_token").unwrap();
    assert_eq!(
        (token.kind, token.ui.label.as_str(), token.required),
        (ParameterType::SecureString, "Bearer token", true)
    );
    assert_eq!(token.ui.description.as_deref(), Some("A JWT token"));
    let summary = AuthSummary::of(&c.connection);
    assert_eq!(
        (summary.kind, summary.location, summary.name.as_deref()),
        ("apiKey", Some("header"), Some("Authorization"))
    );
}

#[test]
fn api_key_in_a_header_3_0() {
    let (c, import) = good("apikey-header-3.0.json");
    assert_eq!(
        (c.backend.scheme, c.backend.host.as_str(), c.backend.base_path.as_str()),
        (Scheme::Http, "localhost:8080", "/")
    );
    let set = single(&c);
    assert_eq!(keys(set), [key("api_key", "X-API-Key", ApiKeyLocation::Header, None)]);
    let api_key = set.parameter("api_key").unwrap();
    assert_eq!(api_key.ui.label, "Your Weather Now API key", "the label is the description's first sentence");
    assert_eq!(api_key.ui.description.as_deref(), Some("Your Weather Now API key. Find it under Settings > Keys."));
    assert!(api_key.required && api_key.kind == ParameterType::SecureString);
    let summary = AuthSummary::of(&c.connection);
    assert_eq!(
        (summary.kind, summary.location, summary.name.as_deref()),
        ("apiKey", Some("header"), Some("X-API-Key"))
    );
    assert_eq!(summary.describe(), "apiKey (header X-API-Key)");

    let forecast = operation(&c, "forecast");
    let city = parameter(forecast, "city");
    assert_eq!((city.required, city.summary.as_deref()), (true, Some("City")));
    let days = parameter(forecast, "days");
    assert_eq!((days.default.clone(), days.visibility), (Some(json!(3)), Visibility::Advanced));
    // `health` opts out of security, which one connection cannot express.
    assert!(has(&warnings(&import), "operation 'health' declares its own security requirements"));
}

#[test]
fn api_key_in_the_query_in_yaml_3_1() {
    let (c, _) = good("apikey-query-3.1.yaml");
    assert_eq!(c.backend.base_url(), "https://geo.example.com/v3");
    let set = single(&c);
    assert_eq!(keys(set), [key("api_key", "key", ApiKeyLocation::Query, None)]);
    assert_eq!(set.parameter("api_key").unwrap().ui.label, "API key");
    let q = parameter(operation(&c, "lookup"), "q");
    assert_eq!((q.schema_type.as_deref(), q.required), (Some("string"), true));
    let summary = AuthSummary::of(&c.connection);
    assert_eq!((summary.kind, summary.location, summary.name.as_deref()), ("apiKey", Some("query"), Some("key")));
    let form = c.connection_form();
    assert_eq!(form.sets[0].fields[0].sent_to, [Destination::Query { name: "key".into() }]);
}

#[test]
fn api_key_in_a_cookie_3_0() {
    let (c, _) = good("apikey-cookie-3.0.json");
    assert_eq!(keys(single(&c)), [key("api_key", "PORTAL_SESSION", ApiKeyLocation::Cookie, None)]);
    let summary = AuthSummary::of(&c.connection);
    assert_eq!(
        (summary.kind, summary.location, summary.name.as_deref()),
        ("apiKey", Some("cookie"), Some("PORTAL_SESSION"))
    );
}

#[test]
fn oauth2_authorization_code_with_refresh_url_and_scopes_in_yaml_3_1() {
    let (c, import) = good("oauth2-authorization-code-3.1.yaml");
    let set = single(&c);
    assert!(set.parameters.is_empty(), "the sign-in needs no typed parameter");
    let oauth = oauth(set);
    assert_eq!(oauth.identity_provider.as_str(), "oauth2");
    assert_eq!(oauth.grant, GrantType::AuthorizationCode);
    assert_eq!(oauth.parameter, "token");
    assert_eq!(oauth.authorization_url.as_deref(), Some("https://auth.calendar.example.com/authorize"));
    assert_eq!(oauth.token_url.as_deref(), Some("https://auth.calendar.example.com/token"));
    assert_eq!(oauth.refresh_url.as_deref(), Some("https://auth.calendar.example.com/refresh"));
    assert_eq!(oauth.scopes, strings(&["events.read", "events.write"]), "the requirement's scopes win");
    assert_eq!(set.ui.as_ref().unwrap().description.as_deref(), Some("Sign in with your Calendar Cloud account."));
    let summary = AuthSummary::of(&c.connection);
    assert_eq!((summary.kind, summary.identity_provider.as_deref()), ("oauth2", Some("oauth2")));

    assert_eq!(c.operations.len(), 3);
    let body = parameter(operation(&c, "createEvent"), "body");
    assert_eq!((body.schema_type.as_deref(), body.required), (Some("object"), false));
    assert!(has(&warnings(&import), "operation 'listCalendars' declares its own security requirements"));
    assert!(!has(&warnings(&import), "'listEvents'"));
}

#[test]
fn oauth2_client_credentials_with_a_relative_token_url_3_0() {
    let (c, _) = good("oauth2-client-credentials-3.0.json");
    let oauth = oauth(single(&c));
    assert_eq!(oauth.grant, GrantType::ClientCredentials);
    assert_eq!(oauth.token_url.as_deref(), Some("https://billing.example.com/oauth/token"));
    assert_eq!(oauth.authorization_url, None);
    assert_eq!(oauth.scopes, strings(&["invoices:read", "invoices:write"]), "the flow's scopes when none are required");
}

#[test]
fn oauth2_with_both_flows_is_a_choice_3_1() {
    let (c, import) = good("oauth2-both-flows-3.1.json");
    let sets = choice(&c);
    let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["hub_authorizationCode", "hub_clientCredentials"]);
    let code = oauth(&sets[0]);
    assert_eq!(code.grant, GrantType::AuthorizationCode);
    assert_eq!(code.authorization_url.as_deref(), Some("https://login.hub.example.com/authorize"));
    assert_eq!(code.scopes, strings(&["data"]));
    let machine = oauth(&sets[1]);
    assert_eq!(machine.grant, GrantType::ClientCredentials);
    assert_eq!(machine.token_url.as_deref(), Some("https://login.hub.example.com/token"));
    assert!(has(&warnings(&import), "the OAuth 2.0 implicit flow is not supported"));
    let summary = AuthSummary::of(&c.connection);
    assert_eq!(summary.kind, "multiple");
    assert_eq!(
        summary.describe(),
        "multiple: hub_authorizationCode=oauth2 (oauth2) | hub_clientCredentials=oauth2 (oauth2)"
    );
}

#[test]
fn openid_connect_uses_discovery_in_yaml_3_0() {
    let (c, _) = good("openidconnect-3.0.yaml");
    let oauth = oauth(single(&c));
    assert_eq!(oauth.identity_provider.as_str(), "openidconnect");
    assert_eq!(oauth.discovery_url.as_deref(), Some("https://id.example.com/.well-known/openid-configuration"));
    assert_eq!(oauth.scopes, strings(&["openid", "profile"]));
    assert_eq!((oauth.authorization_url.as_ref(), oauth.token_url.as_ref()), (None, None));
    assert_eq!(AuthSummary::of(&c.connection).describe(), "oauth2 (openidconnect)");
}

// ---- combinations of requirements ----

#[test]
fn alternatives_become_a_choice_including_no_auth() {
    let (c, _) = good("alternatives-3.1.yaml");
    let sets = choice(&c);
    let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["apiKey", "oauth", "none"]);
    assert_eq!(keys(&sets[0]), [key("api_key", "X-Library-Key", ApiKeyLocation::Header, None)]);
    assert_eq!(oauth(&sets[1]).scopes, strings(&["books.read"]));
    assert_eq!((&sets[2].credential, sets[2].parameters.len()), (&Credential::None, 0));
    let summary = AuthSummary::of(&c.connection);
    let kinds: Vec<(&str, &str)> =
        summary.sets.as_ref().unwrap().iter().map(|s| (s.name.as_str(), s.auth.kind)).collect();
    assert_eq!(kinds, [("apiKey", "apiKey"), ("oauth", "oauth2"), ("none", "none")]);
}

#[test]
fn two_keys_required_together_share_one_set() {
    let (c, _) = good("two-keys-3.0.json");
    let set = single(&c);
    assert_eq!(
        keys(set),
        [key("appId", "X-App-Id", ApiKeyLocation::Header, None), key("appKey", "app_key", ApiKeyLocation::Query, None),]
    );
    let labels: Vec<&str> = set.parameters.iter().map(|p| p.ui.label.as_str()).collect();
    assert_eq!(labels, ["API key (X-App-Id)", "API key (app_key)"]);
    assert!(set.parameters.iter().all(|p| p.required && p.kind == ParameterType::SecureString));
    let summary = AuthSummary::of(&c.connection);
    assert_eq!((summary.kind, summary.location, summary.name.as_deref()), ("apiKey", Some("header"), Some("X-App-Id")));
}

#[test]
fn basic_and_a_key_together_send_the_key_by_policy() {
    let (c, import) = good("basic-and-key-3.1.yaml");
    let set = single(&c);
    assert!(matches!(set.credential, Credential::Basic { .. }));
    let names: Vec<&str> = set.parameters.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["username", "password", "subscription"]);
    assert_eq!(c.policies.len(), 1);
    match &c.policies[0].kind {
        PolicyKind::SetHeader { name, value } => {
            assert_eq!(name, "Ocp-Apim-Subscription-Key");
            assert_eq!(value.as_str(), "@connectionParameters('subscription')");
        }
        other => panic!("expected a header policy, got {other:?}"),
    }
    assert!(has(&warnings(&import), "sent by a policy on every call"));
    let form = c.connection_form();
    let field = form.sets[0].fields.iter().find(|f| f.name == "subscription").unwrap();
    assert_eq!(field.sent_to, [Destination::Header { name: "Ocp-Apim-Subscription-Key".into() }]);
}

#[test]
fn no_security_means_no_auth() {
    let (c, import) = good("no-security-3.1.json");
    assert_eq!(c.connection, ConnectionSpec::none());
    assert_eq!(c.backend.base_path, "/api");
    assert_eq!(AuthSummary::of(&c.connection).kind, "none");
    let year = parameter(operation(&c, "holidays"), "year");
    assert_eq!((year.location, year.schema_type.as_deref()), (ParameterLocation::Path, Some("integer")));
    assert!(warnings(&import).is_empty(), "{:#?}", warnings(&import));
}

#[test]
fn declared_schemes_without_requirements_are_offered_one_by_one() {
    let (c, import) = good("schemes-without-requirements-3.0.yaml");
    assert!(has(&warnings(&import), "no security requirement is declared"));
    let sets = choice(&c);
    let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["token", "basic"]);
    assert_eq!(keys(&sets[0]), [key("bearer_token", "Authorization", ApiKeyLocation::Header, Some("Bearer "))]);
    assert_eq!(sets[0].parameters[0].ui.label, "A personal access token from your profile page");
    assert!(matches!(sets[1].credential, Credential::Basic { .. }));
}

// ---- references and request bodies ----

#[test]
fn references_to_parameters_bodies_schemas_and_schemes_are_followed() {
    let (c, import) = good("refs-3.0.json");
    let ids: Vec<&str> = c.operations.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["get_items", "createItem", "getItem", "put_items_itemId"]);
    assert!(has(&warnings(&import), "has no operationId; it is called 'get_items'"));

    let list = operation(&c, "get_items");
    let names: Vec<(&str, ParameterLocation)> = list.parameters.iter().map(|p| (p.name.as_str(), p.location)).collect();
    assert_eq!(names, [("pageSize", ParameterLocation::Query), ("tenant", ParameterLocation::Header)]);
    let page_size = parameter(list, "pageSize");
    assert!(page_size.required, "the operation's parameter replaces the path item's");
    assert_eq!(page_size.schema_type.as_deref(), Some("integer"));
    assert_eq!(page_size.enum_values, vec![json!(10), json!(20), json!(50)]);
    assert_eq!(page_size.default, Some(json!(10)));
    // The path item's own pageSize, as the create operation sees it.
    let create = operation(&c, "createItem");
    let shared = parameter(create, "pageSize");
    assert_eq!((shared.required, shared.default.clone()), (false, Some(json!(20))));
    assert_eq!(shared.description.as_deref(), Some("Items per page."));
    let body = parameter(create, "body");
    assert_eq!((body.required, body.schema_type.as_deref()), (true, Some("object")));
    assert_eq!(body.description.as_deref(), Some("The item to store."));

    let item_id = parameter(operation(&c, "getItem"), "itemId");
    assert_eq!((item_id.location, item_id.schema_type.as_deref()), (ParameterLocation::Path, Some("string")));
    assert_eq!(parameter(operation(&c, "put_items_itemId"), "body").location, ParameterLocation::Body);

    assert_eq!(keys(single(&c)), [key("api_key", "X-Inventory-Key", ApiKeyLocation::Header, None)]);
}

#[test]
fn broken_references_are_warnings_never_loops() {
    let import = import("broken-refs-3.1.json");
    let warnings = warnings(&import);
    assert!(errors(&import).is_empty(), "{:#?}", errors(&import));
    assert!(has(&warnings, "leads back to itself"), "{warnings:#?}");
    assert!(has(&warnings, "'#/components/parameters/Missing' points to nothing"));
    assert!(has(&warnings, "external reference 'other.yaml#/components/parameters/Elsewhere' is not followed"));
    assert!(has(&warnings, "'#/components/pathItems/Missing' points to nothing"));
    let c = import.connector.unwrap();
    assert_eq!(c.operations.len(), 1, "the path item that points nowhere is skipped");
    let get = operation(&c, "getA");
    let names: Vec<&str> = get.parameters.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["ok"], "the body and the broken parameters are dropped");
    assert_eq!(get.parameters[0].schema_type, None);
}

#[test]
fn request_bodies_become_a_body_or_form_fields() {
    let (c, _) = good("request-bodies-3.1.yaml");
    let upload = operation(&c, "uploadDocument");
    let fields: Vec<(&str, Option<&str>, bool)> =
        upload.parameters.iter().map(|p| (p.name.as_str(), p.schema_type.as_deref(), p.required)).collect();
    assert_eq!(
        fields,
        [("file", Some("file"), true), ("title", Some("string"), false), ("tags", Some("array"), false)]
    );
    assert!(upload.parameters.iter().all(|p| p.location == ParameterLocation::FormData));
    assert_eq!(parameter(upload, "file").description.as_deref(), Some("The document."));

    let login = operation(&c, "login");
    let remember = parameter(login, "remember");
    assert_eq!((remember.location, remember.default.clone()), (ParameterLocation::FormData, Some(json!(false))));
    assert!(parameter(login, "user").required);

    let note = operation(&c, "addNote");
    assert_eq!(note.parameters.len(), 1);
    let body = parameter(note, "body");
    assert_eq!(body.schema_type.as_deref(), Some("object"), "JSON is preferred over text/plain");
    assert_eq!(body.description.as_deref(), Some("The note."));

    let settings = operation(&c, "putSettings");
    let names: Vec<&str> = settings.parameters.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["body"], "a form with a nested object stays one body");
}

// ---- errors ----

#[test]
fn mutual_tls_is_an_unsupported_scheme_type() {
    let import = import("error-mutual-tls-3.1.yaml");
    let errors = errors(&import);
    assert!(
        errors.iter().any(|e| e.ends_with(
            "error-mutual-tls-3.1.yaml#/components/securitySchemes/mtls/type: unsupported security scheme type 'mutualTLS'"
        )),
        "{errors:#?}"
    );
    assert!(!import.is_ok());
    assert_eq!(import.connector.unwrap().operations.len(), 1, "the rest of the document is still read");
}

#[test]
fn an_unknown_api_key_location_is_named() {
    let import = import("error-apikey-location-3.0.json");
    let errors = errors(&import);
    assert!(has(&errors, "#/components/securitySchemes/bodyKey/in: unknown API key location 'body'"), "{errors:#?}");
    assert!(!import.is_ok());
}

#[test]
fn swagger_2_points_to_the_power_platform_import() {
    let import = import("error-swagger-2.0.json");
    assert!(import.connector.is_none());
    let errors = errors(&import);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("Swagger 2.0 document, not OpenAPI 3"), "{errors:#?}");
    assert!(errors[0].contains("Power Platform connector"));
}

#[test]
fn a_relative_server_url_is_an_error() {
    let import = import("error-relative-server-3.0.json");
    assert!(
        has(&errors(&import), "#/servers/0/url: no absolute server URL: '/api/v1' is relative"),
        "{:#?}",
        errors(&import)
    );
    let no_servers = import_value(&json!({"openapi": "3.0.0", "info": {"title": "T"}, "paths": {}}), "t.json");
    assert!(has(&errors(&no_servers), "t.json#/servers: no absolute server URL"));
}

#[test]
fn broken_yaml_is_reported_with_line_and_column() {
    let import = import("error-broken.yaml");
    assert!(import.connector.is_none());
    let error = &import.diagnostics[0];
    assert!(error.is_error());
    assert!(error.at.ends_with("error-broken.yaml:4:12"), "the quote opens on line 4: {error}");
    assert_eq!(error.message, "invalid YAML: unclosed quote");
}

#[test]
fn broken_json_is_reported_with_line_and_column() {
    let import = import("error-broken.json");
    assert!(import.connector.is_none());
    let error = import.errors().next().unwrap();
    let position = error.at.rsplit_once("error-broken.json:").map(|(_, p)| p).unwrap_or_else(|| panic!("{error}"));
    let (line, column) = position.split_once(':').unwrap_or_else(|| panic!("{error}"));
    assert_eq!(line, "5", "{error}");
    assert!(column.parse::<u64>().is_ok(), "{error}");
}

#[test]
fn documents_that_are_not_openapi_3_are_refused() {
    let cases = [
        (json!([1, 2]), "the top level is not an object"),
        (json!({"info": {"title": "x"}}), "no 'openapi: 3.x' field"),
        (json!({"openapi": "2.5"}), "unsupported OpenAPI version '2.5'"),
        (json!({"openapi": true}), "unsupported OpenAPI version 'true'"),
    ];
    for (doc, message) in cases {
        let import = import_value(&doc, "doc.json");
        assert!(import.connector.is_none(), "{doc}");
        assert!(has(&errors(&import), message), "{doc}: {:#?}", import.diagnostics);
    }
}

#[test]
fn a_version_written_as_a_yaml_number_is_a_warning() {
    let yaml = b"openapi: 3.1\ninfo: {title: Numbers}\nservers: [{url: 'https://n.example.com'}]\npaths: {}\n";
    let import = import_bytes(yaml, "numbers.yaml");
    assert!(import.is_ok(), "{:#?}", import.diagnostics);
    assert!(has(&warnings(&import), "#/openapi: the version should be a string"));
}

#[test]
fn an_unreadable_file_names_its_path() {
    let path = fixture("does-not-exist.yaml");
    let import = import_file(&path);
    assert!(import.connector.is_none());
    assert_eq!(import.diagnostics[0].at, path.display().to_string());
    assert!(import.diagnostics[0].message.starts_with("cannot read the file"));
}

#[test]
fn json_or_yaml_is_told_by_extension_then_by_content() {
    let json = std::fs::read(fixture("no-security-3.1.json")).unwrap();
    let yaml = std::fs::read(fixture("apikey-query-3.1.yaml")).unwrap();
    for (bytes, name, title) in [
        (&json, "openapi", "Public Holidays"),
        (&yaml, "openapi", "Geo Lookup"),
        (&yaml, "API.YML", "Geo Lookup"),
        (&json, "api.txt", "Public Holidays"),
    ] {
        let import = import_bytes(bytes, name);
        assert_eq!(import.connector.map(|c| c.metadata.display_name), Some(title.to_owned()), "{name}");
    }
    // A JSON document named .yaml is still read: YAML is a superset of JSON.
    assert!(import_bytes(&json, "holidays.yaml").is_ok());
    // UTF-8 with a byte-order mark, as some editors save it.
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(&yaml);
    assert!(import_bytes(&bom, "bom.yaml").is_ok());
    // UTF-16 with a byte-order mark, as Windows tools save it.
    let text = String::from_utf8(yaml.clone()).unwrap();
    let utf16: Vec<u8> = [0xFF, 0xFE].into_iter().chain(text.encode_utf16().flat_map(u16::to_le_bytes)).collect();
    assert!(import_bytes(&utf16, "utf16.yaml").is_ok());
    let invalid = import_bytes(b"openapi: 3.0.0\ninfo:\n  title: \xff\n", "latin.yaml");
    assert_eq!(invalid.diagnostics[0].to_string(), "latin.yaml:3:10: the file is not valid UTF-8");
}

#[test]
fn unquoted_response_codes_in_yaml_are_fine() {
    // basic-3.0.yaml has `200:` as a key, which YAML reads as a number.
    let import = import("basic-3.0.yaml");
    assert!(import.is_ok(), "{:#?}", import.diagnostics);
}

#[test]
fn unsupported_schemes_and_flows_are_reported() {
    let doc = |scheme: Value| {
        json!({
            "openapi": "3.0.3",
            "info": {"title": "T", "version": "1"},
            "servers": [{"url": "https://t.example.com"}],
            "security": [{"s": []}],
            "components": {"securitySchemes": {"s": scheme}},
            "paths": {}
        })
    };
    let cases = [
        (json!({"type": "http", "scheme": "digest"}), "unsupported HTTP authentication scheme 'digest'", true),
        (json!({"type": "apiKey", "in": "header"}), "has no name to send the key under", true),
        (
            json!({"type": "oauth2", "flows": {"implicit": {"authorizationUrl": "https://a", "scopes": {}}}}),
            "has no flow Portico supports",
            false,
        ),
        (
            json!({"type": "oauth2", "flows": {"authorizationCode": {"tokenUrl": "https://t"}}}),
            "has no authorizationUrl",
            true,
        ),
        (json!({"type": "openIdConnect"}), "has no openIdConnectUrl", true),
        (json!({"type": "magic"}), "unsupported security scheme type 'magic'", true),
        (json!({"description": "no type"}), "has no type", true),
    ];
    for (scheme, message, own_error) in cases {
        let import = import_value(&doc(scheme.clone()), "t.json");
        let all: Vec<String> = import.diagnostics.iter().map(ToString::to_string).collect();
        assert!(has(&all, message), "{scheme}: {all:#?}");
        assert!(!import.is_ok(), "{scheme}: a connector without a usable way to connect is an error");
        if !own_error {
            assert!(has(&errors(&import), "none of the security requirements can be used"), "{all:#?}");
        }
    }
    let unknown = import_value(
        &json!({"openapi": "3.0.3", "info": {"title": "T"}, "servers": [{"url": "https://t.example.com"}],
                "security": [{"ghost": []}], "paths": {}}),
        "t.json",
    );
    assert!(has(&errors(&unknown), "t.json#/security/0/ghost: the security requirement names 'ghost'"));
}

#[test]
fn operations_without_top_level_security_share_their_requirements() {
    let (c, import) = good("operation-security-3.0.json");
    assert!(has(&warnings(&import), "the operations declare different ones"));
    let names: Vec<&str> = choice(&c).iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["key", "basic"]);
    let synthesized = &c.operations[1];
    assert_eq!(synthesized.id, "get_pets_id");
    assert!(parameter(synthesized, "id").required, "an undeclared path parameter is added");
    assert!(has(&warnings(&import), "the path parameter 'id' is not declared"));
}

#[test]
fn two_credentials_for_the_authorization_header_cannot_be_combined() {
    let import = import("error-authorization-clash-3.1.yaml");
    assert!(has(
        &warnings(&import),
        "#/security: security must be a list of requirement objects; this object is read as one requirement"
    ));
    assert!(
        has(
            &errors(&import),
            "#/security: the OAuth 2.0 credential and 'jwt' would both be sent as the Authorization header"
        ),
        "{:#?}",
        import.diagnostics
    );
    assert_eq!(import.connector.unwrap().connection, ConnectionSpec::none());
}

/// The importer does not care which 3.x version or which syntax a document uses: every good
/// fixture, rewritten as 3.0 and 3.1, in JSON and in YAML, gives the same connector.
#[test]
fn every_fixture_reads_the_same_as_3_0_and_3_1_in_json_and_yaml() {
    for (name, bytes) in all_fixtures().into_iter().filter(|(name, _)| !name.starts_with("error-")) {
        let original = import_bytes(&bytes, &name);
        let expected = original.connector.unwrap_or_else(|| panic!("{name}"));
        let mut doc = parse(&bytes, &name).unwrap();
        for version in ["3.0.3", "3.1.0"] {
            doc["openapi"] = json!(version);
            let json = serde_json::to_vec_pretty(&doc).unwrap();
            let yaml = serde_saphyr::to_string(&doc).unwrap();
            for (text, file) in [(json, "doc.json"), (yaml.into_bytes(), "doc.yaml")] {
                let import = import_bytes(&text, file);
                assert_eq!(import.connector.as_ref(), Some(&expected), "{name} as {version} {file}");
                assert_eq!(import.diagnostics.len(), original.diagnostics.len(), "{name} as {version} {file}");
            }
        }
    }
}

#[test]
fn every_visible_connection_parameter_has_a_label() {
    let mut connectors = 0;
    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let path = entry.unwrap().path();
        let Some(c) = import_file(&path).connector else { continue };
        connectors += 1;
        for set in c.connection.sets() {
            for p in set.parameters.iter().filter(|p| !p.hidden) {
                assert!(!p.ui.label.trim().is_empty(), "{}: {}", path.display(), p.name);
            }
        }
    }
    assert!(connectors >= MOST_FIXTURES, "only {connectors} fixtures imported");
}

/// How many of the OpenAPI fixtures import (or parse): the loops over them must not run empty.
const MOST_FIXTURES: usize = 20;

// ---- robustness ----

/// A small deterministic generator, so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn all_fixtures() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn truncated_and_garbled_documents_never_panic() {
    let mut rng = Lcg(7);
    for (name, bytes) in all_fixtures() {
        let step = (bytes.len() / 40).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            let _ = import_bytes(&bytes[..cut], &name);
        }
        for _ in 0..60 {
            let mut garbled = bytes.clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(garbled.len());
                let byte = b"{}[]:,\"'-#&*!|>%@`\n \t\\\xff\x00ab1"[rng.below(26)];
                match rng.below(3) {
                    0 => garbled[at] = byte,
                    1 => garbled.insert(at, byte),
                    _ => {
                        garbled.remove(at);
                    }
                }
                if garbled.is_empty() {
                    break;
                }
            }
            let _ = import_bytes(&garbled, &name);
        }
    }
}

/// Every node replaced, in turn, by values of the wrong shape.
#[test]
fn values_of_the_wrong_shape_never_panic() {
    let replacements =
        [Value::Null, json!(0), json!(-1.5), json!(""), json!("#/x"), json!([]), json!({}), json!({"$ref": "#"})];
    let mut documents = 0;
    for (name, bytes) in all_fixtures() {
        let Some(doc) = parse(&bytes, &name) else { continue };
        documents += 1;
        let mut pointers = Vec::new();
        collect_pointers(&doc, String::new(), &mut pointers);
        for pointer in &pointers {
            for replacement in &replacements {
                let mut mutated = doc.clone();
                *mutated.pointer_mut(pointer).unwrap() = replacement.clone();
                let _ = import_value(&mutated, &name).validated(&IdentityProviderCatalog::built_in());
            }
        }
    }
    assert!(documents >= MOST_FIXTURES, "only {documents} fixtures parsed");
}

fn parse(bytes: &[u8], name: &str) -> Option<Value> {
    if name.ends_with(".json") { serde_json::from_slice(bytes).ok() } else { serde_saphyr::from_slice(bytes).ok() }
}

fn collect_pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let child = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(child.clone());
                collect_pointers(v, child, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let child = format!("{at}/{i}");
                out.push(child.clone());
                collect_pointers(v, child, out);
            }
        }
        _ => {}
    }
}

#[test]
fn connection_parameters_are_the_ones_a_form_needs() {
    let (c, _) = good("two-keys-3.0.json");
    let form = c.connection_form();
    let sent: Vec<(String, Vec<Destination>)> =
        form.sets[0].fields.iter().map(|f| (f.name.clone(), f.sent_to.clone())).collect();
    assert_eq!(
        sent,
        [
            ("appId".to_owned(), vec![Destination::Header { name: "X-App-Id".into() }]),
            ("appKey".to_owned(), vec![Destination::Query { name: "app_key".into() }]),
        ]
    );
}

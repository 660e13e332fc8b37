//! The Power Platform importer on small hand-made connector folders, one per way of declaring
//! a connection (`tests/fixtures/power-platform/<name>/`).

use std::path::PathBuf;

use portico_import::Import;
use portico_import::power_platform::{import_bytes, import_folder, import_values};
use portico_import::summary::AuthSummary;
use portico_model::{
    AllowedValue, ApiKey, ApiKeyLocation, ConnectionSpec, Connector, Credential, Destination, GrantType,
    IdentityProviderCatalog, OAuth2, ParameterLocation, ParameterSet, ParameterType, PolicyKind, Scheme, Visibility,
};
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/power-platform").join(name)
}

/// Imports the fixture and adds the model's validation, as publishing does.
fn import(name: &str) -> Import {
    import_folder(&fixture(name)).validated(&IdentityProviderCatalog::built_in())
}

/// The connector of a fixture that must import with no errors.
fn connector(name: &str) -> Connector {
    let import = import(name);
    let errors: Vec<String> = import.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}");
    import.connector.expect("a connector")
}

fn single(connector: &Connector) -> &ParameterSet {
    match &connector.connection {
        ConnectionSpec::Single(set) => set,
        ConnectionSpec::Choice { .. } => panic!("expected a single parameter set"),
    }
}

fn oauth(set: &ParameterSet) -> &OAuth2 {
    match &set.credential {
        Credential::OAuth2(oauth) => oauth,
        other => panic!("expected OAuth 2.0, got {other:?}"),
    }
}

fn messages(import: &Import) -> Vec<String> {
    import.diagnostics.iter().map(ToString::to_string).collect()
}

#[test]
fn github_sign_in_takes_its_endpoints_from_the_catalog() {
    let connector = connector("github-oauth");
    assert_eq!(connector.metadata.display_name, "GitHub Issues");
    assert_eq!(connector.metadata.name, "github-issues");
    assert_eq!(connector.metadata.brand_color.as_deref(), Some("#24292F"));
    assert_eq!(connector.metadata.capabilities, ["actions"]);
    assert_eq!(connector.metadata.stack_owner.as_deref(), Some("GitHub"));
    assert_eq!(connector.backend.base_url(), "https://api.github.com");

    let set = single(&connector);
    // The sign-in is the credential, not a field the user types.
    assert!(set.parameters.is_empty());
    let oauth = oauth(set);
    assert_eq!(oauth.parameter, "token");
    assert_eq!(oauth.label.as_deref(), Some("Sign in with GitHub"));
    assert_eq!(oauth.identity_provider.as_str(), "github");
    assert_eq!(oauth.client_id.as_deref(), Some("[[GitHub OAuth app client id]]"));
    assert_eq!(oauth.scopes, ["repo", "read:user"]);
    assert_eq!((oauth.authorization_url.as_deref(), oauth.token_url.as_deref()), (None, None));
    assert_eq!(oauth.grant, GrantType::AuthorizationCode);

    let summary = AuthSummary::of(&connector.connection);
    assert_eq!((summary.kind, summary.identity_provider.as_deref()), ("oauth2", Some("github")));
    let issues = connector.operation("ListIssues").expect("ListIssues");
    assert_eq!((issues.method.as_str(), issues.path.as_str()), ("GET", "/repos/{owner}/{repo}/issues"));
    assert_eq!(issues.parameters[1].summary.as_deref(), Some("Repository"));
}

#[test]
fn google_sign_in_splits_scopes_and_reads_urls_from_the_swagger() {
    let connector = connector("google-oauth");
    assert_eq!(connector.backend.scheme, Scheme::Https, "https is preferred when both are listed");
    assert_eq!(connector.backend.base_url(), "https://www.googleapis.com/drive/v3");
    let oauth = oauth(single(&connector));
    assert_eq!(oauth.identity_provider.as_str(), "google");
    assert_eq!(oauth.scopes, ["openid", "email", "https://www.googleapis.com/auth/drive.readonly"]);
    assert_eq!(oauth.authorization_url.as_deref(), Some("https://accounts.google.com/o/oauth2/v2/auth"));
    assert_eq!(oauth.token_url.as_deref(), Some("https://oauth2.googleapis.com/token"));
    assert_eq!(oauth.redirect_mode.as_deref(), Some("GlobalPerConnector"));
    assert_eq!(oauth.label, None);
}

#[test]
fn basic_auth_keeps_the_authors_labels() {
    let connector = connector("basic-custom-labels");
    let set = single(&connector);
    assert_eq!(set.credential, Credential::Basic { username: "userName".into(), password: "password".into() });
    let username = set.parameter("username").expect("username");
    assert_eq!(username.ui.label, "Account email");
    assert_eq!(username.ui.description.as_deref(), Some("The email address you sign in with"));
    assert_eq!(username.ui.tooltip.as_deref(), Some("Provide the email address"));
    assert!(username.required && username.clear_text && username.kind == ParameterType::SecureString);
    assert_eq!(username.tab_index, Some(2));
    let password = set.parameter("password").expect("password");
    assert_eq!(password.ui.label, "API secret");
    assert!(password.required && !password.clear_text, "`required: true` as a bool counts too");
    let form = connector.connection_form();
    assert_eq!(form.sets[0].fields[0].sent_to, [Destination::BasicUsername]);
}

#[test]
fn api_key_in_the_query() {
    let import = import("api-key-query");
    assert!(import.diagnostics.is_empty(), "{:#?}", messages(&import));
    let connector = import.connector.expect("a connector");
    let set = single(&connector);
    let key = ApiKey { parameter: "api_key".into(), name: "key".into(), location: ApiKeyLocation::Query, prefix: None };
    assert_eq!(set.credential, Credential::ApiKey { keys: vec![key] });
    assert_eq!(set.parameters[0].ui.label, "API Key");
    let summary = AuthSummary::of(&connector.connection);
    assert_eq!((summary.kind, summary.location, summary.name.as_deref()), ("apiKey", Some("query"), Some("key")));
}

#[test]
fn api_key_in_the_authorization_header_is_sent_verbatim() {
    let connector = connector("api-key-authorization-header");
    let set = single(&connector);
    let Credential::ApiKey { keys } = &set.credential else { panic!("expected an API key") };
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].parameter, "apiKey", "the only secure parameter holds the key");
    assert_eq!((keys[0].name.as_str(), keys[0].location), ("Authorization", ApiKeyLocation::Header));
    assert_eq!(keys[0].prefix, None, "the user types 'Bearer …' themselves");
    assert_eq!(set.parameter("siteHost").expect("siteHost").ui.label, "Site host");
}

#[test]
fn parameter_sets_become_a_choice() {
    let import = import("multi-auth");
    assert!(import.is_ok(), "{:#?}", messages(&import));
    assert!(
        import.warnings().any(|w| w.at == "apiProperties.json#/properties/connectionParameters"
            && w.message.contains("connectionParameterSets takes its place")),
        "{:#?}",
        messages(&import)
    );
    let connector = import.connector.expect("a connector");
    let ConnectionSpec::Choice { ui, sets } = &connector.connection else { panic!("expected a choice") };
    assert_eq!(ui.as_ref().map(|u| u.label.as_str()), Some("Authentication Type"));
    let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["api-auth", "basic-auth", "entra"]);

    // Set names equal to security-definition names link the two files.
    let Credential::ApiKey { keys } = &sets[0].credential else { panic!("api-auth: expected an API key") };
    assert_eq!((keys[0].parameter.as_str(), keys[0].name.as_str()), ("api_key", "X-App-Token"));
    let environment = sets[0].parameter("environment").expect("environment");
    assert_eq!(environment.default.as_deref(), Some("api.us.example.com"));
    assert_eq!(
        environment.allowed_values,
        [
            AllowedValue { value: "api.us.example.com".into(), label: Some("United States".into()) },
            AllowedValue { value: "api.eu.example.com".into(), label: Some("Europe".into()) },
        ]
    );

    assert_eq!(sets[1].credential, Credential::Basic { username: "username".into(), password: "password".into() });
    assert_eq!(sets[1].ui.as_ref().map(|u| u.label.as_str()), Some("API key ID and secret"), "lowercase displayname");

    let oauth = oauth(&sets[2]);
    assert_eq!(oauth.identity_provider.as_str(), "aad");
    assert!(oauth.scopes.is_empty(), "scopes: null");
    let entra = oauth.entra.as_ref().expect("Entra ID settings");
    assert_eq!(entra.tenant.as_deref(), Some("common"));
    assert_eq!(entra.login_uri.as_deref(), Some("https://login.microsoftonline.com"));
    assert_eq!(entra.resource_uri.as_deref(), Some("https://api.example.com"));
    assert_eq!(oauth.custom_parameters["TenantId"], "common", "custom parameters are kept as written");
    let tenant = sets[2].parameter("token:TenantId").expect("token:TenantId stays a parameter");
    assert!(tenant.hidden && !tenant.required);
    assert_eq!(tenant.source.as_deref(), Some("AzureActiveDirectoryTenant"));

    let summary = AuthSummary::of(&connector.connection);
    assert_eq!(
        summary.describe(),
        "multiple: api-auth=apiKey (header X-App-Token) | basic-auth=basic | entra=oauth2 (aad)"
    );
}

#[test]
fn policies_fill_the_host_and_a_header_from_connection_parameters() {
    let connector = connector("policies");
    assert_eq!(
        connector.backend.host_template.as_ref().map(|t| t.as_str()),
        Some("https://@connectionParameters('subdomain').example.com/api")
    );
    assert_eq!(connector.policies.len(), 3, "the host template is not also a policy");
    let PolicyKind::SetHeader { name, value } = &connector.policies[0].kind else { panic!("expected setHeader") };
    assert_eq!((name.as_str(), value.as_str()), ("Authorization", "Token @connectionParameters('api_key')"));
    assert_eq!(connector.policies[0].operations, ["ListThings"]);
    let PolicyKind::SetQueryParameter { name, value } = &connector.policies[1].kind else {
        panic!("expected setqueryparameter")
    };
    assert_eq!((name.as_str(), value.as_str()), ("api-version", "2024-01-01"));
    assert!(connector.policies[1].applies_to("Other"));
    let PolicyKind::Other { template_id, parameters } = &connector.policies[2].kind else { panic!("expected other") };
    assert_eq!(template_id, "routerequesttoendpoint");
    assert_eq!(parameters["x-ms-apimTemplateParameter.newPath"], json!("/v2/things"));

    // No swagger definition: the parameters are placed by the policies.
    let set = single(&connector);
    assert_eq!(set.credential, Credential::None);
    assert_eq!(AuthSummary::of(&connector.connection).kind, "other");
    assert_eq!(connector.destinations(set, "api_key"), [Destination::Header { name: "Authorization".into() }]);
    assert_eq!(connector.destinations(set, "subdomain"), [Destination::Host]);
}

#[test]
fn the_definition_file_is_found_in_any_case() {
    let import = import("lowercase-definition");
    assert!(import.diagnostics.is_empty(), "{:#?}", messages(&import));
    let connector = import.connector.expect("a connector");
    assert_eq!(connector.metadata.display_name, "Lowercase Named");
    assert_eq!(AuthSummary::of(&connector.connection).kind, "none");
}

#[test]
fn a_lone_swagger_file_under_another_name_is_used_with_a_warning() {
    let import = import("other-swagger-name");
    assert!(import.is_ok());
    assert!(import.warnings().any(|w| w.at == "apiDefination.swagger.json"), "{:#?}", messages(&import));
    assert_eq!(import.connector.expect("a connector").metadata.display_name, "Misspelled File");
}

#[test]
fn broken_json_names_file_line_and_column() {
    let import = import("broken-json");
    assert!(import.connector.is_none());
    assert_eq!(import.diagnostics.len(), 1, "{:#?}", messages(&import));
    let error = &import.diagnostics[0];
    assert!(error.is_error());
    // The comma is missing at the end of line 4; the parser notices at line 5.
    assert!(error.at.starts_with("apiProperties.json:5:"), "{error}");
}

#[test]
fn broken_bytes_are_reported_under_the_given_name() {
    let definition = std::fs::read(fixture("lowercase-definition/apidefinition.swagger.json")).expect("fixture");
    let import = import_bytes(b"{\"properties\": {", "uploaded.json", &definition, "api.swagger.json");
    assert!(import.connector.is_none());
    assert!(import.diagnostics[0].at.starts_with("uploaded.json:1:"), "{}", import.diagnostics[0]);
}

#[test]
fn an_unknown_parameter_type_is_an_error() {
    let import = import("unknown-parameter-type");
    assert!(!import.is_ok());
    let error = import.errors().next().expect("an error");
    assert_eq!(error.at, "apiProperties.json#/properties/connectionParameters/region/type");
    assert_eq!(error.message, "connection parameter 'region' has unknown type 'dropdown'");
}

#[test]
fn an_unknown_api_key_location_is_an_error() {
    let import = import("unknown-api-key-location");
    assert!(!import.is_ok());
    let errors: Vec<String> = import.errors().map(ToString::to_string).collect();
    assert!(
        errors.iter().any(|e| e.starts_with("apiDefinition.swagger.json#/securityDefinitions/API Key/in: ")
            && e.contains("unknown API key location 'body'")),
        "{errors:#?}"
    );
}

#[test]
fn operations_merge_path_parameters_and_resolve_references() {
    let import = import("operations");
    assert!(import.is_ok(), "{:#?}", messages(&import));
    let warnings = messages(&import);
    let warned = |text: &str| warnings.iter().any(|w| w.contains(text));
    assert!(warned("the folder name 'operations' is used"), "{warnings:#?}");
    assert!(warned("'x-ms-visibilty' (once) is read as 'x-ms-visibility'"), "{warnings:#?}");
    assert!(warned("it is called 'delete_items_itemId'"), "{warnings:#?}");
    assert!(warned("'#/parameters/missing' points to nothing"), "{warnings:#?}");

    let connector = import.connector.expect("a connector");
    assert_eq!(connector.metadata.display_name, "operations");
    assert_eq!(connector.metadata.version.as_deref(), Some("2.1"));
    assert_eq!(connector.metadata.capabilities, ["actions", "triggers"]);
    assert_eq!(connector.metadata.stack_owner.as_deref(), Some("Example Ltd"), "spelled stackowner");
    assert_eq!(connector.backend.base_url(), "http://api.example.com/v1");
    assert_eq!(connector.test_operation.as_deref(), Some("GetItem"));

    let get = connector.operation("GetItem").expect("GetItem");
    assert_eq!(get.visibility, Visibility::Important);
    let names: Vec<&str> = get.parameters.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["itemId", "fields", "pageSize"]);
    assert_eq!(get.parameters[0].location, ParameterLocation::Path);
    assert!(get.parameters[0].required);
    assert_eq!(get.parameters[0].summary.as_deref(), Some("Item id"));
    // The operation's own `fields` replaces the path item's.
    assert_eq!(get.parameters[1].enum_values, [json!("all"), json!("short")]);
    assert_eq!(get.parameters[1].visibility, Visibility::Internal);
    assert_eq!(get.parameters[1].description, None);
    assert_eq!(get.parameters[2].visibility, Visibility::Advanced);
    assert_eq!(get.parameters[2].default, Some(json!(50)));

    let delete = connector.operation("delete_items_itemId").expect("synthesized id");
    assert!(delete.deprecated);
    assert_eq!(delete.parameters.len(), 2, "inherits the path item's parameters");

    let create = connector.operation("CreateItem").expect("CreateItem");
    assert_eq!(create.parameters.len(), 2);
    assert_eq!(create.parameters[0].location, ParameterLocation::Body);
    assert!(create.parameters[0].required, "required: \"true\"");
    assert_eq!(create.parameters[0].schema_type.as_deref(), Some("object"));
    assert_eq!(create.parameters[1].location, ParameterLocation::FormData);
    assert!(connector.operation("OnNewItem").expect("OnNewItem").trigger);
}

#[test]
fn entra_id_settings_and_the_hidden_tenant_parameter() {
    let connector = connector("entra-id");
    let set = single(&connector);
    let oauth = oauth(set);
    assert_eq!(oauth.identity_provider.as_str(), "aad");
    assert_eq!(oauth.scopes, ["Group.ReadWrite.All", "offline_access"]);
    assert_eq!(oauth.grant, GrantType::Implicit, "the swagger flow");
    assert_eq!(oauth.authorization_url, None, "Entra ID URLs come from the tenant, not the swagger");
    let entra = oauth.entra.as_ref().expect("Entra ID settings");
    assert_eq!(entra.tenant.as_deref(), Some("common"));
    assert_eq!(entra.resource_uri.as_deref(), Some("https://graph.microsoft.com"));
    assert_eq!(entra.login_uri.as_deref(), Some("https://login.windows.net"));
    assert!(!entra.on_behalf_of, "enableOnbehalfOfLogin \"false\" wins over IsOnbehalfofLoginSupported");
    let tenant = set.parameter("token:TenantId").expect("token:TenantId");
    assert_eq!(tenant.oauth_sub_parameter(), Some("TenantId"));
    assert!(tenant.hidden);
}

#[test]
fn bytes_values_and_folder_give_the_same_connector() {
    let dir = fixture("api-key-query");
    let properties = std::fs::read(dir.join("apiProperties.json")).expect("fixture");
    let definition = std::fs::read(dir.join("apiDefinition.swagger.json")).expect("fixture");
    let from_folder = import_folder(&dir).connector.expect("from the folder");
    let from_bytes = import_bytes(&properties, "apiProperties.json", &definition, "apiDefinition.swagger.json");
    assert_eq!(from_bytes.connector.as_ref(), Some(&from_folder));
    let parse = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).expect("fixture JSON");
    let from_values = import_values(&parse(&properties), &parse(&definition));
    assert_eq!(from_values.connector.as_ref(), Some(&from_folder));
}

#[test]
fn a_folder_without_the_files_is_an_error() {
    let import = import_folder(&fixture("does-not-exist"));
    assert!(import.connector.is_none() && !import.is_ok());
    let empty = tempfile::tempdir().expect("temp dir");
    let import = import_folder(empty.path());
    assert!(import.diagnostics[0].message.contains("no apiProperties.json"), "{:?}", import.diagnostics);
}

/// Every value of every fixture, replaced in turn by each JSON type: the importer reports,
/// never panics.
#[test]
fn no_shape_of_input_makes_it_panic() {
    let replacements = [json!(null), json!([]), json!({}), json!("x"), json!(1), json!(true), json!([null, 1])];
    for name in ["multi-auth", "policies", "operations", "entra-id", "google-oauth"] {
        let dir = fixture(name);
        let read = |file: &str| -> Value {
            let path = std::fs::read_dir(&dir)
                .expect("fixture")
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().eq_ignore_ascii_case(file)))
                .expect("fixture file");
            serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("fixture JSON")
        };
        let properties = read("apiProperties.json");
        let definition = read("apiDefinition.swagger.json");
        for (which, original) in [(0, &properties), (1, &definition)] {
            for pointer in pointers(original, String::new()) {
                for replacement in &replacements {
                    let mut changed = original.clone();
                    *changed.pointer_mut(&pointer).expect("pointer") = replacement.clone();
                    let (p, d) = if which == 0 { (&changed, &definition) } else { (&properties, &changed) };
                    let _ = import_values(p, d).validated(&IdentityProviderCatalog::built_in());
                }
            }
        }
    }
}

fn pointers(value: &Value, at: String) -> Vec<String> {
    let mut out = vec![at.clone()];
    let escape = |k: &str| k.replace('~', "~0").replace('/', "~1");
    match value {
        Value::Object(o) => o.iter().for_each(|(k, v)| out.extend(pointers(v, format!("{at}/{}", escape(k))))),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| out.extend(pointers(v, format!("{at}/{i}")))),
        _ => {}
    }
    out
}

#[test]
fn a_header_policy_on_a_header_portico_sets_itself_is_kept_as_written_not_applied() {
    let folder = fixture("policies");
    let read = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(folder.join(name)).expect("fixture")).expect("fixture JSON")
    };
    let mut properties = read("apiProperties.json");
    let definition = read("apiDefinition.swagger.json");
    let instances = properties["properties"]["policyTemplateInstances"].as_array_mut().expect("policies");
    for name in ["Host", "Content-Length", "Bad Name"] {
        instances.push(json!({"templateId": "setheader", "title": "Set a header",
            "parameters": {"x-ms-apimTemplateParameter.name": name, "x-ms-apimTemplateParameter.value": "x",
                "x-ms-apimTemplate-policySection": "Request"}}));
    }
    let import = import_values(&properties, &definition).validated(&IdentityProviderCatalog::built_in());
    assert!(import.is_ok(), "{:?}", import.diagnostics);
    let connector = import.connector.as_ref().expect("a connector");
    for name in ["Host", "Content-Length", "Bad Name"] {
        assert!(
            !connector.policies.iter().any(|p| matches!(&p.kind, PolicyKind::SetHeader { name: n, .. } if n == name)),
            "{name} is not set"
        );
        assert!(
            connector.policies.iter().any(|p| matches!(&p.kind, PolicyKind::Other { parameters, .. }
                if parameters.get("x-ms-apimTemplateParameter.name") == Some(&json!(name)))),
            "{name} is kept as written"
        );
        assert!(messages(&import).iter().any(|m| m.contains(name)), "a warning names {name}: {:?}", messages(&import));
    }
}

//! The HTTP API: handlers that only translate between HTTP and the use cases of
//! `portico-app`, and its OpenAPI description, made from the same route list that serves it.

pub mod audit;
pub mod connect;
pub mod connections;
pub mod connectors;
pub mod extract;
pub mod keys;
pub mod members;
pub mod problems;
pub mod shares;
pub mod webhooks;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Deserializer};
use utoipa::openapi::path::Parameter;
use utoipa::openapi::schema::{ArrayItems, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, RefOr};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// At most this many items: 1 to 200 (others are refused with 400), 50 when absent.
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200, default = 50)]
    pub limit: PageSize,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

/// How many items a page holds at most: 1 to 200, 50 when not given. A value outside that
/// range is refused (400, as the document says), not quietly changed into another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    pub const MAX: u32 = 200;

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for PageSize {
    fn default() -> Self {
        PageSize(50)
    }
}

impl<'de> Deserialize<'de> for PageSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let size = u32::deserialize(deserializer)?;
        if (1..=PageSize::MAX).contains(&size) {
            Ok(PageSize(size))
        } else {
            Err(serde::de::Error::custom(format_args!("must be 1 to {}, not {size}", PageSize::MAX)))
        }
    }
}

/// A role as the API spells it: what `parse_role` reads.
#[derive(ToSchema)]
#[schema(as = Role, rename_all = "lowercase")]
#[allow(dead_code)] // describes the text; `parse_role` reads it, to say which field is wrong
pub enum RoleName {
    Admin,
    Author,
    User,
}

/// An end user's id as the API takes it, in a body or a path: what
/// [`portico_model::end_user_id`] accepts.
pub struct EndUserId;

impl utoipa::PartialSchema for EndUserId {
    fn schema() -> RefOr<Schema> {
        // Not only spaces, and no control characters (Unicode's Cc: U+0000–U+001F, U+007F–U+009F).
        const NOT_CONTROL: &str = r"[^\u0000-\u001f\u007f-\u009f]";
        let pattern = format!(r"^{NOT_CONTROL}*[^\s\u0000-\u001f\u007f-\u009f]{NOT_CONTROL}*$");
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("Any id an app uses for its users, or a person's e-mail address"))
            .min_length(Some(1))
            .max_length(Some(portico_model::END_USER_ID_MAX))
            .pattern(Some(pattern))
            .into()
    }
}

impl ToSchema for EndUserId {
    fn name() -> Cow<'static, str> {
        "EndUserId".into()
    }
}

/// A role as the API spells it.
pub fn parse_role(text: &str) -> Result<portico_model::Role, ApiError> {
    portico_model::Role::parse(text).ok_or_else(|| {
        ApiError::invalid_fields(
            "invalid role",
            vec![portico_model::FieldError { field: "role".into(), message: "must be admin, author or user".into() }],
        )
    })
}

/// An RFC 3339 time as milliseconds since the epoch.
pub fn parse_time(field: &str, text: &str) -> Result<portico_store::Millis, ApiError> {
    let bad = || {
        ApiError::invalid_fields(
            "invalid time",
            vec![portico_model::FieldError {
                field: field.to_owned(),
                message: "must be an RFC 3339 time, e.g. 2030-01-31T12:00:00Z".to_owned(),
            }],
        )
    };
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|_| bad())?;
    portico_store::Millis::try_from(parsed.unix_timestamp_nanos() / 1_000_000).map_err(|_| bad())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Portico", description = "Custom connectors and their connections."),
    modifiers(&ApiKeyScheme),
    paths(crate::proxy::described::proxy_get, crate::proxy::described::proxy_post, crate::proxy::described::proxy_put,
        crate::proxy::described::proxy_patch, crate::proxy::described::proxy_delete,
        crate::proxy::described::operation, crate::proxy::described::test),
    // Every refusal refers to it (see `problems`).
    components(schemas(Problem)),
    tags((name = "connectors", description = "Connector definitions, for connector authors"),
         (name = "connections", description = "Authenticated connections, for users"),
         (name = "calls", description = "Calls to backends through connections"),
         (name = "access", description = "API keys, members and the audit trail, for admins"),
         (name = "connect", description = "Connect sessions: an app's end users connect their own accounts"),
         (name = "webhooks", description = "Signed, durable events of every change to a connection"),
         (name = "health", description = "Liveness and readiness")),
)]
struct ApiDoc;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("apiKey", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The routes and their OpenAPI description, from one list so that they cannot drift apart.
/// [`document`] completes the description.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(connectors::create, connectors::list))
        .routes(routes!(connectors::get, connectors::replace, connectors::delete))
        .routes(routes!(connectors::connection_form))
        .routes(routes!(connections::create, connections::list))
        .routes(routes!(connections::get, connections::update, connections::delete))
        .routes(routes!(connections::reauthorize))
        .routes(routes!(shares::list))
        .routes(routes!(shares::put, shares::delete))
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::get, keys::delete))
        .routes(routes!(members::create, members::list))
        .routes(routes!(members::get, members::update, members::delete))
        .routes(routes!(connect::create))
        .routes(routes!(connect::get))
        .routes(routes!(connect::offer))
        .routes(routes!(connect::connect))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(audit::list))
        .routes(routes!(connections::oauth_callback))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The document `/openapi.json` serves: the routes' description, with what holds for every
/// request said once.
pub fn document(mut openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    forbid_nul_in_requests(&mut openapi);
    openapi
}

/// No text in a request holds NUL: PostgreSQL cannot keep it, and the API refuses it on every
/// engine (400 in a path or a query string, 422 in a body: see `extract`). Said as a pattern on
/// each string a request takes that has no enum, format or pattern of its own.
fn forbid_nul_in_requests(openapi: &mut utoipa::openapi::OpenApi) {
    let mut reached = BTreeSet::new();
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            for parameter in operation.parameters.iter_mut().flatten() {
                if let RefOr::T(Parameter { schema: Some(schema), .. }) = parameter {
                    forbid_nul(schema, &mut reached);
                }
            }
            if let Some(RefOr::T(body)) = &mut operation.request_body {
                for content in body.content.values_mut() {
                    if let RefOr::T(Content { schema: Some(schema), .. }) = content {
                        forbid_nul(schema, &mut reached);
                    }
                }
            }
        }
    }
    // The components the request bodies refer to, and those they refer to in turn.
    let schemas = &mut openapi.components.get_or_insert_with(Default::default).schemas;
    let mut done = BTreeSet::new();
    while let Some(name) = reached.pop_first() {
        if done.insert(name.clone())
            && let Some(schema) = schemas.get_mut(&name)
        {
            forbid_nul(schema, &mut reached);
        }
    }
}

/// Adds the pattern to the strings of `schema`; names the components it refers to in `reached`.
fn forbid_nul(schema: &mut RefOr<Schema>, reached: &mut BTreeSet<String>) {
    const NO_NUL: &str = r"^[^\u0000]*$";
    match schema {
        RefOr::Ref(reference) => {
            if let Some(name) = reference.ref_location.strip_prefix("#/components/schemas/") {
                reached.insert(name.to_owned());
            }
        }
        RefOr::T(Schema::Object(object)) => {
            let string = match &object.schema_type {
                SchemaType::Type(kind) => *kind == Type::String,
                SchemaType::Array(kinds) => kinds.contains(&Type::String),
                SchemaType::AnyValue => false,
            };
            if string && object.enum_values.is_none() && object.format.is_none() && object.pattern.is_none() {
                object.pattern = Some(NO_NUL.to_owned());
            }
            for property in object.properties.values_mut() {
                forbid_nul(property, reached);
            }
        }
        RefOr::T(Schema::Array(array)) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                forbid_nul(items, reached);
            }
        }
        RefOr::T(Schema::OneOf(one_of)) => one_of.items.iter_mut().for_each(|item| forbid_nul(item, reached)),
        RefOr::T(Schema::AllOf(all_of)) => all_of.items.iter_mut().for_each(|item| forbid_nul(item, reached)),
        RefOr::T(Schema::AnyOf(any_of)) => any_of.items.iter_mut().for_each(|item| forbid_nul(item, reached)),
        RefOr::T(_) => {}
    }
}

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, body = String, content_type = "text/plain", description = "The process is up: `ok`")))]
async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = String, content_type = "text/plain", description = "The store answers: `ready`"),
        (status = 503, body = Problem, content_type = problems::PROBLEM, description = "The store is unavailable")))]
async fn readyz(State(state): State<Arc<AppState>>) -> Result<&'static str, ApiError> {
    state.app.ready().await?;
    Ok("ready")
}

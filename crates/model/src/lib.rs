//! Portico's connector model.
//!
//! A [`Connector`] is what a connector author publishes: metadata, the backend it calls, the
//! operations of its API and — the heart of it — the [`ConnectionSpec`]: which parameters a
//! user fills in to create a connection, and how the credential they make is sent.
//!
//! Architecture invariant: this crate knows nothing of HTTP servers, SQL, files or OAuth wire
//! formats. Importers turn raw files into these types; everything downstream trusts them.

mod access;
mod connection;
mod connector;
mod diagnostic;
mod form;
mod identity_provider;
mod oauth;
mod operation;
mod policy;
mod validate;
mod values;
mod wire;

pub use access::{END_USER_ID_MAX, Ownership, Role, Share, SharePermission, end_user_id, normalize_email};
pub use connection::{
    AllowedValue, ApiKey, ApiKeyLocation, ConnectionParameter, ConnectionSpec, Credential, ParameterSet, ParameterType,
    UiText,
};
pub use connector::{Backend, Connector, Metadata, Scheme};
pub use diagnostic::{Diagnostic, Severity};
pub use form::{ConnectionForm, Destination, FormField, FormSet, OAuthSignIn};
pub use identity_provider::{ClientAuth, IdentityProviderCatalog, ProviderEntry};
pub use oauth::{EntraId, GrantType, IdentityProvider, OAuth2, OAuthTemplates};
pub use operation::{Operation, OperationParameter, ParameterLocation, Visibility};
pub use policy::{ParamRef, Policy, PolicyKind, Segment, Template};
pub use values::{CheckedValues, FieldError};
pub use wire::{RESERVED_HEADERS, cookie_name_problem, header_name_problem, is_cookie_value, is_header_value};

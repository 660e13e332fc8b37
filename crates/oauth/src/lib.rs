//! OAuth 2.0 for connections (RFC 6749, PKCE RFC 7636): resolving a connector's sign-in
//! against the identity-provider catalog, building the authorization URL, and the token
//! requests — code exchange, refresh, client credentials, revocation — with each provider's
//! quirks taken from the catalog, not from code.
//!
//! The token requests are written here rather than with a generic OAuth client because the
//! quirks reach into them: template-driven exchanges (`oauth2generic`), tokens nested in the
//! response, long-lived-token exchanges. The HTTP client is passed in: a
//! [`portico_outbound::HttpClient`], so that every request passes the address rule, and every
//! response is read up to [`MAX_RESPONSE_BYTES`].

mod flow;
mod pkce;
mod token;

pub use flow::{ClientCredentials, Flow, ResolveError, Substitution, expired_statuses, resolve};
pub use pkce::Pkce;
pub use token::{MAX_RESPONSE_BYTES, TokenError, Tokens, brief, client_builder, http_client};

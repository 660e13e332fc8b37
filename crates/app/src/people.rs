//! People signing in to the portal with OpenID Connect: any standard provider (issuer, client
//! id and secret from the configuration), the authorization code flow with PKCE, the ID token
//! and `iss` checked by `portico-oidc`. A person is known by their verified e-mail address,
//! and is whichever members of tenants carry it.

use std::sync::Arc;

pub use portico_oidc::{CallbackParams, Pending, SIGN_IN_LIFETIME};
use portico_oidc::{OidcError, RelyingParty, Settings};
use portico_secrets::SecretString;
use url::Url;

use crate::App;
use crate::audit::{By, Detail};
use crate::error::{Error, Result};
use crate::members::Membership;

/// The portal's OpenID Connect client, as configured.
#[derive(Clone, Debug)]
pub struct PeopleSettings {
    pub issuer: Url,
    pub client_id: String,
    /// `None` for a public client.
    pub client_secret: Option<SecretString>,
    /// What the sign-in button names: the provider, in words people know.
    pub display_name: Option<String>,
}

/// The portal's sign-in with OpenID Connect. The provider's configuration is read on the first
/// sign-in (and again after a failure), so that Portico starts while the provider is away.
pub(crate) struct People {
    settings: Settings,
    /// Not under the address rule of `portico-outbound`: this provider is the operator's own,
    /// named by the server's configuration, not by a connector or a user.
    http: reqwest::Client,
    display_name: String,
    relying_party: tokio::sync::Mutex<Option<Arc<RelyingParty>>>,
}

impl People {
    pub(crate) fn new(settings: PeopleSettings, public_url: &Url) -> anyhow::Result<People> {
        let redirect_uri = public_url.join("/sign-in/oidc/callback")?;
        let display_name = settings
            .display_name
            .clone()
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| settings.issuer.host_str().unwrap_or("your identity provider").to_owned());
        Ok(People {
            settings: Settings::new(settings.issuer, settings.client_id, settings.client_secret, redirect_uri),
            http: portico_oauth::client_builder().build()?,
            display_name,
            relying_party: tokio::sync::Mutex::new(None),
        })
    }
}

/// Who signed in, and where they may go.
#[derive(Debug)]
pub struct SignedInPerson {
    /// Lower-cased.
    pub email: String,
    /// The tenants this address is a member of; empty: nobody let them in.
    pub memberships: Vec<Membership>,
}

fn sign_in_error(error: OidcError) -> Error {
    match error {
        OidcError::Discovery { .. } | OidcError::TokenExchange(_) | OidcError::Keys(_) | OidcError::Userinfo(_) => {
            tracing::warn!(%error, "a person's sign-in failed at the identity provider");
            Error::BadGateway(error.to_string())
        }
        OidcError::ProviderRefused { .. } => Error::Forbidden(error.to_string()),
        other => {
            tracing::warn!(error = %other, "a person's sign-in was refused");
            Error::BadRequest(other.to_string())
        }
    }
}

impl App {
    /// The identity provider people sign in with, in words, when one is configured.
    pub fn people_provider(&self) -> Option<&str> {
        self.people.as_ref().map(|people| people.display_name.as_str())
    }

    /// The callback URL to register at the identity provider, when one is configured.
    pub fn people_redirect_uri(&self) -> Option<&Url> {
        self.people.as_ref().map(|people| &people.settings.redirect_uri)
    }

    async fn relying_party(&self) -> Result<Arc<RelyingParty>> {
        let people = self.people.as_ref().ok_or(Error::NotFound("sign-in with OpenID Connect"))?;
        let mut known = people.relying_party.lock().await;
        if let Some(relying_party) = known.as_ref() {
            return Ok(relying_party.clone());
        }
        let discovered = RelyingParty::discover(people.settings.clone(), people.http.clone())
            .await
            .map(Arc::new)
            .map_err(sign_in_error)?;
        *known = Some(discovered.clone());
        Ok(discovered)
    }

    /// Starts a person's sign-in: the URL to send the browser to, and what to keep (on the
    /// server) until it comes back.
    pub async fn start_person_sign_in(&self) -> Result<(Url, Pending)> {
        Ok(self.relying_party().await?.start())
    }

    /// Finishes a person's sign-in: who they are (a verified address) and which tenants let
    /// them in.
    pub async fn finish_person_sign_in(
        &self,
        pending: Pending,
        callback: CallbackParams<'_>,
    ) -> Result<SignedInPerson> {
        let person = self.relying_party().await?.finish(pending, callback).await.map_err(sign_in_error)?;
        if person.email_verified == Some(false) {
            return Err(Error::Forbidden(
                "the identity provider has not verified this person's e-mail address".to_owned(),
            ));
        }
        let email = person.email.as_deref().and_then(portico_model::normalize_email).ok_or_else(|| {
            Error::Forbidden("the identity provider gave no e-mail address for this person".to_owned())
        })?;
        let memberships = self.memberships(&email).await?;
        tracing::info!(members = memberships.len(), "a person signed in with OpenID Connect");
        for membership in &memberships {
            let by = By::Named(format!("member:{}", membership.member.id));
            self.audit(&membership.tenant.id, by, "person.signed_in", Detail::default(), None).await;
        }
        Ok(SignedInPerson { email, memberships })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles only if finishing a sign-in can be awaited on any runtime (a handler's future
    /// must be `Send`).
    #[allow(dead_code)]
    fn finishing_a_sign_in_is_send(app: &App, pending: Pending) -> impl Send + '_ {
        app.finish_person_sign_in(pending, CallbackParams::default())
    }
}

//! API keys: who a key names, and their lifecycle — created with a role (and, for a `user`
//! key, the end user it acts as and optionally the connections it may call), listed without
//! their secret, revoked. A key is shown once, when it is made; only its SHA-256 is stored.

use std::net::IpAddr;

use portico_model::{FieldError, Role};
use portico_secrets::SecretString;
use portico_store::{ApiKeyRecord, Change, Millis, Page};

use crate::access::{self, Action, Need};
use crate::audit::Detail;
use crate::connectors::cut;
use crate::error::{Error, Result};
use crate::{Actor, App, Principal};

/// The longest key name.
pub const NAME_MAX: usize = 100;

/// What an admin asks for when making a key.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub role: Role,
    /// Required for a `user` key: the end user it acts as.
    pub end_user_id: Option<String>,
    /// A `user` key narrowed to calling through these connections only.
    pub connection_ids: Option<Vec<String>>,
    pub expires_at: Option<Millis>,
    /// Its own limit of calls through connections, in requests per second (and at once).
    pub rate_limit: Option<u32>,
}

/// A key just made: its record, and the key itself, shown this once.
pub struct CreatedKey {
    pub record: ApiKeyRecord,
    pub key: SecretString,
}

/// Which keys to list.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyFilter {
    /// Also the revoked ones.
    pub include_revoked: bool,
}

/// The principal a stored key names, if it is still valid at `now`.
fn principal_of(record: &ApiKeyRecord, now: Millis) -> Option<Principal> {
    if record.revoked_at.is_some() || record.expires_at.is_some_and(|at| now >= at) {
        return None;
    }
    Some(Principal {
        tenant_id: record.tenant_id.as_str().into(),
        actor: Actor::Key(record.id.as_str().into()),
        role: record.role,
        end_user: record.end_user_id.as_deref().map(Into::into),
        connections: record.connection_ids.as_deref().map(Into::into),
        expires_at: record.expires_at,
        limits: crate::ratelimit::Limits::default(),
    })
}

impl App {
    /// `principal` with the rate limits of its key (its own, else the server's default for
    /// keys) and of its tenant.
    fn limited(&self, mut principal: Principal, record: &ApiKeyRecord) -> Principal {
        let key_rate = record.rate_limit.map(f64::from).or(self.limits.key_default);
        principal.limits = crate::ratelimit::Limits {
            key: self.limits.keys.of(&record.id, key_rate),
            tenant: self.limits.tenants.of(&record.tenant_id, self.limits.tenant),
        };
        principal
    }
}

/// A new key of `tenant_id` and its record, after the checks of its shape that every front
/// door shares (the API and the command line): a name, a `user` key's end user, what only a
/// `user` key may have, an expiry in the future.
pub(crate) fn make_key(tenant_id: &str, created_by: String, new: NewKey, now: Millis) -> Result<CreatedKey> {
    let mut errors = Vec::new();
    let mut bad = |field: &str, message: &str| {
        errors.push(FieldError { field: field.to_owned(), message: message.to_owned() });
    };
    let name = new.name.trim();
    if name.is_empty() {
        bad("name", "is required");
    } else if name.chars().count() > NAME_MAX {
        bad("name", &format!("must be at most {NAME_MAX} characters"));
    }
    let mut end_user_id = None;
    match (new.role, &new.end_user_id) {
        (Role::User, None) => bad("endUserId", "is required for a user key: the end user it acts as"),
        (Role::User, Some(id)) => match portico_model::end_user_id(id) {
            Ok(id) => end_user_id = Some(id),
            Err(message) => bad("endUserId", &message),
        },
        (_, Some(_)) => bad("endUserId", "is only for user keys"),
        (_, None) => {}
    }
    match &new.connection_ids {
        Some(_) if new.role != Role::User => bad("connectionIds", "narrows user keys only; give the key the user role"),
        Some(ids) if ids.is_empty() => bad("connectionIds", "must name at least one connection, or be left out"),
        _ => {}
    }
    if new.expires_at.is_some_and(|at| at <= now) {
        bad("expiresAt", "must be in the future");
    }
    if new.rate_limit == Some(0) {
        bad("rateLimit", "must be at least 1 request per second, or be left out");
    }
    if !errors.is_empty() {
        return Err(Error::invalid_fields("invalid API key", errors));
    }
    let record = ApiKeyRecord {
        id: portico_store::new_id(),
        tenant_id: tenant_id.to_owned(),
        name: name.to_owned(),
        role: new.role,
        end_user_id,
        connection_ids: new.connection_ids,
        expires_at: new.expires_at,
        created_by: Some(created_by),
        created_at: now,
        revoked_at: None,
        rate_limit: new.rate_limit,
    };
    Ok(CreatedKey { record, key: portico_secrets::generate_api_key() })
}

impl App {
    /// The principal an API key names; a missing, revoked or expired key is unauthenticated.
    /// Known keys come from memory; a miss asks the store, so that a key made elsewhere (by
    /// `portico tenant key`, or on another instance) works at once. `source`, the address the
    /// key came from, is refused without a store query when it has failed too often
    /// ([`crate::throttle`]).
    pub async fn authenticate(&self, key: &str, source: Option<IpAddr>) -> Result<Principal> {
        let digest = portico_secrets::api_key_digest(key);
        self.authenticate_digest(&digest, source).await
    }

    /// [`App::authenticate`] by the SHA-256 of the key: what a portal session keeps.
    pub async fn authenticate_digest(&self, digest: &[u8; 32], source: Option<IpAddr>) -> Result<Principal> {
        let now = portico_store::now_millis();
        if let Some(principal) = self.keys.get(digest) {
            return if principal.expired(now) { Err(Error::Unauthenticated) } else { Ok(principal) };
        }
        if let Some(source) = source
            && let Err(wait) = self.auth_failures.check(source)
        {
            tracing::debug!(%source, "refused: too many failed authentications from this address");
            return Err(Error::TooManyRequests(wait));
        }
        let generation = self.keys.generation();
        let record = self.store.api_key_by_hash(&portico_secrets::digest_hex(digest)).await?;
        let Some(principal) = record.as_ref().and_then(|record| Some(self.limited(principal_of(record, now)?, record)))
        else {
            if let Some(source) = source {
                self.auth_failures.failed(source);
            }
            return Err(Error::Unauthenticated);
        };
        self.keys.insert(*digest, principal.clone(), generation);
        Ok(principal)
    }

    /// Makes a key. The answer holds the key itself: it is shown this once.
    pub async fn create_key(&self, principal: &Principal, new: NewKey) -> Result<CreatedKey> {
        access::require(principal, Action::ManageKeys)?;
        let created = make_key(&principal.tenant_id, principal.reference(), new, portico_store::now_millis())?;
        self.check_scope(principal, &created.record).await?;
        self.store.insert_api_key(&created.record, &portico_secrets::api_key_hash(created.key.expose())).await?;
        tracing::info!(key = %created.record.id, role = %created.record.role, principal = %principal.reference(),
            "API key created");
        let change = Detail { target: Some(&created.record.id), ..Detail::default() };
        self.audit_change(&principal.tenant_id, principal, "key.created", change).await;
        Ok(created)
    }

    /// A narrowed key names connections its end user may call through today.
    async fn check_scope(&self, principal: &Principal, key: &ApiKeyRecord) -> Result<()> {
        let (Some(ids), Some(end_user)) = (&key.connection_ids, &key.end_user_id) else { return Ok(()) };
        let acting = Principal {
            role: Role::User,
            end_user: Some(end_user.as_str().into()),
            ..Principal::operator(&principal.tenant_id)
        };
        let mut errors = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match self.find_connection(&acting, id, Need::Call).await {
                Ok(_) => {}
                Err(Error::NotFound(_) | Error::Forbidden(_)) => errors.push(FieldError {
                    field: format!("connectionIds[{i}]"),
                    message: format!("no connection '{id}' that end user '{end_user}' may call through"),
                }),
                Err(other) => return Err(other),
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(Error::invalid_fields("invalid API key", errors)) }
    }

    /// A page of the tenant's keys, by id; never a key or its digest.
    pub async fn list_keys(
        &self,
        principal: &Principal,
        filter: KeyFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<ApiKeyRecord>> {
        access::require(principal, Action::ManageKeys)?;
        let page = self.store.list_api_keys(&principal.tenant_id, filter.include_revoked, after, limit + 1).await?;
        Ok(cut(page, limit, |record| &record.id))
    }

    pub async fn key(&self, principal: &Principal, id: &str) -> Result<ApiKeyRecord> {
        access::require(principal, Action::ManageKeys)?;
        self.store.api_key(&principal.tenant_id, id).await?.ok_or(Error::NotFound("API key"))
    }

    /// Revokes a key: refused at once here, and within a second on every other instance.
    /// A key already revoked is not found.
    pub async fn revoke_key(&self, principal: &Principal, id: &str) -> Result<()> {
        access::require(principal, Action::ManageKeys)?;
        if !self.store.revoke_api_key(&principal.tenant_id, id, portico_store::now_millis()).await? {
            return Err(Error::NotFound("API key"));
        }
        self.changed(Change::ApiKey(id.to_owned()));
        tracing::info!(key = %id, principal = %principal.reference(), "API key revoked");
        let change = Detail { target: Some(id), ..Detail::default() };
        self.audit_change(&principal.tenant_id, principal, "key.revoked", change).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ApiKeyRecord {
        ApiKeyRecord {
            id: "k".into(),
            tenant_id: "t".into(),
            name: "flow".into(),
            role: Role::User,
            end_user_id: Some("ann".into()),
            connection_ids: Some(vec!["c1".into()]),
            expires_at: Some(100),
            created_by: None,
            created_at: 0,
            revoked_at: None,
            rate_limit: None,
        }
    }

    fn new_key(role: Role, end_user: Option<&str>) -> NewKey {
        NewKey {
            name: "flow".into(),
            role,
            end_user_id: end_user.map(str::to_owned),
            connection_ids: None,
            expires_at: None,
            rate_limit: None,
        }
    }

    fn fields(result: Result<CreatedKey>) -> Vec<String> {
        match result {
            Err(Error::Invalid { errors, .. }) => errors.into_iter().map(|e| e.field).collect(),
            Err(other) => panic!("not a validation error: {other:?}"),
            Ok(_) => Vec::new(),
        }
    }

    #[test]
    fn key_shapes_are_checked_field_by_field() {
        assert!(fields(make_key("t", "operator".into(), new_key(Role::Admin, None), 0)).is_empty());
        assert_eq!(fields(make_key("t", "o".into(), new_key(Role::User, None), 0)), ["endUserId"]);
        assert_eq!(fields(make_key("t", "o".into(), new_key(Role::Author, Some("ann")), 0)), ["endUserId"]);
        let scoped = NewKey { connection_ids: Some(vec!["c".into()]), ..new_key(Role::Admin, None) };
        assert_eq!(fields(make_key("t", "o".into(), scoped, 0)), ["connectionIds"]);
        let nameless = NewKey { name: " ".into(), expires_at: Some(5), ..new_key(Role::User, Some("ann")) };
        assert_eq!(fields(make_key("t", "o".into(), nameless, 10)), ["name", "expiresAt"]);
        let made = make_key("t", "key:k0".into(), new_key(Role::User, Some("ann")), 0).unwrap();
        assert_eq!(made.record.created_by.as_deref(), Some("key:k0"));
        assert!(made.key.expose().starts_with("pk_"));
    }

    #[test]
    fn a_stored_key_names_its_principal_until_it_expires_or_is_revoked() {
        let principal = principal_of(&record(), 99).expect("valid before expiry");
        assert_eq!(principal.role, Role::User);
        assert_eq!(principal.end_user.as_deref(), Some("ann"));
        assert_eq!(principal.connections.as_deref(), Some(&["c1".to_owned()][..]));
        assert_eq!(principal.key_id(), Some("k"));
        assert!(principal_of(&record(), 100).is_none());
        assert!(principal_of(&ApiKeyRecord { revoked_at: Some(1), ..record() }, 0).is_none());
    }
}

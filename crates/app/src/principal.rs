//! Who is acting: a [`Principal`] is an API key or a signed-in person, with the tenant, role,
//! end user and connection scope every permission check reads. API keys are known by the
//! SHA-256 of the key (they are high-entropy: no password hash), kept in memory once seen.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use portico_model::Role;
use portico_store::Millis;

/// Who is acting, in a tenant. Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: Arc<str>,
    pub actor: Actor,
    pub role: Role,
    /// The end user it acts as: a user key's end user, a person's e-mail address.
    pub end_user: Option<Arc<str>>,
    /// A key narrowed to calling through these connections only.
    pub connections: Option<Arc<[String]>>,
    /// When a key stops being accepted.
    pub expires_at: Option<Millis>,
    /// The rate limits its calls through connections count against (shared with every
    /// principal of the same key and tenant).
    pub limits: crate::ratelimit::Limits,
}

/// The one acting behind a [`Principal`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// An API key, by its id (never the key).
    Key(Arc<str>),
    /// A person signed in to the portal: a member of the tenant.
    Person { member_id: Arc<str>, email: Arc<str> },
    /// The operator on the command line, working on the store directly.
    Operator,
    /// A connect session's token: an end user connecting one account, with no Portico key.
    ConnectSession(Arc<str>),
}

impl Principal {
    /// The operator of a tenant: everything, as the command line does it.
    pub fn operator(tenant_id: &str) -> Principal {
        Principal {
            tenant_id: tenant_id.into(),
            actor: Actor::Operator,
            role: Role::Admin,
            end_user: None,
            connections: None,
            expires_at: None,
            limits: crate::ratelimit::Limits::default(),
        }
    }

    /// How records and logs name the principal: `key:<id>`, `member:<id>` or `operator`.
    pub fn reference(&self) -> String {
        self.actor.reference()
    }

    /// The API key's id, when a key is acting.
    pub fn key_id(&self) -> Option<&str> {
        match &self.actor {
            Actor::Key(id) => Some(id),
            _ => None,
        }
    }

    /// The person's e-mail address, when a person is acting.
    pub fn email(&self) -> Option<&str> {
        match &self.actor {
            Actor::Person { email, .. } => Some(email),
            _ => None,
        }
    }

    /// Whether a key with an expiry is past it at `now`.
    pub fn expired(&self, now: Millis) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// A copy that shares no allocation with `self`: what a client connection keeps for its
    /// next calls, so that using it touches nothing other threads touch.
    pub fn detached(&self) -> Principal {
        Principal {
            tenant_id: Arc::from(&*self.tenant_id),
            actor: match &self.actor {
                Actor::Key(id) => Actor::Key(Arc::from(&**id)),
                Actor::Person { member_id, email } => {
                    Actor::Person { member_id: Arc::from(&**member_id), email: Arc::from(&**email) }
                }
                Actor::Operator => Actor::Operator,
                Actor::ConnectSession(id) => Actor::ConnectSession(Arc::from(&**id)),
            },
            role: self.role,
            end_user: self.end_user.as_deref().map(Arc::from),
            connections: self.connections.as_deref().map(Arc::from),
            expires_at: self.expires_at,
            // Shared on purpose: a key's calls count against one bucket, on any connection.
            limits: self.limits.clone(),
        }
    }
}

/// Names the principal, never a secret (there is none in it).
impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("tenant_id", &self.tenant_id)
            .field("actor", &self.reference())
            .field("role", &self.role)
            .field("end_user", &self.end_user)
            .finish_non_exhaustive()
    }
}

/// API keys seen before, by the SHA-256 of the key, as the principals they name.
///
/// Revoking a key removes it here and bumps a generation that every remembered principal is
/// checked against (a client connection's memo, a portal session), so a revoked key stops
/// working at once on this instance; other instances hear of it through the store's change
/// notices.
#[derive(Default)]
pub struct KeyCache {
    by_digest: RwLock<HashMap<[u8; 32], Principal>>,
    generation: AtomicU64,
}

impl KeyCache {
    /// Changes whenever a key or a member may have been revoked or changed: what was
    /// remembered in an older generation must be looked up again.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn get(&self, digest: &[u8; 32]) -> Option<Principal> {
        self.by_digest.read().unwrap_or_else(|e| e.into_inner()).get(digest).cloned()
    }

    /// Remembers a principal looked up in `generation`, unless something was forgotten since.
    pub(crate) fn insert(&self, digest: [u8; 32], principal: Principal, generation: u64) {
        let mut map = self.by_digest.write().unwrap_or_else(|e| e.into_inner());
        if self.generation() == generation {
            map.insert(digest, principal);
        }
    }

    /// Forgets one key (revoked, or changed elsewhere), and tells every memo to look again.
    pub(crate) fn forget_key(&self, key_id: &str) {
        let mut map = self.by_digest.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.retain(|_, principal| principal.key_id() != Some(key_id));
    }

    /// Tells every memo to look again without forgetting any key (a member changed).
    pub(crate) fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Forgets every key (changes may have been missed), and tells every memo to look again.
    pub(crate) fn forget_all(&self) {
        let mut map = self.by_digest.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> Principal {
        Principal { actor: Actor::Key(id.into()), ..Principal::operator("t") }
    }

    #[test]
    fn a_forgotten_key_is_gone_and_stale_lookups_are_not_stored() {
        let cache = KeyCache::default();
        let generation = cache.generation();
        cache.insert([1; 32], key("a"), generation);
        cache.insert([2; 32], key("b"), generation);
        cache.forget_key("a");
        assert!(cache.get(&[1; 32]).is_none());
        assert!(cache.get(&[2; 32]).is_some());
        assert_ne!(cache.generation(), generation);
        // A lookup that began before the revocation cannot put the key back.
        cache.insert([1; 32], key("a"), generation);
        assert!(cache.get(&[1; 32]).is_none());
    }

    #[test]
    fn forgetting_all_bumps_the_generation_and_stale_lookups_are_not_stored() {
        let cache = KeyCache::default();
        let generation = cache.generation();
        cache.insert([1; 32], key("a"), generation);
        assert!(cache.get(&[1; 32]).is_some());
        cache.forget_all();
        assert!(cache.get(&[1; 32]).is_none());
        assert_ne!(cache.generation(), generation);
        // A lookup that began before the change cannot put the key back.
        cache.insert([1; 32], key("a"), generation);
        assert!(cache.get(&[1; 32]).is_none());
    }

    #[test]
    fn references_name_the_actor_and_never_more() {
        assert_eq!(key("k1").reference(), "key:k1");
        assert_eq!(Principal::operator("t").reference(), "operator");
        let person = Principal {
            actor: Actor::Person { member_id: "m1".into(), email: "ann@x.org".into() },
            ..Principal::operator("t")
        };
        assert_eq!(person.reference(), "member:m1");
        assert_eq!(person.email(), Some("ann@x.org"));
    }

    #[test]
    fn expiry_is_inclusive() {
        let mut p = key("k");
        assert!(!p.expired(i64::MAX));
        p.expires_at = Some(10);
        assert!(!p.expired(9));
        assert!(p.expired(10));
    }
}

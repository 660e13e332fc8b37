//! Where access is decided. Every use case asks here before it reads or writes, and the call
//! path asks here — in memory, from the prepared connection's [`Ownership`] — before each call
//! through a connection. No other code decides who may do what.
//!
//! - `admin`: everything in its tenant.
//! - `author`: connectors (create, change, delete); sees connections' metadata, never uses or
//!   changes them.
//! - `user`: reads connectors; creates connections for its own end user; reads, calls,
//!   changes, shares and deletes the connections it owns; calls and reads those shared with
//!   it (`use`), and changes and re-authorizes them too (`edit`).
//! - A key narrowed to some connections reaches no other connection, whatever its role.
//! - What a principal may not see at all answers like a missing thing (404); what it sees but
//!   may not do answers 403 with what it would take.

use portico_model::{Ownership, Role, SharePermission};

use crate::error::{Error, Result};
use crate::principal::Principal;

/// Something done in a tenant, outside any one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ReadConnectors,
    WriteConnectors,
    /// List connections (which ones, [`visible_connections`] says).
    ListConnections,
    /// Create a connection.
    CreateConnection,
    /// Create, list and revoke API keys.
    ManageKeys,
    /// Add, change and remove the people of the tenant.
    ManageMembers,
    /// Create connect sessions for end users, and read them.
    ManageConnectSessions,
    /// Create, change, delete webhooks and read their deliveries.
    ManageWebhooks,
    /// Read the audit trail.
    ReadAudit,
}

impl Action {
    fn roles(self) -> &'static [Role] {
        match self {
            Action::ReadConnectors | Action::ListConnections => &[Role::Admin, Role::Author, Role::User],
            Action::WriteConnectors => &[Role::Admin, Role::Author],
            Action::CreateConnection => &[Role::Admin, Role::User],
            Action::ManageKeys
            | Action::ManageMembers
            | Action::ManageConnectSessions
            | Action::ManageWebhooks
            | Action::ReadAudit => &[Role::Admin],
        }
    }

    fn words(self) -> &'static str {
        match self {
            Action::ReadConnectors => "reading connectors",
            Action::WriteConnectors => "creating, changing or deleting connectors",
            Action::ListConnections => "listing connections",
            Action::CreateConnection => "creating connections",
            Action::ManageKeys => "managing API keys",
            Action::ManageMembers => "managing members",
            Action::ManageConnectSessions => "managing connect sessions",
            Action::ManageWebhooks => "managing webhooks",
            Action::ReadAudit => "reading the audit trail",
        }
    }
}

/// May `principal` do `action`?
pub fn require(principal: &Principal, action: Action) -> Result<()> {
    let roles = action.roles();
    if !roles.contains(&principal.role) {
        return Err(Error::Forbidden(format!(
            "{} needs the {} role; this caller has the {} role",
            action.words(),
            one_of(roles),
            principal.role
        )));
    }
    if action == Action::CreateConnection && principal.connections.is_some() {
        return Err(Error::Forbidden("this key is narrowed to some connections and cannot create others".to_owned()));
    }
    Ok(())
}

/// What is needed of a connection, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// See its metadata (never its secrets: nobody does).
    Read,
    /// Call through it (also its test).
    Call,
    /// Change its parameters and sign in again.
    Edit,
    /// Share it and delete it.
    Manage,
}

impl Need {
    fn words(self) -> &'static str {
        match self {
            Need::Read => "reading this connection",
            Need::Call => "calling through this connection",
            Need::Edit => "changing or re-authorizing this connection",
            Need::Manage => "sharing or deleting this connection",
        }
    }
}

/// The most `principal` may do with the connection `id`; `None` when it may not even see it.
pub fn grant(principal: &Principal, id: &str, ownership: &Ownership) -> Option<Need> {
    if let Some(ids) = &principal.connections
        && !ids.iter().any(|allowed| allowed == id)
    {
        return None;
    }
    match principal.role {
        Role::Admin => Some(Need::Manage),
        Role::Author => Some(Need::Read),
        Role::User => {
            let me = principal.end_user.as_deref()?;
            if ownership.owner.as_deref() == Some(me) {
                return Some(Need::Manage);
            }
            match ownership.shared_with(me)? {
                SharePermission::Use => Some(Need::Call),
                SharePermission::Edit => Some(Need::Edit),
            }
        }
    }
}

/// May `principal` do what `need` says with connection `id`, of this `ownership`? A
/// connection it may not see at all is not found; one it sees but may not use this way is
/// forbidden.
pub fn connection(principal: &Principal, id: &str, ownership: &Ownership, need: Need) -> Result<()> {
    match grant(principal, id, ownership) {
        None => Err(Error::NotFound("connection")),
        Some(granted) if granted >= need => Ok(()),
        Some(granted) => Err(Error::Forbidden(format!(
            "{} is not allowed to this caller ({}); it may only {}",
            need.words(),
            principal.role,
            match granted {
                Need::Read => "read it",
                Need::Call => "read and call through it",
                Need::Edit => "read, call through and change it",
                Need::Manage => "manage it",
            }
        ))),
    }
}

/// Which connections a listing shows `principal`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Visible {
    /// Only those owned by or shared with this end user.
    pub end_user: Option<String>,
    /// Only these.
    pub ids: Option<Vec<String>>,
}

/// The connections `principal` may list.
pub fn visible_connections(principal: &Principal) -> Visible {
    Visible {
        end_user: match principal.role {
            Role::Admin | Role::Author => None,
            // A user without an end user sees nothing: an impossible principal, refused safely.
            Role::User => Some(principal.end_user.as_deref().unwrap_or_default().to_owned()),
        },
        ids: principal.connections.as_deref().map(<[String]>::to_vec),
    }
}

/// May a connect session make a connection of `connector_id`? Only of a connector it offers:
/// any other answers like a missing one (the token reads nothing else).
pub fn connect_session_offers(session: &portico_store::ConnectSessionRecord, connector_id: &str) -> Result<()> {
    match &session.connector_ids {
        Some(ids) if !ids.iter().any(|id| id == connector_id) => {
            Err(Error::invalid_field("unknown connector", "connectorId", "no such connector"))
        }
        _ => Ok(()),
    }
}

/// May `principal` call through every connection it may see? (Admins and users may: a user
/// sees only what it owns or what is shared with it, to use at least; authors may call none.)
pub fn calls_what_it_sees(principal: &Principal) -> bool {
    principal.role != Role::Author
}

/// May `principal` list the connections owned by `end_user` (the `endUserId` filter)?
pub fn filter_by_owner(principal: &Principal, end_user: &str) -> Result<()> {
    match principal.role {
        Role::Admin | Role::Author => Ok(()),
        Role::User if principal.end_user.as_deref() == Some(end_user) => Ok(()),
        Role::User => {
            Err(Error::Forbidden("filtering by another end user's id needs the admin or author role".to_owned()))
        }
    }
}

/// The owner of a connection `principal` creates, asked to be `requested` (`endUserId`). An
/// admin may create one for any end user (an app's back end does this) or for the tenant
/// itself; a person's connections are their own unless they say otherwise; a user creates
/// only for its own end user.
pub fn owner_of_new_connection(principal: &Principal, requested: Option<&str>) -> Result<Option<String>> {
    require(principal, Action::CreateConnection)?;
    match principal.role {
        Role::Admin => Ok(requested.or(principal.email()).map(str::to_owned)),
        Role::User => {
            let me = principal.end_user.as_deref().ok_or(Error::Unauthenticated)?;
            match requested {
                None => Ok(Some(me.to_owned())),
                Some(other) if other == me => Ok(Some(me.to_owned())),
                Some(_) => {
                    Err(Error::Forbidden("creating a connection for another end user needs the admin role".to_owned()))
                }
            }
        }
        Role::Author => unreachable_role(),
    }
}

/// `require` has refused this role already.
fn unreachable_role<T>() -> Result<T> {
    Err(Error::Forbidden("this role may not do that".to_owned()))
}

fn one_of(roles: &[Role]) -> String {
    match roles {
        [only] => only.to_string(),
        [first, second] => format!("{first} or {second}"),
        _ => roles.iter().map(|role| role.as_str()).collect::<Vec<_>>().join(", "),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use portico_model::Share;

    use super::*;
    use crate::principal::Actor;

    fn principal(role: Role, end_user: Option<&str>, connections: Option<&[&str]>) -> Principal {
        Principal {
            tenant_id: "t".into(),
            actor: Actor::Key("k".into()),
            role,
            end_user: end_user.map(Arc::from),
            connections: connections.map(|ids| ids.iter().map(|id| (*id).to_owned()).collect()),
            expires_at: None,
            limits: crate::ratelimit::Limits::default(),
        }
    }

    fn owned_by(owner: &str, shares: &[(&str, SharePermission)]) -> Ownership {
        Ownership {
            owner: Some(owner.to_owned()),
            shares: shares
                .iter()
                .map(|(end_user, permission)| Share { end_user_id: (*end_user).to_owned(), permission: *permission })
                .collect(),
        }
    }

    fn outcome(result: Result<()>) -> &'static str {
        match result {
            Ok(()) => "ok",
            Err(Error::NotFound(_)) => "404",
            Err(Error::Forbidden(_)) => "403",
            Err(_) => "other",
        }
    }

    #[test]
    fn each_role_and_share_grants_what_it_says() {
        let ownership = owned_by("ann", &[("bob", SharePermission::Use), ("cy", SharePermission::Edit)]);
        let cases: [(Principal, [&str; 4]); 6] = [
            (principal(Role::Admin, None, None), ["ok", "ok", "ok", "ok"]),
            (principal(Role::Author, None, None), ["ok", "403", "403", "403"]),
            (principal(Role::User, Some("ann"), None), ["ok", "ok", "ok", "ok"]),
            (principal(Role::User, Some("bob"), None), ["ok", "ok", "403", "403"]),
            (principal(Role::User, Some("cy"), None), ["ok", "ok", "ok", "403"]),
            (principal(Role::User, Some("dan"), None), ["404", "404", "404", "404"]),
        ];
        for (who, expected) in cases {
            let got: Vec<&str> = [Need::Read, Need::Call, Need::Edit, Need::Manage]
                .into_iter()
                .map(|need| outcome(connection(&who, "c1", &ownership, need)))
                .collect();
            assert_eq!(got, expected, "{who:?}");
        }
    }

    #[test]
    fn a_narrowed_key_reaches_only_its_connections() {
        let ownership = owned_by("ann", &[]);
        let narrowed = principal(Role::User, Some("ann"), Some(&["c1"]));
        assert_eq!(outcome(connection(&narrowed, "c1", &ownership, Need::Call)), "ok");
        assert_eq!(outcome(connection(&narrowed, "c2", &ownership, Need::Read)), "404");
        assert_eq!(outcome(require(&narrowed, Action::CreateConnection)), "403");
    }

    #[test]
    fn a_tenant_connection_is_the_admins_alone() {
        let tenant_owned = Ownership::default();
        assert_eq!(
            outcome(connection(&principal(Role::User, Some("ann"), None), "c", &tenant_owned, Need::Read)),
            "404"
        );
        assert_eq!(outcome(connection(&principal(Role::Admin, None, None), "c", &tenant_owned, Need::Manage)), "ok");
    }

    #[test]
    fn tenant_actions_by_role() {
        let admin = principal(Role::Admin, None, None);
        let author = principal(Role::Author, None, None);
        let user = principal(Role::User, Some("ann"), None);
        for action in [Action::ManageKeys, Action::ManageMembers] {
            assert_eq!(outcome(require(&admin, action)), "ok");
            assert_eq!(outcome(require(&author, action)), "403");
            assert_eq!(outcome(require(&user, action)), "403");
        }
        assert_eq!(outcome(require(&author, Action::WriteConnectors)), "ok");
        assert_eq!(outcome(require(&user, Action::WriteConnectors)), "403");
        assert_eq!(outcome(require(&author, Action::CreateConnection)), "403");
        assert!(matches!(require(&user, Action::ManageKeys), Err(Error::Forbidden(m)) if m.contains("admin role")));
    }

    #[test]
    fn owners_of_new_connections() {
        let admin = principal(Role::Admin, None, None);
        let user = principal(Role::User, Some("ann"), None);
        assert_eq!(owner_of_new_connection(&admin, None).unwrap(), None);
        assert_eq!(owner_of_new_connection(&admin, Some("bob")).unwrap().as_deref(), Some("bob"));
        assert_eq!(owner_of_new_connection(&user, None).unwrap().as_deref(), Some("ann"));
        assert_eq!(owner_of_new_connection(&user, Some("ann")).unwrap().as_deref(), Some("ann"));
        assert!(matches!(owner_of_new_connection(&user, Some("bob")), Err(Error::Forbidden(_))));
        let person = Principal {
            actor: Actor::Person { member_id: "m".into(), email: "ann@x.org".into() },
            ..principal(Role::Admin, Some("ann@x.org"), None)
        };
        assert_eq!(owner_of_new_connection(&person, None).unwrap().as_deref(), Some("ann@x.org"));
    }

    #[test]
    fn listings_follow_the_role() {
        assert_eq!(visible_connections(&principal(Role::Author, None, None)), Visible::default());
        let user = principal(Role::User, Some("ann"), Some(&["c1"]));
        assert_eq!(visible_connections(&user), Visible { end_user: Some("ann".into()), ids: Some(vec!["c1".into()]) });
        assert!(filter_by_owner(&user, "ann").is_ok());
        assert!(matches!(filter_by_owner(&user, "bob"), Err(Error::Forbidden(_))));
    }
}

//! Who may do what: the words of the access model, as data. The rules that use them live in
//! one place, `portico-app`'s `access` module; here are only the roles, the share permissions
//! and the facts about a connection that a permission check reads.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a principal may do in its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// Everything in the tenant, keys and members included.
    Admin,
    /// Connectors: create, change, delete. Sees connections' metadata, never uses them.
    Author,
    /// Reads connectors; creates, changes, deletes and calls through only the connections it
    /// owns or that are shared with it.
    User,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Author, Role::User];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Author => "author",
            Role::User => "user",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a share lets another end user do with a connection ("can use" / "can edit").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SharePermission {
    /// Call through it and see its metadata.
    Use,
    /// Also change its parameters and sign in again.
    Edit,
}

impl SharePermission {
    pub fn as_str(self) -> &'static str {
        match self {
            SharePermission::Use => "use",
            SharePermission::Edit => "edit",
        }
    }

    pub fn parse(text: &str) -> Option<SharePermission> {
        match text {
            "use" => Some(SharePermission::Use),
            "edit" => Some(SharePermission::Edit),
            _ => None,
        }
    }
}

/// One end user a connection is shared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub end_user_id: String,
    pub permission: SharePermission,
}

/// Who a connection belongs to and who it is shared with: all a permission check needs to
/// know of it, small enough to keep beside a prepared connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    /// The end user who owns it; `None` for a connection of the tenant itself (made by an
    /// admin key without an end user).
    pub owner: Option<String>,
    pub shares: Vec<Share>,
}

impl Ownership {
    /// The permission a share gives `end_user`, if any.
    pub fn shared_with(&self, end_user: &str) -> Option<SharePermission> {
        self.shares.iter().find(|share| share.end_user_id == end_user).map(|share| share.permission)
    }
}

/// The longest end-user id: any string an app uses for its users, within reason.
pub const END_USER_ID_MAX: usize = 255;

/// An end-user id as it is kept: 1 to [`END_USER_ID_MAX`] characters, no control characters,
/// not only spaces; an id that is an e-mail address is folded as [`normalize_email`] does, so
/// that `Ann@Example.org` given by an app is the person who signs in as `ann@example.org`. The
/// message completes "endUserId …".
pub fn end_user_id(id: &str) -> Result<String, String> {
    check_end_user_id(id)?;
    Ok(normalize_email(id).unwrap_or_else(|| id.to_owned()))
}

fn check_end_user_id(id: &str) -> Result<(), String> {
    if id.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    if id.chars().count() > END_USER_ID_MAX {
        return Err(format!("must be at most {END_USER_ID_MAX} characters"));
    }
    if id.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(())
}

/// An e-mail address as people are known by: trimmed and lower-cased, so that `Ann@X.org`
/// and `ann@x.org` are one person. `None` when it does not look like an address.
pub fn normalize_email(email: &str) -> Option<String> {
    let email = email.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let plausible = !local.is_empty()
        && !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email[local.len() + 1..].contains('@')
        && email.len() <= END_USER_ID_MAX
        && !email.chars().any(|c| c.is_control() || c.is_whitespace());
    plausible.then_some(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_permissions_round_trip_as_text() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("Admin"), None);
        assert_eq!(SharePermission::parse("edit"), Some(SharePermission::Edit));
        assert_eq!(SharePermission::parse("own"), None);
        assert!(SharePermission::Edit > SharePermission::Use);
    }

    #[test]
    fn end_user_ids_are_bounded_and_addresses_folded() {
        assert_eq!(end_user_id("User-42").as_deref(), Ok("User-42"));
        assert_eq!(end_user_id(" Ann@Example.org").as_deref(), Ok("ann@example.org"));
        assert!(end_user_id(&"é".repeat(255)).is_ok());
        assert!(end_user_id(&"x".repeat(256)).is_err());
        assert!(end_user_id("  ").is_err());
        assert!(end_user_id("a\nb").is_err());
    }

    #[test]
    fn emails_are_folded_and_checked() {
        assert_eq!(normalize_email(" Ann@Example.ORG ").as_deref(), Some("ann@example.org"));
        for bad in ["ann", "@x.org", "ann@", "a@b@c", "a b@x.org", "ann@.x"] {
            assert_eq!(normalize_email(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_share_is_found_by_end_user() {
        let ownership = Ownership {
            owner: Some("a".into()),
            shares: vec![Share { end_user_id: "b".into(), permission: SharePermission::Edit }],
        };
        assert_eq!(ownership.shared_with("b"), Some(SharePermission::Edit));
        assert_eq!(ownership.shared_with("a"), None);
    }
}

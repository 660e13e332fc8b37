//! The people of a tenant: an admin adds them by e-mail address with a role. A person signs in
//! to the portal (with OpenID Connect) and acts as the end user named by their address, so
//! that the connections they make in the portal and those an app makes for them through the
//! API are one list.

use portico_model::{Role, normalize_email};
use portico_store::{Change, MemberRecord, Page, Tenant};

use crate::access::{self, Action};
use crate::audit::Detail;
use crate::connectors::cut;
use crate::error::{Error, Result};
use crate::{Actor, App, Principal};

/// The principal of a member.
pub fn person(member: &MemberRecord) -> Principal {
    Principal {
        tenant_id: member.tenant_id.as_str().into(),
        actor: Actor::Person { member_id: member.id.as_str().into(), email: member.email.as_str().into() },
        role: member.role,
        end_user: Some(member.email.as_str().into()),
        connections: None,
        expires_at: None,
        limits: crate::ratelimit::Limits::default(),
    }
}

/// A tenant a person belongs to, and as what.
#[derive(Debug, Clone)]
pub struct Membership {
    pub tenant: Tenant,
    pub member: MemberRecord,
}

/// A new member of `tenant_id`, its address checked and folded.
pub(crate) fn make_member(tenant_id: &str, email: &str, role: Role, created_by: String) -> Result<MemberRecord> {
    let email = normalize_email(email)
        .ok_or_else(|| Error::invalid_field("invalid member", "email", "is not an e-mail address"))?;
    let now = portico_store::now_millis();
    Ok(MemberRecord {
        id: portico_store::new_id(),
        tenant_id: tenant_id.to_owned(),
        email,
        role,
        created_by: Some(created_by),
        created_at: now,
        updated_at: now,
    })
}

impl App {
    pub async fn add_member(&self, principal: &Principal, email: &str, role: Role) -> Result<MemberRecord> {
        access::require(principal, Action::ManageMembers)?;
        let member = make_member(&principal.tenant_id, email, role, principal.reference())?;
        self.store.insert_member(&member).await.map_err(|error| match error {
            portico_store::StoreError::Conflict(_) => {
                Error::Conflict(format!("{} is a member of this tenant already", member.email))
            }
            other => other.into(),
        })?;
        tracing::info!(member = %member.id, role = %member.role, principal = %principal.reference(), "member added");
        let change = Detail { target: Some(&member.id), ..Detail::default() };
        self.audit_change(&principal.tenant_id, principal, "member.added", change).await;
        Ok(member)
    }

    pub async fn list_members(
        &self,
        principal: &Principal,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<MemberRecord>> {
        access::require(principal, Action::ManageMembers)?;
        let page = self.store.list_members(&principal.tenant_id, after, limit + 1).await?;
        Ok(cut(page, limit, |member| &member.id))
    }

    pub async fn member(&self, principal: &Principal, id: &str) -> Result<MemberRecord> {
        access::require(principal, Action::ManageMembers)?;
        self.store.member(&principal.tenant_id, id).await?.ok_or(Error::NotFound("member"))
    }

    /// Changes a member's role; their portal sessions see it at their next page.
    pub async fn change_member_role(&self, principal: &Principal, id: &str, role: Role) -> Result<MemberRecord> {
        let mut member = self.member(principal, id).await?;
        member.role = role;
        member.updated_at = portico_store::now_millis();
        if !self.store.update_member(&member).await? {
            return Err(Error::NotFound("member"));
        }
        self.changed(Change::Member(id.to_owned()));
        tracing::info!(member = %id, role = %role, principal = %principal.reference(), "member's role changed");
        let change = Detail { target: Some(id), ..Detail::default() };
        self.audit_change(&principal.tenant_id, principal, "member.updated", change).await;
        Ok(member)
    }

    /// Removes a member; their portal sessions end at their next page. Their connections stay
    /// (they belong to the end user named by the address, whom an app may still serve).
    pub async fn remove_member(&self, principal: &Principal, id: &str) -> Result<()> {
        access::require(principal, Action::ManageMembers)?;
        if !self.store.delete_member(&principal.tenant_id, id).await? {
            return Err(Error::NotFound("member"));
        }
        self.changed(Change::Member(id.to_owned()));
        tracing::info!(member = %id, principal = %principal.reference(), "member removed");
        let change = Detail { target: Some(id), ..Detail::default() };
        self.audit_change(&principal.tenant_id, principal, "member.removed", change).await;
        Ok(())
    }

    /// The tenants a person with this (verified) address belongs to.
    pub async fn memberships(&self, email: &str) -> Result<Vec<Membership>> {
        let Some(email) = normalize_email(email) else { return Ok(Vec::new()) };
        let mut memberships = Vec::new();
        for member in self.store.members_by_email(&email).await? {
            if let Some(tenant) = self.store.tenant(&member.tenant_id).await? {
                memberships.push(Membership { tenant, member });
            }
        }
        memberships.sort_by(|a, b| a.tenant.name.cmp(&b.tenant.name));
        Ok(memberships)
    }

    /// A member's principal as it is now: what a portal session looks up again when members
    /// may have changed. A removed member is unauthenticated.
    pub async fn authenticate_member(&self, tenant_id: &str, member_id: &str) -> Result<Principal> {
        let member = self.store.member(tenant_id, member_id).await?.ok_or(Error::Unauthenticated)?;
        Ok(person(&member))
    }
}

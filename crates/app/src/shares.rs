//! Sharing a connection with other end users, as "can use" or "can edit". Only its owner or
//! an admin shares; sharing never reveals a secret (nothing does).

use portico_model::SharePermission;
use portico_store::{Change, ShareRecord};

use crate::access::Need;
use crate::audit::Detail;
use crate::error::{Error, Result};
use crate::{App, Principal};

impl App {
    /// Shares connection `id` with `end_user` (or changes what the share allows; an e-mail
    /// address is folded, see [`portico_model::end_user_id`]). Returns the share, and whether it
    /// is new.
    pub async fn share_connection(
        &self,
        principal: &Principal,
        id: &str,
        end_user: &str,
        permission: SharePermission,
    ) -> Result<(ShareRecord, bool)> {
        let record = self.find_connection(principal, id, Need::Manage).await?;
        let end_user = portico_model::end_user_id(end_user)
            .map_err(|message| Error::invalid_field("invalid end user", "endUserId", message))?;
        if record.end_user_id.as_deref() == Some(end_user.as_str()) {
            return Err(Error::invalid_field(
                "invalid end user",
                "endUserId",
                "owns this connection: a share is for other end users",
            ));
        }
        let now = portico_store::now_millis();
        let existing = self.store.list_shares(&principal.tenant_id, id).await?;
        let previous = existing.iter().find(|share| share.end_user_id == end_user);
        let share = ShareRecord {
            tenant_id: principal.tenant_id.to_string(),
            connection_id: id.to_owned(),
            end_user_id: end_user.clone(),
            permission,
            created_by: previous.map_or_else(|| principal.reference(), |p| p.created_by.clone()),
            created_at: previous.map_or(now, |p| p.created_at),
            updated_at: now,
        };
        self.store.put_share(&share).await?;
        // Calls check shares from the prepared connection: it is prepared again.
        self.changed(Change::Connection(id.to_owned()));
        tracing::info!(connection = %id, permission = permission.as_str(), principal = %principal.reference(),
            "connection shared");
        let change = Detail { connection_id: Some(id), target: Some(&share.end_user_id), ..Detail::default() };
        self.audit_change(&principal.tenant_id, principal, "share.put", change).await;
        Ok((share, previous.is_none()))
    }

    pub async fn unshare_connection(&self, principal: &Principal, id: &str, end_user: &str) -> Result<()> {
        self.find_connection(principal, id, Need::Manage).await?;
        let end_user = portico_model::end_user_id(end_user).map_err(|_| Error::NotFound("share"))?;
        if !self.store.delete_share(&principal.tenant_id, id, &end_user).await? {
            return Err(Error::NotFound("share"));
        }
        self.changed(Change::Connection(id.to_owned()));
        tracing::info!(connection = %id, principal = %principal.reference(), "connection share removed");
        let change = Detail { connection_id: Some(id), target: Some(&end_user), ..Detail::default() };
        self.audit_change(&principal.tenant_id, principal, "share.deleted", change).await;
        Ok(())
    }

    /// Who connection `id` is shared with.
    pub async fn connection_shares(&self, principal: &Principal, id: &str) -> Result<Vec<ShareRecord>> {
        self.find_connection(principal, id, Need::Manage).await?;
        Ok(self.store.list_shares(&principal.tenant_id, id).await?)
    }
}

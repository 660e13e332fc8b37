//! `portico tenant create|key|member`: work on the store directly, also while a server runs.

use clap::Subcommand;
use portico_app::bootstrap;
use portico_app::keys::NewKey;
use portico_model::Role;

use crate::serve::StoreArgs;

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its first API key (an admin key); prints {"tenant": ..., "api_key": ...}.
    Create {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Add an API key to a tenant (earlier keys stay valid); prints {"tenant", "api_key", "id", "role", ...}.
    Key {
        /// The tenant.
        name: String,
        /// What the key may do: admin (everything), author (connectors) or user (its end
        /// user's connections).
        #[arg(long, value_parser = parse_role, default_value = "admin")]
        role: Role,
        /// The end user a user key acts as (required with --role user).
        #[arg(long = "end-user")]
        end_user: Option<String>,
        /// What the key is for.
        #[arg(long = "key-name", default_value = "command line")]
        key_name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Add a person to a tenant by e-mail address (they sign in to the portal with OpenID
    /// Connect); prints {"tenant", "member", "email", "role"}.
    Member {
        /// The tenant.
        name: String,
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = parse_role, default_value = "user")]
        role: Role,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| "a role is admin, author or user".to_owned())
}

pub async fn run(command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create { name, store } => {
            let store = bootstrap::open_store(&store.data_dir(), store.database.as_deref()).await?;
            let created = bootstrap::create_tenant(store.as_ref(), &name).await?;
            // The one place a key is ever printed: the operator asked for it.
            println!("{}", serde_json::json!({ "tenant": name, "api_key": created.key.expose() }));
        }
        TenantCommand::Key { name, role, end_user, key_name, store } => {
            let store = bootstrap::open_store(&store.data_dir(), store.database.as_deref()).await?;
            let new = NewKey {
                name: key_name,
                role,
                end_user_id: end_user,
                connection_ids: None,
                expires_at: None,
                rate_limit: None,
            };
            let created = bootstrap::add_key(store.as_ref(), &name, new).await?;
            let record = &created.record;
            println!(
                "{}",
                serde_json::json!({
                    "tenant": name,
                    "api_key": created.key.expose(),
                    "id": record.id,
                    "role": record.role.as_str(),
                    "endUserId": record.end_user_id,
                })
            );
        }
        TenantCommand::Member { name, email, role, store } => {
            let store = bootstrap::open_store(&store.data_dir(), store.database.as_deref()).await?;
            let member = bootstrap::add_member(store.as_ref(), &name, &email, role).await?;
            println!(
                "{}",
                serde_json::json!({ "tenant": name, "member": member.id, "email": member.email, "role": member.role.as_str() })
            );
        }
    }
    Ok(())
}

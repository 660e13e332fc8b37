//! `portico tenant create|key`: work on the store directly, also while a server runs.

use clap::Subcommand;

use crate::serve::StoreArgs;

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its first API key; prints {"tenant": ..., "api_key": ...}.
    Create {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Add an API key to a tenant (earlier keys stay valid); prints {"tenant": ..., "api_key": ...}.
    Key {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: TenantCommand) -> anyhow::Result<()> {
    let (name, store_args, create) = match command {
        TenantCommand::Create { name, store } => (name, store, true),
        TenantCommand::Key { name, store } => (name, store, false),
    };
    let store = portico_app::bootstrap::open_store(&store_args.data_dir(), store_args.database.as_deref()).await?;
    let key = if create {
        portico_app::bootstrap::create_tenant(store.as_ref(), &name).await?
    } else {
        portico_app::bootstrap::add_key(store.as_ref(), &name).await?
    };
    // The one place a key is ever printed: the operator asked for it.
    println!("{}", serde_json::json!({ "tenant": name, "api_key": key.expose() }));
    Ok(())
}

//! Opening a data directory and store, the first tenant, and the tenant commands of the CLI.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use portico_model::Role;
use portico_secrets::{MasterKey, SecretString};
use portico_store::{MemberRecord, Store, StoreError};

use crate::keys::{CreatedKey, NewKey};

/// The name of the tenant created on the first start.
pub const DEFAULT_TENANT: &str = "default";
/// Where the first start writes the default tenant's API key, inside the data dir.
pub const ADMIN_KEY_FILE: &str = "admin-api-key";

pub struct Opened {
    pub store: Arc<dyn Store>,
    pub master_key: MasterKey,
    /// The master key and the store's data keys.
    pub ring: Arc<portico_secrets::KeyRing>,
}

/// A master key given to the server (from `PORTICO_MASTER_KEY` or a file named by
/// `PORTICO_MASTER_KEY_FILE`) rather than kept in its data directory.
#[derive(Clone)]
pub struct GivenKey {
    /// Where it came from, as errors name it: the variable, or the file's path.
    pub origin: String,
    pub text: SecretString,
}

/// Creates the data dir (owner-only) if needed, opens the store and runs its migrations, and
/// loads the master key: the given one, else `<data dir>/master.key`, else (for a store that
/// holds no secrets yet) a new one written there. A store whose secrets are sealed with a key
/// that is neither given nor in the data dir is refused: a new key would open none of them.
/// `pool_size` caps the connections to PostgreSQL (see [`portico_store::PgOptions`]).
pub async fn open(
    data_dir: &Path,
    database: Option<&str>,
    given: Option<&GivenKey>,
    pool_size: Option<u32>,
) -> anyhow::Result<Opened> {
    create_private_dir(data_dir)?;
    let key_file = data_dir.join(portico_secrets::KEY_FILE_NAME);
    // A key generated here would be this instance's alone, and the others on the database could
    // open none of its secrets.
    let shared = database.is_some_and(|url| url.starts_with("postgres:") || url.starts_with("postgresql:"));
    if shared && given.is_none() && !key_file.exists() {
        bail!(
            "with PostgreSQL every instance needs the same master key: set PORTICO_MASTER_KEY (base64 of 32 \
             bytes, e.g. from `head -c 32 /dev/urandom | base64`) or PORTICO_MASTER_KEY_FILE on each, or put \
             the same key in {}",
            key_file.display()
        );
    }
    let store = open_store_with(data_dir, database, pool_size).await?;
    let master_key = match given {
        Some(given) => MasterKey::from_base64(given.text.expose())
            .map_err(|error| anyhow::anyhow!("cannot load the master key: {}: {error}", given.origin))?,
        None => {
            if !key_file.exists()
                && let Some(sealed) = store.setting(KEY_CHECK).await?
            {
                bail!(
                    "the master key is missing: this store's secrets are sealed with master key {}, but no key \
                     was given and {} does not exist; set PORTICO_MASTER_KEY_FILE (a file holding the key) or \
                     PORTICO_MASTER_KEY to that key, or restore the file",
                    MasterKey::key_id_of(&sealed).unwrap_or("unknown"),
                    key_file.display()
                );
            }
            MasterKey::load_or_create(data_dir, None).context("cannot load the master key")?.0
        }
    };
    check_master_key(store.as_ref(), &master_key).await?;
    let ring = crate::data_keys::open_ring(store.as_ref(), master_key.clone()).await?;
    Ok(Opened { store, master_key, ring })
}

/// The setting that holds a value sealed with the store's master key (by the master key
/// itself, never by a data key).
pub(crate) const KEY_CHECK: &str = "master_key_check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"portico master key check";

/// The master-key check's value for `key`: sealed by it, so that only it opens it.
pub(crate) fn key_check_value(key: &MasterKey) -> Vec<u8> {
    key.seal(KEY_CHECK_PLAINTEXT, KEY_CHECK.as_bytes())
}

/// Refuses to start with a master key other than the one the store's secrets are sealed with:
/// better a clear error now than every connection failing later.
pub(crate) async fn check_master_key(store: &dyn Store, key: &MasterKey) -> anyhow::Result<()> {
    let stored = store.init_setting(KEY_CHECK, &key_check_value(key)).await?;
    match key.open(&stored, KEY_CHECK.as_bytes()) {
        Ok(plaintext) if plaintext.as_slice() == KEY_CHECK_PLAINTEXT => Ok(()),
        _ => bail!(
            "the master key (id {}) is not the one this store's secrets are sealed with (id {}): \
             set PORTICO_MASTER_KEY_FILE, PORTICO_MASTER_KEY or <data dir>/master.key to that key",
            key.id(),
            MasterKey::key_id_of(&stored).unwrap_or("unknown")
        ),
    }
}

/// Opens the store without the master key: enough for tenant commands.
pub async fn open_store(data_dir: &Path, database: Option<&str>) -> anyhow::Result<Arc<dyn Store>> {
    open_store_with(data_dir, database, None).await
}

/// [`open_store`] with at most `pool_size` connections to PostgreSQL (the default of
/// [`portico_store::PgOptions`] when `None`; SQLite ignores it).
pub async fn open_store_with(
    data_dir: &Path,
    database: Option<&str>,
    pool_size: Option<u32>,
) -> anyhow::Result<Arc<dyn Store>> {
    create_private_dir(data_dir)?;
    let url = match database {
        None => {
            let path = data_dir.join("portico.db");
            create_private_file(&path)?;
            format!("sqlite://{}", path.display())
        }
        Some(url) => url.to_owned(),
    };
    let opened = match pool_size {
        Some(max_connections) if url.starts_with("postgres:") || url.starts_with("postgresql:") => {
            let options = portico_store::PgOptions { max_connections, ..portico_store::PgOptions::default() };
            portico_store::PgStore::open_with(&url, options).await.map(|store| Arc::new(store) as Arc<dyn Store>)
        }
        _ => portico_store::open(&url).await,
    };
    opened.with_context(|| format!("cannot open the store at {}", portico_store::redact_url(&url)))
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("cannot create the data directory {}", dir.display()))
}

/// On a store with no tenant, creates `default` with an API key written to
/// `<data dir>/admin-api-key` (mode 0600). Returns that file's path when it did.
pub async fn ensure_default_tenant(store: &dyn Store, data_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    if store.tenant_count().await? > 0 {
        return Ok(None);
    }
    let tenant = match store.create_tenant(DEFAULT_TENANT).await {
        Ok(tenant) => tenant,
        // Another process created it between our count and our insert.
        Err(StoreError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let created = insert_key(store, &tenant.id, admin_key("admin")).await?;
    let path = data_dir.join(ADMIN_KEY_FILE);
    write_private_file(&path, created.key.expose().as_bytes())?;
    Ok(Some(path))
}

/// An empty file only its owner can read, unless it exists (SQLite gives its -wal and -shm
/// files the database file's mode).
fn create_private_file(path: &Path) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

fn write_private_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    Ok(())
}

/// An admin key named `name`.
pub fn admin_key(name: &str) -> NewKey {
    NewKey {
        name: name.to_owned(),
        role: Role::Admin,
        end_user_id: None,
        connection_ids: None,
        expires_at: None,
        rate_limit: None,
    }
}

/// Checks and stores a key the operator makes; the answer holds the key, shown this once.
async fn insert_key(store: &dyn Store, tenant_id: &str, new: NewKey) -> anyhow::Result<CreatedKey> {
    if new.connection_ids.is_some() {
        bail!("keys narrowed to connections are made through the API (POST /v1/api-keys), which checks them");
    }
    let created =
        crate::keys::make_key(tenant_id, "operator".to_owned(), new, portico_store::now_millis()).map_err(|error| {
            match error {
                crate::Error::Invalid { errors, .. } => anyhow::anyhow!(
                    "{}",
                    errors
                        .iter()
                        .map(|e| format!("{} {}", flag_of(&e.field), e.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                other => anyhow::anyhow!("{other}"),
            }
        })?;
    store.insert_api_key(&created.record, &portico_secrets::api_key_hash(created.key.expose())).await?;
    Ok(created)
}

/// The command-line flag that gives a key's field.
fn flag_of(field: &str) -> &str {
    match field {
        "name" => "--key-name",
        "role" => "--role",
        "endUserId" => "--end-user",
        other => other,
    }
}

/// A new tenant and its first API key (an admin key).
pub async fn create_tenant(store: &dyn Store, name: &str) -> anyhow::Result<CreatedKey> {
    let name = name.trim();
    if name.is_empty() {
        bail!("a tenant needs a name");
    }
    let tenant = match store.create_tenant(name).await {
        Err(StoreError::Conflict(_)) => {
            bail!("tenant '{name}' already exists; use `portico tenant key {name}` to add a key")
        }
        other => other?,
    };
    insert_key(store, &tenant.id, admin_key("admin")).await
}

/// One more API key for an existing tenant; earlier keys stay valid.
pub async fn add_key(store: &dyn Store, tenant: &str, new: NewKey) -> anyhow::Result<CreatedKey> {
    let Some(tenant) = store.tenant_by_name(tenant).await? else { bail!("no tenant named '{tenant}'") };
    insert_key(store, &tenant.id, new).await
}

/// Adds a person to a tenant by e-mail address, with a role (the first admin of a tenant
/// whose people sign in with OpenID Connect is added this way).
pub async fn add_member(store: &dyn Store, tenant: &str, email: &str, role: Role) -> anyhow::Result<MemberRecord> {
    let Some(tenant) = store.tenant_by_name(tenant).await? else { bail!("no tenant named '{tenant}'") };
    let member = crate::members::make_member(&tenant.id, email, role, "operator".to_owned())
        .map_err(|_| anyhow::anyhow!("'{email}' is not an e-mail address"))?;
    match store.insert_member(&member).await {
        Err(StoreError::Conflict(_)) => bail!("{} is a member of tenant '{}' already", member.email, tenant.name),
        other => other?,
    }
    Ok(member)
}

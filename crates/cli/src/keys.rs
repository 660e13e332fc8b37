//! `portico keys rotate|rotate-master|status`: the data keys that seal stored values, rotated
//! online, and the master key that wraps them.
//!
//! Run against the store the instances use (same `--data-dir`/`--database` and master key as
//! `portico serve`), while they serve: see `portico_app::data_keys`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use portico_app::{bootstrap, data_keys};
use portico_secrets::{MasterKey, SecretString};

use crate::serve::StoreArgs;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a new data key current, re-seal every stored secret with it in batches while the
    /// instances keep serving, then delete the old key. Run it again after an interruption:
    /// it finishes what was started.
    Rotate(RotateArgs),
    /// Re-wrap every data key under a new master key and seal the master-key check with it, in
    /// one transaction. Refused while values are still sealed by the current master key itself
    /// (run `keys rotate` first). Then restart every instance with the new master key.
    RotateMaster(RotateMasterArgs),
    /// The data keys, their states and how many stored values each still seals (JSON).
    Status(KeyArgs),
}

#[derive(Args)]
pub struct RotateMasterArgs {
    /// The store and its current master key
    #[command(flatten)]
    key: KeyArgs,
    /// A file holding the new master key (base64 of 32 bytes)
    #[arg(long, required_unless_present = "new_master_key_env", conflicts_with = "new_master_key_env")]
    new_master_key_file: Option<PathBuf>,
    /// The name of an environment variable holding the new master key (base64 of 32 bytes)
    #[arg(long)]
    new_master_key_env: Option<String>,
}

impl RotateMasterArgs {
    /// The new master key; errors name where it came from, never the key.
    fn new_master_key(&self) -> anyhow::Result<MasterKey> {
        let (origin, text) = match (&self.new_master_key_file, &self.new_master_key_env) {
            (Some(path), _) => (
                path.display().to_string(),
                std::fs::read_to_string(path).map(SecretString::from).with_context(|| {
                    format!("cannot read the new master key file {} (--new-master-key-file)", path.display())
                })?,
            ),
            (None, Some(name)) => (
                name.clone(),
                std::env::var(name).map(SecretString::from).map_err(|_| {
                    anyhow::anyhow!("the environment variable {name} (--new-master-key-env) is not set or not UTF-8")
                })?,
            ),
            (None, None) => anyhow::bail!("give the new master key: --new-master-key-file or --new-master-key-env"),
        };
        MasterKey::from_base64(text.expose())
            .map_err(|error| anyhow::anyhow!("cannot load the new master key: {origin}: {error}"))
    }
}

/// The store and its master key, given as to `portico serve`.
#[derive(Args)]
pub struct KeyArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// A file holding the master key; or the key itself in PORTICO_MASTER_KEY
    /// [default: <data dir>/master.key]
    #[arg(long, env = "PORTICO_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct RotateArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Values re-sealed per transaction
    #[arg(long, default_value_t = data_keys::DEFAULT_BATCH, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Seconds after the switch before the old key may be deleted (every instance reads the
    /// keys again within 5 s)
    #[arg(long, hide = true, default_value_t = data_keys::DEFAULT_GRACE.as_secs_f64())]
    grace_seconds: f64,
    /// Stop with an error after this many batches (tests of resuming)
    #[arg(long, hide = true)]
    stop_after_batches: Option<u64>,
}

async fn open(args: &KeyArgs) -> anyhow::Result<bootstrap::Opened> {
    let given = crate::serve::given_master_key(args.master_key_file.clone())?;
    bootstrap::open(&args.store.data_dir(), args.store.database.as_deref(), given.as_ref(), Some(2)).await
}

pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Rotate(args) => {
            let grace = Duration::try_from_secs_f64(args.grace_seconds)
                .map_err(|_| anyhow::anyhow!("--grace-seconds must be a number of seconds, 0 or more"))?;
            let opened = open(&args.key).await?;
            let options = data_keys::RotateOptions {
                batch_size: args.batch_size,
                grace,
                stop_after_batches: args.stop_after_batches,
            };
            let mut progress = |line: String| eprintln!("portico keys rotate: {line}");
            let rotation = data_keys::rotate(opened.store.as_ref(), &opened.ring, &options, &mut progress).await?;
            println!(
                "{}",
                serde_json::json!({
                    "current": rotation.current,
                    "resumed": rotation.resumed,
                    "resealed": rotation.resealed,
                    "batches": rotation.batches,
                    "passes": rotation.passes,
                    "retired": rotation.retired,
                })
            );
        }
        KeysCommand::RotateMaster(args) => {
            let new_master = args.new_master_key()?;
            let opened = open(&args.key).await?;
            let rotation = data_keys::rotate_master(opened.store.as_ref(), &opened.ring, &new_master).await?;
            eprintln!(
                "portico keys rotate-master: {} data key(s) are wrapped by master key {}; restart every instance with it",
                rotation.data_keys.len(),
                rotation.to
            );
            println!(
                "{}",
                serde_json::json!({"from": rotation.from, "to": rotation.to, "dataKeys": rotation.data_keys})
            );
        }
        KeysCommand::Status(args) => {
            let opened = open(&args).await?;
            let keys = data_keys::status(opened.store.as_ref(), &opened.ring).await?;
            let keys: Vec<_> = keys
                .iter()
                .map(|key| serde_json::json!({"id": key.id, "state": key.state, "values": key.values}))
                .collect();
            println!("{}", serde_json::json!({ "keys": keys }));
        }
    }
    Ok(())
}

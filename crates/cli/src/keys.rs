//! `portico keys rotate|status`: the data keys that seal stored values, rotated online.
//!
//! Run against the store the instances use (same `--data-dir`/`--database` and master key as
//! `portico serve`), while they serve: see `portico_app::data_keys`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use portico_app::{bootstrap, data_keys};

use crate::serve::StoreArgs;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a new data key current, re-seal every stored secret with it in batches while the
    /// instances keep serving, then delete the old key. Run it again after an interruption:
    /// it finishes what was started.
    Rotate(RotateArgs),
    /// The data keys, their states and how many stored values each still seals (JSON).
    Status(KeyArgs),
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

//! `portico audit export`: the audit trail as JSON lines, read from the store directly (also
//! while servers run), oldest first.

use std::io::Write as _;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use portico_app::bootstrap;
use portico_server::AuditEventView;
use portico_store::AuditQuery;
use serde::Serialize;

use crate::serve::StoreArgs;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Print audit events, oldest first, one JSON object per line, each with its tenant's name.
    Export(ExportArgs),
}

#[derive(Args)]
pub struct ExportArgs {
    /// Events at or after this time: RFC 3339 (2030-01-31T12:00:00Z) or an age (90s, 15m, 24h,
    /// 7d) [default: every event kept]
    #[arg(long)]
    since: Option<String>,
    /// Events before this time, as `--since`.
    #[arg(long)]
    until: Option<String>,
    /// Only this tenant's events [default: every tenant's]
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// One JSON object per line.
    Jsonl,
}

#[derive(Serialize)]
struct Line<'a> {
    tenant: &'a str,
    #[serde(flatten)]
    event: AuditEventView,
}

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Export(args) = command;
    let Format::Jsonl = args.format;
    let now = portico_store::now_millis();
    let since = args.since.as_deref().map(|text| time_or_age(text, now)).transpose().context("--since")?;
    let until = args.until.as_deref().map(|text| time_or_age(text, now)).transpose().context("--until")?;
    let store = bootstrap::open_store(&args.store.data_dir(), args.store.database.as_deref()).await?;
    let mut tenants = store.list_tenants().await?;
    if let Some(name) = &args.tenant {
        tenants.retain(|tenant| &tenant.name == name);
        anyhow::ensure!(!tenants.is_empty(), "there is no tenant '{name}'");
    }
    let query = AuditQuery { since, until, oldest_first: true, ..AuditQuery::default() };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for tenant in &tenants {
        let mut cursor = None;
        loop {
            let page = store.list_audit(&tenant.id, &query, cursor.as_deref(), 1000).await?;
            for record in &page.items {
                let line = Line { tenant: &tenant.name, event: AuditEventView::new(record) };
                serde_json::to_writer(&mut out, &line)?;
                out.write_all(b"\n")?;
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// An RFC 3339 time, or an age before `now` (`90s`, `15m`, `24h`, `7d`), in milliseconds.
fn time_or_age(text: &str, now: portico_store::Millis) -> anyhow::Result<portico_store::Millis> {
    if let Ok(time) = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        return Ok(portico_store::Millis::try_from(time.unix_timestamp_nanos() / 1_000_000)?);
    }
    let unit = text.chars().last().unwrap_or(' ');
    let seconds: i64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => anyhow::bail!("'{text}' is neither an RFC 3339 time nor an age such as 24h or 7d"),
    };
    let count: i64 = text[..text.len() - 1]
        .parse()
        .ok()
        .filter(|n| *n >= 0)
        .with_context(|| format!("'{text}' is neither an RFC 3339 time nor an age such as 24h or 7d"))?;
    Ok(now - count.saturating_mul(seconds).saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::time_or_age;

    #[test]
    fn times_and_ages_are_read() {
        let now = 1_800_000_000_000;
        assert_eq!(time_or_age("2000-02-29T00:00:00.123Z", now).unwrap(), 951_782_400_123);
        assert_eq!(time_or_age("90s", now).unwrap(), now - 90_000);
        assert_eq!(time_or_age("7d", now).unwrap(), now - 7 * 86_400_000);
        assert!(time_or_age("yesterday", now).is_err());
        assert!(time_or_age("-5h", now).is_err());
        assert!(time_or_age("h", now).is_err());
    }
}

//! `portico connector validate` and `portico connector show`.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use portico_import::Import;
use portico_import::discover::{self, Found};
use portico_import::summary::AuthSummary;
use portico_model::{Connector, Credential, IdentityProviderCatalog};
use serde::Serialize;

/// Exit status for bad usage, as clap uses.
const USAGE: u8 = 2;

#[derive(Subcommand)]
pub enum ConnectorCommand {
    /// Validate connectors: a Power Platform connector folder, an OpenAPI file, or a tree
    /// searched for them. Exits 0 when all are valid, 1 when any has errors, 2 on bad usage.
    Validate {
        /// One JSON object per line per connector.
        #[arg(long)]
        json: bool,
        /// Also print warnings (always included with --json).
        #[arg(long, short)]
        verbose: bool,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Show the connection form a user would see when creating a connection.
    Show {
        #[arg(long)]
        json: bool,
        path: PathBuf,
    },
}

pub fn run(command: ConnectorCommand) -> ExitCode {
    let catalog = IdentityProviderCatalog::built_in();
    match command {
        ConnectorCommand::Validate { json, verbose, paths } => validate(&paths, json, verbose, &catalog),
        ConnectorCommand::Show { json, path } => show(&path, json, &catalog),
    }
}

/// One line of `validate --json`.
#[derive(Serialize)]
struct Report<'a> {
    path: &'a str,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<AuthSummary>,
    operations: usize,
    warnings: Vec<String>,
    errors: Vec<String>,
}

fn report<'a>(found: &'a Found, import: &Import) -> Report<'a> {
    Report {
        path: &found.display,
        ok: import.is_ok(),
        auth: import.connector.as_ref().map(|c| AuthSummary::of(&c.connection)),
        operations: import.connector.as_ref().map_or(0, |c| c.operations.len()),
        warnings: import.warnings().map(ToString::to_string).collect(),
        errors: import.errors().map(ToString::to_string).collect(),
    }
}

fn find_all(paths: &[PathBuf]) -> Result<Vec<Found>, ExitCode> {
    let mut all = Vec::new();
    for path in paths {
        match discover::find(path) {
            Ok(found) => all.extend(found),
            Err(e) => {
                eprintln!("portico: cannot read {}: {e}", path.display());
                return Err(ExitCode::from(USAGE));
            }
        }
    }
    Ok(all)
}

fn validate(paths: &[PathBuf], json: bool, verbose: bool, catalog: &IdentityProviderCatalog) -> ExitCode {
    let found = match find_all(paths) {
        Ok(found) => found,
        Err(code) => return code,
    };
    if found.is_empty() {
        eprintln!("portico: no connector found (a folder with apiProperties.json, or an OpenAPI file)");
        return ExitCode::from(USAGE);
    }
    let progress = progress_bar(found.len());
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let (mut ok, mut failed, mut warnings) = (0usize, 0usize, 0usize);
    for item in &found {
        progress.set_message(item.display.clone());
        let import = item.load().validated(catalog);
        let line = report(item, &import);
        if line.ok {
            ok += 1
        } else {
            failed += 1
        }
        warnings += line.warnings.len();
        let written = if json {
            serde_json::to_writer(&mut out, &line).map_err(io::Error::from).and_then(|()| writeln!(out))
        } else {
            progress.suspend(|| write_human(&mut out, &line, verbose))
        };
        if written.is_err() {
            return ExitCode::from(1); // stdout closed (e.g. piped into `head`)
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    if !json {
        let _ = writeln!(
            out,
            "\n{} connector{}: {ok} valid, {failed} with errors, {warnings} warning{}",
            found.len(),
            plural(found.len()),
            plural(warnings)
        );
    }
    let _ = out.flush();
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn progress_bar(len: usize) -> ProgressBar {
    if len < 20 || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn write_human(out: &mut impl Write, line: &Report<'_>, verbose: bool) -> io::Result<()> {
    let mark = if line.ok { "ok  " } else { "FAIL" };
    match &line.auth {
        Some(auth) => writeln!(out, "{mark} {}: {}, {} operations", line.path, auth.describe(), line.operations)?,
        None => writeln!(out, "{mark} {}", line.path)?,
    }
    for error in &line.errors {
        writeln!(out, "       error: {error}")?;
    }
    if verbose {
        for warning in &line.warnings {
            writeln!(out, "       warning: {warning}")?;
        }
    } else if !line.warnings.is_empty() {
        writeln!(out, "       {} warning{} (-v to list)", line.warnings.len(), plural(line.warnings.len()))?;
    }
    Ok(())
}

fn show(path: &std::path::Path, json: bool, catalog: &IdentityProviderCatalog) -> ExitCode {
    let found = match find_all(std::slice::from_ref(&path.to_path_buf())) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let [item] = found.as_slice() else {
        eprintln!("portico: {} holds {} connectors; show takes exactly one", path.display(), found.len());
        return ExitCode::from(USAGE);
    };
    let import = item.load().validated(catalog);
    let Some(connector) = &import.connector else {
        for error in import.errors() {
            eprintln!("error: {error}");
        }
        return ExitCode::from(1);
    };
    let mut out = io::stdout().lock();
    let written = if json {
        serde_json::to_writer_pretty(&mut out, &connector.connection_form())
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        write_form(&mut out, connector, catalog)
    };
    for error in import.errors() {
        eprintln!("error: {error}");
    }
    match (written, import.is_ok()) {
        (Ok(()), true) => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

fn write_form(out: &mut impl Write, connector: &Connector, catalog: &IdentityProviderCatalog) -> io::Result<()> {
    let meta = &connector.metadata;
    writeln!(out, "{} ({})", meta.display_name, meta.name)?;
    match &connector.backend.host_template {
        Some(template) => writeln!(out, "Backend: {template}")?,
        None => writeln!(out, "Backend: {}", connector.backend.base_url())?,
    }
    writeln!(out, "Operations: {}", connector.operations.len())?;
    let form = connector.connection_form();
    if let Some(choice) = &form.choice {
        let label = if choice.label.is_empty() { "Choose how to connect" } else { &choice.label };
        writeln!(out, "\n{label}: one of {} parameter sets", form.sets.len())?;
    }
    for (set, spec) in form.sets.iter().zip(connector.connection.sets()) {
        writeln!(out)?;
        if form.choice.is_some() {
            let label = set.ui.as_ref().map_or(set.name.as_str(), |u| u.label.as_str());
            writeln!(out, "[{}] {label}", set.name)?;
        }
        writeln!(out, "Authentication: {}", auth_words(&spec.credential, catalog))?;
        if let Credential::OAuth2(oauth) = &spec.credential {
            let sign_in = set.oauth.as_ref().map_or("Sign in", |o| o.label.as_str());
            writeln!(out, "  button: \"{sign_in}\" ({})", oauth.grant.as_str())?;
            for (name, value) in [
                ("authorization URL", &oauth.authorization_url),
                ("token URL", &oauth.token_url),
                ("refresh URL", &oauth.refresh_url),
                ("discovery URL", &oauth.discovery_url),
            ] {
                if let Some(value) = value {
                    writeln!(out, "  {name}: {value}")?;
                }
            }
            if !oauth.scopes.is_empty() {
                writeln!(out, "  scopes: {}", oauth.scopes.join(" "))?;
            }
        }
        if set.fields.is_empty() {
            writeln!(out, "  (no fields to fill in)")?;
        }
        for field in &set.fields {
            let mut flags = vec![field.kind];
            if field.required {
                flags.push("required");
            }
            if field.secret {
                flags.push(if field.masked { "secret, masked" } else { "secret, shown while typed" });
            }
            if field.hidden {
                flags.push("hidden");
            }
            writeln!(out, "  {} [{}] ({})", field.label, field.name, flags.join(", "))?;
            if let Some(description) = &field.description {
                writeln!(out, "      {description}")?;
            }
            if !field.allowed_values.is_empty() {
                let values: Vec<_> = field.allowed_values.iter().map(|v| v.value.as_str()).collect();
                writeln!(out, "      one of: {}", values.join(", "))?;
            }
            if let Some(default) = &field.default {
                writeln!(out, "      default: {default}")?;
            }
            let sent: Vec<String> = field.sent_to.iter().map(ToString::to_string).collect();
            let sent = if sent.is_empty() { "stored only".to_owned() } else { sent.join("; ") };
            writeln!(out, "      sent to: {sent}")?;
        }
    }
    Ok(())
}

fn auth_words(credential: &Credential, catalog: &IdentityProviderCatalog) -> String {
    match credential {
        Credential::None => "none of its own".to_owned(),
        Credential::Basic { .. } => "basic (Authorization: Basic)".to_owned(),
        Credential::ApiKey { keys } => {
            let keys: Vec<String> = keys.iter().map(|k| format!("{} {}", k.location.as_str(), k.name)).collect();
            format!("API key ({})", keys.join(" + "))
        }
        Credential::OAuth2(oauth) => {
            let provider = oauth.identity_provider.as_str();
            match catalog.get(provider) {
                Some(entry) => format!("OAuth 2.0 via {} ({provider})", entry.display_name),
                None => format!("OAuth 2.0 via {provider} (not in the catalog)"),
            }
        }
    }
}

//! The Power Platform importer against the 1,034 real connectors of
//! microsoft/PowerPlatformConnectors (`shared/corpus/power-platform`), and their auth kinds
//! against `classification.tsv`, which was derived from the files independently.
//!
//! The corpus sits beside the project, never inside it: `$PORTICO_CORPUS`, else
//! `<workspace>/../shared/corpus`.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use portico_import::Import;
use portico_import::power_platform::import_folder;
use portico_import::summary::AuthSummary;
use portico_model::IdentityProviderCatalog;

/// The connectors whose JSON is genuinely broken (format research §5), with the broken file.
const BROKEN: [(&str, &str); 11] = [
    ("certified-connectors/IN-D Invoice Data Capture", "apiDefinition.swagger.json"), // missing comma
    ("independent-publisher-connectors/AccuWeather", "apiDefinition.swagger.json"),   // missing comma
    ("independent-publisher-connectors/XSOAR", "apiDefinition.swagger.json"),         // missing comma
    ("certified-connectors/SigningHub", "apiProperties.json"),                        // missing comma
    ("certified-connectors/Shopranos", "apiProperties.json"),                         // truncated
    ("certified-connectors/gofileroom", "apiProperties.json"),                        // truncated
    ("certified-connectors/CognitiveServicesTextAnalytics", "apiDefinition.swagger.json"), // extra `}`
    ("certified-connectors/ZohoSign", "apiDefinition.swagger.json"),                  // object not closed
    ("independent-publisher-connectors/StabilityAI", "apiDefinition.swagger.json"),   // array not closed
    ("independent-publisher-connectors/Icon Horse", "apiDefinition.swagger.json"),    // object not closed
    ("independent-publisher-connectors/GIPHY", "apiDefinition.swagger.json"),         // comma, then extra brace
];

const ROWS: usize = 1_034;
const MIN_OK: f64 = 0.995;
const MIN_AGREEMENT: f64 = 0.99;

struct Row {
    path: String,
    kind: String,
    detail: String,
}

fn read_classification(tsv: &str) -> Vec<Row> {
    tsv.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut cols = line.splitn(3, '\t');
            let path = cols.next().unwrap_or_default().to_owned();
            let kind = cols.next().unwrap_or_default().to_owned();
            let detail = cols.next().unwrap_or_default();
            let detail = detail.split(" [note:").next().unwrap_or_default().to_owned();
            Row { path, kind, detail }
        })
        .collect()
}

/// `key=value` from a detail such as `in=header,query;name=A,B;param=api_key`; the first of
/// a comma list, since multi-key rows are compared on their first key.
fn detail_field<'d>(detail: &'d str, key: &str) -> Option<&'d str> {
    detail
        .split(';')
        .find_map(|part| part.strip_prefix(key)?.strip_prefix('='))
        .map(|value| value.split(',').next().unwrap_or_default())
}

/// The TSV's view and ours in the same words: `apiKey(header Authorization)`, `oauth2(aad)`.
fn expected(row: &Row) -> String {
    match row.kind.as_str() {
        "apiKey" => format!(
            "apiKey({} {})",
            detail_field(&row.detail, "in").unwrap_or("?"),
            detail_field(&row.detail, "name").unwrap_or("?")
        ),
        "oauth2" => format!("oauth2({})", detail_field(&row.detail, "idp").unwrap_or("?")),
        kind => kind.to_owned(),
    }
}

fn ours(summary: &AuthSummary) -> String {
    match summary.kind {
        "apiKey" => {
            format!("apiKey({} {})", summary.location.unwrap_or("?"), summary.name.as_deref().unwrap_or("?"))
        }
        "oauth2" => format!("oauth2({})", summary.identity_provider.as_deref().unwrap_or("?")),
        kind => kind.to_owned(),
    }
}

#[test]
fn every_power_platform_connector_imports_and_agrees_with_the_classification() {
    let Some(root) = portico_testkit::power_platform_corpus() else { return };
    let tsv = std::fs::read_to_string(root.join("classification.tsv")).expect("classification.tsv");
    let rows = read_classification(&tsv);
    assert_eq!(rows.len(), ROWS, "classification.tsv should list every connector");
    let catalog = IdentityProviderCatalog::built_in();

    let mut results: BTreeMap<&str, Import> = BTreeMap::new();
    let mut panics = Vec::new();
    for row in &rows {
        let dir = root.join(&row.path);
        match catch_unwind(AssertUnwindSafe(|| import_folder(&dir).validated(&catalog))) {
            Ok(import) => {
                results.insert(&row.path, import);
            }
            Err(_) => panics.push(row.path.clone()),
        }
    }
    assert!(panics.is_empty(), "the importer panicked on {} connectors: {panics:?}", panics.len());
    assert_eq!(results.len(), ROWS);

    // The genuinely broken files fail, naming the file, line and column.
    for (path, file) in BROKEN {
        let import = &results[path];
        assert!(import.connector.is_none(), "{path}: broken JSON should give no connector");
        let at_position = |at: &str| {
            at.strip_prefix(file).and_then(|rest| rest.strip_prefix(':')).is_some_and(|pos| {
                let parts: Vec<&str> = pos.split(':').collect();
                parts.len() == 2 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
            })
        };
        for error in import.errors() {
            eprintln!("BROKEN as expected {path}: {error}");
        }
        assert!(
            import.errors().any(|d| at_position(&d.at)),
            "{path}: expected an error at {file}:<line>:<col>, got {:?}",
            import.diagnostics
        );
    }

    // Everything else imports with no errors.
    let is_broken = |path: &str| BROKEN.iter().any(|(b, _)| *b == path);
    let others: Vec<&Row> = rows.iter().filter(|r| !is_broken(&r.path)).collect();
    let mut failures = 0;
    for row in &others {
        let import = &results[row.path.as_str()];
        if !import.is_ok() {
            failures += 1;
            eprintln!("FAILED {}", row.path);
            for error in import.errors() {
                eprintln!("    {error}");
            }
        }
    }
    let ok = others.len() - failures;
    let ok_share = ok as f64 / others.len() as f64;

    // Auth kinds agree with the independent classification. Known difference: Celonis offers
    // three API keys as alternatives (`security` is an OR); the TSV lists them in declaration
    // order (AppKey first), the importer takes the first alternative (BearerAuth, Authorization).
    let compared: Vec<&Row> = others
        .iter()
        .copied()
        .filter(|r| matches!(r.kind.as_str(), "none" | "basic" | "apiKey" | "oauth2" | "multiple"))
        .collect();
    let mut disagreements = Vec::new();
    for row in &compared {
        let import = &results[row.path.as_str()];
        let ours = match &import.connector {
            Some(connector) => ours(&AuthSummary::of(&connector.connection)),
            None => "(no connector)".to_owned(),
        };
        let expected = expected(row);
        if ours != expected {
            disagreements.push((row.path.as_str(), expected, ours));
        }
    }
    let agreement = 1.0 - disagreements.len() as f64 / compared.len() as f64;
    if !disagreements.is_empty() {
        eprintln!("\n| path | classification.tsv | ours |\n|---|---|---|");
        for (path, expected, ours) in &disagreements {
            eprintln!("| {path} | {expected} | {ours} |");
        }
    }

    eprintln!(
        "\ncorpus: {} connectors; {} broken as expected; {ok} of {} others imported with no errors ({:.2}%), \
         {failures} with errors; auth agreement {} of {} ({:.2}%)",
        rows.len(),
        BROKEN.len(),
        others.len(),
        ok_share * 100.0,
        compared.len() - disagreements.len(),
        compared.len(),
        agreement * 100.0
    );
    assert!(ok_share >= MIN_OK, "only {:.2}% imported with no errors (floor {:.1}%)", ok_share * 100.0, MIN_OK * 100.0);
    assert!(
        agreement >= MIN_AGREEMENT,
        "auth kind agrees on only {:.2}% (floor {:.0}%)",
        agreement * 100.0,
        MIN_AGREEMENT * 100.0
    );
}

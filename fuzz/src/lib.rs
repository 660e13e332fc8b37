//! What the importer targets check of every import, whatever the input.

use portico_import::{Import, definition};
use portico_model::{Connector, IdentityProviderCatalog};

/// The properties every import has:
///
/// - a failed import says why: no connector means at least one error;
/// - a position `<file>:<line>:<column>` lies inside the file it names (lines counted at `\n`,
///   columns in characters, one past the end of a line allowed);
/// - a connector that passes the model's validation, written in Portico's own definition
///   format, reads back as the same connector with no findings.
pub fn check_import(import: Import, files: &[(&str, &[u8])]) {
    let catalog = IdentityProviderCatalog::built_in();
    for diagnostic in &import.diagnostics {
        check_position(&diagnostic.at, files);
    }
    if import.connector.is_none() {
        assert!(import.errors().next().is_some(), "no connector and no error: {:?}", import.diagnostics);
        return;
    }
    let import = import.validated(&catalog);
    if !import.is_ok() {
        return;
    }
    let connector = import.connector.expect("an accepted import has a connector");
    round_trip(&connector);
}

/// `connector` as JSON, read back by the definition importer (from the value and from the
/// bytes), is `connector` again.
pub fn round_trip(connector: &Connector) {
    let value = serde_json::to_value(connector).expect("a connector serializes");
    let again = definition::import_value(&value);
    assert!(again.diagnostics.is_empty(), "re-reading the definition found {:?}\n{value:#}", again.diagnostics);
    let again = again.connector.expect("re-read");
    assert_eq!(&again, connector, "the definition does not read back as the same connector\n{value:#}");
    let bytes = serde_json::to_vec_pretty(connector).expect("a connector serializes");
    let from_bytes = definition::import_bytes(&bytes, "definition.json");
    assert!(from_bytes.diagnostics.is_empty(), "re-reading the file found {:?}", from_bytes.diagnostics);
    assert_eq!(from_bytes.connector.as_ref(), Some(connector));
}

/// If `at` is `<file>:<line>:<column>` for one of `files`, the position exists in that file,
/// with lines ended by `\n` (as the JSON reader counts them) or by `\r\n`, `\r` or `\n` (as
/// YAML does).
fn check_position(at: &str, files: &[(&str, &[u8])]) {
    for (name, bytes) in files {
        let Some(position) = at.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')) else { continue };
        let Some((line, column)) = position.split_once(':') else { continue };
        let (Ok(line), Ok(column)) = (line.parse::<usize>(), column.parse::<usize>()) else { continue };
        let decoded = utf16(bytes);
        let body = decoded.as_deref().map_or(*bytes, str::as_bytes);
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        let exists = |lines: Vec<&[u8]>| {
            line >= 1 && line <= lines.len() && column >= 1 && column <= characters(lines[line - 1]) + 1
        };
        let yaml_lines = || {
            let mut lines = Vec::new();
            let mut start = 0;
            let mut i = 0;
            while i < body.len() {
                if body[i] == b'\r' || body[i] == b'\n' {
                    lines.push(&body[start..i]);
                    i += if body[i..].starts_with(b"\r\n") { 2 } else { 1 };
                    start = i;
                } else {
                    i += 1;
                }
            }
            lines.push(&body[start..]);
            lines
        };
        assert!(exists(body.split(|b| *b == b'\n').collect()) || exists(yaml_lines()), "{at} is not in {name}");
    }
}

/// The text of a UTF-16 file with a byte-order mark (which the YAML reader takes), as UTF-8.
fn utf16(bytes: &[u8]) -> Option<String> {
    let unit: fn([u8; 2]) -> u16 = match bytes.get(..2)? {
        b"\xFE\xFF" => u16::from_be_bytes,
        b"\xFF\xFE" => u16::from_le_bytes,
        _ => return None,
    };
    let units = bytes[2..].chunks_exact(2).map(|pair| unit([pair[0], pair[1]]));
    Some(char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect())
}

/// Characters as the importers count them: UTF-8 sequences, and other bytes one each.
fn characters(bytes: &[u8]) -> usize {
    bytes.utf8_chunks().map(|chunk| chunk.valid().chars().count() + chunk.invalid().len()).sum()
}

//! Tolerant JSON decoding for hand-written connector files.
//!
//! STUB: strict parsing only; the tolerant version replaces this body.

use portico_model::Diagnostic;
use serde_json::Value;

/// Parses `bytes` (the contents of the file named `file`). Returns the value and warnings for
/// everything that had to be tolerated, or an error `<file>:<line>:<column>: <message>`.
pub fn parse(bytes: &[u8], file: &str) -> Result<(Value, Vec<Diagnostic>), Diagnostic> {
    serde_json::from_slice(bytes)
        .map(|v| (v, Vec::new()))
        .map_err(|e| Diagnostic::error(format!("{file}:{}:{}", e.line(), e.column()), e.to_string()))
}

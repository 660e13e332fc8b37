//! The document being read, its findings, and local `$ref` resolution.

use std::collections::HashSet;

use portico_model::{Diagnostic, Severity};
use serde_json::Value;

/// How many `$ref`s one lookup follows before calling it a loop.
const MAX_REF_HOPS: usize = 64;

pub(super) struct Ctx<'a> {
    pub file: &'a str,
    pub root: &'a Value,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    pub fn new(file: &'a str, root: &'a Value) -> Self {
        Ctx { file, root, diagnostics: Vec::new() }
    }

    /// `<file>#<pointer>`, or the file alone for the whole document.
    pub fn at(&self, pointer: &str) -> String {
        if pointer.is_empty() { self.file.to_owned() } else { format!("{}#{pointer}", self.file) }
    }

    pub fn warn(&mut self, pointer: &str, message: impl Into<String>) {
        self.report(Severity::Warning, pointer, message);
    }

    pub fn error(&mut self, pointer: &str, message: impl Into<String>) {
        self.report(Severity::Error, pointer, message);
    }

    pub fn report(&mut self, severity: Severity, pointer: &str, message: impl Into<String>) {
        let at = self.at(pointer);
        self.diagnostics.push(match severity {
            Severity::Error => Diagnostic::error(at, message),
            Severity::Warning => Diagnostic::warning(at, message),
        });
    }

    /// Follows `$ref`s from `value` (found at `pointer`) to the object they name, returning it
    /// and its own pointer. A missing, external or looping reference is reported with
    /// `severity` and gives `None`.
    pub fn resolve(&mut self, value: &'a Value, pointer: &str, severity: Severity) -> Option<(&'a Value, String)> {
        let mut current = value;
        let mut current_at = pointer.to_owned();
        let mut seen = HashSet::new();
        for _ in 0..MAX_REF_HOPS {
            let Some(reference) = current.as_object().and_then(|o| o.get("$ref")) else {
                return Some((current, current_at));
            };
            let ref_at = child(&current_at, "$ref");
            let Some(reference) = reference.as_str() else {
                self.report(severity, &ref_at, "$ref must be a string");
                return None;
            };
            let Some(fragment) = reference.strip_prefix('#') else {
                self.report(
                    severity,
                    &ref_at,
                    format!("the external reference '{reference}' is not followed: Portico reads one file"),
                );
                return None;
            };
            if !seen.insert(reference) {
                self.report(severity, &ref_at, format!("the reference '{reference}' leads back to itself"));
                return None;
            }
            let target_pointer = percent_decode(fragment);
            match self.root.pointer(&target_pointer) {
                Some(target) => {
                    current = target;
                    current_at = target_pointer;
                }
                None => {
                    self.report(severity, &ref_at, format!("the reference '{reference}' points to nothing"));
                    return None;
                }
            }
        }
        self.report(severity, pointer, "too many nested references");
        None
    }
}

/// The pointer of `key` inside the object at `pointer` (RFC 6901 escaping).
pub(super) fn child(pointer: &str, key: &str) -> String {
    format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// `$ref` fragments are URI fragments: `%7B` stands for `{`.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) =
                (bytes.get(i + 1).and_then(|&b| hex(b)), bytes.get(i + 2).and_then(|&b| hex(b)))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A non-empty string, trimmed.
pub(super) fn text(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The first sentence of a description, when it is short enough to be a label.
pub(super) fn first_sentence(text: &str) -> Option<String> {
    let text = text.trim();
    let end = text.find(". ").map(|i| i + 1).or_else(|| text.find('\n')).unwrap_or(text.len());
    let sentence = text[..end].trim().trim_end_matches('.').trim();
    (!sentence.is_empty() && sentence.chars().count() <= 80).then(|| sentence.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_escapes_slashes_and_tildes() {
        assert_eq!(child("/paths", "/items/{id}"), "/paths/~1items~1{id}");
        assert_eq!(child("", "a~b"), "/a~0b");
    }

    #[test]
    fn percent_decoding_keeps_broken_escapes() {
        assert_eq!(percent_decode("/paths/~1a%7Bid%7D"), "/paths/~1a{id}");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz%"), "%zz%");
    }

    #[test]
    fn first_sentence_makes_short_labels() {
        assert_eq!(first_sentence("Your API key. Get one at example.com.").as_deref(), Some("Your API key"));
        assert_eq!(first_sentence("Token\nmore").as_deref(), Some("Token"));
        assert_eq!(first_sentence("  "), None);
        assert_eq!(first_sentence(&"x".repeat(81)), None);
    }

    #[test]
    fn references_resolve_and_loops_stop() {
        let doc = serde_json::json!({
            "a": {"$ref": "#/b"},
            "b": {"$ref": "#/c"},
            "c": {"type": "string"},
            "loop1": {"$ref": "#/loop2"},
            "loop2": {"$ref": "#/loop1"},
            "missing": {"$ref": "#/nothing"},
            "external": {"$ref": "other.yaml#/x"}
        });
        let mut ctx = Ctx::new("f.json", &doc);
        let (value, at) = ctx.resolve(&doc["a"], "/a", Severity::Error).unwrap();
        assert_eq!((value, at.as_str()), (&doc["c"], "/c"));
        assert!(ctx.diagnostics.is_empty());
        for key in ["loop1", "missing", "external"] {
            assert!(ctx.resolve(&doc[key], &format!("/{key}"), Severity::Warning).is_none());
        }
        assert_eq!(ctx.diagnostics.len(), 3);
        assert!(ctx.diagnostics[0].message.contains("leads back to itself"), "{:?}", ctx.diagnostics);
    }
}

//! Collects warnings and errors, each placed at a file and a JSON pointer inside it.

use portico_model::Diagnostic;

/// Which of the two files a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Properties,
    Definition,
}

pub(super) struct Findings<'a> {
    properties: &'a str,
    definition: &'a str,
    pub(super) diagnostics: Vec<Diagnostic>,
}

impl<'a> Findings<'a> {
    pub(super) fn new(properties: &'a str, definition: &'a str) -> Self {
        Findings { properties, definition, diagnostics: Vec::new() }
    }

    /// `apiProperties.json#/properties/connectionParameters/api_key`, or the bare file name.
    pub(super) fn at(&self, source: Source, pointer: &str) -> String {
        let file = match source {
            Source::Properties => self.properties,
            Source::Definition => self.definition,
        };
        if pointer.is_empty() { file.to_owned() } else { format!("{file}#{pointer}") }
    }

    pub(super) fn warn(&mut self, source: Source, pointer: &str, message: impl Into<String>) {
        let at = self.at(source, pointer);
        self.diagnostics.push(Diagnostic::warning(at, message));
    }

    pub(super) fn error(&mut self, source: Source, pointer: &str, message: impl Into<String>) {
        let at = self.at(source, pointer);
        self.diagnostics.push(Diagnostic::error(at, message));
    }
}

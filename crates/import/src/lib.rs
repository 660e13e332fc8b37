//! Readers of connector definitions: Power Platform connector folders (`apiProperties.json` +
//! `apiDefinition.swagger.json`) and OpenAPI 3.0 / 3.1 documents (JSON or YAML).
//!
//! Raw files become a [`portico_model::Connector`] here, once; nothing downstream re-checks
//! their shape. Oddities that still leave a usable connector are warnings; genuinely broken
//! input is an error naming the file, line and column.

pub mod definition;
pub mod discover;
pub mod json;
pub mod openapi;
pub mod power_platform;
pub mod summary;

use std::path::Path;

use portico_model::{Connector, Diagnostic, IdentityProviderCatalog};

/// The result of reading one connector: the connector when it could be read at all, and
/// every finding along the way.
#[derive(Debug, Clone)]
pub struct Import {
    pub connector: Option<Connector>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Import {
    pub fn failed(diagnostic: Diagnostic) -> Self {
        Import { connector: None, diagnostics: vec![diagnostic] }
    }

    /// Adds the model's own validation to the importer's findings.
    pub fn validated(mut self, catalog: &IdentityProviderCatalog) -> Self {
        if let Some(connector) = &self.connector {
            self.diagnostics.extend(connector.validate(catalog));
        }
        self
    }

    /// True when a connector was read and nothing is an error.
    pub fn is_ok(&self) -> bool {
        self.connector.is_some() && !self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }
}

/// Reads the connector at `path`: a Power Platform connector folder or an OpenAPI file.
pub fn load(path: &Path) -> Import {
    if path.is_dir() { power_platform::import_folder(path) } else { openapi::import_file(path) }
}

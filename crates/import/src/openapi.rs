//! OpenAPI 3.0 / 3.1 documents. STUB.

use std::path::Path;

use crate::Import;
use portico_model::Diagnostic;

pub fn import_file(path: &Path) -> Import {
    Import::failed(Diagnostic::error(path.display().to_string(), "OpenAPI import is not implemented yet"))
}

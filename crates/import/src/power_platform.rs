//! Power Platform connector folders. STUB.

use std::path::Path;

use crate::Import;
use portico_model::Diagnostic;

pub fn import_folder(path: &Path) -> Import {
    Import::failed(Diagnostic::error(path.display().to_string(), "Power Platform import is not implemented yet"))
}

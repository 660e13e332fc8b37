//! Finding connectors under a path: Power Platform connector folders and OpenAPI files.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A folder with `apiProperties.json` and a swagger file.
    PowerPlatform,
    /// An OpenAPI 3 document (JSON or YAML).
    OpenApi,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Where it is on disk.
    pub path: PathBuf,
    /// As found, relative to the path searched (the path itself when it is the connector).
    pub display: String,
    pub kind: SourceKind,
}

impl Found {
    pub fn load(&self) -> crate::Import {
        match self.kind {
            SourceKind::PowerPlatform => crate::power_platform::import_folder(&self.path),
            SourceKind::OpenApi => crate::openapi::import_file(&self.path),
        }
    }
}

/// The connectors at or under `root`, in a stable order. A file given directly is taken as an
/// OpenAPI document; in a tree, folders holding `apiProperties.json` are connectors (not
/// searched further) and other `.json`/`.yaml`/`.yml` files count when they declare `openapi`.
pub fn find(root: &Path) -> io::Result<Vec<Found>> {
    let meta = fs::metadata(root)?;
    let given = root.display().to_string();
    if meta.is_file() {
        return Ok(vec![Found { path: root.to_path_buf(), display: given, kind: SourceKind::OpenApi }]);
    }
    if is_connector_folder(root)? {
        return Ok(vec![Found { path: root.to_path_buf(), display: given, kind: SourceKind::PowerPlatform }]);
    }
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<Found>) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        // Symbolic links are not followed: a link loop must not hang a search.
        let file_type = entry.file_type()?;
        let relative = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        if file_type.is_dir() {
            if is_connector_folder(&path)? {
                out.push(Found { path, display: relative, kind: SourceKind::PowerPlatform });
            } else {
                walk(root, &path, out)?;
            }
        } else if file_type.is_file() && looks_like_openapi(&path) {
            out.push(Found { path, display: relative, kind: SourceKind::OpenApi });
        }
    }
    Ok(())
}

fn is_connector_folder(dir: &Path) -> io::Result<bool> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().eq_ignore_ascii_case("apiProperties.json") && entry.path().is_file() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A cheap sniff of the first 4 KiB: an `openapi` key near the top.
fn looks_like_openapi(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if !(name.ends_with(".json") || name.ends_with(".yaml") || name.ends_with(".yml")) {
        return false;
    }
    let mut head = Vec::with_capacity(4096);
    let Ok(file) = fs::File::open(path) else { return false };
    if file.take(4096).read_to_end(&mut head).is_err() {
        return false;
    }
    let text = String::from_utf8_lossy(&head);
    text.contains("\"openapi\"") || text.lines().any(|l| l.starts_with("openapi:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_folders_and_openapi_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("b/Conn One")).unwrap();
        fs::write(root.join("b/Conn One/APIPROPERTIES.json"), "{}").unwrap();
        fs::create_dir_all(root.join("b/Conn One/nested")).unwrap();
        fs::write(root.join("b/Conn One/nested/openapi.yaml"), "openapi: 3.0.0").unwrap();
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(root.join("a/api.yaml"), "openapi: 3.1.0\ninfo: {}").unwrap();
        fs::write(root.join("a/notes.json"), "{\"x\": 1}").unwrap();
        fs::write(root.join("a/readme.md"), "openapi").unwrap();
        let found = find(root).unwrap();
        let got: Vec<_> = found.iter().map(|f| (f.display.as_str(), f.kind)).collect();
        assert_eq!(got, vec![("a/api.yaml", SourceKind::OpenApi), ("b/Conn One", SourceKind::PowerPlatform)]);
    }

    #[test]
    fn a_connector_folder_given_directly_is_itself() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("apiProperties.json"), "{}").unwrap();
        let found = find(dir.path()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, SourceKind::PowerPlatform);
        assert_eq!(found[0].display, dir.path().display().to_string());
    }

    #[test]
    fn a_missing_path_is_an_error() {
        assert!(find(Path::new("/no/such/path/here")).is_err());
    }
}

use std::fmt;

use serde::{Deserialize, Serialize};

/// How bad a finding is: an error stops a connector from being published, a warning does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    Warning,
    Error,
}

/// One finding about a connector: where it is and what is wrong, in words a connector author
/// can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Where the finding is: a field path (`connection.parameters.api_key.label`) or a file
    /// position (`apiProperties.json:24:5`).
    pub at: String,
    pub message: String,
}

impl Diagnostic {
    pub fn error(at: impl Into<String>, message: impl Into<String>) -> Self {
        Self { severity: Severity::Error, at: at.into(), message: message.into() }
    }

    pub fn warning(at: impl Into<String>, message: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, at: at.into(), message: message.into() }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.at, self.message) }
    }
}

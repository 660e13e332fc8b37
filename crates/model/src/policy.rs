use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request policy: something done to each request of the listed operations (all, when none
/// are listed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    #[serde(flatten)]
    pub kind: PolicyKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
}

impl Policy {
    pub fn applies_to(&self, operation_id: &str) -> bool {
        self.operations.is_empty() || self.operations.iter().any(|o| o == operation_id)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "policy")]
pub enum PolicyKind {
    /// Sets a request header from a template (`setheader`).
    SetHeader { name: String, value: Template },
    /// Sets a query parameter from a template (`setqueryparameter`).
    SetQueryParameter { name: String, value: Template },
    /// Any other policy, kept as written so that nothing is lost.
    Other { template_id: String, parameters: BTreeMap<String, Value> },
}

/// A string with `@connectionParameters('name')` (or `@connectionParameters('name','default')`)
/// references, filled in from a connection's parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Template(pub String);

/// A reference to a connection parameter inside a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamRef<'a> {
    pub name: &'a str,
    pub default: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment<'a> {
    Literal(&'a str),
    Param(ParamRef<'a>),
}

const MARKER: &str = "@connectionparameters(";

impl Template {
    pub fn new(text: impl Into<String>) -> Self {
        Template(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Splits the template into literal text and parameter references. The marker is matched
    /// case-insensitively; a malformed reference is kept as literal text.
    pub fn segments(&self) -> Vec<Segment<'_>> {
        let text = self.0.as_str();
        let lower = text.to_ascii_lowercase();
        let mut out = Vec::new();
        let mut rest = 0;
        let mut search = 0;
        while let Some(found) = lower[search..].find(MARKER) {
            let start = search + found;
            match parse_reference(&text[start + MARKER.len()..]) {
                Some((reference, used)) => {
                    if start > rest {
                        out.push(Segment::Literal(&text[rest..start]));
                    }
                    out.push(Segment::Param(reference));
                    rest = start + MARKER.len() + used;
                    search = rest;
                }
                None => search = start + MARKER.len(),
            }
        }
        if rest < text.len() {
            out.push(Segment::Literal(&text[rest..]));
        }
        out
    }

    pub fn references(&self) -> Vec<ParamRef<'_>> {
        self.segments()
            .into_iter()
            .filter_map(|s| match s {
                Segment::Param(p) => Some(p),
                Segment::Literal(_) => None,
            })
            .collect()
    }

    /// Fills in each reference with `lookup(name)`, else its default, else nothing.
    pub fn render<'v>(&self, mut lookup: impl FnMut(&str) -> Option<&'v str>) -> String {
        let mut out = String::with_capacity(self.0.len());
        for segment in self.segments() {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Param(p) => {
                    if let Some(value) = lookup(p.name).or(p.default) {
                        out.push_str(value);
                    }
                }
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses `'name')` or `'name', 'default')` after the marker; returns the reference and how
/// many bytes it used.
fn parse_reference(text: &str) -> Option<(ParamRef<'_>, usize)> {
    let (name, mut pos) = quoted(text, 0)?;
    let mut default = None;
    pos = skip_spaces(text, pos);
    if text[pos..].starts_with(',') {
        let (value, after) = quoted(text, skip_spaces(text, pos + 1))?;
        default = Some(value);
        pos = skip_spaces(text, after);
    }
    text[pos..].starts_with(')').then_some((ParamRef { name, default }, pos + 1))
}

fn quoted(text: &str, pos: usize) -> Option<(&str, usize)> {
    let pos = skip_spaces(text, pos);
    let rest = text[pos..].strip_prefix('\'')?;
    let end = rest.find('\'')?;
    Some((&rest[..end], pos + 1 + end + 1))
}

fn skip_spaces(text: &str, pos: usize) -> usize {
    pos + text[pos..].len() - text[pos..].trim_start().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_references_with_and_without_defaults() {
        let t = Template::new("https://@connectionParameters('sub').x.com/@ConnectionParameters( 'v' , '2' )/");
        let refs = t.references();
        assert_eq!(refs, vec![ParamRef { name: "sub", default: None }, ParamRef { name: "v", default: Some("2") },]);
        assert_eq!(t.render(|n| (n == "sub").then_some("acme")), "https://acme.x.com/2/");
    }

    #[test]
    fn malformed_reference_stays_literal() {
        let t = Template::new("Token @connectionParameters('key'");
        assert!(t.references().is_empty());
        assert_eq!(t.render(|_| Some("x")), "Token @connectionParameters('key'");
    }

    #[test]
    fn plain_text_renders_as_is() {
        assert_eq!(Template::new("abc").render(|_| None), "abc");
        assert_eq!(Template::new("").segments(), vec![]);
    }
}

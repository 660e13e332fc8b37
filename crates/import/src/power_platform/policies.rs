//! `policyTemplateInstances`: APIM policies that fill headers, query parameters and the host
//! from connection parameters. Policies Portico does not interpret are kept as written.

use portico_model::{Policy, PolicyKind, Template, header_name_problem};
use serde_json::Value;

use super::findings::{Findings, Source};
use super::value::{Object, get, get_object, get_text, pointer};

const OPERATIONS: &str = "x-ms-apimTemplate-operationName";
const SECTION: &str = "x-ms-apimTemplate-policySection";

#[derive(Default)]
pub(super) struct Policies {
    pub(super) host_template: Option<Template>,
    pub(super) policies: Vec<Policy>,
}

pub(super) fn read(properties: &Object, operation_ids: &[&str], findings: &mut Findings) -> Policies {
    let mut out = Policies::default();
    let at = "/properties/policyTemplateInstances";
    let instances = match get(properties, "policyTemplateInstances") {
        None | Some(Value::Null) => return out,
        Some(Value::Array(instances)) => instances,
        Some(_) => {
            findings.warn(Source::Properties, at, "policyTemplateInstances is not an array; ignored");
            return out;
        }
    };
    for (i, instance) in instances.iter().enumerate() {
        let at = pointer(at, &i.to_string());
        let Some(instance) = instance.as_object() else {
            findings.warn(Source::Properties, &at, "a policy is not an object; ignored");
            continue;
        };
        let Some(template_id) = get_text(instance, "templateId") else {
            findings.warn(Source::Properties, &at, "a policy has no templateId; ignored");
            continue;
        };
        let empty = Object::new();
        let parameters = get_object(instance, "parameters").unwrap_or(&empty);
        let operations: Vec<String> = match get(parameters, OPERATIONS) {
            Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            Some(Value::String(name)) => vec![name.clone()],
            _ => Vec::new(),
        };
        let parameter = |name: &str| get_text(parameters, &format!("x-ms-apimTemplateParameter.{name}"));
        let kind = match template_id.to_ascii_lowercase().as_str() {
            "dynamichosturl" => {
                match host_template(parameter("urlTemplate"), &operations, operation_ids, &out, &at, findings) {
                    Some(template) => {
                        out.host_template = Some(template);
                        continue;
                    }
                    None => None,
                }
            }
            id @ ("setheader" | "setqueryparameter") => {
                // A Response-section header changes what the caller receives, not the request.
                let on_request = get_text(parameters, SECTION).is_none_or(|s| s.eq_ignore_ascii_case("request"));
                match (parameter("name"), on_request) {
                    (Some(name), true) => {
                        let value = Template::new(
                            get(parameters, "x-ms-apimTemplateParameter.value")
                                .and_then(Value::as_str)
                                .unwrap_or_default(),
                        );
                        if id == "setqueryparameter" {
                            Some(PolicyKind::SetQueryParameter { name, value })
                        } else if let Some(problem) = header_name_problem(&name) {
                            findings.warn(Source::Properties, &at, format!("{problem}: the policy is kept as written"));
                            None
                        } else {
                            Some(PolicyKind::SetHeader { name, value })
                        }
                    }
                    (None, _) => {
                        findings.warn(
                            Source::Properties,
                            &at,
                            format!("{template_id} policy names no header or parameter"),
                        );
                        None
                    }
                    (Some(_), false) => None,
                }
            }
            _ => None,
        };
        let kind = kind.unwrap_or_else(|| PolicyKind::Other {
            template_id: template_id.clone(),
            parameters: parameters.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        });
        out.policies.push(Policy { kind, operations });
    }
    out
}

/// The backend's host template, when this `dynamichosturl` can be one: it applies to every
/// operation and is filled from connection parameters only. Otherwise it is kept as written.
fn host_template(
    url: Option<String>,
    operations: &[String],
    operation_ids: &[&str],
    sofar: &Policies,
    at: &str,
    findings: &mut Findings,
) -> Option<Template> {
    let Some(url) = url else {
        findings.warn(Source::Properties, at, "dynamichosturl policy has no urlTemplate; kept as written");
        return None;
    };
    let lower = url.to_ascii_lowercase();
    let problem = if lower.contains("@queryparameters(") || lower.contains("@headers(") {
        Some("takes the host from each request, which Portico does not do".to_owned())
    } else if !operations.is_empty() && !operation_ids.iter().all(|id| operations.iter().any(|o| o == id)) {
        let covered = operation_ids.iter().filter(|id| operations.iter().any(|o| o == *id)).count();
        Some(format!("applies to {covered} of {} operations, and Portico has one host for all", operation_ids.len()))
    } else if sofar.host_template.is_some() {
        Some("is a second host template for the same operations".to_owned())
    } else {
        None
    };
    match problem {
        None => Some(Template::new(url)),
        Some(problem) => {
            findings.warn(
                Source::Properties,
                at,
                format!("dynamichosturl '{url}' {problem}; kept as written but not applied"),
            );
            None
        }
    }
}

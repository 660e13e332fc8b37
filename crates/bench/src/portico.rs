//! Portico for the benchmark: started on a fresh data dir, then four connectors (one per kind
//! of credential) and a connection to each, all pointing at the benchmark's backend.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use hyper::Method;
use serde_json::{Value, json};

use crate::http;
use crate::procs::{Launcher, Proc};

/// The API key the nginx proxy and the API-key connectors send.
pub const API_KEY: &str = "bench-key-7f3a9c";
pub const BASIC_USER: &str = "bench";
pub const BASIC_PASSWORD: &str = "s3cret-pw";
pub const BEARER_TOKEN: &str = "bench-token-41d2e8";

/// One Portico target: how to set it up and what the backend must see.
#[derive(Debug, Clone)]
pub struct Kind {
    pub target: &'static str,
    pub definition_credential: Value,
    pub parameters_spec: Value,
    pub values: Value,
    /// The backend's `/echo-auth` answer: `<X-Api-Key>|<Authorization>|<api_key query>`.
    pub expected_echo: String,
}

pub fn kinds() -> Vec<Kind> {
    let secret =
        |name: &str, label: &str| json!({"name": name, "type": "securestring", "label": label, "required": true});
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{BASIC_USER}:{BASIC_PASSWORD}"));
    vec![
        Kind {
            target: "portico-apikey-header",
            definition_credential: json!({"kind": "apiKey", "keys": [{"parameter": "api_key", "name": "X-Api-Key", "in": "header"}]}),
            parameters_spec: json!([secret("api_key", "API key")]),
            values: json!({"api_key": API_KEY}),
            expected_echo: format!("{API_KEY}||"),
        },
        Kind {
            target: "portico-apikey-query",
            definition_credential: json!({"kind": "apiKey", "keys": [{"parameter": "api_key", "name": "api_key", "in": "query"}]}),
            parameters_spec: json!([secret("api_key", "API key")]),
            values: json!({"api_key": API_KEY}),
            expected_echo: format!("||{API_KEY}"),
        },
        Kind {
            target: "portico-basic",
            definition_credential: json!({"kind": "basic", "username": "username", "password": "password"}),
            parameters_spec: json!([
                {"name": "username", "type": "string", "label": "User name", "required": true},
                secret("password", "Password"),
            ]),
            values: json!({"username": BASIC_USER, "password": BASIC_PASSWORD}),
            expected_echo: format!("|Basic {basic}|"),
        },
        Kind {
            // A bearer token as an API key with a prefix, until OAuth supplies real tokens.
            target: "portico-bearer",
            definition_credential: json!({"kind": "apiKey", "keys": [
                {"parameter": "token", "name": "Authorization", "in": "header", "prefix": "Bearer "}
            ]}),
            parameters_spec: json!([secret("token", "Token")]),
            values: json!({"token": BEARER_TOKEN}),
            expected_echo: format!("|Bearer {BEARER_TOKEN}|"),
        },
    ]
}

/// The `POST /v1/connectors` body for `kind` against a backend at `127.0.0.1:port`.
pub fn connector_body(kind: &Kind, backend_port: u16) -> Value {
    json!({"definition": {
        "metadata": {"name": kind.target, "displayName": format!("Benchmark {}", kind.target)},
        "backend": {"scheme": "http", "host": format!("127.0.0.1:{backend_port}"), "basePath": "/"},
        "connection": {"mode": "single", "parameters": kind.parameters_spec, "credential": kind.definition_credential},
    }})
}

pub struct Portico {
    /// Declared first: dropped (stopped) before anything else of ours.
    pub process: Proc,
    pub base: String,
    pub api_key: String,
}

/// Starts `binary serve` on `port` with `data_dir`, and waits until its API answers.
pub async fn start(
    launcher: &Launcher,
    binary: &Path,
    data_dir: &Path,
    port: u16,
    log_filter: &str,
    extra_args: &[String],
) -> anyhow::Result<Portico> {
    let mut command = launcher.command(binary);
    // Only our settings: none of the caller's PORTICO_* variables (a database URL, say).
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PORTICO_") {
            command.env_remove(name);
        }
    }
    command
        .arg("--log")
        .arg(log_filter)
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--allow-private-backends")
        .args(extra_args)
        .current_dir(data_dir);
    let log = data_dir.with_extension("log");
    let mut process = Proc::spawn("portico", command, &log)?;
    let base = format!("http://127.0.0.1:{port}");
    let key_file = data_dir.join("admin-api-key");
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = process.exited() {
            bail!("Portico exited ({status}) while starting:\n{}", process.log_tail(20));
        }
        if Instant::now() > until {
            bail!("Portico did not answer within 30 s:\n{}", process.log_tail(20));
        }
        if let Ok(key) = std::fs::read_to_string(&key_file) {
            let key = key.trim().to_owned();
            let auth = [("Authorization".to_owned(), format!("Bearer {key}"))];
            let ready = http::call(Method::GET, &format!("{base}/v1/connectors"), &auth, None).await;
            if ready.is_ok_and(|(status, _)| status.is_success()) {
                return Ok(Portico { process, base, api_key: key });
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Portico {
    /// Creates the connector and a connection for `kind`; returns the connection's id.
    pub async fn set_up(&self, kind: &Kind, backend_port: u16) -> anyhow::Result<String> {
        let connector = self.post("/v1/connectors", &connector_body(kind, backend_port)).await?;
        let connector_id = connector["id"].as_str().context("the created connector has no id")?;
        let body = json!({"connectorId": connector_id, "displayName": kind.target, "parameters": kind.values});
        let connection = self.post("/v1/connections", &body).await?;
        Ok(connection["id"].as_str().context("the created connection has no id")?.to_owned())
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let auth = [("Authorization".to_owned(), format!("Bearer {}", self.api_key))];
        let (status, text) = http::call(Method::POST, &format!("{}{path}", self.base), &auth, Some(body)).await?;
        if !status.is_success() {
            bail!("POST {path} → {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("POST {path}: not JSON: {text}"))
    }

    /// `ANY /v1/connections/{id}/proxy/{path}` for `path` (without its leading slash).
    pub fn proxy_url(&self, connection_id: &str, path: &str) -> String {
        format!("{}/v1/connections/{connection_id}/proxy/{}", self.base, path.trim_start_matches('/'))
    }

    pub fn version(binary: &Path) -> String {
        crate::system::version_line(binary, &["--version"]).unwrap_or_else(|| "unknown version".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_kinds_with_distinct_echoes() {
        let kinds = kinds();
        assert_eq!(kinds.len(), 4);
        assert_eq!(kinds[2].expected_echo, "|Basic YmVuY2g6czNjcmV0LXB3|");
        let body = connector_body(&kinds[3], 9000);
        assert_eq!(body["definition"]["backend"]["host"], "127.0.0.1:9000");
        assert_eq!(body["definition"]["connection"]["credential"]["keys"][0]["prefix"], "Bearer ");
    }
}

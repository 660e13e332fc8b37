//! nginx as the backend (`return 200 "ok"`) and as the reference reverse proxy.
//!
//! Each instance gets its own prefix directory with every path nginx writes (pid, error log,
//! temp paths) inside it, runs in the foreground (`daemon off`) so that it stays our child,
//! and, when we are root, runs as `nobody` through `setpriv` (the stock configuration under
//! /etc/nginx is never read).

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::procs::{Launcher, Proc};
use crate::system;

/// `"$http_x_api_key|$http_authorization|$arg_api_key"`: what reached the backend.
pub const ECHO_PATH: &str = "/echo-auth";

fn skeleton(prefix: &Path, workers: &str, servers: &str) -> String {
    let p = prefix.display();
    let mut conf = String::new();
    let _ = write!(
        conf,
        "daemon off;
master_process on;
worker_processes {workers};
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {p}/tmp/body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
{servers}}}
"
    );
    conf
}

/// The backend: one worker answering `ok`, and the echo location.
pub fn backend_conf(prefix: &Path, port: u16) -> String {
    let servers = format!(
        "    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type text/plain; return 200 \"ok\"; }}
        location = {ECHO_PATH} {{ default_type text/plain; return 200 \"$http_x_api_key|$http_authorization|$arg_api_key\"; }}
    }}
"
    );
    skeleton(prefix, "1", &servers)
}

/// The reference proxy: `workers` (`auto`: one per CPU), upstream keep-alive, the API-key
/// header set and the caller's `Authorization` removed.
pub fn proxy_conf(prefix: &Path, workers: &str, port: u16, backend_port: u16, api_key: &str) -> String {
    let servers = format!(
        "    upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header X-Api-Key \"{api_key}\";
            proxy_set_header Authorization \"\";
        }}
    }}
"
    );
    skeleton(prefix, workers, &servers)
}

/// Writes `conf` into a fresh prefix `dir/name` and starts nginx on it.
pub fn start(
    launcher: &Launcher,
    nginx: &Path,
    dir: &Path,
    name: &str,
    conf: impl Fn(&Path) -> String,
) -> anyhow::Result<Proc> {
    let prefix = dir.join(name);
    std::fs::create_dir_all(prefix.join("tmp"))?;
    let conf_file = prefix.join("nginx.conf");
    std::fs::write(&conf_file, conf(&prefix))?;
    let log = dir.join(format!("{name}.out"));
    let mut command;
    if system::is_root() {
        // nginx as root would run its workers as the stock `user`; run it all as nobody.
        let (uid, gid) = nobody()?;
        chown_tree(dir, uid, gid)?;
        command = launcher.command(system::which("setpriv").context("setpriv is needed to run nginx as nobody")?);
        command.args([format!("--reuid={uid}"), format!("--regid={gid}"), "--clear-groups".to_owned()]);
        command.arg(nginx);
    } else {
        command = launcher.command(nginx);
    }
    command.arg("-p").arg(&prefix).arg("-c").arg(&conf_file).arg("-e").arg(prefix.join("error.log"));
    Proc::spawn(name, command, &log)
}

fn nobody() -> anyhow::Result<(u32, u32)> {
    let id = |flag: &str| -> anyhow::Result<u32> {
        let output = Command::new("id").args([flag, "nobody"]).output()?;
        String::from_utf8_lossy(&output.stdout).trim().parse().context("no user nobody")
    };
    Ok((id("-u")?, id("-g")?))
}

/// Hands `dir` and everything under it to `uid:gid` (nginx must write its pid, logs and temp
/// files; the directory is a tempdir of ours).
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    let mut stack: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).with_context(|| path.display().to_string())?;
        if path.is_dir() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_sets_the_key_and_drops_the_callers_authorization() {
        let conf = proxy_conf(Path::new("/tmp/x"), "auto", 8080, 8082, "k-1");
        for needle in [
            "worker_processes auto;",
            "keepalive 64;",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
            "proxy_set_header X-Api-Key \"k-1\";",
            "proxy_set_header Authorization \"\";",
            "access_log off;",
            "proxy_temp_path /tmp/x/tmp/proxy;",
            "daemon off;",
        ] {
            assert!(conf.contains(needle), "{needle} missing from\n{conf}");
        }
        let backend = backend_conf(Path::new("/tmp/x"), 8082);
        assert!(backend.contains("worker_processes 1;"));
        assert!(backend.contains("return 200 \"ok\";"));
        assert!(backend.contains("$http_x_api_key|$http_authorization|$arg_api_key"));
    }
}

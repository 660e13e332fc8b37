//! The host's own addresses. A public address bound to one of its interfaces reaches Portico's
//! own services (and whatever else listens there) as surely as loopback does.
//!
//! They are read once when the first rule that refuses them is made, and again every
//! [`REFRESH`] on a thread of their own, so that a check is a lookup in a small set in memory.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

/// How often the interfaces are read again.
const REFRESH: Duration = Duration::from_secs(30);

static LOCAL: OnceLock<RwLock<HashSet<IpAddr>>> = OnceLock::new();

/// Reads the interfaces now (when not yet done) and keeps them current from then on.
pub(crate) fn watch() {
    local();
}

/// Whether `ip` is one of this host's addresses.
pub(crate) fn is_local(ip: IpAddr) -> bool {
    local().read().unwrap_or_else(|e| e.into_inner()).contains(&ip)
}

fn local() -> &'static RwLock<HashSet<IpAddr>> {
    LOCAL.get_or_init(|| {
        let spawned = std::thread::Builder::new().name("portico-local-addresses".to_owned()).spawn(|| {
            loop {
                std::thread::sleep(REFRESH);
                if let (Some(addresses), Some(local)) = (read(), LOCAL.get()) {
                    *local.write().unwrap_or_else(|e| e.into_inner()) = addresses;
                }
            }
        });
        if let Err(error) = spawned {
            tracing::warn!(%error, "this host's addresses will not be read again");
        }
        RwLock::new(read().unwrap_or_default())
    })
}

/// The addresses of every interface; `None` when they cannot be read (the last ones read stay).
fn read() -> Option<HashSet<IpAddr>> {
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => Some(interfaces.into_iter().map(|interface| interface.ip()).collect()),
        Err(error) => {
            tracing::warn!(%error, "cannot read this host's interface addresses");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_interface_address_is_local() {
        let interfaces = if_addrs::get_if_addrs().expect("the interfaces");
        assert!(!interfaces.is_empty(), "loopback at least");
        for interface in interfaces {
            assert!(is_local(interface.ip()), "{} of {}", interface.ip(), interface.name);
        }
        assert!(!is_local("192.0.2.1".parse().unwrap()), "a documentation address is no interface's");
    }
}

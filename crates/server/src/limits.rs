//! How many client connections an instance holds at once, so that a flood of connections
//! (half-open, or slow to send their request) cannot take every file descriptor: a
//! connection over the limit is closed as soon as it is accepted, and what is left of the
//! descriptors stays for the store, the backends and the identity providers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Descriptors kept for everything but client connections: the store, logs, listeners,
/// identity providers and webhook receivers.
const RESERVED_DESCRIPTORS: u64 = 256;

/// The limit and the counts, shared by every worker.
#[derive(Debug)]
pub struct ConnectionLimit {
    limit: usize,
    open: AtomicUsize,
    refused: AtomicU64,
}

/// One admitted connection; it is counted until this is dropped.
pub struct Admitted(Arc<ConnectionLimit>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionLimit {
    /// At most `wanted` connections, and no more than the descriptors allow: the soft limit of
    /// open files is raised to the hard one, and each client connection may hold one to its
    /// backend besides its own.
    pub fn new(wanted: usize) -> Arc<Self> {
        let descriptors = raise_open_files();
        let affordable = usize::try_from(descriptors.saturating_sub(RESERVED_DESCRIPTORS) / 2).unwrap_or(usize::MAX);
        let limit = wanted.min(affordable).max(1);
        if limit < wanted {
            tracing::warn!(
                wanted,
                limit,
                descriptors,
                "the open-file limit allows fewer client connections than asked for; raise it (ulimit -n)"
            );
        }
        Arc::new(ConnectionLimit { limit, open: AtomicUsize::new(0), refused: AtomicU64::new(0) })
    }

    /// Counts a new connection in, or refuses it (and counts the refusal) at the limit.
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let admitted = self
            .open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |open| (open < self.limit).then_some(open + 1))
            .is_ok();
        if admitted {
            Some(Admitted(self.clone()))
        } else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// The Prometheus text of the limit and the counts.
    pub fn render(&self) -> String {
        format!(
            "# HELP portico_client_connections Client connections open now.\n\
             # TYPE portico_client_connections gauge\n\
             portico_client_connections {}\n\
             # HELP portico_client_connections_limit Most client connections held at once.\n\
             # TYPE portico_client_connections_limit gauge\n\
             portico_client_connections_limit {}\n\
             # HELP portico_client_connections_refused_total Connections closed at once for the limit.\n\
             # TYPE portico_client_connections_refused_total counter\n\
             portico_client_connections_refused_total {}\n",
            self.open.load(Ordering::Relaxed),
            self.limit,
            self.refused.load(Ordering::Relaxed)
        )
    }
}

/// Raises the soft limit of open files to the hard one; the limit in force after.
fn raise_open_files() -> u64 {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => limit,
            Err(error) => {
                tracing::warn!(%error, "cannot read or raise the open-file limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    {
        u64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_over_the_limit_are_refused_and_counted() {
        let limit = Arc::new(ConnectionLimit { limit: 2, open: AtomicUsize::new(0), refused: AtomicU64::new(0) });
        let first = limit.admit().expect("under the limit");
        let _second = limit.admit().expect("at the limit");
        assert!(limit.admit().is_none());
        drop(first);
        assert!(limit.admit().is_some(), "a closed connection frees its place");
        let text = limit.render();
        assert!(text.contains("portico_client_connections 1\n"), "{text}");
        assert!(text.contains("portico_client_connections_refused_total 1\n"), "{text}");
        assert!(text.contains("portico_client_connections_limit 2\n"), "{text}");
    }
}

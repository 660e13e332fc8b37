//! The client connections of one worker: closing those that stay idle, and stopping them all.
//!
//! A connection that starts no call for the idle timeout is asked to close: an idle one, or one
//! still sending a request head (as a slow client trickling bytes does), closes at once; one
//! with a call in progress once that call is done. The check costs a call nothing but a counter:
//! the worker sweeps its connections on a timer of its own, and wakes only those it closes;
//! no connection arms a timer per call.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// What the worker and one connection share.
#[derive(Default)]
pub struct Activity {
    /// Calls started on the connection; written only by the connection's own task.
    calls: AtomicU64,
    /// Set by the worker: finish the call in progress, if any, then close.
    close: AtomicBool,
    /// The connection's task, to wake when `close` is set.
    waker: OnceLock<Waker>,
}

impl Activity {
    /// Counts a call. Only the connection's task writes the counter, so a load and a store
    /// suffice (no read-modify-write on a shared line).
    pub fn call_started(&self) {
        self.calls.store(self.calls.load(Relaxed).wrapping_add(1), Relaxed);
    }

    fn close(&self) {
        if !self.close.swap(true, Relaxed)
            && let Some(waker) = self.waker.get()
        {
            waker.wake_by_ref();
        }
    }
}

/// One worker's connections.
#[derive(Clone, Default)]
pub struct Clients(Arc<Mutex<Registry>>);

#[derive(Default)]
struct Registry {
    next: u64,
    entries: HashMap<u64, Entry>,
}

struct Entry {
    activity: Arc<Activity>,
    /// `calls` at the last sweep, and how many sweeps in a row found it unchanged.
    seen: u64,
    quiet: u32,
}

/// Sweeps per idle timeout: a connection closes between 1 and 1 + 1/SWEEPS timeouts after
/// it started its last call (or opened).
const SWEEPS: u32 = 4;

impl Clients {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection; [`Registration::serve`] runs it.
    pub fn open(&self) -> Registration {
        let activity = Arc::new(Activity::default());
        let mut registry = self.lock();
        registry.next += 1;
        let id = registry.next;
        // `seen` starts as no count: the first sweep only notes the count, so that the timeout
        // runs in whole sweep periods from there.
        registry.entries.insert(id, Entry { activity: activity.clone(), seen: u64::MAX, quiet: 0 });
        Registration { clients: self.clone(), id, activity }
    }

    /// How often [`Clients::sweep`] should run for `idle_timeout`.
    pub fn sweep_period(idle_timeout: Duration) -> Duration {
        (idle_timeout / SWEEPS).max(Duration::from_millis(1))
    }

    /// Asks every connection that started no call for the idle timeout to close.
    pub fn sweep(&self) {
        let mut registry = self.lock();
        for entry in registry.entries.values_mut() {
            let calls = entry.activity.calls.load(Relaxed);
            if calls != entry.seen {
                entry.seen = calls;
                entry.quiet = 0;
                continue;
            }
            entry.quiet += 1;
            if entry.quiet == SWEEPS {
                entry.activity.close();
            }
        }
    }

    /// Asks every connection to close (after its call in progress), then waits until they
    /// are gone or `grace` is over.
    pub async fn stop(&self, grace: Duration) {
        for entry in self.lock().entries.values() {
            entry.activity.close();
        }
        let drained = async {
            while !self.lock().entries.is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        if tokio::time::timeout(grace, drained).await.is_err() {
            tracing::warn!(connections = self.len(), "client connections still busy after the grace period are cut");
        }
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

/// A connection that can be asked to finish its call in progress and close.
pub trait Closable: Future {
    fn close_gracefully(self: Pin<&mut Self>);
    /// The output of a connection dropped before it started a call.
    fn abandoned() -> Self::Output;
}

impl<I, S, B> Closable for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn close_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }

    fn abandoned() -> Self::Output {
        Ok(())
    }
}

/// A connection's place in its worker's registry, left when the connection ends.
pub struct Registration {
    clients: Clients,
    id: u64,
    activity: Arc<Activity>,
}

impl Registration {
    /// What the connection's service counts its calls on.
    pub fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }

    /// Runs `connection` until it ends, closing it when asked to.
    pub fn serve<C: Closable>(self, connection: C) -> Supervised<C> {
        Supervised { connection, closing: false, registration: self }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.clients.lock().entries.remove(&self.id);
    }
}

pin_project_lite::pin_project! {
    /// A client connection under its worker's watch.
    pub struct Supervised<C> {
        #[pin]
        connection: C,
        closing: bool,
        registration: Registration,
    }
}

impl<C: Closable> Future for Supervised<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        let activity = &this.registration.activity;
        if activity.waker.get().is_none() {
            // The task's waker stays valid for the task's life.
            let _ = activity.waker.set(cx.waker().clone());
        }
        if !*this.closing && activity.close.load(Relaxed) {
            if activity.calls.load(Relaxed) == 0 {
                // Nothing was asked of it, or its first request head is still arriving (which
                // hyper would wait for): dropped, which closes the socket.
                return Poll::Ready(C::abandoned());
            }
            *this.closing = true;
            this.connection.as_mut().close_gracefully();
        }
        this.connection.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ends when closed: the stand-in for a connection with nothing in progress.
    #[derive(Default)]
    struct Idle {
        closed: bool,
    }

    impl Future for Idle {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if self.closed { Poll::Ready(()) } else { Poll::Pending }
        }
    }

    impl Closable for Idle {
        fn close_gracefully(mut self: Pin<&mut Self>) {
            self.closed = true;
        }

        fn abandoned() {}
    }

    #[tokio::test]
    async fn a_quiet_connection_is_closed_after_the_sweeps_and_a_busy_one_is_not() {
        let clients = Clients::default();
        let quiet = tokio::spawn(clients.open().serve(Idle::default()));
        let busy_registration = clients.open();
        let busy_activity = busy_registration.activity();
        let busy = tokio::spawn(busy_registration.serve(Idle::default()));
        tokio::task::yield_now().await;
        clients.sweep(); // notes the counts
        for _ in 0..SWEEPS - 1 {
            busy_activity.call_started();
            clients.sweep();
        }
        tokio::task::yield_now().await;
        assert!(!quiet.is_finished(), "closed before the idle timeout");
        busy_activity.call_started();
        clients.sweep();
        quiet.await.unwrap();
        assert_eq!(clients.len(), 1, "the closed connection left the registry");
        assert!(!busy.is_finished(), "a connection with calls stays open");
        clients.stop(Duration::from_secs(5)).await;
        busy.await.unwrap();
        assert_eq!(clients.len(), 0);
    }

    #[test]
    fn the_sweep_period_is_never_zero() {
        assert_eq!(Clients::sweep_period(Duration::from_secs(60)), Duration::from_secs(15));
        assert_eq!(Clients::sweep_period(Duration::from_nanos(1)), Duration::from_millis(1));
    }
}

//! The lease fence: a primary must stop accepting writes before its leader
//! key can expire, even when the HA loop is stuck in a slow DCS call or a
//! long wait.
//!
//! Patroni relies on a hardware watchdog for this and otherwise only
//! demotes at its next cycle, which can come after the key expired (the
//! HA simulation in `ha::sim` shows two primaries with default timings
//! when a refresh is followed by slow calls). Here a separate task holds
//! the deadline of the last successful refresh: `refresh start + ttl -
//! safety_margin` (`watchdog.safety_margin`, 5 s by default; -1 means half
//! the ttl, as in Patroni). If the deadline passes without a new refresh,
//! it stops PostgreSQL in `immediate` mode. The loop then sees a stopped
//! PostgreSQL and decides as after a crash.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::postgres::process::{Postmaster, StopMode};

/// The fence task's handle: set or clear the deadline.
pub struct Fence {
    deadline: watch::Sender<Option<Instant>>,
}

/// `watchdog.safety_margin` as Patroni reads it: seconds, -1 for half the
/// ttl, 5 when unset or invalid; never negative.
pub fn safety_margin(configured: Option<i64>, ttl: Duration) -> Duration {
    match configured {
        Some(-1) => ttl / 2,
        Some(s) if s >= 0 => Duration::from_secs(s as u64),
        _ => Duration::from_secs(5),
    }
}

impl Fence {
    /// Start the task for the data directory `data_dir`.
    pub fn start(data_dir: PathBuf) -> Fence {
        Fence::with_action(move || {
            let dir = data_dir.clone();
            async move { fence(&dir).await }
        })
    }

    /// Start the task with `on_expiry` as the fencing action.
    fn with_action<F, Fut>(on_expiry: F) -> Fence
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = watch::channel(None);
        tokio::spawn(guard(rx, on_expiry));
        Fence { deadline: tx }
    }

    /// A refresh that started at `started` succeeded: the key lives at
    /// least until `started + ttl`.
    pub fn renewed(&self, started: Instant, ttl: Duration, margin: Duration) {
        let deadline = started + ttl.saturating_sub(margin);
        let _ = self.deadline.send(Some(deadline));
    }

    /// Not the leader (or paused): nothing to fence.
    pub fn disarm(&self) {
        let _ = self.deadline.send(None);
    }
}

async fn guard<F, Fut>(mut rx: watch::Receiver<Option<Instant>>, on_expiry: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        let deadline = *rx.borrow_and_update();
        match deadline {
            None => {
                if rx.changed().await.is_err() {
                    return;
                }
            }
            Some(at) => {
                tokio::select! {
                    changed = rx.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    _ = tokio::time::sleep_until(at) => {
                        on_expiry().await;
                        // Once fenced, wait for the loop to say what next.
                        let _ = rx.borrow_and_update();
                        if rx.changed().await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}

async fn fence(data_dir: &std::path::Path) {
    let Some(mut postmaster) = Postmaster::attach(data_dir) else {
        return;
    };
    log::error!(target: "patroni.ha",
        "the leader key was not refreshed in time and may expire: stopping PostgreSQL (immediate) so that no other primary can coexist with this one");
    if let Err(e) = postmaster
        .stop(StopMode::Immediate, Some(Duration::from_secs(5)))
        .await
    {
        log::error!(target: "patroni.ha", "fencing stop failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins_like_patroni() {
        let ttl = Duration::from_secs(30);
        assert_eq!(safety_margin(None, ttl), Duration::from_secs(5));
        assert_eq!(safety_margin(Some(-1), ttl), Duration::from_secs(15));
        assert_eq!(safety_margin(Some(3), ttl), Duration::from_secs(3));
        assert_eq!(safety_margin(Some(-7), ttl), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn fences_only_when_the_deadline_passes_unrenewed() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let fired = Arc::new(AtomicUsize::new(0));
        let counter = fired.clone();
        let fence = Fence::with_action(move || {
            let c = counter.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
            }
        });
        let ttl = Duration::from_millis(200);
        // Renewed in time, twice: never fires.
        fence.renewed(Instant::now(), ttl, Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(100)).await;
        fence.renewed(Instant::now(), ttl, Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(fired.load(Ordering::SeqCst), 0);
        // Not renewed: fires once.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        // Disarmed before the deadline: does not fire.
        fence.renewed(Instant::now(), ttl, Duration::ZERO);
        fence.disarm();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        // The margin brings the deadline forward.
        fence.renewed(Instant::now(), ttl, Duration::from_millis(150));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(fired.load(Ordering::SeqCst), 2);
    }
}

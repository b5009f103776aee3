//! The channel between the HA loop (and the probe) and the REST API: one
//! publisher, many readers, and the probe's on-demand refresh for
//! `GET /patroni`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::{NodeStatus, PgQuery};

/// Hands out the latest [`NodeStatus`]. Readers never block: `current()`
/// clones an `Arc` out of a `watch` channel, whose lock is only held for
/// the swap by the publisher.
#[derive(Debug, Clone)]
pub struct StatusReader {
    rx: watch::Receiver<Arc<NodeStatus>>,
    probe: Arc<ProbeSignal>,
}

impl StatusReader {
    pub fn current(&self) -> Arc<NodeStatus> {
        self.rx.borrow().clone()
    }

    /// The snapshot with a PostgreSQL part taken after this call, for
    /// `GET /patroni`: a peer deciding the leader race compares its WAL
    /// position with ours at this moment, as Patroni answers it with a
    /// query run inside the request. Waits at most [`FRESH_WAIT`] for the
    /// probe, and not at all while the probe's previous query has been
    /// running for longer than that (a stuck PostgreSQL): then, and when
    /// PostgreSQL is not running, the current snapshot is the answer.
    pub async fn fresh(&self) -> Arc<NodeStatus> {
        let asked = Instant::now();
        let current = self.current();
        if current.postgres.state != "running" || current.postmaster_pid.is_none() {
            return current;
        }
        if self.probe.stuck(asked) {
            return current;
        }
        let mut rx = self.rx.clone();
        self.probe.wanted.notify_one();
        let confirmed = async {
            loop {
                if rx.changed().await.is_err() {
                    return;
                }
                let s = rx.borrow_and_update();
                if s.postgres.state != "running" || s.pg_confirmed_at.is_some_and(|t| t >= asked) {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(FRESH_WAIT, confirmed).await;
        self.current()
    }
}

/// The longest [`StatusReader::fresh`] waits for the probe.
pub const FRESH_WAIT: Duration = Duration::from_millis(100);

/// Between the API and the probe: requests ask for a query now, the probe
/// says since when its current query runs.
#[derive(Debug, Default)]
pub struct ProbeSignal {
    /// Woken when a request wants a fresh PostgreSQL part.
    pub wanted: Notify,
    /// When the running query started; `None` between queries.
    busy_since: Mutex<Option<Instant>>,
}

impl ProbeSignal {
    /// The probe starts a query.
    pub fn begin(&self, at: Instant) {
        if let Ok(mut b) = self.busy_since.lock() {
            *b = Some(at);
        }
    }

    /// The probe's query returned (or failed).
    pub fn end(&self) {
        if let Ok(mut b) = self.busy_since.lock() {
            *b = None;
        }
    }

    /// A query has been running for longer than [`FRESH_WAIT`] at `now`.
    fn stuck(&self, now: Instant) -> bool {
        self.busy_since
            .lock()
            .ok()
            .and_then(|b| *b)
            .is_some_and(|since| now.saturating_duration_since(since) > FRESH_WAIT)
    }
}

/// The HA loop's side: publish a new snapshot after every change. A clone
/// publishes into the same channel (the probe holds one).
#[derive(Debug, Clone)]
pub struct StatusPublisher {
    tx: watch::Sender<Arc<NodeStatus>>,
    probe: Arc<ProbeSignal>,
}

impl StatusPublisher {
    /// Start with `initial`; hand the reader to the API server.
    pub fn new(initial: NodeStatus) -> (StatusPublisher, StatusReader) {
        let (tx, rx) = watch::channel(Arc::new(initial));
        let probe = Arc::new(ProbeSignal::default());
        (
            StatusPublisher {
                tx,
                probe: probe.clone(),
            },
            StatusReader { rx, probe },
        )
    }

    /// Replace the snapshot. When the one published now carries an older
    /// PostgreSQL confirmation than the current one (the probe confirmed
    /// after the HA loop's query) for the same running postmaster, the
    /// newer PostgreSQL part is kept.
    pub fn publish(&self, mut status: NodeStatus) {
        self.tx.send_modify(|current| {
            let newer = match (current.pg_confirmed_at, status.pg_confirmed_at) {
                (Some(probe), Some(ha)) => probe > ha,
                (Some(_), None) => true,
                _ => false,
            };
            if newer
                && current.postgres.query.is_some()
                && current.postmaster_pid.is_some()
                && current.postmaster_pid == status.postmaster_pid
                && status.postgres.state == "running"
            {
                status.postgres.query = current.postgres.query.clone();
                status.pg_confirmed_at = current.pg_confirmed_at;
            }
            *current = Arc::new(status);
        });
    }

    /// The probe's side: PostgreSQL answered `query` at `at`, asked through
    /// a connection to the postmaster `pid`. Applied only while the
    /// published snapshot still describes that postmaster as running (the
    /// HA loop owns the state; a stop or restart in between wins). Returns
    /// whether the snapshot changed.
    pub fn confirm_query(&self, pid: u32, query: PgQuery, at: Instant) -> bool {
        self.tx.send_if_modified(|current| {
            let applies = current.postmaster_pid == Some(pid)
                && current.postgres.state == "running"
                && current.pg_confirmed_at.is_none_or(|t| t < at);
            if applies {
                let mut s = NodeStatus::clone(current);
                s.postgres.query = Some(query);
                s.pg_confirmed_at = Some(at);
                *current = Arc::new(s);
            }
            applies
        })
    }

    /// A new reader, e.g. for another consumer.
    pub fn reader(&self) -> StatusReader {
        StatusReader {
            rx: self.tx.subscribe(),
            probe: self.probe.clone(),
        }
    }

    /// The probe's side of on-demand refreshes.
    pub fn probe_signal(&self) -> Arc<ProbeSignal> {
        self.probe.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Xlog;
    use super::*;

    fn running(location: i64, at: Instant) -> NodeStatus {
        let mut s = NodeStatus::new("demo", "n");
        s.postgres.state = "running".into();
        s.postgres.role = "replica".into();
        s.postgres.query = Some(query(location));
        s.postmaster_pid = Some(42);
        s.pg_confirmed_at = Some(at);
        s
    }

    fn query(location: i64) -> PgQuery {
        PgQuery {
            xlog: Some(Xlog::Primary { location }),
            ..PgQuery::default()
        }
    }

    #[tokio::test]
    async fn fresh_waits_for_a_query_started_after_the_request() {
        let (publisher, reader) = StatusPublisher::new(running(1, Instant::now()));
        let signal = publisher.probe_signal();
        let probe = tokio::spawn(async move {
            signal.wanted.notified().await;
            let started = Instant::now();
            signal.begin(started);
            signal.end();
            publisher.confirm_query(42, query(2), started);
        });
        let s = reader.fresh().await;
        assert_eq!(s.postgres.query, Some(query(2)));
        probe.await.unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test]
    async fn a_stuck_probe_is_not_waited_for() {
        let (publisher, reader) = StatusPublisher::new(running(1, Instant::now()));
        let signal = publisher.probe_signal();
        let long_ago = Instant::now()
            .checked_sub(FRESH_WAIT * 3)
            .unwrap_or_else(Instant::now);
        signal.begin(long_ago);
        let asked = Instant::now();
        let s = reader.fresh().await;
        assert!(asked.elapsed() < FRESH_WAIT, "waited {:?}", asked.elapsed());
        assert_eq!(s.postgres.query, Some(query(1)));
    }

    #[tokio::test]
    async fn without_an_answer_the_wait_is_bounded() {
        let (_publisher, reader) = StatusPublisher::new(running(1, Instant::now()));
        let asked = Instant::now();
        let s = reader.fresh().await;
        let took = asked.elapsed();
        assert!(took >= FRESH_WAIT && took < FRESH_WAIT * 5, "took {took:?}");
        assert_eq!(s.postgres.query, Some(query(1)));
    }

    #[tokio::test]
    async fn a_stopped_postgres_is_answered_at_once() {
        let mut s = NodeStatus::new("demo", "n");
        s.postgres.state = "stopped".into();
        let (_publisher, reader) = StatusPublisher::new(s);
        let asked = Instant::now();
        let _ = reader.fresh().await;
        assert!(asked.elapsed() < FRESH_WAIT);
    }
}

//! The ZooKeeper session: connecting, retrying within `retry_timeout`, and
//! mapping the client library's errors to [`DcsError`].
//!
//! One session per process, as in Patroni: the member key and the leader
//! key are ephemeral znodes owned by it, so they vanish when the session
//! expires (`ttl` seconds without a ping) or is closed. The client library
//! pings and reconnects on its own; we only open a new session when the old
//! one is terminated (expired, closed, auth failed) or when `ttl` changed,
//! because ZooKeeper cannot change the timeout of an existing session.

use std::future::Future;
use std::time::{Duration, Instant};

use zookeeper_client::{Acl, Acls, AuthId, Client, CreateMode, Error as ZkError, Permission, Stat};

use super::config::ZkConnection;
use crate::dcs::{DcsError, DcsResult, Timing};

/// Whether an error is an outage worth retrying until the deadline.
pub(super) fn transient(e: &ZkError) -> bool {
    matches!(
        e,
        ZkError::ConnectionLoss
            | ZkError::Timeout
            | ZkError::NoHosts
            | ZkError::SessionExpired
            | ZkError::SessionMoved
            | ZkError::ClientClosed
            | ZkError::Throttled
    )
}

/// Map a ZooKeeper error to the DCS contract: lost races are `CasFailed`,
/// a missing znode `NotFound`, outages `Unreachable`.
pub(super) fn classify(e: ZkError) -> DcsError {
    match e {
        ZkError::NodeExists | ZkError::BadVersion => DcsError::CasFailed,
        ZkError::NoNode => DcsError::NotFound("znode".into()),
        ref t if transient(t) => DcsError::Unreachable(format!("ZooKeeper: {e}")),
        other => DcsError::Other(format!("ZooKeeper: {other}")),
    }
}

/// The ACLs every created znode gets: world-writable unless `set_acls`
/// names x509 principals (kazoo's `make_acl` with scheme `x509`).
pub(super) fn acls_from(conn: &ZkConnection) -> Vec<Acl> {
    conn.set_acls
        .iter()
        .map(|(principal, perms)| {
            let has = |p: &str| perms.iter().any(|x| x == p);
            let permission = if has("ALL") {
                Permission::ALL
            } else {
                [
                    ("READ", Permission::READ),
                    ("WRITE", Permission::WRITE),
                    ("CREATE", Permission::CREATE),
                    ("DELETE", Permission::DELETE),
                    ("ADMIN", Permission::ADMIN),
                ]
                .into_iter()
                .filter(|(name, _)| has(name))
                .fold(Permission::NONE, |acc, (_, p)| acc | p)
            };
            Acl::new(permission, AuthId::new("x509", principal))
        })
        .collect()
}

/// The `Acls` view of our configured list (empty: open to the world).
pub(super) fn acls(list: &[Acl]) -> Acls<'_> {
    if list.is_empty() {
        Acls::anyone_all()
    } else {
        Acls::new(list)
    }
}

/// Our session's id as stored in `ephemeralOwner`, in decimal: the form
/// [`crate::model::Member::session`] and [`crate::model::Leader`] carry.
pub(super) fn session_string(client: &Client) -> String {
    client.session_id().0.to_string()
}

/// Create `path` with `data`, creating missing parents as persistent
/// znodes with empty data (kazoo's `makepath=True`).
pub(super) async fn create_with_parents(
    client: &Client,
    path: &str,
    data: &[u8],
    mode: CreateMode,
    acl_list: &[Acl],
) -> Result<Stat, ZkError> {
    let options = mode.with_acls(acls(acl_list));
    match client.create(path, data, &options).await {
        Err(ZkError::NoNode) => {
            let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
            if !parent.is_empty() {
                let dir = CreateMode::Persistent.with_acls(acls(acl_list));
                client.mkdir(parent, &dir).await?;
            }
            client.create(path, data, &options).await.map(|(s, _)| s)
        }
        other => other.map(|(s, _)| s),
    }
}

/// The live client and the settings it was opened with.
pub(super) struct Session {
    conn: ZkConnection,
    client: tokio::sync::Mutex<Option<Client>>,
}

impl Session {
    pub(super) fn new(conn: ZkConnection) -> Session {
        Session {
            conn,
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// The current client, connecting when there is none or the old
    /// session is over. `renew` closes the current session first (a `ttl`
    /// change).
    pub(super) async fn client(
        &self,
        timing: Timing,
        renew: bool,
        deadline: Instant,
    ) -> DcsResult<Client> {
        let mut guard = self.client.lock().await;
        if renew {
            guard.take();
        }
        if let Some(c) = guard.as_ref() {
            if !c.state().is_terminated() {
                return Ok(c.clone());
            }
            log::warn!(target: "patroni.dcs.zookeeper",
                "ZooKeeper session {} is {}: opening a new one", c.session_id(), c.state());
            guard.take();
        }
        let mut connector = Client::connector();
        connector
            .session_timeout(timing.ttl)
            // Conclude a silent connection is dead well before the session
            // expires (Patroni: loop_wait - 2 seconds, at least 2).
            .connection_timeout(
                timing
                    .loop_wait
                    .saturating_sub(Duration::from_secs(2))
                    .max(Duration::from_secs(2)),
            )
            .fail_eagerly();
        for (scheme, credential) in &self.conn.auth_data {
            connector.auth(scheme.clone(), credential.as_bytes().to_vec());
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let hosts = self.conn.connect_string();
        let client = match tokio::time::timeout(remaining, connector.connect(&hosts)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(classify_connect(e, &hosts)),
            Err(_) => {
                return Err(DcsError::Unreachable(format!(
                    "no ZooKeeper session with {hosts} within the retry timeout"
                )))
            }
        };
        log::info!(target: "patroni.dcs.zookeeper",
            "ZooKeeper session {} established (timeout {:?})",
            client.session_id(), client.session_timeout());
        *guard = Some(client.clone());
        Ok(client)
    }

    /// Run `op` with a live client, retrying outages until `retry_timeout`
    /// has passed; then the last outage is reported as `Unreachable`.
    /// Non-transient errors (a lost race, a missing znode, no permission)
    /// are returned at once.
    pub(super) async fn run<T, F, Fut>(
        &self,
        timing: Timing,
        renew: &(dyn Fn() -> bool + Sync),
        what: &str,
        mut op: F,
    ) -> DcsResult<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, ZkError>>,
    {
        let deadline = Instant::now() + timing.retry_timeout;
        let mut delay = Duration::from_millis(50);
        let mut last: String;
        loop {
            match self.client(timing, renew(), deadline).await {
                Ok(client) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(remaining, op(client)).await {
                        Ok(Ok(v)) => return Ok(v),
                        Ok(Err(e)) if transient(&e) => last = format!("{what}: {e}"),
                        Ok(Err(e)) => return Err(classify(e)),
                        Err(_) => last = format!("{what}: no answer within the retry timeout"),
                    }
                }
                Err(DcsError::Unreachable(e)) => last = e,
                Err(e) => return Err(e),
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(DcsError::Unreachable(last));
            }
            tokio::time::sleep(delay.min(remaining)).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }
}

fn classify_connect(e: ZkError, hosts: &str) -> DcsError {
    match e {
        ZkError::AuthFailed => DcsError::Other(format!("ZooKeeper {hosts}: authentication failed")),
        ref t if transient(t) => DcsError::Unreachable(format!("ZooKeeper {hosts}: {e}")),
        other => DcsError::Other(format!("ZooKeeper {hosts}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_dcs_contract() {
        assert_eq!(classify(ZkError::NodeExists), DcsError::CasFailed);
        assert_eq!(classify(ZkError::BadVersion), DcsError::CasFailed);
        assert!(matches!(classify(ZkError::NoNode), DcsError::NotFound(_)));
        assert!(matches!(
            classify(ZkError::ConnectionLoss),
            DcsError::Unreachable(_)
        ));
        assert!(matches!(classify(ZkError::NoAuth), DcsError::Other(_)));
        assert!(transient(&ZkError::SessionExpired));
        assert!(!transient(&ZkError::NotEmpty));
    }

    #[test]
    fn set_acls_become_x509_acls() {
        let conn = ZkConnection {
            set_acls: vec![
                ("CN=a".into(), vec!["READ".into(), "WRITE".into()]),
                ("CN=b".into(), vec!["ALL".into()]),
            ],
            ..Default::default()
        };
        let list = acls_from(&conn);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].scheme(), "x509");
        assert_eq!(list[0].id(), "CN=a");
        assert_eq!(list[0].permission(), Permission::READ | Permission::WRITE);
        assert_eq!(list[1].permission(), Permission::ALL);
        assert!(acls_from(&ZkConnection::default()).is_empty());
    }
}

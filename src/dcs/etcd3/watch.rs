//! The etcd3 backend's view of the cluster prefix: a cache fed by a prefix
//! watch, so that a loop's snapshot costs no round trip while the watch is
//! healthy, and the wake-up rules that cut the HA loop's sleep short.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, KeyValue, WatchOptions};
use tokio::sync::Notify;

use crate::dcs::KeyPaths;
use crate::model::cluster::RawNode;
use crate::model::Cluster;

/// One key as etcd stores it.
#[derive(Debug, Clone)]
pub(super) struct CachedKv {
    pub value: String,
    pub mod_revision: i64,
    pub lease: i64,
}

impl CachedKv {
    /// The relative key and value of an etcd key under the cluster prefix.
    pub fn from_kv(kv: &KeyValue, paths: &KeyPaths) -> Option<(String, CachedKv)> {
        let key = String::from_utf8_lossy(kv.key());
        let rel = paths.relative(&key)?.to_owned();
        Some((
            rel,
            CachedKv {
                value: String::from_utf8_lossy(kv.value()).into_owned(),
                mod_revision: kv.mod_revision(),
                lease: kv.lease(),
            },
        ))
    }
}

/// Relative key -> value; usable only while `ready` (the watch is live).
#[derive(Debug, Default)]
pub(super) struct Cache {
    pub kvs: BTreeMap<String, CachedKv>,
    pub ready: bool,
    /// Our own writes and deletes (with their revisions) made while the
    /// watch was (re)loading: the loaded snapshot may predate them.
    pending_puts: BTreeMap<String, CachedKv>,
    pending_deletes: BTreeMap<String, i64>,
}

impl Cache {
    /// Record our own successful write, so the next snapshot shows it even
    /// before the watch event arrives; an older write never overwrites a
    /// newer one.
    pub fn put(&mut self, rel: &str, value: &str, revision: i64, lease: i64) {
        if !self.ready {
            let kv = CachedKv {
                value: value.to_owned(),
                mod_revision: revision,
                lease,
            };
            if self
                .pending_puts
                .get(rel)
                .is_none_or(|old| old.mod_revision < revision)
            {
                self.pending_puts.insert(rel.to_owned(), kv);
            }
            return;
        }
        if self
            .kvs
            .get(rel)
            .is_none_or(|old| old.mod_revision < revision)
        {
            let kv = CachedKv {
                value: value.to_owned(),
                mod_revision: revision,
                lease,
            };
            self.kvs.insert(rel.to_owned(), kv);
        }
    }

    /// Record our own successful delete at `revision`: the key goes unless
    /// the watch already brought a newer write of it (another member's
    /// new leader key must not vanish from our view because our delete of
    /// the old one was answered after the event arrived).
    pub fn delete(&mut self, rel: &str, revision: i64) {
        if !self.ready {
            let at = self
                .pending_deletes
                .entry(rel.to_owned())
                .or_insert(revision);
            *at = (*at).max(revision);
            return;
        }
        if self
            .kvs
            .get(rel)
            .is_some_and(|old| old.mod_revision < revision)
        {
            self.kvs.remove(rel);
        }
    }

    /// Take the prefix as loaded at `revision`, replay our own writes and
    /// deletes that came after it, and serve snapshots from now on.
    pub fn install(&mut self, kvs: BTreeMap<String, CachedKv>, revision: i64) {
        self.kvs = kvs;
        self.ready = true;
        let mut changes: Vec<(i64, String, Option<CachedKv>)> = Vec::new();
        for (rel, kv) in std::mem::take(&mut self.pending_puts) {
            changes.push((kv.mod_revision, rel, Some(kv)));
        }
        for (rel, at) in std::mem::take(&mut self.pending_deletes) {
            changes.push((at, rel, None));
        }
        changes.sort_by_key(|(at, _, _)| *at);
        for (at, rel, kv) in changes.into_iter().filter(|(at, _, _)| *at > revision) {
            match kv {
                Some(kv) => self.put(&rel, &kv.value, at, kv.lease),
                None => self.delete(&rel, at),
            }
        }
    }

    /// The watch stopped: writes are remembered until it loads again.
    pub fn suspend(&mut self) {
        self.ready = false;
    }
}

/// The cluster snapshot for a set of keys; leases become member/leader
/// sessions.
pub(super) fn snapshot(kvs: &BTreeMap<String, CachedKv>) -> Cluster {
    let leases: Vec<Option<String>> = kvs
        .values()
        .map(|v| (v.lease != 0).then(|| v.lease.to_string()))
        .collect();
    let nodes = kvs.iter().zip(&leases).map(|((k, v), lease)| RawNode {
        key: k,
        value: &v.value,
        version: Some(v.mod_revision),
        session: lease.as_deref(),
    });
    Cluster::from_raw_nodes(nodes)
}

/// Keep the cache in sync with etcd: load the prefix, then apply watch
/// events from the next revision; on any error, mark the cache unusable,
/// back off and start again.
pub(super) async fn watch_loop(
    client: Client,
    paths: KeyPaths,
    cache: Arc<Mutex<Cache>>,
    wake: Arc<Notify>,
) {
    let prefix = paths.prefix();
    loop {
        let result: Result<(), etcd_client::Error> = async {
            let mut c = client.clone();
            let resp = c
                .get(prefix.clone(), Some(GetOptions::new().with_prefix()))
                .await?;
            let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
            {
                let Ok(mut guard) = cache.lock() else {
                    return Ok(());
                };
                let kvs = resp
                    .kvs()
                    .iter()
                    .filter_map(|kv| CachedKv::from_kv(kv, &paths))
                    .collect();
                guard.install(kvs, revision);
            }
            let opts = WatchOptions::new()
                .with_prefix()
                .with_start_revision(revision + 1);
            let mut stream = c.watch(prefix.clone(), Some(opts)).await?;
            while let Some(msg) = stream.message().await? {
                if msg.canceled() {
                    break;
                }
                for event in msg.events() {
                    let Some((rel, new)) = event.kv().and_then(|kv| CachedKv::from_kv(kv, &paths))
                    else {
                        continue;
                    };
                    let is_put = event.event_type() == EventType::Put;
                    let Ok(mut guard) = cache.lock() else {
                        return Ok(());
                    };
                    let old = guard.kvs.get(&rel).cloned();
                    if is_put
                        && old
                            .as_ref()
                            .is_some_and(|o| o.mod_revision >= new.mod_revision)
                    {
                        continue; // we already applied our own, newer write
                    }
                    let new_value = is_put.then(|| new.value.clone());
                    if is_put {
                        guard.kvs.insert(rel.clone(), new);
                    } else {
                        guard.kvs.remove(&rel);
                    }
                    let leader_is_me = guard
                        .kvs
                        .get("leader")
                        .is_some_and(|l| l.value == paths.name());
                    drop(guard);
                    let old_value = old.map(|o| o.value);
                    if should_wake(
                        &rel,
                        old_value.as_deref(),
                        new_value.as_deref(),
                        leader_is_me,
                    ) {
                        wake.notify_one();
                    }
                }
            }
            Ok(())
        }
        .await;
        if let Ok(mut guard) = cache.lock() {
            guard.suspend();
        }
        if result.is_err() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Patroni wakes the HA loop when the leader key changes, when `status`
/// changes on a node that is not the leader, and when `config` changes.
/// We also wake the leader when a member key appears: it then creates the
/// newcomer's replication slot at once instead of up to `loop_wait` later
/// (a replica cannot stream before its slot exists).
pub(super) fn should_wake(
    key: &str,
    old: Option<&str>,
    new: Option<&str>,
    leader_is_me: bool,
) -> bool {
    if old == new {
        return false;
    }
    match key {
        "leader" => true,
        "status" | "optime/leader" => new.is_some() && !leader_is_me,
        "config" => old.is_some() && new.is_some(),
        k if k.starts_with("members/") => leader_is_me && old.is_none() && new.is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{should_wake, Cache};

    #[test]
    fn our_late_delete_keeps_a_newer_key_from_the_watch() {
        let mut c = Cache::default();
        c.install(Default::default(), 0);
        c.put("leader", "n1", 10, 7);
        // The watch brought n2's new leader key (revision 12) before the
        // answer to our delete of n1's (revision 11) arrived.
        c.put("leader", "n2", 12, 8);
        c.delete("leader", 11);
        assert_eq!(c.kvs.get("leader").map(|kv| kv.value.as_str()), Some("n2"));
        // A delete newer than what we hold removes it.
        c.delete("leader", 13);
        assert!(!c.kvs.contains_key("leader"));
    }

    #[test]
    fn own_writes_during_a_reload_survive_an_older_snapshot() {
        let mut c = Cache::default();
        // The watch is loading the prefix at revision 20 while we write.
        c.put("config", "{\"ttl\":30}", 21, 0);
        c.put("failover", "{}", 19, 0);
        c.delete("sync", 22);
        let mut loaded = std::collections::BTreeMap::new();
        for (k, v, at) in [("failover", "{\"a\":1}", 20), ("sync", "{}", 18)] {
            loaded.insert(
                k.to_owned(),
                super::CachedKv {
                    value: v.into(),
                    mod_revision: at,
                    lease: 0,
                },
            );
        }
        c.install(loaded, 20);
        assert!(c.ready);
        assert_eq!(
            c.kvs.get("config").map(|kv| kv.mod_revision),
            Some(21),
            "our newer write"
        );
        assert_eq!(
            c.kvs.get("failover").map(|kv| kv.value.as_str()),
            Some("{\"a\":1}"),
            "snapshot newer"
        );
        assert!(!c.kvs.contains_key("sync"), "our newer delete");
    }

    #[test]
    fn wake_rules() {
        assert!(should_wake("leader", Some("a"), None, false));
        assert!(should_wake("leader", None, Some("a"), true));
        assert!(!should_wake("leader", Some("a"), Some("a"), false));
        assert!(should_wake("status", Some("1"), Some("2"), false));
        assert!(!should_wake("status", Some("1"), Some("2"), true));
        assert!(should_wake("config", Some("{}"), Some("{\"a\":1}"), true));
        assert!(!should_wake("config", None, Some("{}"), false));
        assert!(!should_wake("members/x", Some("1"), Some("2"), false));
        assert!(!should_wake("members/x", Some("1"), Some("2"), true));
        assert!(should_wake("members/x", None, Some("2"), true));
        assert!(!should_wake("members/x", None, Some("2"), false));
    }
}

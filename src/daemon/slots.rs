//! Replication slots on every node (`use_slots`), Patroni's
//! `SlotsHandler.sync_replication_slots`: compare what the node should have
//! ([`plan::wanted_slots`], pure) with `pg_replication_slots`, then
//!
//! - drop slots nobody wants (unless paused or matched by `ignore_slots`),
//!   slots whose WAL is lost, and slots whose kind, database or plugin
//!   changed;
//! - create missing physical slots (WAL reserved at once), drop inactive
//!   physical ones that hold an `xmin`, and advance the physical slots no
//!   walsender uses to the positions the leader published;
//! - on a primary create the missing logical slots; on a replica advance
//!   existing logical copies (up to what it has replayed).
//!
//! Replicas run this too: a replica keeps the slots of the members that
//! cascade from it (`replicatefrom`), so that they stream as soon as they
//! start, and copies of the other members' slots for after a failover.
//!
//! Not done (yet): copying logical slots from the primary to a replica
//! (Patroni copies the slot files and restarts the replica).

mod copy;
pub mod feedback;
pub mod plan;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};

use crate::model::Cluster;
use crate::postgres::query::{PgMonitor, QueryError};
use crate::postgres::slot_name_from_member_name;

use plan::{SlotKind, SlotPlan, SlotRole, SlotSettings, WantedSlot};

/// One row of `pg_replication_slots` (temporary slots left out).
#[derive(Debug, Clone)]
struct Existing {
    name: String,
    logical: bool,
    database: Option<String>,
    plugin: Option<String>,
    has_xmin: bool,
    restart_lsn: Option<i64>,
    confirmed_flush_lsn: Option<i64>,
    wal_status: Option<String>,
}

impl Existing {
    /// Patroni's `compare_slots`: same type, and for a logical slot the
    /// same database and plugin.
    fn matches(&self, wanted: &WantedSlot) -> bool {
        match &wanted.kind {
            SlotKind::Physical => !self.logical,
            SlotKind::Logical { database, plugin } => {
                self.logical
                    && self.database.as_deref() == Some(database.as_str())
                    && self.plugin.as_deref() == Some(plugin.as_str())
            }
        }
    }

    /// The position `/status` shows for the slot.
    fn position(&self) -> Option<i64> {
        if self.logical {
            self.confirmed_flush_lsn
        } else {
            self.restart_lsn
        }
    }
}

fn decode(e: impl std::fmt::Display) -> QueryError {
    QueryError::Decode(e.to_string())
}

async fn load(monitor: &PgMonitor, server_version: i32) -> Result<Vec<Existing>, QueryError> {
    let wal_status = if server_version >= 130000 {
        "wal_status::text"
    } else {
        "NULL::text"
    };
    let sql = format!(
        "SELECT slot_name::text, slot_type::text, plugin::text, database::text, \
         xmin IS NOT NULL, pg_catalog.pg_wal_lsn_diff(restart_lsn, '0/0')::bigint, \
         pg_catalog.pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint, {wal_status} \
         FROM pg_catalog.pg_replication_slots WHERE NOT temporary"
    );
    let rows = monitor.query(&sql, &[]).await?;
    rows.iter()
        .map(|r| {
            Ok(Existing {
                name: r.try_get(0).map_err(decode)?,
                logical: r.try_get::<_, String>(1).map_err(decode)? == "logical",
                plugin: r.try_get(2).map_err(decode)?,
                database: r.try_get(3).map_err(decode)?,
                has_xmin: r.try_get(4).map_err(decode)?,
                restart_lsn: r.try_get(5).map_err(decode)?,
                confirmed_flush_lsn: r.try_get(6).map_err(decode)?,
                wal_status: r.try_get(7).map_err(decode)?,
            })
        })
        .collect()
}

/// PostgreSQL's text form of an LSN.
fn format_lsn(lsn: i64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Whether `ignore_slots` of the dynamic configuration covers the slot:
/// a matcher matches when each of its `name`, `database`, `plugin` and
/// `type` is unset or equal to the slot's.
fn ignored(cluster: &Cluster, slot: &Existing) -> bool {
    let Some(Value::Array(matchers)) = cluster
        .config
        .as_ref()
        .and_then(|c| c.data.get("ignore_slots"))
    else {
        return false;
    };
    let kind = if slot.logical { "logical" } else { "physical" };
    let attr = |key: &str| -> Option<&str> {
        match key {
            "database" => slot.database.as_deref(),
            "plugin" => slot.plugin.as_deref(),
            _ => Some(kind),
        }
    };
    matchers.iter().filter_map(Value::as_object).any(|m| {
        let name_ok = match m.get("name") {
            None | Some(Value::Null) => true,
            Some(n) => n.as_str() == Some(slot.name.as_str()),
        };
        name_ok
            && ["database", "plugin", "type"]
                .iter()
                .all(|key| match m.get(*key) {
                    Some(v) if crate::api::status::json_truthy(v) => {
                        v.as_str().is_some_and(|v| attr(key) == Some(v))
                    }
                    _ => true,
                })
    })
}

/// Drop a slot if it is not in use. Returns whether it is gone.
async fn drop_slot(monitor: &PgMonitor, name: &str) -> bool {
    let result = monitor
        .query(
            "SELECT pg_catalog.pg_drop_replication_slot(slot_name) \
             FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND NOT active",
            &[&name],
        )
        .await;
    match result {
        Ok(rows) if rows.len() == 1 => {
            log::info!(target: "patroni.postgresql.slots", "Dropped replication slot '{name}'");
            true
        }
        Ok(_) => {
            log::warn!(target: "patroni.postgresql.slots",
                "Unable to drop replication slot '{name}', slot is active");
            false
        }
        Err(e) => {
            log::error!(target: "patroni.postgresql.slots", "Failed to drop replication slot '{name}': {e}");
            false
        }
    }
}

/// Where this node stands, for one round of slot maintenance.
pub struct SyncInput<'a> {
    pub cluster: &'a Cluster,
    pub me: &'a str,
    pub tags: &'a Map<String, Value>,
    pub role: SlotRole,
    /// PostgreSQL is in recovery (a replica, or a candidate not yet
    /// promoted): no logical slot can be created.
    pub in_recovery: bool,
    /// What a replica has replayed: logical copies are never advanced past it.
    pub replay_lsn: Option<i64>,
    pub server_version: i32,
    /// Create physical slots only, drop and advance nothing (just before a
    /// promotion).
    pub create_only: bool,
}

/// What one round of slot maintenance leaves.
#[derive(Debug, Default)]
pub struct SyncOutcome {
    /// The wanted slots that exist, with their positions (restart LSN of
    /// physical slots, confirmed flush LSN of logical ones), in
    /// `pg_replication_slots` order, for the leader's `/status`.
    pub positions: Vec<(String, i64)>,
    /// On a replica: logical slots it should have a copy of and has not,
    /// whose position the leader publishes (only those are copied).
    pub to_copy: Vec<String>,
}

/// Bring the slots in line with [`plan::wanted_slots`].
pub async fn sync_slots(
    monitor: &PgMonitor,
    input: &SyncInput<'_>,
) -> Result<SyncOutcome, QueryError> {
    let cluster = input.cluster;
    if cluster.config.is_none() {
        return Ok(SyncOutcome::default());
    }
    let settings = SlotSettings::from_cluster(cluster, input.server_version);
    let plan = plan::wanted_slots(cluster, input.me, input.tags, input.role, &settings);
    for error in &plan.errors {
        log::error!(target: "patroni.dcs", "{error}");
    }
    let mut existing = load(monitor, input.server_version).await?;
    if !input.create_only {
        drop_unwanted(monitor, cluster, &plan, &settings, &mut existing).await;
    }
    let clean_inactive = cluster
        .leader
        .as_ref()
        .is_some_and(|l| l.name != input.me || !input.in_recovery);
    let mut failed_logical = Vec::new();
    let mut to_copy = Vec::new();
    ensure_physical(
        monitor,
        &plan,
        &settings,
        input,
        clean_inactive,
        &mut existing,
    )
    .await;
    if !input.create_only {
        if input.in_recovery {
            advance_logical_copies(monitor, &plan, &existing, input.replay_lsn);
            to_copy = plan
                .slots
                .iter()
                .filter(|(name, w)| {
                    matches!(w.kind, SlotKind::Logical { .. })
                        && w.lsn.is_some()
                        && !existing.iter().any(|s| &s.name == name)
                })
                .map(|(name, _)| name.clone())
                .collect();
        } else {
            failed_logical = create_logical(monitor, &plan, &existing).await;
        }
    }
    let after = load(monitor, input.server_version).await?;
    let positions = after
        .iter()
        .filter(|s| !failed_logical.contains(&s.name))
        .filter_map(|s| {
            let wanted = plan.get(&s.name)?;
            s.matches(wanted).then_some(())?;
            s.position().map(|lsn| (s.name.clone(), lsn))
        })
        .collect();
    Ok(SyncOutcome { positions, to_copy })
}

async fn drop_unwanted(
    monitor: &PgMonitor,
    cluster: &Cluster,
    plan: &SlotPlan,
    settings: &SlotSettings,
    existing: &mut Vec<Existing>,
) {
    let mut gone = Vec::new();
    for slot in existing.iter() {
        let lost = plan.contains(&slot.name) && slot.wal_status.as_deref() == Some("lost");
        if plan.contains(&slot.name) && !lost {
            continue;
        }
        if settings.paused || ignored(cluster, slot) {
            continue;
        }
        if lost {
            log::info!(target: "patroni.postgresql.slots",
                "Trying to drop replication slot '{}' with wal_status=lost", slot.name);
        } else {
            log::info!(target: "patroni.postgresql.slots",
                "Trying to drop unknown replication slot '{}'", slot.name);
        }
        if drop_slot(monitor, &slot.name).await {
            gone.push(slot.name.clone());
        }
    }
    for (name, wanted) in &plan.slots {
        let Some(slot) = existing.iter().find(|s| &s.name == name) else {
            continue;
        };
        if gone.contains(name) || slot.matches(wanted) {
            continue;
        }
        log::info!(target: "patroni.postgresql.slots",
            "Trying to drop replication slot '{name}' because value is changing to {wanted:?}");
        if drop_slot(monitor, name).await {
            gone.push(name.clone());
        }
    }
    existing.retain(|s| !gone.contains(&s.name));
}

async fn ensure_physical(
    monitor: &PgMonitor,
    plan: &SlotPlan,
    settings: &SlotSettings,
    input: &SyncInput<'_>,
    clean_inactive: bool,
    existing: &mut Vec<Existing>,
) {
    for (name, wanted) in &plan.slots {
        if wanted.kind != SlotKind::Physical {
            continue;
        }
        let mut current = existing
            .iter()
            .find(|s| &s.name == name && !s.logical)
            .cloned();
        if let Some(slot) = &current {
            // An unused slot with an xmin holds back vacuum everywhere and
            // nobody will ever move it: drop it (it is made again below).
            if !input.create_only
                && settings.can_advance_slots
                && clean_inactive
                && wanted.expected_active == Some(false)
                && slot.has_xmin
            {
                log::warn!(target: "patroni.postgresql.slots",
                    "Dropping physical replication slot {name} because of its xmin value");
                if drop_slot(monitor, name).await {
                    existing.retain(|s| &s.name != name);
                    current = None;
                }
            }
        }
        let exists_any = existing.iter().any(|s| &s.name == name);
        match current {
            None if !exists_any => create_physical(monitor, name).await,
            None => {}
            Some(slot) => {
                if input.create_only
                    || !settings.can_advance_slots
                    || wanted.expected_active == Some(true)
                    || slot.has_xmin
                {
                    continue;
                }
                let Some(restart) = slot.restart_lsn.filter(|l| *l != 0) else {
                    log::warn!(target: "patroni.postgresql.slots",
                        "Dropping physical replication slot {name} because it has no restart_lsn. \
                         It was probably not created by Patroni.");
                    if drop_slot(monitor, name).await {
                        existing.retain(|s| &s.name != name);
                    }
                    continue;
                };
                if let Some(target) = wanted.lsn.filter(|l| *l > restart) {
                    advance(monitor, name, target).await;
                }
            }
        }
    }
}

async fn create_physical(monitor: &PgMonitor, name: &str) {
    let result = monitor
        .query(
            "SELECT pg_catalog.pg_create_physical_replication_slot($1, true) \
             WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots \
             WHERE slot_type = 'physical' AND slot_name = $1)",
            &[&name],
        )
        .await;
    match result {
        Ok(_) => {
            log::info!(target: "patroni.postgresql.slots", "Created physical replication slot '{name}'")
        }
        Err(e) => log::error!(target: "patroni.postgresql.slots",
            "Failed to create physical replication slot '{name}': {e}"),
    }
}

async fn advance(monitor: &PgMonitor, name: &str, lsn: i64) {
    let position = format_lsn(lsn);
    if let Err(e) = monitor
        .query(
            "SELECT pg_catalog.pg_replication_slot_advance($1, $2::text::pg_lsn)",
            &[&name, &position],
        )
        .await
    {
        log::error!(target: "patroni.postgresql.slots",
            "Error while advancing replication slot {name} to position '{position}': {e}");
    }
}

/// Create the missing logical slots, each over a connection to its
/// database. Returns the names that could not be created.
async fn create_logical(
    monitor: &PgMonitor,
    plan: &SlotPlan,
    existing: &[Existing],
) -> Vec<String> {
    let mut by_database: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for (name, wanted) in &plan.slots {
        if let SlotKind::Logical { database, plugin } = &wanted.kind {
            if !existing.iter().any(|s| &s.name == name && s.logical) {
                by_database
                    .entry(database)
                    .or_default()
                    .push((name, plugin));
            }
        }
    }
    let mut failed = Vec::new();
    for (database, slots) in by_database {
        let mut params = monitor.params().clone();
        params.dbname = database.to_owned();
        let conn = PgMonitor::new(params, Default::default());
        for (name, plugin) in slots {
            let result = conn
                .query(
                    "SELECT pg_catalog.pg_create_logical_replication_slot($1, $2) \
                     WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots \
                     WHERE slot_type = 'logical' AND slot_name = $1)",
                    &[&name, &plugin],
                )
                .await;
            match result {
                Ok(_) => log::info!(target: "patroni.postgresql.slots",
                    "Created logical replication slot '{name}' plugin='{plugin}' in database '{database}'"),
                Err(e) => {
                    log::error!(target: "patroni.postgresql.slots",
                        "Failed to create logical replication slot '{name}' plugin='{plugin}': {e}");
                    failed.push(name.to_owned());
                }
            }
        }
        conn.close().await;
    }
    failed
}

/// On a replica: move the logical slot copies forward to the positions the
/// leader published, never past what this replica replayed. Runs in the
/// background (an advance may read a lot of WAL); a slow one only delays
/// the next.
fn advance_logical_copies(
    monitor: &PgMonitor,
    plan: &SlotPlan,
    existing: &[Existing],
    replay_lsn: Option<i64>,
) {
    let Some(replayed) = replay_lsn else {
        return;
    };
    let mut jobs: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for (name, wanted) in &plan.slots {
        let (SlotKind::Logical { database, .. }, Some(lsn)) = (&wanted.kind, wanted.lsn) else {
            continue;
        };
        let Some(slot) = existing.iter().find(|s| &s.name == name) else {
            continue;
        };
        let target = lsn.min(replayed);
        if slot.matches(wanted) && slot.confirmed_flush_lsn.unwrap_or(0) < target {
            jobs.entry(database.clone())
                .or_default()
                .push((name.clone(), target));
        }
    }
    if jobs.is_empty() || ADVANCING.swap(true, Ordering::SeqCst) {
        return;
    }
    let params = monitor.params().clone();
    tokio::spawn(async move {
        for (database, slots) in jobs {
            let mut params = params.clone();
            params.dbname = database;
            let conn = PgMonitor::new(params, Default::default());
            for (name, lsn) in slots {
                advance(&conn, &name, lsn).await;
            }
            conn.close().await;
        }
        ADVANCING.store(false, Ordering::SeqCst);
    });
}

/// A batch of logical slot advances is running (one at a time: two
/// sessions cannot advance the same slot at once).
static ADVANCING: AtomicBool = AtomicBool::new(false);

/// Physical slots made just before a promotion, for the members that will
/// follow us at once (the old leader after a switchover).
pub async fn sync_member_slots(
    monitor: &PgMonitor,
    cluster: &Cluster,
    me: &str,
    me_nofailover: bool,
) -> Result<SyncOutcome, QueryError> {
    let server_version = monitor.server_version().await?;
    let mut tags = Map::new();
    tags.insert("nofailover".into(), me_nofailover.into());
    let input = SyncInput {
        cluster,
        me,
        tags: &tags,
        role: SlotRole::Primary,
        in_recovery: true,
        replay_lsn: None,
        server_version,
        create_only: true,
    };
    sync_slots(monitor, &input).await
}

/// Patroni's `_build_retain_slots`: the member slots the leader keeps for
/// `member_slots_ttl` after their member key went away, by when each was
/// last seen.
#[derive(Debug, Default)]
pub struct RetainSlots {
    seen: BTreeMap<String, f64>,
    leading: bool,
}

impl RetainSlots {
    /// This node is no longer the leader: the next leadership starts over
    /// from `/status`.
    pub fn stop_leading(&mut self) {
        self.leading = false;
    }

    /// The `retain_slots` to publish, given the slots published in
    /// `/status` this cycle. The first call of a leadership restarts every
    /// clock from the `retain_slots` the previous leader left.
    pub fn update(
        &mut self,
        cluster: &Cluster,
        me: &str,
        published: &[(String, i64)],
        settings: &SlotSettings,
        now: f64,
    ) -> Vec<String> {
        if !self.leading {
            self.leading = true;
            self.seen = cluster
                .status
                .retain_slots
                .iter()
                .map(|n| (n.clone(), now))
                .collect();
        }
        if !published.is_empty() {
            let mut members: Vec<String> = cluster
                .members
                .iter()
                .filter(|m| {
                    let tags = m.tags();
                    !crate::model::Tags(&tags).nostream()
                })
                .map(|m| slot_name_from_member_name(&m.name))
                .collect();
            // As Patroni: our own name counts unless we are the last member
            // listed (its check only looks at the last one).
            if cluster.members.last().is_none_or(|m| m.name != me) {
                members.push(slot_name_from_member_name(me));
            }
            let permanent = plan::permanent_physical_names(cluster, settings);
            for (name, _) in published {
                if members.contains(name) && !permanent.contains(name) {
                    self.seen.insert(name.clone(), now);
                }
            }
        }
        let ttl = settings.member_slots_ttl as f64;
        self.seen.retain(|name, at| {
            let keep = *at + ttl > now;
            if !keep {
                log::info!(target: "patroni.dcs",
                    "Replication slot '{name}' for absent cluster member is expired after {} sec.",
                    settings.member_slots_ttl);
            }
            keep
        });
        self.seen.keys().cloned().collect()
    }
}

/// The role string the daemon keeps, for the slot rules.
pub fn role_of(role: &str) -> SlotRole {
    SlotRole::from_role(role)
}

impl super::Daemon {
    /// Slot maintenance on a node that does not hold the leader key (run
    /// every cycle after the HA decision, so that a member that starts to
    /// cascade from us finds its slot in the same cycle we first see it).
    pub(super) async fn replica_housekeeping(&mut self) {
        self.retain_slots.stop_leading();
        self.slots_in_recovery_or_unlocked().await;
    }

    /// Slot maintenance for a node that is not a primary holding the key:
    /// a replica, a standby leader, a primary that lost the key.
    pub(super) async fn slots_in_recovery_or_unlocked(&mut self) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        if self.pg.state != "running" || !self.pg.is_running() {
            return;
        }
        let Some(info) = self.pg.last_info.clone() else {
            return;
        };
        let input = SyncInput {
            cluster: &cluster,
            me: &self.cfg.name,
            tags: &self.cfg.tags,
            role: role_of(&self.pg.role),
            in_recovery: info.is_in_recovery,
            replay_lsn: info.replay_lsn,
            server_version: info.server_version,
            create_only: false,
        };
        match sync_slots(&self.pg.monitor, &input).await {
            Ok(outcome) if !outcome.to_copy.is_empty() && info.is_in_recovery => {
                copy::copy_logical_slots(self, &cluster, &outcome.to_copy).await;
            }
            Ok(_) => {}
            Err(e) => {
                log::error!(target: "patroni.postgresql.slots", "Exception when changing replication slots: {e}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cluster::RawNode;

    fn cluster(nodes: &[(&str, &str)]) -> Cluster {
        Cluster::from_raw_nodes(nodes.iter().map(|(k, v)| RawNode {
            key: k,
            value: v,
            version: Some(1),
            session: None,
        }))
    }

    #[test]
    fn retain_slots_follow_patroni() {
        let c = cluster(&[
            (
                "config",
                r#"{"member_slots_ttl": 100, "slots": {"perm": {}}}"#,
            ),
            ("leader", "a"),
            ("members/a", r#"{"conn_url":"postgres://a/x"}"#),
            ("members/b", r#"{"conn_url":"postgres://b/x"}"#),
            (
                "members/n",
                r#"{"conn_url":"postgres://n/x","tags":{"nostream":true}}"#,
            ),
            ("status", r#"{"optime": 1, "retain_slots": ["old"]}"#),
        ]);
        let settings = plan::SlotSettings::from_cluster(&c, 150000);
        let published: Vec<(String, i64)> = ["a", "b", "n", "perm", "stranger"]
            .iter()
            .map(|n| ((*n).to_owned(), 1))
            .collect();
        let mut retain = RetainSlots::default();
        // First cycle as leader: the previous leader's list restarts its
        // clocks; members seen now join (not nostream ones, permanent
        // slots or unknown names; our own name since we are not the last
        // member listed).
        assert_eq!(
            retain.update(&c, "a", &published, &settings, 1000.0),
            ["a", "b", "old"]
        );
        // `b` goes on being published, `old` is not seen again and expires
        // member_slots_ttl after the leadership began.
        let only_b = vec![("b".to_owned(), 1)];
        assert_eq!(
            retain.update(&c, "a", &only_b, &settings, 1099.0),
            ["a", "b", "old"]
        );
        assert_eq!(retain.update(&c, "a", &only_b, &settings, 1100.0), ["b"]);
        // A new leadership starts over from /status.
        retain.stop_leading();
        assert_eq!(retain.update(&c, "a", &[], &settings, 5000.0), ["old"]);
    }

    #[test]
    fn lsn_text() {
        assert_eq!(format_lsn(0), "0/0");
        assert_eq!(format_lsn(0x1_0000_00A8), "1/A8");
        assert_eq!(format_lsn(0x3000060), "0/3000060");
    }
}

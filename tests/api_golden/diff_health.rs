//! Differential test: health codes, status bodies, readiness and
//! metrics against Patroni's own handler code run in the project venv.

use super::*;

/// The Python side of the differential test: Patroni's own
/// `get_postgresql_status` and `do_GET` run on a handler whose database
/// row, DCS view and node state come from each scenario line; it prints the
/// status code and body of every path.
const PY_HARNESS: &str = r#"
import datetime, json, sys, types
from urllib.parse import urlparse, parse_qs
from patroni.api import RestApiHandler
from patroni.dcs import Cluster, ClusterConfig, Failover, Leader, Member, Status, SyncState
from patroni.exceptions import PostgresConnectionException
from patroni.postgresql.misc import PostgresqlState
from patroni import global_config
from patroni.tags import Tags

class Node(Tags):
    def __init__(self, tags):
        self._t = tags
    @property
    def tags(self):
        return self._t

def cluster_of(keys):
    parts = {k: (v, ver) for k, v, ver in keys}
    members = [Member.from_node(ver, k[8:], None, v) for k, (v, ver) in parts.items() if k.startswith('members/')]
    config = ClusterConfig.from_node(parts['config'][1], parts['config'][0]) if 'config' in parts else None
    leader = None
    if 'leader' in parts:
        name = parts['leader'][0]
        m = next((m for m in members if m.name == name), None) or Member(0, name, None, {})
        leader = Leader(parts['leader'][1], None, m)
    sync = SyncState.from_node(parts['sync'][1], parts['sync'][0]) if 'sync' in parts else SyncState.empty()
    status = Status.from_node(parts['status'][0]) if 'status' in parts else Status(0, None, [])
    return Cluster(None, config, leader, status, members, None, sync, None, None)

READINESS_QUERIES = ['', 'lag=100', 'lag=abc', 'mode=write', 'lag=0&mode=write', 'lag=5kB']

def ts(text):
    return datetime.datetime.fromisoformat(text) if text else None

for line in sys.stdin:
    sc = json.loads(line)
    cluster = cluster_of(sc['keys'])
    # Start from the defaults: a scenario must not inherit the previous
    # scenario's configuration through Patroni's process-wide state.
    global_config.update(None, {'ttl': 30})
    global_config.update(cluster)
    node = Node(sc['tags'])
    node.version = '4.1.5'
    node.scheduled_restart = {}
    node.logger = types.SimpleNamespace(queue_size=0, NORMAL_LOG_QUEUE_SIZE=2, records_lost=0)
    node.dcs = types.SimpleNamespace(cluster=cluster if sc['valid'] else None, last_seen=sc['last_seen'])
    node.ha = types.SimpleNamespace(
        is_leader=lambda: sc['is_leader'], failsafe_is_active=lambda: sc['failsafe_active'],
        get_effective_tags=lambda: dict(sc['tags']), watchdog=types.SimpleNamespace(is_healthy=True))
    def replication_state(is_primary, status, restore):
        if is_primary:
            return None
        if status == 'streaming':
            return 'streaming'
        return 'in archive recovery' if restore else None
    node.postgresql = types.SimpleNamespace(
        state=PostgresqlState(sc['state']), role=sc['mem_role'], major_version=150000, server_version=150020,
        name=sc['name'], scope='demo', sysid='7710799292757857557', pending_restart_reason={},
        POSTMASTER_START_TIME='x', TL_LSN='x', wal_name='wal', lsn_name='lsn', wal_flush='_flush',
        replica_cached_timeline=lambda tl: sc['cached_timeline'],
        replication_state_from_parameters=replication_state)
    row = [ts(sc['start']), 0 if sc['in_recovery'] else sc['timeline'], sc['location'], sc['replayed'],
           sc['received'], sc['paused'], ts(sc['replayed_ts']), sc['latest_end_lsn'], sc['wr_status'],
           sc['restore_command'], sc['received'], sc['replication']]
    out = []
    for url in sc['paths']:
        u = urlparse(url)
        h = types.SimpleNamespace(path=u.path, path_query=parse_qs(u.query) or {})
        h.server = types.SimpleNamespace(patroni=node)
        def query(stmt, *args, retry=False):
            if not sc['reachable']:
                raise PostgresConnectionException('down')
            return [row]
        h.query = query
        h.get_postgresql_status = lambda retry=False, h=h: RestApiHandler.get_postgresql_status(h, retry)
        res = []
        h._write_json_response = lambda code, body: res.append((code, json.dumps(body, default=str)))
        h._write_status_response = lambda code, body, h=h: RestApiHandler._write_status_response(h, code, body)
        RestApiHandler.do_GET(h)
        out.append(res[0])
    ready = []
    for q in READINESS_QUERIES:
        h.path_query = parse_qs(q) or {}
        ready.append(200 if RestApiHandler._readiness(h) is None else 503)
    metrics = []
    h.write_response = lambda code, body, content_type=None, headers=None: metrics.append(body)
    RestApiHandler.do_GET_metrics(h)
    print(json.dumps({'get': out, 'readiness': ready, 'metrics': metrics[0]}))
"#;

/// The readiness queries the harness evaluates (keep in sync with
/// `READINESS_QUERIES` in the harness).
const READINESS_QUERIES: [&str; 6] = [
    "",
    "lag=100",
    "lag=abc",
    "mode=write",
    "lag=0&mode=write",
    "lag=5kB",
];

/// A small deterministic generator (64-bit LCG) for scenarios.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        usize::try_from((self.0 >> 33) % (n as u64)).unwrap_or(0)
    }
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next(items.len())]
    }
}

const DIFF_PATHS: [&str; 37] = [
    "/",
    "/primary",
    "/master",
    "/read-write",
    "/leader",
    "/standby-leader",
    "/standby_leader",
    "/replica",
    "/read-only",
    "/health",
    "/sync",
    "/synchronous",
    "/quorum",
    "/async",
    "/asynchronous",
    "/read-only-sync",
    "/read-only-synchronous",
    "/read-only-quorum",
    "/nonexistent",
    "/replica?lag=100",
    "/replica?lag=1kB",
    "/replica?lag=abc",
    "/read-only?lag=0",
    "/async?lag=10",
    "/replica?tag_dc=dc1",
    "/replica?tag_dc=dc2",
    "/replica?tag_flag=true",
    "/replica?tag_num=3",
    "/health?tag_missing=x",
    "/sync?tag_dc=dc1",
    "/quorum?lag=5&tag_flag=true",
    "/primary?tag_dc=zz",
    "/read-only-quorum?tag_dc=zz",
    "/leader?lag=0",
    "/x/replica/y",
    "/read-only-sync?lag=0&tag_flag=false",
    "/replica?tag_list=%5B1,+%27a%27%5D",
];

/// One random situation, as JSON for the harness and as our snapshot.
fn scenario(rng: &mut Lcg) -> (Value, NodeStatus) {
    let name = *rng.pick(&["node1", "node2", "node3"]);
    let state = *rng.pick(&[
        "running",
        "running",
        "running",
        "starting",
        "stopped",
        "restarting",
    ]);
    let mem_role = *rng.pick(&["primary", "replica", "standby_leader", "demoted"]);
    let reachable = rng.next(5) != 0;
    let in_recovery = rng.next(3) != 0;
    let timeline = 1 + rng.next(4) as i64;
    let cached_timeline = rng.pick(&[None, Some(2_i64), Some(3)]).to_owned();
    let location = *rng.pick(&[1000_i64, 5000]);
    let replayed = *rng.pick(&[100_i64, 900, 1000, 4000]);
    let received = replayed + *rng.pick(&[0_i64, 50]);
    let paused = rng.next(4) == 0;
    let replayed_ts = rng
        .pick(&[None, Some("2026-11-22 01:20:33.305479+00:00")])
        .to_owned();
    let latest_end_lsn = rng.pick(&[None, Some(1200_i64), Some(6000)]).to_owned();
    let wr_status = rng
        .pick(&[None, Some("streaming"), Some("stopping")])
        .to_owned();
    let restore_command = *rng.pick(&["", "cp %f %p"]);
    let replication = rng
        .pick(&[
            Value::Null,
            serde_json::json!([{"usename": "replicator", "application_name": "node2", "client_addr": "127.0.0.1", "state": "streaming", "sync_state": "async", "sync_priority": 0}]),
        ])
        .clone();
    let config = *rng.pick(&[
        r#"{"ttl":30}"#,
        r#"{"pause":true}"#,
        r#"{"synchronous_mode":true}"#,
        r#"{"synchronous_mode":"quorum","pause":"on"}"#,
        r#"{"standby_cluster":{"host":"10.0.0.1","port":5432}}"#,
        r#"{"maximum_lag_on_failover":"2kB","synchronous_mode":"on"}"#,
        "[1]",
    ]);
    let sync = *rng.pick(&[
        "{}",
        r#"{"leader":"node1","sync_standby":"node2"}"#,
        r#"{"leader":"node1","sync_standby":"node2,NODE3","quorum":1}"#,
    ]);
    let optime = *rng.pick(&[0_i64, 1000, 5000]);
    let mut keys = vec![
        ("config".to_owned(), config.to_owned(), Some(3_i64)),
        ("sync".to_owned(), sync.to_owned(), Some(4)),
        (
            "status".to_owned(),
            format!(r#"{{"optime":{optime}}}"#),
            Some(5),
        ),
        (
            "members/node1".to_owned(),
            r#"{"timeline":1}"#.to_owned(),
            Some(6),
        ),
        ("members/node2".to_owned(), "{}".to_owned(), Some(7)),
    ];
    if let Some(leader) = rng.pick(&[None, Some("node1"), Some("node2")]) {
        keys.push(("leader".to_owned(), (*leader).to_owned(), Some(8)));
    }
    let tags = rng
        .pick(&[
            serde_json::json!({}),
            serde_json::json!({"dc": "dc1", "flag": true, "num": 3, "list": [1, "A"]}),
            serde_json::json!({"noloadbalance": true, "dc": "dc2"}),
            serde_json::json!({"nofailover": true, "flag": false}),
        ])
        .clone();
    let valid = rng.next(4) != 0;
    let is_leader = rng.next(2) == 0;
    let failsafe_active = rng.next(6) == 0;
    let json = serde_json::json!({
        "name": name, "state": state, "mem_role": mem_role, "reachable": reachable,
        "in_recovery": in_recovery, "timeline": timeline, "cached_timeline": cached_timeline,
        "location": location, "replayed": replayed, "received": received, "paused": paused,
        "replayed_ts": replayed_ts, "latest_end_lsn": latest_end_lsn, "wr_status": wr_status,
        "restore_command": restore_command, "replication": replication,
        "start": "2026-11-22 01:19:23.052006+00:00",
        "keys": keys.iter().map(|(k, v, r)| serde_json::json!([k, v, r])).collect::<Vec<_>>(),
        "valid": valid, "is_leader": is_leader, "failsafe_active": failsafe_active,
        "tags": tags, "last_seen": 1795310453, "paths": DIFF_PATHS.to_vec(),
    });

    let cluster = Arc::new(Cluster::from_nodes(
        keys.iter().map(|(k, v, r)| (k.as_str(), v.as_str(), *r)),
    ));
    let mut s = NodeStatus::new("demo", name);
    let queried = reachable && matches!(state, "running" | "restarting" | "starting");
    let replication_state = if !in_recovery {
        None
    } else if wr_status == Some("streaming") {
        Some("streaming".to_owned())
    } else if !restore_command.is_empty() {
        Some("in archive recovery".to_owned())
    } else {
        None
    };
    s.postgres = PostgresView {
        state: state.to_owned(),
        role: mem_role.to_owned(),
        query: queried.then(|| PgQuery {
            postmaster_start_time: Some("2026-11-22 01:19:23.052006+00:00".to_owned()),
            server_version: Some(150020),
            xlog: Some(if in_recovery {
                Xlog::Replica {
                    received_location: received,
                    replayed_location: replayed,
                    replayed_timestamp: replayed_ts.map(str::to_owned),
                    paused,
                }
            } else {
                Xlog::Primary { location }
            }),
            timeline: if in_recovery {
                cached_timeline
            } else {
                Some(timeline)
            },
            latest_end_lsn,
            replication_state,
            replication: replication.as_array().cloned(),
        }),
    };
    s.is_leader = is_leader;
    s.cluster = Some(cluster);
    s.cluster_valid = valid;
    s.dcs_last_seen = 1795310453;
    s.tags = obj(&tags);
    s.effective_tags = obj(&tags);
    s.database_system_identifier = Some("7710799292757857557".to_owned());
    s.failsafe_active = failsafe_active;
    (json, s)
}

/// Health codes and bodies of the generic GET handler, `/readiness` codes
/// and the `/metrics` text against Patroni's own code on generated
/// situations (roles, states, PostgreSQL down or unreachable, DCS
/// validity, pause, sync/quorum/standby configurations, lag, tags).
#[test]
fn health_checks_match_patroni_on_generated_scenarios() {
    let python = &super::venv_python();
    if !super::python_available(python) {
        return;
    }
    let mut rng = Lcg(0x5eed);
    let scenarios: Vec<(Value, NodeStatus)> = (0..300).map(|_| scenario(&mut rng)).collect();
    let input: String = scenarios.iter().map(|(j, _)| format!("{j}\n")).collect();
    let answers = super::python_lines(python, PY_HARNESS, input);
    let lines: Vec<&str> = answers.iter().map(String::as_str).collect();
    assert_eq!(lines.len(), scenarios.len());
    let mut failures = Vec::new();
    let mut ok_codes = 0;
    for ((json, status), line) in scenarios.iter().zip(lines) {
        let answer: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        let python: Vec<(u16, String)> =
            serde_json::from_value(answer["get"].clone()).unwrap_or_default();
        assert_eq!(python.len(), DIFF_PATHS.len());
        let metrics = answer["metrics"].as_str().unwrap_or("");
        assert!(metrics.starts_with("# HELP patroni_version"), "{metrics}");
        let ours_metrics = patroni::api::bodies::metrics_body(status);
        if metrics != ours_metrics {
            failures.push(format!(
                "/metrics in {json}\n  python {metrics}\n  ours   {ours_metrics}"
            ));
        }
        let ready: Vec<u16> =
            serde_json::from_value(answer["readiness"].clone()).unwrap_or_default();
        for (q, code) in READINESS_QUERIES.iter().zip(&ready) {
            let ours = patroni::api::health::readiness_status(
                status,
                &patroni::api::health::Query::parse(q),
            );
            ok_codes += usize::from(*code == 200);
            if ours != *code {
                failures.push(format!(
                    "/readiness?{q} in {json}\n  python {code}\n  ours   {ours}"
                ));
            }
        }
        assert_eq!(ready.len(), READINESS_QUERIES.len());
        for (url, (code, body)) in DIFF_PATHS.iter().zip(python) {
            let (path, query) = url.split_once('?').unwrap_or((url, ""));
            let ours = patroni::api::health::health_status(
                status,
                path,
                &patroni::api::health::Query::parse(query),
            );
            let our_body = patroni::api::bodies::status_body(status);
            ok_codes += usize::from(code == 200);
            if ours != code || our_body != body {
                failures.push(format!(
                    "{url} in {json}\n  python {code} {body}\n  ours   {ours} {our_body}"
                ));
            }
        }
    }
    assert!(
        ok_codes > 500,
        "too few 200s ({ok_codes}) to be a meaningful comparison"
    );
    assert!(
        failures.is_empty(),
        "{} mismatches, first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

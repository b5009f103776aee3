use std::sync::Arc;

use async_trait::async_trait;
use chrono::TimeZone;
use serde_json::json;

use super::*;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 1, 0, 0)
        .single()
        .unwrap_or_default()
}

#[test]
fn json_body_rules() {
    let body = |cl: Option<&'static str>, b: &'static str| Body {
        content_length: cl,
        bytes: b.as_bytes(),
    };
    assert_eq!(read_json(body(None, ""), false), Err(Reply::Error(411)));
    assert_eq!(read_json(body(None, ""), true), Ok(Map::new()));
    assert_eq!(read_json(body(Some("0"), ""), true), Ok(Map::new()));
    assert_eq!(
        read_json(body(Some("0"), ""), false),
        Err(Reply::Error(400))
    );
    assert_eq!(
        read_json(body(Some("2"), "{}"), false),
        Err(Reply::Error(400))
    );
    assert_eq!(read_json(body(Some("2"), "{}"), true), Ok(Map::new()));
    assert_eq!(
        read_json(body(Some("4"), "[1,2"), false),
        Err(Reply::Error(400))
    );
    assert_eq!(
        read_json(body(Some("x"), "{}"), true),
        Err(Reply::Error(400))
    );
    assert_eq!(
        read_json(body(Some("8"), r#"{"a": 1}"#), false),
        Ok(obj(json!({"a": 1})))
    );
}

#[test]
fn schedules() {
    let p = |s: &str| parse_schedule(&json!(s), "switchover", now());
    assert_eq!(
        p("2026-11-22T01:25:05+00:00"),
        Schedule::At("2026-11-22T01:25:05+00:00".into())
    );
    assert_eq!(
        p("2026-11-22 03:25:05.25+02:00"),
        Schedule::At("2026-11-22T03:25:05.250000+02:00".into())
    );
    assert_eq!(
        p("2026-11-22T01:25:05Z"),
        Schedule::At("2026-11-22T01:25:05+00:00".into())
    );
    assert_eq!(
        p("2020-01-01T00:00:00+00:00"),
        Schedule::Invalid(422, "Cannot schedule switchover in the past".into())
    );
    assert_eq!(
        p("2099-01-01T00:00:00"),
        Schedule::Invalid(
            400,
            "Timezone information is mandatory for the scheduled switchover".into()
        )
    );
    assert!(matches!(p("garbage"), Schedule::Invalid(422, m) if m.starts_with("Unable to parse")));
    assert!(matches!(
        parse_schedule(&json!(5), "restart", now()),
        Schedule::Invalid(422, _)
    ));
}

#[test]
fn postgres_versions() {
    assert!(check_postgres_version(&json!("15.2")).is_ok());
    assert!(check_postgres_version(&json!("9.6.1")).is_ok());
    assert_eq!(
        check_postgres_version(&json!("abc")),
        Err("Invalid PostgreSQL version: abc".into())
    );
    assert_eq!(
        check_postgres_version(&json!("9.6")),
        Err("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6".into())
    );
}

#[test]
fn patch_and_compare() {
    let mut config =
        obj(json!({"ttl": 30, "postgresql": {"parameters": {"a": 1, "b": 2}}, "pause": true}));
    assert!(!patch_config(&mut config, &obj(json!({"ttl": "30"}))));
    assert!(patch_config(
        &mut config,
        &obj(json!({"pause": null, "postgresql": {"parameters": {"b": null, "c": 3}}, "new": 1}))
    ));
    assert_eq!(
        compact(&Value::Object(config.clone())),
        r#"{"ttl":30,"postgresql":{"parameters":{"a":1,"c":3}},"new":1}"#
    );
    assert!(!patch_config(&mut config, &obj(json!({"missing": null}))));
    assert!(deep_compare(
        &config,
        &obj(json!({"new": "1", "ttl": 30, "postgresql": {"parameters": {"c": 3, "a": 1}}}))
    ));
    assert!(!deep_compare(&config, &obj(json!({"ttl": 30}))));
}

/// A cluster view and scripted answers for the validation tests.
struct Fake {
    cluster: Arc<Cluster>,
    healthy: bool,
}

#[async_trait]
impl ApiCommands for Fake {
    async fn get_cluster(&self) -> Result<Arc<Cluster>, String> {
        Ok(self.cluster.clone())
    }
    async fn reload(&self) {}
    async fn restart(&self, _: &Map<String, Value>) -> Result<(bool, String), String> {
        Err("boom".into())
    }
    async fn schedule_restart(&self, request: &Map<String, Value>) -> bool {
        // The schedule reaches the daemon re-emitted in isoformat.
        request.get("schedule") == Some(&json!("2026-11-22T02:00:00+00:00"))
    }
    async fn delete_scheduled_restart(&self) -> bool {
        true
    }
    async fn reinitialize(&self, force: bool, from_leader: bool) -> Option<String> {
        Some(format!("{force} {from_leader}"))
    }
    async fn manual_failover(
        &self,
        _: Option<&str>,
        _: Option<&str>,
        _: Option<&str>,
        _: Option<i64>,
    ) -> bool {
        false
    }
    async fn has_healthy_candidate(&self, _: &[Member]) -> bool {
        self.healthy
    }
    async fn set_config(&self, _: &str, _: Option<i64>) -> bool {
        false
    }
    async fn update_failsafe(&self, _: &Map<String, Value>) -> Result<Option<i64>, String> {
        Ok(Some(42))
    }
    async fn mpp_event(&self, _: &Map<String, Value>) {}
    fn wakeup(&self) {}
}

fn fake(config: &str, healthy: bool) -> Fake {
    Fake {
        cluster: Arc::new(Cluster::from_nodes([
            ("config", config, Some(1)),
            ("leader", "a", Some(2)),
            ("sync", r#"{"leader":"a","sync_standby":"b"}"#, Some(3)),
            ("members/a", r#"{"api_url":"http://a/patroni"}"#, Some(4)),
            ("members/b", r#"{"api_url":"http://b/patroni"}"#, Some(5)),
            ("members/c", r#"{"api_url":"http://c/patroni"}"#, Some(6)),
        ])),
        healthy,
    }
}

fn text(reply: Reply) -> (u16, String) {
    match reply {
        Reply::Text { code, body, .. } => (code, body),
        Reply::Error(code) => (code, "<error page>".into()),
    }
}

#[tokio::test]
async fn failover_checks_in_order() {
    let t = PollTiming::default();
    let run = |f: Fake, body: Value, action: &'static str| async move {
        text(post_failover(&f, &obj(body), action, now(), t).await)
    };
    let cases: Vec<(Fake, Value, &'static str, u16, &str)> = vec![
        (
            fake("{}", true),
            json!({"leader": "a"}),
            "failover",
            400,
            "Failover could be performed only to a specific candidate",
        ),
        (
            fake("{}", true),
            json!({"candidate": "b"}),
            "switchover",
            400,
            "Switchover could be performed only from a specific leader",
        ),
        (
            fake("{}", true),
            json!({"candidate": "b", "scheduled_at": "2030-01-01T00:00:00+00:00"}),
            "failover",
            400,
            "Failover can't be scheduled",
        ),
        (
            fake(r#"{"pause":true}"#, true),
            json!({"leader": "a", "candidate": "b", "scheduled_at": "2030-01-01T00:00:00+00:00"}),
            "switchover",
            400,
            "Can't schedule switchover in the paused state",
        ),
        (
            fake(r#"{"pause":true}"#, true),
            json!({"leader": "a"}),
            "switchover",
            400,
            "Switchover is possible only to a specific candidate in a paused state",
        ),
        (
            fake("{}", true),
            json!({"leader": "a", "candidate": "a"}),
            "switchover",
            400,
            "Switchover target and source are the same",
        ),
        // A failover naming a leader is handled as a switchover.
        (
            fake("{}", true),
            json!({"leader": "x", "candidate": "b"}),
            "failover",
            412,
            "leader name does not match",
        ),
        (
            fake(r#"{"synchronous_mode":true}"#, true),
            json!({"leader": "a", "candidate": "c"}),
            "switchover",
            412,
            "candidate name does not match with sync_standby",
        ),
        (
            fake(r#"{"synchronous_mode":"quorum"}"#, true),
            json!({"leader": "a", "candidate": "z"}),
            "switchover",
            412,
            "candidate does not exists",
        ),
        (
            fake("{}", false),
            json!({"leader": "a"}),
            "switchover",
            412,
            "switchover is not possible: no good candidates have been found",
        ),
        (
            fake("{}", true),
            json!({"leader": "a", "member": "b"}),
            "switchover",
            503,
            "failed to write failover key into DCS",
        ),
    ];
    for (f, body, action, code, msg) in cases {
        let label = format!("{action} {body}");
        assert_eq!(
            run(f, body, action).await,
            (code, msg.to_owned()),
            "{label}"
        );
    }
}

#[tokio::test]
async fn restart_validation() {
    let f = fake("{}", true);
    let status = NodeStatus::new("demo", "a");
    let run = |body: Value| {
        let status = status.clone();
        let f = &f;
        async move { text(post_restart(f, &status, obj(body), now()).await) }
    };
    assert_eq!(
        run(json!({"role": "master"})).await.1,
        "PostgreSQL role should be either primary, standby_leader, or replica"
    );
    assert_eq!(
        run(json!({"timeout": "0"})).await,
        (400, "Timeout should be a positive number of seconds".into())
    );
    assert_eq!(
        run(json!({"restart_pending": true, "foo": 1})).await,
        (400, "Unknown filter for the scheduled restart: foo".into())
    );
    // The first failing key wins, in body order.
    assert_eq!(
        run(json!({"postgres_version": "x", "role": "bad"})).await.1,
        "Invalid PostgreSQL version: x"
    );
    assert_eq!(
        run(json!({"schedule": "2026-11-22T02:00:00Z", "timeout": "1min"})).await,
        (202, "Restart scheduled".into())
    );
    assert_eq!(
        run(json!({"schedule": "2026-11-22T03:00:00Z"})).await,
        (409, "Another restart is already scheduled".into())
    );
    assert_eq!(
        run(json!({"schedule": "2020-01-01T00:00:00Z"})).await,
        (422, "Cannot schedule restart in the past".into())
    );
    // An exception from the restart itself.
    assert_eq!(run(json!({})).await, (400, "restart failed".into()));

    let mut paused = NodeStatus::new("demo", "a");
    paused.cluster = Some(Arc::new(Cluster::from_nodes([(
        "config",
        r#"{"pause":true}"#,
        Some(1),
    )])));
    assert_eq!(
        text(post_restart(&f, &paused, obj(json!({"schedule": "x"})), now()).await),
        (500, "Can't schedule restart in the paused state".into())
    );
}

#[tokio::test]
async fn config_and_other_endpoints() {
    let f = fake(r#"{"ttl":30}"#, true);
    // Unchanged patch: no write needed, so the failing CAS is not hit.
    assert_eq!(
        text(patch_config_endpoint(&f, &obj(json!({"ttl": 30}))).await),
        (200, r#"{"ttl": 30}"#.into())
    );
    assert_eq!(
        text(patch_config_endpoint(&f, &obj(json!({"ttl": 31}))).await),
        (409, "<error page>".into())
    );
    assert_eq!(
        text(put_config(&f, &obj(json!({"ttl": "30"}))).await),
        (200, r#"{"ttl": "30"}"#.into())
    );
    assert_eq!(text(put_config(&f, &obj(json!({"ttl": 1}))).await).0, 502);
    let no_config = Fake {
        cluster: Arc::new(Cluster::default()),
        healthy: true,
    };
    assert_eq!(
        text(patch_config_endpoint(&no_config, &obj(json!({"a": 1}))).await).0,
        503
    );
    assert_eq!(
        text(delete_switchover(&f).await),
        (404, "no switchover is scheduled".into())
    );
    assert_eq!(
        text(delete_restart(&f).await),
        (200, "scheduled restart deleted".into())
    );
    assert_eq!(
        text(post_reinitialize(&f, &obj(json!({"force": "on"}))).await),
        (503, "true false".into())
    );
    assert_eq!(
        post_failsafe(&f, &obj(json!({"name": "a"}))).await,
        Reply::Text {
            code: 200,
            body: "Accepted".into(),
            content_type: "text/html",
            headers: vec![("lsn".into(), "42".into())]
        }
    );
}

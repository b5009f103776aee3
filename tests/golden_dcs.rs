//! Every DCS value captured from a real Python Patroni 4.1.5 cluster
//! (`../shared/compat/golden/*/{dcs,transitions}/**/keys/`) must read into
//! our typed model and write back byte-identically.

use std::fs;
use std::path::{Path, PathBuf};

use patroni::model::{
    json, ClusterConfig, Failover, Member, MemberStatus, Status, SyncState, TimelineHistory,
};

fn golden_root() -> PathBuf {
    let shared = std::env::var_os("PATRONI_RS_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let root = shared.join("compat/golden");
    assert!(
        root.is_dir(),
        "golden captures not found at {} (set PATRONI_RS_SHARED)",
        root.display()
    );
    root
}

fn key_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "keys") {
                out.push(p);
            } else {
                key_dirs(&p, out);
            }
        }
    }
}

/// Rewrite one stored value through the typed model.
fn rewrite(key: &str, value: &str) -> Option<String> {
    Some(match key {
        "config" => json::compact(&serde_json::Value::Object(
            ClusterConfig::from_node(None, value).data,
        )),
        "failover" => Failover::from_node(None, value).to_node(),
        "sync" => SyncState::from_node(None, value).to_node(),
        "status" => Status::from_node(value).to_node(),
        "history" => TimelineHistory::to_node(&TimelineHistory::from_node(None, value).entries()),
        "failsafe" => json::compact(&serde_json::Value::Object(
            patroni::model::cluster::failsafe_from_node(value)?,
        )),
        "initialize" | "leader" => value.to_owned(),
        k if k.starts_with("members/") => {
            let m = Member::from_node(&k["members/".len()..], None, value);
            MemberStatus::from_member(&m)?.to_node()
        }
        _ => return None,
    })
}

#[test]
fn every_golden_value_round_trips() {
    let mut dirs = Vec::new();
    key_dirs(&golden_root(), &mut dirs);
    assert!(
        dirs.len() > 50,
        "expected many key dumps, found {}",
        dirs.len()
    );
    let mut checked = 0;
    let mut failures = Vec::new();
    for dir in &dirs {
        let mut files = Vec::new();
        collect_files(dir, &mut files);
        for file in files {
            let key = file
                .strip_prefix(dir)
                .expect("under dir")
                .to_string_lossy()
                .replace('\\', "/");
            if key.ends_with(".node_data") {
                continue; // ZooKeeper parent znode data, not a Patroni key
            }
            let value = fs::read_to_string(&file).expect("golden value is UTF-8");
            match rewrite(&key, &value) {
                Some(out) if out == value => checked += 1,
                Some(out) => failures.push(format!(
                    "{}:\n  stored  {value}\n  written {out}",
                    file.display()
                )),
                None => failures.push(format!(
                    "{}: no typed reader accepted {value:?}",
                    file.display()
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 500, "only {checked} values checked");
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).expect("readable").flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

//! Timeline history: the leader publishes its `NNNNNNNN.history` file as
//! the `/history` key, and replicas use it to tell whether they went past
//! the point where the leader's timeline forked off theirs (then they must
//! be rewound before they can follow).

use std::path::Path;

use crate::model::HistoryEntry;
use crate::postgres::controldata::parse_lsn;

/// The lines of a PostgreSQL timeline history file: `(parent timeline,
/// switch point, reason)`. Comment and malformed lines are skipped, as
/// Patroni's `parse_history` does.
pub fn parse_history_file(text: &str) -> Vec<(i64, i64, String)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().splitn(3, char::is_whitespace);
            let tli = fields.next()?.parse::<i64>().ok()?;
            let lsn = i64::try_from(parse_lsn(fields.next()?.trim())?).ok()?;
            let reason = fields.next().unwrap_or("").trim().to_owned();
            Some((tli, lsn, reason))
        })
        .collect()
}

/// Python's `datetime.isoformat()` of a local-time `mtime`: microseconds
/// only when non-zero.
fn isoformat(time: chrono::DateTime<chrono::Local>) -> String {
    if time.timestamp_subsec_micros() == 0 {
        time.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    } else {
        time.format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string()
    }
}

/// The `/history` entries for a primary on `timeline`, from the history
/// file in `wal_dir`: the last line gets the file's modification time and
/// our name; older lines keep the timestamps already in the DCS (when the
/// switch point matches). `None` when there is no file to read.
pub fn history_for(
    wal_dir: &Path,
    timeline: i64,
    me: &str,
    known: &[HistoryEntry],
    max_lines: usize,
) -> Option<Vec<HistoryEntry>> {
    let path = wal_dir.join(format!("{timeline:08X}.history"));
    let text = std::fs::read_to_string(&path).ok()?;
    let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    let mut entries: Vec<HistoryEntry> = parse_history_file(&text)
        .into_iter()
        .map(|(tli, lsn, reason)| HistoryEntry {
            timeline: tli,
            lsn,
            reason,
            timestamp: None,
            new_leader: None,
        })
        .collect();
    if let Some(last) = entries.last_mut().filter(|e| e.timeline == timeline - 1) {
        last.timestamp = Some(isoformat(chrono::DateTime::<chrono::Local>::from(mtime)));
        last.new_leader = Some(me.to_owned());
    }
    let skip = entries.len().saturating_sub(max_lines);
    let mut entries = entries.split_off(skip);
    for entry in entries.iter_mut().filter(|e| e.timestamp.is_none()) {
        if let Some(k) = known
            .iter()
            .find(|k| k.timeline == entry.timeline && k.lsn == entry.lsn)
        {
            entry.timestamp = k.timestamp.clone();
            entry.new_leader = k.new_leader.clone();
        }
    }
    Some(entries)
}

/// Whether a replica at `(timeline, lsn)` went past the fork point of the
/// leader's timeline, per the leader's history (Patroni's
/// `_check_timeline_and_lsn` for a replica). `None` when the history does
/// not tell.
pub fn replica_diverged(history: &[HistoryEntry], timeline: i64, lsn: i64) -> Option<bool> {
    for entry in history {
        if entry.timeline == timeline {
            return Some(lsn > entry.lsn);
        }
        if entry.timeline > timeline {
            return Some(true);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(timeline: i64, lsn: i64) -> HistoryEntry {
        HistoryEntry {
            timeline,
            lsn,
            reason: "no recovery target specified".into(),
            timestamp: None,
            new_leader: None,
        }
    }

    #[test]
    fn history_file_lines() {
        let text = "1\t0/4000000\tno recovery target specified\n\n\
                    2\t0/40430A0\tno recovery target specified\n# comment\n";
        assert_eq!(
            parse_history_file(text),
            vec![
                (1, 0x400_0000, "no recovery target specified".to_owned()),
                (2, 0x404_30A0, "no recovery target specified".to_owned()),
            ]
        );
    }

    #[test]
    fn divergence_against_the_switch_point() {
        let history = [entry(1, 100), entry(2, 200), entry(3, 300)];
        assert_eq!(replica_diverged(&history, 3, 300), Some(false));
        assert_eq!(replica_diverged(&history, 3, 301), Some(true));
        assert_eq!(replica_diverged(&history, 2, 150), Some(false));
        assert_eq!(replica_diverged(&history, 4, 10), None);
        assert_eq!(replica_diverged(&[entry(2, 5)], 1, 1), Some(true));
    }

    #[test]
    fn history_from_the_wal_directory() {
        let dir = std::env::temp_dir().join(format!("patroni-rs-history-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("00000003.history"),
            "1\t0/4000000\tno recovery target specified\n2\t0/5000000\tno recovery target specified\n",
        )
        .expect("write");
        let known = [HistoryEntry {
            timestamp: Some("2026-11-22T01:21:26.702833+00:00".into()),
            new_leader: Some("node2".into()),
            ..entry(1, 0x400_0000)
        }];
        let got = history_for(&dir, 3, "node1", &known, 100).expect("history");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].new_leader.as_deref(), Some("node2"));
        assert_eq!(got[1].new_leader.as_deref(), Some("node1"));
        assert!(got[1].timestamp.is_some());
        assert!(history_for(&dir, 4, "node1", &[], 100).is_none());
        let trimmed = history_for(&dir, 3, "node1", &known, 1).expect("history");
        assert_eq!(trimmed.len(), 1);
        assert_eq!(trimmed[0].timeline, 2);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}

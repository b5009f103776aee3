//! Removing a data directory the way Patroni does, for reinit, failed
//! replica creation and `remove_data_directory_on_rewind_failure`.
//!
//! - A data directory that is a symlink: only the link goes (the target
//!   may be a mount point or another cluster's directory).
//! - A symlinked `pg_wal` (or `pg_xlog`) belongs to this cluster: its
//!   target is removed too, or the next `pg_basebackup --waldir` or
//!   `initdb -X` would find it non-empty. Likewise for tablespaces
//!   (`pg_tblspc/<oid>` links), where errors are ignored as in Patroni.
//! - When removal fails the directory is renamed to `<name>.failed`
//!   (Patroni's `move_data_directory`), so a new one can be created.
//!
//! One guard Patroni does not have: a link target that is `/`, the data
//! directory itself or one of its ancestors is never removed.

use std::path::{Path, PathBuf};

use super::LOG_TARGET;

#[derive(Debug, thiserror::Error)]
#[error("Could not remove data directory {path}: {source}")]
pub struct RemoveError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Patroni's `data_directory_empty`: a directory with `global/pg_control`
/// is never empty; otherwise a missing directory, or one holding only
/// hidden entries and `lost+found`, is.
pub fn data_directory_empty(data_dir: &Path) -> bool {
    if data_dir.join("global").join("pg_control").is_file() {
        return false;
    }
    match std::fs::read_dir(data_dir) {
        Err(_) => !data_dir.exists(),
        Ok(entries) => entries.filter_map(Result::ok).all(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with('.') || name == "lost+found"
        }),
    }
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// The symlinked WAL directories (`pg_xlog`, `pg_wal`) and their targets.
fn wal_links(data_dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    ["pg_xlog", "pg_wal"]
        .iter()
        .map(|name| data_dir.join(name))
        .filter(|p| p.exists() && is_symlink(p))
        .filter_map(|p| std::fs::canonicalize(&p).ok().map(|t| (p, t)))
        .collect()
}

/// The tablespace links (`pg_tblspc/<number>`) and their targets.
fn tablespace_links(data_dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("pg_tblspc")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            // Patroni's parse_int: a non-zero number.
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n != 0)
                && is_symlink(p)
        })
        .filter_map(|p| std::fs::canonicalize(&p).ok().map(|t| (p, t)))
        .collect()
}

/// Whether removing `target` would take the data directory (or more) with
/// it.
fn dangerous_target(target: &Path, data_dir: &Path) -> bool {
    let data = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    target.parent().is_none() || data.starts_with(target)
}

/// Removes the data directory (see the module documentation). On failure
/// the directory is moved aside to `<data_dir>.failed` when possible and
/// the removal error is returned. The caller makes sure PostgreSQL is not
/// running.
pub fn remove_data_directory(data_dir: &Path) -> Result<(), RemoveError> {
    log::info!(target: LOG_TARGET, "Removing data directory: {}", data_dir.display());
    let result = remove_inner(data_dir);
    if let Err(source) = &result {
        log::error!(target: LOG_TARGET,
            "Could not remove data directory {}: {source}", data_dir.display());
        move_data_directory(data_dir);
    }
    result.map_err(|source| RemoveError {
        path: data_dir.to_path_buf(),
        source,
    })
}

fn remove_inner(data_dir: &Path) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(data_dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.file_type().is_symlink() || meta.is_file() {
        return std::fs::remove_file(data_dir);
    }
    if !meta.is_dir() {
        return Ok(());
    }
    for (_, target) in wal_links(data_dir) {
        if dangerous_target(&target, data_dir) {
            log::warn!(target: LOG_TARGET, "Not removing WAL directory {}: it contains the data directory",
                target.display());
            continue;
        }
        log::info!(target: LOG_TARGET, "Removing WAL directory: {}", target.display());
        std::fs::remove_dir_all(&target)?;
    }
    for (_, target) in tablespace_links(data_dir) {
        if dangerous_target(&target, data_dir) {
            continue;
        }
        log::info!(target: LOG_TARGET, "Removing user defined tablespace directory: {}",
            target.display());
        let _ = std::fs::remove_dir_all(&target);
    }
    std::fs::remove_dir_all(data_dir)
}

/// `<path>.failed`.
fn failed_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".failed");
    PathBuf::from(name)
}

/// Renames `path` to `<path>.failed`, replacing an older one.
fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let new_name = failed_name(path);
    if new_name.exists() {
        std::fs::remove_dir_all(&new_name)?;
    }
    std::fs::rename(path, &new_name)?;
    Ok(new_name)
}

/// Patroni's `move_data_directory`: renames the data directory (and a
/// symlinked WAL directory and tablespaces, re-pointing their links) to
/// `<name>.failed`. Best effort: errors are logged.
pub fn move_data_directory(data_dir: &Path) {
    if !data_dir.is_dir() {
        return;
    }
    let result = (|| -> std::io::Result<()> {
        for (link, target) in wal_links(data_dir)
            .into_iter()
            .chain(tablespace_links(data_dir))
        {
            if dangerous_target(&target, data_dir) {
                continue;
            }
            log::info!(target: LOG_TARGET,
                "renaming {} and updating symlink: {}", link.display(), target.display());
            let new_name = move_aside(&target)?;
            std::fs::remove_file(&link)?;
            std::os::unix::fs::symlink(&new_name, &link)?;
        }
        let trimmed = PathBuf::from(data_dir.to_string_lossy().trim_end_matches('/'));
        log::info!(target: LOG_TARGET, "renaming data directory to {}", failed_name(&trimmed).display());
        move_aside(&trimmed).map(|_| ())
    })();
    if let Err(e) = result {
        log::error!(target: LOG_TARGET, "Could not rename data directory {}: {e}", data_dir.display());
    }
}

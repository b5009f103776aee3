//! `log.dir`: `patroni.log` with size-based rotation, following Python's
//! `RotatingFileHandler` as Patroni configures it.
//!
//! The rules that matter to tools watching these files:
//! - before writing a record, if the current size plus the record's length
//!   (with its newline, counted in characters, as Python does) would reach
//!   `file_size`, the file is rotated first, even when the file is empty;
//! - rotation renames `patroni.log.(N-1)` -> `.N`, ..., `patroni.log` ->
//!   `.1`, dropping the oldest, for `file_num` = N backups; with
//!   `file_num <= 0` or `file_size <= 0` the file is never rotated;
//! - every time the file is opened its mode is set to `log.mode`, or to
//!   `0o666 & ~umask` when no mode is configured;
//! - if `patroni.log` exists and is not a regular file, nothing is rotated.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The log file name: Patroni names it after its logging module.
pub const FILE_NAME: &str = "patroni.log";

#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: Option<File>,
    mode: u32,
    max_bytes: i64,
    backups: i64,
}

/// The process umask, read once: Patroni records it at start-up.
fn umask() -> u32 {
    static UMASK: OnceLock<u32> = OnceLock::new();
    *UMASK.get_or_init(|| {
        // Linux publishes it without changing it; fall back to the
        // set-and-restore dance elsewhere.
        if let Ok(status) = fs::read_to_string("/proc/self/status") {
            for line in status.lines() {
                if let Some(v) = line.strip_prefix("Umask:") {
                    if let Ok(m) = u32::from_str_radix(v.trim(), 8) {
                        return m;
                    }
                }
            }
        }
        // SAFETY: umask only swaps the process file-creation mask.
        unsafe {
            let old = libc::umask(0o022);
            libc::umask(old);
            old as u32
        }
    })
}

impl RotatingFile {
    /// Open (creating if needed) `dir/patroni.log` for appending.
    pub fn open(
        dir: &Path,
        mode: Option<u32>,
        max_bytes: i64,
        backups: i64,
    ) -> io::Result<RotatingFile> {
        let mut f = RotatingFile {
            path: dir.join(FILE_NAME),
            file: None,
            mode: mode.unwrap_or(0o666 & !umask()),
            max_bytes,
            backups,
        };
        f.reopen()?;
        Ok(f)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Apply changed limits and mode without reopening (as a reload does).
    pub fn update(&mut self, mode: Option<u32>, max_bytes: i64, backups: i64) {
        self.mode = mode.unwrap_or(0o666 & !umask());
        self.max_bytes = max_bytes;
        self.backups = backups;
    }

    fn reopen(&mut self) -> io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        fs::set_permissions(&self.path, fs::Permissions::from_mode(self.mode))?;
        self.file = Some(file);
        Ok(())
    }

    fn should_rotate(&mut self, line_chars: usize) -> io::Result<bool> {
        if let Ok(meta) = fs::metadata(&self.path) {
            if !meta.is_file() {
                return Ok(false);
            }
        }
        if self.file.is_none() {
            self.reopen()?;
        }
        if self.max_bytes <= 0 {
            return Ok(false);
        }
        let pos = match self.file.as_mut() {
            Some(f) => f.seek(SeekFrom::End(0))?,
            None => 0,
        };
        let pos = i64::try_from(pos).unwrap_or(i64::MAX);
        Ok(pos.saturating_add(line_chars as i64) >= self.max_bytes)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.backups > 0 {
            let name = |i: i64| PathBuf::from(format!("{}.{i}", self.path.display()));
            for i in (1..self.backups).rev() {
                let (src, dst) = (name(i), name(i + 1));
                if src.exists() {
                    if dst.exists() {
                        fs::remove_file(&dst)?;
                    }
                    fs::rename(&src, &dst)?;
                }
            }
            let first = name(1);
            if first.exists() {
                fs::remove_file(&first)?;
            }
            if self.path.exists() {
                fs::rename(&self.path, &first)?;
            }
        }
        self.reopen()
    }

    /// Write one formatted record (without its newline), rotating first if
    /// it would make the file reach the size limit.
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        let chars = line.chars().count() + 1;
        if self.should_rotate(chars)? {
            self.rotate()?;
        }
        if self.file.is_none() {
            self.reopen()?;
        }
        let mut buf = String::with_capacity(line.len() + 1);
        buf.push_str(line);
        buf.push('\n');
        match self.file.as_mut() {
            Some(f) => f.write_all(buf.as_bytes()),
            None => Err(io::Error::other("log file is not open")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &Path) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = fs::read_dir(dir)
            .expect("read dir")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().expect("meta").len(),
                )
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rotates_before_reaching_the_limit_and_keeps_n_backups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut f = RotatingFile::open(dir.path(), Some(0o600), 30, 2).expect("open");
        // 9 chars + newline = 10 bytes per line: two lines fit (20 + 10 >= 30
        // rotates on the third).
        for i in 0..7 {
            f.write_line(&format!("line {i:04}")).expect("write");
        }
        assert_eq!(
            listing(dir.path()),
            [
                ("patroni.log".into(), 10),
                ("patroni.log.1".into(), 20),
                ("patroni.log.2".into(), 20)
            ]
        );
        let newest = fs::read_to_string(dir.path().join("patroni.log")).expect("read");
        assert_eq!(newest, "line 0006\n");
        let mode = fs::metadata(dir.path().join("patroni.log"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn zero_backups_never_rotates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut f = RotatingFile::open(dir.path(), None, 5, 0).expect("open");
        for _ in 0..3 {
            f.write_line("0123456789").expect("write");
        }
        assert_eq!(listing(dir.path()), [("patroni.log".into(), 33)]);
    }

    #[test]
    fn missing_directory_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = RotatingFile::open(&dir.path().join("nope"), None, 5, 1);
        assert!(err.is_err());
    }
}

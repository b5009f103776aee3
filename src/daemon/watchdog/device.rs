//! Watchdog devices: the Linux watchdog character device, and the testing
//! driver of Patroni's acceptance suite (a named pipe that reads the
//! timeout as a text command instead of an ioctl).
//!
//! The Linux protocol: opening the device arms it; every write is a
//! keepalive; writing `V` before closing ("magic close") disarms it when
//! the driver supports that (`WDIOF_MAGICCLOSE`); a close without it
//! leaves the timer running and the machine resets when it expires.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// `WDIOF_SETTIMEOUT`: the timeout can be set.
const WDIOF_SETTIMEOUT: u32 = 0x0080;
/// `WDIOF_MAGICCLOSE`: writing `V` before closing disarms the timer.
const WDIOF_MAGICCLOSE: u32 = 0x0100;

/// The kernel's `struct watchdog_info`.
#[repr(C)]
struct WatchdogInfo {
    options: u32,
    firmware_version: u32,
    identity: [u8; 32],
}

/// The ioctl direction bits and field widths, which differ on a few
/// architectures (asm-generic/ioctl.h and its overrides).
#[cfg(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "sparc64"
))]
mod ioc {
    pub const READ: u64 = 2;
    pub const WRITE: u64 = 4;
    pub const SIZE_BITS: u32 = 13;
}
#[cfg(not(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "sparc64"
)))]
mod ioc {
    pub const READ: u64 = 2;
    pub const WRITE: u64 = 1;
    pub const SIZE_BITS: u32 = 14;
}

/// `_IOC(dir, 'W', nr, size)`.
const fn watchdog_ioctl(dir: u64, nr: u64, size: usize) -> u64 {
    const TYPE_SHIFT: u32 = 8;
    const SIZE_SHIFT: u32 = 16;
    const DIR_SHIFT: u32 = SIZE_SHIFT + ioc::SIZE_BITS;
    (dir << DIR_SHIFT) | ((size as u64) << SIZE_SHIFT) | ((b'W' as u64) << TYPE_SHIFT) | nr
}

const WDIOC_GETSUPPORT: u64 = watchdog_ioctl(ioc::READ, 0, size_of::<WatchdogInfo>());
const WDIOC_SETTIMEOUT: u64 = watchdog_ioctl(ioc::READ | ioc::WRITE, 6, size_of::<i32>());
const WDIOC_GETTIMEOUT: u64 = watchdog_ioctl(ioc::READ, 7, size_of::<i32>());

/// What a device can do, from `WDIOC_GETSUPPORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    pub options: u32,
    pub firmware_version: u32,
    pub identity: String,
}

impl Support {
    pub fn can_set_timeout(&self) -> bool {
        self.options & WDIOF_SETTIMEOUT != 0
    }

    pub fn magic_close(&self) -> bool {
        self.options & WDIOF_MAGICCLOSE != 0
    }
}

/// Which driver talks to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// `/dev/watchdog` and its ioctls.
    Linux,
    /// Patroni's acceptance-suite pipe: timeouts are written as
    /// `Ctimeout=N\n`, support is fixed, the last timeout set is read back.
    Testing,
}

/// An open (armed) device.
pub struct Device {
    driver: Driver,
    path: String,
    file: Option<File>,
    support: Option<Support>,
    /// The testing driver's timeout (it has no ioctl to read it back).
    testing_timeout: i32,
}

impl Device {
    pub fn new(driver: Driver, path: &str) -> Device {
        Device {
            driver,
            path: path.to_owned(),
            file: None,
            support: None,
            testing_timeout: 60,
        }
    }

    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// The device exists and we may write to it (Patroni's `is_healthy`).
    pub fn is_usable(&self) -> bool {
        let Ok(c) = std::ffi::CString::new(self.path.as_bytes()) else {
            return false;
        };
        // SAFETY: `c` is a valid NUL-terminated path for the call.
        unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
    }

    pub fn open(&mut self) -> Result<(), String> {
        // Non-blocking only for the open: a pipe without a reader fails at
        // once instead of hanging the HA loop; writes then block as usual.
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path)
            .map_err(|e| format!("Can't open watchdog device: {e}"))?;
        let fd = file.as_raw_fd();
        // SAFETY: plain flag calls on the descriptor we own.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
        }
        self.file = Some(file);
        Ok(())
    }

    fn file(&mut self) -> Result<&mut File, String> {
        self.file
            .as_mut()
            .ok_or_else(|| "Watchdog device is closed".to_owned())
    }

    /// Disarm (magic close) and close.
    pub fn close(&mut self) -> Result<(), String> {
        if let Some(mut f) = self.file.take() {
            f.write_all(b"V")
                .map_err(|e| format!("Error while closing {}: {e}", self.describe()))?;
        }
        Ok(())
    }

    pub fn keepalive(&mut self) -> Result<(), String> {
        self.file()?
            .write_all(b"1")
            .map_err(|e| format!("Could not send watchdog keepalive: {e}"))
    }

    pub fn support(&mut self) -> Result<Support, String> {
        if let Some(s) = &self.support {
            return Ok(s.clone());
        }
        let support = match self.driver {
            Driver::Testing => Support {
                options: WDIOF_MAGICCLOSE | WDIOF_SETTIMEOUT,
                firmware_version: 0,
                identity: "Watchdog test harness".to_owned(),
            },
            Driver::Linux => {
                let fd = self.file()?.as_raw_fd();
                let mut info = WatchdogInfo {
                    options: 0,
                    firmware_version: 0,
                    identity: [0; 32],
                };
                // SAFETY: GETSUPPORT writes one `struct watchdog_info`
                // into the buffer we pass, which is that struct.
                let rc = unsafe { libc::ioctl(fd, WDIOC_GETSUPPORT as _, &mut info) };
                if rc != 0 {
                    return Err(format!(
                        "Could not get information about watchdog device: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                let end = info.identity.iter().position(|b| *b == 0).unwrap_or(32);
                Support {
                    options: info.options,
                    firmware_version: info.firmware_version,
                    identity: String::from_utf8_lossy(&info.identity[..end]).into_owned(),
                }
            }
        };
        self.support = Some(support.clone());
        Ok(support)
    }

    pub fn set_timeout(&mut self, timeout: i64) -> Result<(), String> {
        let value = i32::try_from(timeout)
            .ok()
            .filter(|t| (1..0xFFFF).contains(t))
            .ok_or_else(|| {
                format!("Invalid timeout {timeout}. Supported values are between 1 and 65535")
            })?;
        match self.driver {
            Driver::Testing => {
                self.file()?
                    .write_all(format!("Ctimeout={value}\n").as_bytes())
                    .map_err(|e| format!("Could not set timeout on watchdog device: {e}"))?;
                self.testing_timeout = value;
                Ok(())
            }
            Driver::Linux => {
                let fd = self.file()?.as_raw_fd();
                let mut arg: i32 = value;
                // SAFETY: SETTIMEOUT reads and writes back one int.
                let rc = unsafe { libc::ioctl(fd, WDIOC_SETTIMEOUT as _, &mut arg) };
                if rc != 0 {
                    return Err(format!(
                        "Could not set timeout on watchdog device: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                Ok(())
            }
        }
    }

    pub fn timeout(&mut self) -> Result<i64, String> {
        match self.driver {
            Driver::Testing => Ok(i64::from(self.testing_timeout)),
            Driver::Linux => {
                let fd = self.file()?.as_raw_fd();
                let mut arg: i32 = 0;
                // SAFETY: GETTIMEOUT writes one int.
                let rc = unsafe { libc::ioctl(fd, WDIOC_GETTIMEOUT as _, &mut arg) };
                if rc != 0 {
                    return Err(format!(
                        "Could not get timeout on watchdog device: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                Ok(i64::from(arg))
            }
        }
    }

    /// How the device is named in log lines.
    pub fn describe(&mut self) -> String {
        let at = if self.path == "/dev/watchdog" {
            String::new()
        } else {
            format!(" at {}", self.path)
        };
        if self.is_open() {
            if let Ok(s) = self.support() {
                let firmware = if s.firmware_version != 0 {
                    format!(" (firmware {})", s.firmware_version)
                } else {
                    String::new()
                };
                return format!("{}{firmware}{at}", s.identity);
            }
        }
        format!("Linux watchdog device{at}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn ioctl_numbers_are_the_kernels() {
        // From linux/watchdog.h on x86_64.
        assert_eq!(WDIOC_GETSUPPORT, 0x8028_5700);
        assert_eq!(WDIOC_SETTIMEOUT, 0xC004_5706);
        assert_eq!(WDIOC_GETTIMEOUT, 0x8004_5707);
    }

    #[test]
    fn testing_driver_speaks_the_pipe_protocol() {
        let dir = std::env::temp_dir().join(format!("patroni-wd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("device");
        std::fs::write(&path, b"").unwrap_or_else(|e| panic!("{e}"));
        let p = path.to_string_lossy().into_owned();
        let mut d = Device::new(Driver::Testing, &p);
        assert!(d.keepalive().is_err(), "closed device");
        d.open().unwrap_or_else(|e| panic!("{e}"));
        assert!(d
            .support()
            .is_ok_and(|s| s.magic_close() && s.can_set_timeout()));
        d.set_timeout(25).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.timeout(), Ok(25));
        assert!(d.set_timeout(0).is_err());
        assert!(d.set_timeout(70_000).is_err());
        d.keepalive().unwrap_or_else(|e| panic!("{e}"));
        d.close().unwrap_or_else(|e| panic!("{e}"));
        assert!(!d.is_open());
        let written = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(written, "Ctimeout=25\n1V");
        assert_eq!(d.describe(), format!("Linux watchdog device at {p}"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_device_fails_to_open_with_the_reason() {
        let mut d = Device::new(Driver::Linux, "/nonexistent/watchdog");
        assert!(!d.is_usable());
        let e = d.open().err().unwrap_or_default();
        assert!(e.starts_with("Can't open watchdog device: "), "{e}");
    }
}

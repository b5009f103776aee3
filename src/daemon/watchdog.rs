//! The watchdog: while this node runs the primary, a device that resets the
//! machine unless the HA loop pings it in time, so a frozen daemon cannot
//! keep a primary running after its leader key expired.
//!
//! Patroni's semantics (`watchdog` section): `mode` `off` (also YAML
//! `false`, `disable(d)`), `automatic` (the default: use a device when one
//! can be opened) or `required` (refuse to be leader without one);
//! `device` (default `/dev/watchdog`), `driver` (`default`; `testing` is
//! the acceptance suite's pipe), `safety_margin` (seconds, 5 by default;
//! -1 means half the ttl). The timeout asked of the device is `ttl -
//! safety_margin`; it must leave at least `loop_wait` of slack.
//!
//! The device is armed when the node is about to act as primary
//! ([`Watchdog::activate`], asked by the HA core), pinged after every
//! successful leader-key refresh ([`Watchdog::keepalive`]) and disarmed
//! when the node stops being primary, in pause, and at shutdown once
//! PostgreSQL is down ([`Watchdog::disable`]). A configuration change is
//! applied at the next keepalive, so the new timeout starts with a fresh
//! key.

mod device;

use crate::config::units::parse_int;
use crate::config::{Map, Value};

use device::{Device, Driver};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Off,
    Automatic,
    Required,
}

/// Patroni's reading of `watchdog.mode`: anything unrecognised (including
/// YAML `true`) turns the watchdog off with a warning.
fn parse_mode(value: Option<&Value>) -> Mode {
    let text = match value {
        None => return Mode::Automatic,
        Some(Value::Bool(false)) => return Mode::Off,
        Some(Value::Bool(true)) => "true".to_owned(),
        Some(Value::Null) => "none".to_owned(),
        Some(Value::Str(s)) => s.to_lowercase(),
        Some(Value::Int(i)) => i.to_string(),
        Some(other) => format!("{other:?}").to_lowercase(),
    };
    match text.as_str() {
        "require" | "required" => Mode::Required,
        "auto" | "automatic" => Mode::Automatic,
        "off" | "disable" | "disabled" => Mode::Off,
        _ => {
            log::warn!(target: "patroni.watchdog", "Watchdog mode {text} not recognized, disabling watchdog");
            Mode::Off
        }
    }
}

/// One reading of the configuration, compared to know what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchdogConfig {
    pub mode: Mode,
    pub ttl: i64,
    pub loop_wait: i64,
    pub safety_margin: i64,
    /// `None`: a driver this platform has no implementation of.
    pub driver: Option<Driver>,
    pub device: String,
}

impl WatchdogConfig {
    /// From the effective configuration and the current timing.
    pub fn read(effective: &Map, ttl: i64, loop_wait: i64) -> WatchdogConfig {
        let empty = Map::new();
        let section = match effective.get("watchdog") {
            Some(Value::Map(m)) if !m.is_empty() => m,
            _ => &empty,
        };
        let driver = match section.get("driver").and_then(Value::as_str) {
            None | Some("default") => Some(Driver::Linux),
            Some("testing") => Some(Driver::Testing),
            Some(_) => None,
        };
        WatchdogConfig {
            mode: parse_mode(section.get("mode")),
            ttl,
            loop_wait,
            safety_margin: section
                .get("safety_margin")
                .and_then(|v| parse_int(v, Some("s")))
                .unwrap_or(5),
            driver,
            device: section
                .get("device")
                .and_then(Value::as_str)
                .unwrap_or("/dev/watchdog")
                .to_owned(),
        }
    }

    /// The device timeout to ask for.
    pub fn timeout(&self) -> i64 {
        if self.safety_margin == -1 {
            self.ttl / 2
        } else {
            self.ttl - self.safety_margin
        }
    }

    /// What is left of the timeout once a loop has run.
    pub fn timing_slack(&self) -> i64 {
        self.timeout() - self.loop_wait
    }

    fn device(&self) -> Option<Device> {
        match self.mode {
            Mode::Off => None,
            _ => self.driver.map(|d| Device::new(d, &self.device)),
        }
    }
}

pub struct Watchdog {
    config: WatchdogConfig,
    active_config: WatchdogConfig,
    /// The HA loop wants it armed (the node acts as primary).
    active: bool,
    /// `None`: no device (off, unsupported, or it failed to open).
    device: Option<Device>,
}

impl Watchdog {
    /// `Err` when the configuration requires a watchdog this platform
    /// cannot provide: Patroni exits then.
    pub fn new(config: WatchdogConfig) -> Result<Watchdog, String> {
        let device = config.device();
        if config.mode == Mode::Required && device.is_none() {
            return Err(
                "Configuration requires a watchdog, but watchdog is not supported on this platform."
                    .to_owned(),
            );
        }
        Ok(Watchdog {
            active_config: config.clone(),
            config,
            active: false,
            device,
        })
    }

    /// A new configuration (local reload or `/config` change).
    pub fn reload(&mut self, config: WatchdogConfig) {
        if config == self.config {
            return;
        }
        self.config = config;
        if self.config.mode == Mode::Off {
            if self.active {
                self.close_device();
            }
            self.active_config = self.config.clone();
            self.device = None;
        }
        if !self.active {
            // Nothing armed: adopt it at once so that problems show early.
            if self.config.driver != self.active_config.driver
                || self.config.device != self.active_config.device
                || self.device.is_none()
            {
                self.device = self.config.device();
            }
            self.active_config = self.config.clone();
        }
    }

    pub fn is_running(&self) -> bool {
        self.device.as_ref().is_some_and(Device::is_open)
    }

    /// Whether this node may become primary as far as the watchdog goes:
    /// always unless `required`, then the timing must leave slack and the
    /// device must be writable.
    pub fn is_healthy(&self) -> bool {
        if self.config.mode != Mode::Required {
            return true;
        }
        self.config.timing_slack() >= 0 && self.device.as_ref().is_some_and(Device::is_usable)
    }

    /// Arm the device for a node about to act as primary. `false` when a
    /// required watchdog could not be armed safely.
    pub fn activate(&mut self) -> bool {
        self.active = true;
        self.arm()
    }

    fn arm(&mut self) -> bool {
        self.active_config = self.config.clone();
        let required = self.config.mode == Mode::Required;
        if self.config.timing_slack() < 0 {
            log::warn!(target: "patroni.watchdog",
                "Watchdog not supported because leader TTL {} is less than 2x loop_wait {}",
                self.config.ttl, self.config.loop_wait);
            self.device = None;
        }
        let mut actual_timeout = None;
        if let Some(device) = self.device.as_mut() {
            match device
                .open()
                .and_then(|()| set_timeout(device, &self.config))
            {
                Ok(t) => actual_timeout = t,
                Err(e) => {
                    let what = device.describe();
                    if required {
                        log::warn!(target: "patroni.watchdog", "Could not activate {what}: {e}");
                    } else {
                        log::debug!(target: "patroni.watchdog", "Could not activate {what}: {e}");
                    }
                    let _ = device.close();
                    self.device = None;
                }
            }
        }
        // A device that may still have been closed as unsafe.
        if self.device.as_ref().is_some_and(|d| !d.is_open()) {
            self.device = None;
        }
        if let Some(device) = self.device.as_mut() {
            if device.support().is_ok_and(|s| !s.magic_close()) {
                log::warn!(target: "patroni.watchdog",
                    "Watchdog implementation can't be disabled. Watchdog will trigger after Patroni loses leader key.");
            }
        }
        let timeout = self.config.timeout();
        let unsafe_timeout = actual_timeout.is_some_and(|t| t > timeout);
        if self.device.is_none() || unsafe_timeout {
            if required {
                if self.device.is_none() {
                    log::error!(target: "patroni.watchdog",
                        "Configuration requires watchdog, but watchdog could not be configured.");
                } else {
                    log::error!(target: "patroni.watchdog",
                        "Configuration requires watchdog, but a safe watchdog timeout {timeout} could not be configured. Watchdog timeout is {}.",
                        actual_timeout.unwrap_or(0));
                }
                return false;
            }
            if unsafe_timeout {
                log::warn!(target: "patroni.watchdog",
                    "Watchdog timeout {} seconds does not ensure safe termination within {timeout} seconds",
                    actual_timeout.unwrap_or(0));
            }
        }
        if let Some(device) = self.device.as_mut() {
            log::info!(target: "patroni.watchdog",
                "{} activated with {} second timeout, timing slack {} seconds",
                device.describe(), actual_timeout.unwrap_or(0), self.config.timing_slack());
        }
        true
    }

    /// Disarm: the node no longer acts as primary.
    pub fn disable(&mut self) {
        self.close_device();
        self.active = false;
    }

    fn close_device(&mut self) {
        let Some(device) = self.device.as_mut() else {
            return;
        };
        if !device.is_open() {
            return;
        }
        if device.support().is_ok_and(|s| !s.magic_close()) {
            // It will fire anyway: give the administrator a full period.
            let _ = device.keepalive();
            let t = device.timeout().unwrap_or(0);
            log::warn!(target: "patroni.watchdog",
                "Watchdog implementation can't be disabled. System will reboot after {t} seconds when watchdog times out.");
        }
        if let Err(e) = device.close() {
            log::error!(target: "patroni.watchdog", "Error while disabling watchdog: {e}");
        }
    }

    /// Ping after a successful leader-key refresh, then apply a pending
    /// configuration change.
    pub fn keepalive(&mut self) {
        if !self.active {
            return;
        }
        if let Some(device) = self.device.as_mut().filter(|d| d.is_open()) {
            if let Err(e) = device.keepalive() {
                log::error!(target: "patroni.watchdog", "Error while sending keepalive: {e}");
            }
        }
        if self.config == self.active_config {
            return;
        }
        let (new, old) = (self.config.clone(), self.active_config.clone());
        if new.mode != Mode::Off && old.mode == Mode::Off {
            self.device = new.device();
            self.arm();
        }
        if new.driver != old.driver || new.device != old.device {
            self.close_device();
            self.device = new.device();
            self.arm();
        }
        if new.timeout() != old.timeout() {
            if let Some(device) = self.device.as_mut().filter(|d| d.is_open()) {
                match device.set_timeout(new.timeout()) {
                    Ok(()) => log::info!(target: "patroni.watchdog",
                        "{} updated with {} second timeout, timing slack {} seconds",
                        device.describe(), device.timeout().unwrap_or(0), new.timing_slack()),
                    Err(e) => {
                        log::error!(target: "patroni.watchdog", "Error while sending keepalive: {e}")
                    }
                }
            }
        }
        self.active_config = new;
    }
}

/// Set the configured timeout where the device allows it and check the
/// result: `Ok(None)` when the device was closed as unsafe (its timeout is
/// shorter than a loop).
fn set_timeout(device: &mut Device, config: &WatchdogConfig) -> Result<Option<i64>, String> {
    if device.support()?.can_set_timeout() {
        device.set_timeout(config.timeout())?;
    }
    let actual = device.timeout()?;
    if actual < config.loop_wait {
        log::error!(target: "patroni.watchdog",
            "loop_wait of {} seconds is too long for watchdog {actual} second timeout", config.loop_wait);
        if device.support()?.magic_close() {
            log::info!(target: "patroni.watchdog", "Disabling watchdog due to unsafe timeout.");
            device.close()?;
            return Ok(None);
        }
    }
    Ok(Some(actual))
}

#[cfg(test)]
mod tests;

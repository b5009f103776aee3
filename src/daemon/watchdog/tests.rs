use super::*;

fn cfg(yaml: &str, ttl: i64, loop_wait: i64) -> WatchdogConfig {
    let value = crate::config::yaml::load(yaml).unwrap_or(Value::Null);
    let empty = Map::new();
    WatchdogConfig::read(value.as_map().unwrap_or(&empty), ttl, loop_wait)
}

/// A regular file stands in for the testing driver's pipe: what the
/// watchdog wrote can be read back.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("patroni-wd-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("device");
        std::fs::write(&path, b"").unwrap_or_else(|e| panic!("{e}"));
        Scratch(path)
    }

    fn yaml(&self, mode: &str) -> String {
        format!(
            "watchdog:\n  mode: {mode}\n  driver: testing\n  device: {}\n",
            self.0.display()
        )
    }

    fn written(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn modes_are_read_like_patroni() {
    assert_eq!(cfg("{}", 30, 10).mode, Mode::Automatic);
    assert_eq!(cfg("watchdog: {}", 30, 10).mode, Mode::Automatic);
    assert_eq!(cfg("watchdog:\n  mode: off", 30, 10).mode, Mode::Off);
    assert_eq!(cfg("watchdog:\n  mode: 'off'", 30, 10).mode, Mode::Off);
    assert_eq!(
        cfg("watchdog:\n  mode: Required", 30, 10).mode,
        Mode::Required
    );
    assert_eq!(
        cfg("watchdog:\n  mode: require", 30, 10).mode,
        Mode::Required
    );
    assert_eq!(cfg("watchdog:\n  mode: auto", 30, 10).mode, Mode::Automatic);
    assert_eq!(cfg("watchdog:\n  mode: disabled", 30, 10).mode, Mode::Off);
    // YAML true is not a mode: Patroni warns and turns it off.
    assert_eq!(cfg("watchdog:\n  mode: on", 30, 10).mode, Mode::Off);
    assert_eq!(cfg("watchdog:\n  mode: sometimes", 30, 10).mode, Mode::Off);
    assert_eq!(cfg("watchdog:\n  driver: other", 30, 10).driver, None);
    assert_eq!(cfg("{}", 30, 10).device, "/dev/watchdog");
}

#[test]
fn timeout_and_slack_follow_the_safety_margin() {
    let c = cfg("{}", 30, 10);
    assert_eq!((c.timeout(), c.timing_slack()), (25, 15));
    let c = cfg("watchdog:\n  safety_margin: -1", 31, 10);
    assert_eq!((c.timeout(), c.timing_slack()), (15, 5));
    let c = cfg("watchdog:\n  safety_margin: 12", 20, 10);
    assert_eq!((c.timeout(), c.timing_slack()), (8, -2));
}

#[test]
fn a_required_watchdog_without_a_driver_refuses_to_start() {
    let e = Watchdog::new(cfg("watchdog:\n  mode: required\n  driver: x", 30, 10)).err();
    assert!(e.is_some_and(|e| e.contains("requires a watchdog")));
    assert!(Watchdog::new(cfg("watchdog:\n  mode: automatic\n  driver: x", 30, 10)).is_ok());
}

#[test]
fn armed_pinged_reconfigured_and_disarmed() {
    let dev = Scratch::new("cycle");
    let mut w = Watchdog::new(cfg(&dev.yaml("required"), 20, 2)).unwrap_or_else(|e| panic!("{e}"));
    assert!(w.is_healthy());
    assert!(!w.is_running());
    // Pings before activation go nowhere.
    w.keepalive();
    assert_eq!(dev.written(), "");
    assert!(w.activate());
    assert!(w.is_running());
    w.keepalive();
    assert_eq!(dev.written(), "Ctimeout=15\n1");
    // A new ttl is applied at the next keepalive, after that ping.
    w.reload(cfg(&dev.yaml("required"), 30, 2));
    assert_eq!(dev.written(), "Ctimeout=15\n1");
    w.keepalive();
    assert_eq!(dev.written(), "Ctimeout=15\n11Ctimeout=25\n");
    w.disable();
    assert!(!w.is_running());
    assert_eq!(dev.written(), "Ctimeout=15\n11Ctimeout=25\nV");
    // Armed again (after a pause, say) it reopens the device.
    assert!(w.activate());
    assert!(w.is_running());
}

#[test]
fn turning_it_off_disarms_at_once() {
    let dev = Scratch::new("off");
    let mut w =
        Watchdog::new(cfg(&dev.yaml("automatic"), 30, 10)).unwrap_or_else(|e| panic!("{e}"));
    assert!(w.activate());
    w.reload(cfg("watchdog:\n  mode: off", 30, 10));
    assert!(!w.is_running());
    assert!(dev.written().ends_with('V'), "{}", dev.written());
}

#[test]
fn a_missing_device_is_fatal_only_when_required() {
    let missing = "driver: testing\n  device: /nonexistent/wd";
    let mut w = Watchdog::new(cfg(
        &format!("watchdog:\n  mode: automatic\n  {missing}"),
        30,
        10,
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(w.is_healthy());
    assert!(w.activate());
    assert!(!w.is_running());
    let mut w = Watchdog::new(cfg(
        &format!("watchdog:\n  mode: required\n  {missing}"),
        30,
        10,
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!w.is_healthy());
    assert!(!w.activate());
}

#[test]
fn too_little_slack_makes_a_required_watchdog_fail() {
    let dev = Scratch::new("slack");
    // ttl 20, margin 5 -> timeout 15 < loop_wait 16.
    let mut w = Watchdog::new(cfg(&dev.yaml("required"), 20, 16)).unwrap_or_else(|e| panic!("{e}"));
    assert!(!w.is_healthy());
    assert!(!w.activate());
    assert!(!w.is_running());
}

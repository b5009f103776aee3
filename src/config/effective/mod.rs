//! The effective configuration a Patroni member runs with (Patroni's
//! `Config` class).
//!
//! Three layers make it up:
//!
//! - the *local* configuration: a YAML file, or every `*.yml`/`*.yaml` file
//!   of a directory merged in name order, with the `PATRONI_*` environment
//!   merged on top; without a usable path, the YAML document held in
//!   `PATRONI_CONFIGURATION`; failing that, the environment alone;
//! - the *dynamic* configuration, shared by the cluster through the DCS and
//!   cached in `<data_dir>/patroni.dynamic.json` so that a member can still
//!   start if the DCS was wiped;
//! - built-in defaults.
//!
//! Python Patroni logs the warnings it meets while merging (timeouts
//! adjusted, invalid parameters dropped, contradictory tags). We collect
//! them as [`ConfigEvent`]s instead, so the caller decides how to log them
//! and tests can assert them.

mod defaults;
mod merge;
mod pyfmt;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::env::build_environment_configuration;
use super::units::parse_int;
use super::{yaml, Map, Value};

pub use crate::config::case_insensitive::ci_get;
pub use defaults::default_config as default_configuration;
pub(crate) use merge::patch_config;
use merge::{build_effective_configuration, deep_compare, py_contains};
use pyfmt::{json_dumps, py_int, py_str};

/// File name of the dynamic configuration cache inside the data directory.
pub const CACHE_FILENAME: &str = "patroni.dynamic.json";

/// Name of the variable that may hold the whole configuration as YAML.
pub const CONFIG_VARIABLE: &str = "PATRONI_CONFIGURATION";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Patroni's `ConfigParseError`: the text is Patroni's own (validation
    /// errors are joined with newlines, as Patroni prints them).
    #[error("{0}")]
    Parse(String),
    /// A YAML document did not parse.
    #[error("{source_name}: {message}")]
    Yaml {
        source_name: String,
        message: String,
    },
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The configuration has a shape Patroni cannot work with (Python
    /// Patroni would stop with a traceback).
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Severity of a [`ConfigEvent`], matching the level Patroni logs it at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventLevel {
    Info,
    Warning,
    Error,
}

/// Something Patroni would have logged while building the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEvent {
    pub level: EventLevel,
    pub message: String,
}

impl ConfigEvent {
    pub(crate) fn warning(message: String) -> ConfigEvent {
        ConfigEvent {
            level: EventLevel::Warning,
            message,
        }
    }
    fn error(message: String) -> ConfigEvent {
        ConfigEvent {
            level: EventLevel::Error,
            message,
        }
    }
}

/// Where the local configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// The file or directory given on the command line.
    Path(PathBuf),
    /// The YAML document in `PATRONI_CONFIGURATION`.
    EnvironmentDocument,
    /// The individual `PATRONI_*` variables.
    Environment,
}

/// Patroni's `default_validator`: the only check when no schema validation
/// is requested is that the configuration is not empty.
pub fn default_validator(conf: &Value) -> Vec<String> {
    if conf.truthy() {
        Vec::new()
    } else {
        vec!["Config is empty.".to_owned()]
    }
}

/// A validator, as [`Config::load`] takes it.
pub type Validator<'a> = &'a dyn Fn(&Value) -> Vec<String>;

/// The configuration of a running member. See the module documentation.
#[derive(Debug, Clone)]
pub struct Config {
    config_file: Option<PathBuf>,
    source: ConfigSource,
    environment: Map,
    consumed_env: Vec<String>,
    local: Map,
    dynamic: Map,
    effective: Map,
    cache_file: PathBuf,
    data_dir: String,
    cache_needs_saving: bool,
    modify_version: Option<i64>,
    events: Vec<ConfigEvent>,
}

impl Config {
    /// Load the local configuration and, when `validator` is given, the
    /// cached dynamic configuration, as Patroni does at start-up.
    ///
    /// `configfile` that does not exist is not an error, exactly as in
    /// Patroni: the configuration then comes from the environment
    /// ([`Config::source`] tells which). `env` is the process environment;
    /// the variables Patroni would remove are listed by
    /// [`Config::consumed_env`].
    ///
    /// `validator` `None` is patronictl's mode: no validation, no cache, no
    /// tag checks. The daemon passes [`default_validator`] or the schema
    /// validator.
    pub fn load(
        configfile: Option<&Path>,
        env: &[(String, String)],
        validator: Option<Validator<'_>>,
    ) -> Result<Config, ConfigError> {
        let env_config = build_environment_configuration(env);
        let mut events: Vec<ConfigEvent> = env_config
            .parse_failures
            .iter()
            .map(|m| ConfigEvent::error(m.clone()))
            .collect();
        let mut consumed_env = env_config.consumed;
        let environment = env_config.config;

        let config_file = configfile.filter(|p| p.exists()).map(Path::to_path_buf);
        let (local_value, source) = match &config_file {
            Some(path) => {
                let mut local = load_config_path(path, &mut events)?;
                patch_config(&mut local, &environment);
                (Value::Map(local), ConfigSource::Path(path.clone()))
            }
            None => {
                let document = env
                    .iter()
                    .find(|(k, _)| k == CONFIG_VARIABLE)
                    .map(|(_, v)| v.clone());
                // Read (and removed from the environment) only when there is
                // no configuration file; the environment mapping never uses it.
                if document.is_some() {
                    consumed_env.push(CONFIG_VARIABLE.to_owned());
                }
                let parsed = match document.filter(|d| !d.is_empty()) {
                    Some(text) => yaml::load(&text).map_err(|e| ConfigError::Yaml {
                        source_name: CONFIG_VARIABLE.to_owned(),
                        message: e.to_string(),
                    })?,
                    None => Value::Null,
                };
                if parsed.truthy() {
                    (parsed, ConfigSource::EnvironmentDocument)
                } else {
                    (Value::Map(environment.clone()), ConfigSource::Environment)
                }
            }
        };

        if let Some(validate) = validator {
            let errors = validate(&local_value);
            if !errors.is_empty() {
                return Err(ConfigError::Parse(errors.join("\n")));
            }
        }
        let Value::Map(local) = local_value else {
            return Err(ConfigError::Invalid(format!(
                "{CONFIG_VARIABLE} must hold a mapping, not {}",
                local_value.type_name()
            )));
        };

        let effective = build_effective_configuration(&Map::new(), &local, &mut events)?;
        let data_dir = match effective
            .get("postgresql")
            .and_then(Value::as_map)
            .and_then(|pg| pg.get("data_dir"))
        {
            None => String::new(),
            Some(Value::Str(s)) => s.clone(),
            Some(other) => {
                return Err(ConfigError::Invalid(format!(
                    "postgresql.data_dir must be a string, not {}",
                    other.type_name()
                )))
            }
        };
        let cache_file = Path::new(&data_dir).join(CACHE_FILENAME);
        let mut config = Config {
            config_file,
            source,
            environment,
            consumed_env,
            local,
            dynamic: Map::new(),
            effective,
            cache_file,
            data_dir,
            cache_needs_saving: false,
            modify_version: None,
            events,
        };
        if validator.is_some() {
            config.load_cache();
            config.validate_contradictory_tags()?;
        }
        config.cache_needs_saving = false;
        Ok(config)
    }

    /// Patroni's defaults (timeouts, `standby_cluster`, `postgresql`).
    pub fn default_config() -> Map {
        default_configuration()
    }

    /// The path the configuration was read from, if it existed.
    pub fn config_file(&self) -> Option<&Path> {
        self.config_file.as_deref()
    }

    pub fn source(&self) -> &ConfigSource {
        &self.source
    }

    /// Names of the environment variables Patroni removes after reading
    /// them; the daemon unsets them before starting any child process.
    pub fn consumed_env(&self) -> &[String] {
        &self.consumed_env
    }

    /// The configuration derived from `PATRONI_*` variables alone.
    pub fn environment_configuration(&self) -> &Map {
        &self.environment
    }

    pub fn local_configuration(&self) -> &Map {
        &self.local
    }

    pub fn dynamic_configuration(&self) -> &Map {
        &self.dynamic
    }

    /// A copy of the effective configuration (Patroni's `Config.copy()`).
    /// `postgresql.parameters` names are case-insensitive: look them up
    /// with [`ci_get`].
    pub fn effective(&self) -> Map {
        self.effective.clone()
    }

    /// A top-level value of the effective configuration.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.effective.get(key)
    }

    /// Where the dynamic configuration is cached.
    pub fn cache_file(&self) -> &Path {
        &self.cache_file
    }

    /// Take the messages collected since the last call.
    pub fn take_events(&mut self) -> Vec<ConfigEvent> {
        std::mem::take(&mut self.events)
    }

    /// Adopt a new dynamic configuration. Returns `true` if it differs from
    /// the current one and could be applied. Out-of-range timeouts are
    /// adjusted (with warnings); a dynamic configuration that cannot be
    /// applied is ignored and reported as an error event, as Patroni does.
    pub fn set_dynamic_configuration(&mut self, dynamic: &Map) -> bool {
        if deep_compare(&self.dynamic, dynamic) {
            return false;
        }
        let mut candidate = dynamic.clone();
        let mut events = Vec::new();
        let result = validate_and_adjust_timeouts(&mut candidate, &mut events)
            .and_then(|()| build_effective_configuration(&candidate, &self.local, &mut events));
        self.events.append(&mut events);
        match result {
            Ok(effective) => {
                self.effective = effective;
                self.dynamic = candidate;
                self.cache_needs_saving = true;
                true
            }
            Err(e) => {
                self.events.push(ConfigEvent::error(format!(
                    "Exception when setting dynamic_configuration: {e}"
                )));
                false
            }
        }
    }

    /// [`Config::set_dynamic_configuration`] for a `/config` key read from
    /// the DCS: nothing happens when its modification version is the one
    /// seen last time.
    pub fn set_dynamic_configuration_versioned(
        &mut self,
        dynamic: &Map,
        modify_version: i64,
    ) -> bool {
        if self.modify_version == Some(modify_version) {
            return false;
        }
        self.modify_version = Some(modify_version);
        self.set_dynamic_configuration(dynamic)
    }

    /// Re-read the configuration file(s) (on SIGHUP or `POST /reload`),
    /// merging the environment captured at start-up on top.
    ///
    /// `Ok(Some(true))` when something changed, `Ok(None)` when nothing did
    /// or there is no file. Patroni logs an error and carries on with the
    /// old configuration when reading fails; we return the error for the
    /// caller to log.
    pub fn reload_local_configuration(&mut self) -> Result<Option<bool>, ConfigError> {
        let Some(path) = self.config_file.clone() else {
            return Ok(None);
        };
        let mut configuration = load_config_path(&path, &mut self.events)?;
        patch_config(&mut configuration, &self.environment);
        if deep_compare(&self.local, &configuration) {
            self.events.push(ConfigEvent {
                level: EventLevel::Info,
                message: "No local configuration items changed.".into(),
            });
            return Ok(None);
        }
        let effective =
            build_effective_configuration(&self.dynamic, &configuration, &mut self.events)?;
        self.local = configuration;
        self.effective = effective;
        self.validate_contradictory_tags()?;
        Ok(Some(true))
    }

    /// Write the dynamic configuration to `patroni.dynamic.json` if it
    /// changed since the last save: a temporary file in the data directory,
    /// renamed over the old one, with the data directory's group access
    /// (0640 when the directory is 0750, else 0600).
    pub fn save_cache(&mut self) -> std::io::Result<()> {
        if !self.cache_needs_saving {
            return Ok(());
        }
        let body = json_dumps(&Value::Map(self.dynamic.clone())).map_err(std::io::Error::other)?;
        write_atomically(Path::new(&self.data_dir), &self.cache_file, body.as_bytes())?;
        self.cache_needs_saving = false;
        Ok(())
    }

    fn load_cache(&mut self) {
        if !self.cache_file.is_file() {
            return;
        }
        let text = match fs::read_to_string(&self.cache_file) {
            Ok(t) => t,
            Err(e) => {
                self.cache_exception(&e.to_string());
                return;
            }
        };
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(json) => match Value::from_json(&json) {
                Value::Map(m) => {
                    self.set_dynamic_configuration(&m);
                }
                other => {
                    self.cache_exception(&format!("expected an object, not {}", other.type_name()))
                }
            },
            Err(e) => self.cache_exception(&e.to_string()),
        }
    }

    fn cache_exception(&mut self, why: &str) {
        let file = self.cache_file.display().to_string();
        self.events.push(ConfigEvent::error(format!(
            "Exception when loading file: {file}: {why}"
        )));
    }

    /// Warn when `nofailover`/`nosync` disagree with `failover_priority`/
    /// `sync_priority`; the boolean tag wins.
    fn validate_contradictory_tags(&mut self) -> Result<(), ConfigError> {
        let empty = Value::Map(Map::new());
        let tags = self.effective.get("tags").unwrap_or(&empty).clone();
        for (bool_name, priority_name) in [
            ("nofailover", "failover_priority"),
            ("nosync", "sync_priority"),
        ] {
            if !py_contains(&tags, bool_name, "tags")? {
                continue;
            }
            let Value::Map(tags) = &tags else {
                return Err(ConfigError::Invalid(format!(
                    "tags must be a mapping, not {}",
                    tags.type_name()
                )));
            };
            let bool_tag = tags.get(bool_name).cloned().unwrap_or(Value::Null);
            let priority = parse_int(tags.get(priority_name).unwrap_or(&Value::Null), None);
            if let Some(p) = priority {
                if (bool_tag.truthy() && p > 0) || (!bool_tag.truthy() && p <= 0) {
                    let b = py_str(&bool_tag);
                    self.events.push(ConfigEvent::warning(format!(
                        "Conflicting configuration between {bool_name}: {b} and {priority_name}: {p}. \
                         Defaulting to {bool_name}: {b}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Keep `ttl`, `loop_wait` and `retry_timeout` within bounds (at least 20,
/// 1 and 3) and make `loop_wait + 2 * retry_timeout <= ttl` hold, preferring
/// to shorten `loop_wait`. Adjusted values are written back into `config`.
fn validate_and_adjust_timeouts(
    config: &mut Map,
    events: &mut Vec<ConfigEvent>,
) -> Result<(), ConfigError> {
    let mut get = |config: &mut Map, param: &str, min: i64| -> Result<i64, ConfigError> {
        let value = match config.get(param) {
            Some(v) => py_int(v).map_err(|e| ConfigError::Invalid(format!("{param}: {e}")))?,
            None => defaults::default_timeout(param),
        };
        if value < min {
            events.push(ConfigEvent::warning(format!(
                "{param}={value} can't be smaller than {min}, adjusting..."
            )));
            config.set(param, Value::Int(min));
            return Ok(min);
        }
        Ok(value)
    };
    const MIN_LOOP_WAIT: i64 = 1;
    let loop_wait = get(config, "loop_wait", MIN_LOOP_WAIT)?;
    let retry_timeout = get(config, "retry_timeout", 3)?;
    let ttl = get(config, "ttl", 20)?;

    if MIN_LOOP_WAIT + 2 * retry_timeout > ttl {
        let new_retry = (ttl - MIN_LOOP_WAIT).div_euclid(2);
        config.set("loop_wait", Value::Int(MIN_LOOP_WAIT));
        config.set("retry_timeout", Value::Int(new_retry));
        events.push(ConfigEvent::warning(format!(
            "Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl={ttl}. Adjusting loop_wait \
             from {loop_wait} to {MIN_LOOP_WAIT} and retry_timeout from {retry_timeout} to {new_retry}"
        )));
    } else if loop_wait + 2 * retry_timeout > ttl {
        let new_loop_wait = ttl - 2 * retry_timeout;
        config.set("loop_wait", Value::Int(new_loop_wait));
        events.push(ConfigEvent::warning(format!(
            "Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl={ttl} and \
             retry_timeout={retry_timeout}. Adjusting loop_wait from {loop_wait} to {new_loop_wait}"
        )));
    }
    Ok(())
}

/// Read a configuration file, or every `*.yml`/`*.yaml` regular file of a
/// directory in name order, merging them with [`patch_config`].
fn load_config_path(path: &Path, events: &mut Vec<ConfigEvent>) -> Result<Map, ConfigError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConfigError::Io { path, source }
    };
    let files: Vec<PathBuf> = if path.is_file() {
        vec![path.to_path_buf()]
    } else if path.is_dir() {
        let mut names = Vec::new();
        for entry in fs::read_dir(path).map_err(io_err(path))? {
            let name = entry.map_err(io_err(path))?.file_name();
            let bytes = name.as_encoded_bytes();
            if (bytes.ends_with(b".yml") || bytes.ends_with(b".yaml")) && path.join(&name).is_file()
            {
                names.push(name);
            }
        }
        names.sort();
        names.into_iter().map(|n| path.join(n)).collect()
    } else {
        events.push(ConfigEvent::error(format!(
            "config path {} is neither directory nor file",
            path.display()
        )));
        return Err(ConfigError::Parse("invalid config path".into()));
    };

    let mut overall = Map::new();
    for file in files {
        let text = fs::read_to_string(&file).map_err(io_err(&file))?;
        let doc = yaml::load(&text).map_err(|e| ConfigError::Yaml {
            source_name: file.display().to_string(),
            message: e.to_string(),
        })?;
        let Value::Map(doc) = doc else {
            events.push(ConfigEvent::error(format!(
                "{} does not contain a dict",
                file.display()
            )));
            return Err(ConfigError::Parse(format!(
                "invalid config file {}",
                file.display()
            )));
        };
        patch_config(&mut overall, &doc);
    }
    Ok(overall)
}

/// Write `body` to `target` through a uniquely named temporary file in
/// `dir`, then rename it into place and set PostgreSQL-style permissions.
fn write_atomically(dir: &Path, target: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let group_access = fs::metadata(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })
    .map(|m| m.permissions().mode() & 0o750 == 0o750)
    .unwrap_or(false);
    let mode = if group_access { 0o640 } else { 0o600 };

    let mut attempt = 0;
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!("{CACHE_FILENAME}{}", random_suffix()));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
            Err(e) => return Err(e),
        }
    };
    let result = file
        .write_all(body)
        .and_then(|()| file.flush())
        .and_then(|()| fs::rename(&tmp, target))
        .and_then(|()| fs::set_permissions(target, fs::Permissions::from_mode(mode)));
    if result.is_err() && tmp.exists() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Eight characters for a temporary file name, from the standard library's
/// per-process random hash keys (no extra dependency needed).
fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_";
    let mut n = h.finish();
    (0..8)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

#[cfg(test)]
mod tests;

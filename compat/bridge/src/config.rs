//! `patroni.config.Config` counterparts, for the differential tests.
//!
//! - `environment_config(env)`: the `PATRONI_*` mapping alone;
//! - `effective_config(configfile, env, dynamic=None)`: `Config.copy()`;
//! - `local_config(configfile, env)`: `Config.local_configuration`;
//! - `config_state(configfile, env, dynamic=None, validate=True)`: all of
//!   the above plus the events (warnings) and consumed variable names, and
//!   with `save_cache=True` writes `patroni.dynamic.json` (`Config.save_cache()`);
//! - `config_reload(configfile, env, between)`: load, call `between()`,
//!   then `reload_local_configuration()`;
//! - `default_config()`: `Config.get_default_config()`.
//!
//! `env` is a `dict[str, str]` standing for the whole process environment,
//! in order. Errors raise `ValueError` with our error text.

use std::path::PathBuf;

use patroni::config::effective::{default_validator, Config, EventLevel, Validator};
use patroni::config::env::build_environment_configuration;
use patroni::config::{Map, Value};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::{from_py, to_py};

fn env_pairs(env: &Bound<'_, PyDict>) -> PyResult<Vec<(String, String)>> {
    env.iter()
        .map(|(k, v)| Ok((k.extract::<String>()?, v.extract::<String>()?)))
        .collect()
}

fn to_map(obj: &Bound<'_, PyAny>) -> PyResult<Map> {
    match from_py(obj)? {
        Value::Map(m) => Ok(m),
        other => Err(PyTypeError::new_err(format!(
            "dynamic configuration must be a dict, not {}",
            other.type_name()
        ))),
    }
}

fn load(configfile: Option<PathBuf>, env: &Bound<'_, PyDict>, validate: bool) -> PyResult<Config> {
    let env = env_pairs(env)?;
    let validator: Option<Validator<'_>> = if validate {
        Some(&default_validator)
    } else {
        None
    };
    Config::load(configfile.as_deref(), &env, validator)
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

fn map_to_py<'py>(py: Python<'py>, m: &Map) -> PyResult<Bound<'py, PyAny>> {
    to_py(py, &Value::Map(m.clone()))
}

#[pyfunction]
fn environment_config<'py>(
    py: Python<'py>,
    env: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    let built = build_environment_configuration(&env_pairs(env)?);
    map_to_py(py, &built.config)
}

#[pyfunction]
#[pyo3(signature = (configfile, env, dynamic=None))]
fn effective_config<'py>(
    py: Python<'py>,
    configfile: Option<PathBuf>,
    env: &Bound<'py, PyDict>,
    dynamic: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut config = load(configfile, env, true)?;
    if let Some(d) = dynamic {
        config.set_dynamic_configuration(&to_map(d)?);
    }
    map_to_py(py, &config.effective())
}

#[pyfunction]
fn local_config<'py>(
    py: Python<'py>,
    configfile: Option<PathBuf>,
    env: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    let config = load(configfile, env, true)?;
    map_to_py(py, config.local_configuration())
}

/// Everything observable about a loaded configuration, as a dict.
#[pyfunction]
#[pyo3(signature = (configfile, env, dynamic=None, validate=true, save_cache=false))]
fn config_state<'py>(
    py: Python<'py>,
    configfile: Option<PathBuf>,
    env: &Bound<'py, PyDict>,
    dynamic: Option<&Bound<'py, PyAny>>,
    validate: bool,
    save_cache: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let mut config = load(configfile, env, validate)?;
    let changed = match dynamic {
        Some(d) => Some(config.set_dynamic_configuration(&to_map(d)?)),
        None => None,
    };
    if save_cache {
        config
            .save_cache()
            .map_err(|e| PyValueError::new_err(format!("save_cache: {e}")))?;
    }
    let out = PyDict::new(py);
    out.set_item("effective", map_to_py(py, &config.effective())?)?;
    out.set_item("local", map_to_py(py, config.local_configuration())?)?;
    out.set_item("dynamic", map_to_py(py, config.dynamic_configuration())?)?;
    out.set_item("consumed", PyList::new(py, config.consumed_env())?)?;
    out.set_item("dynamic_changed", changed)?;
    let events = PyList::empty(py);
    for e in config.take_events() {
        let level = match e.level {
            EventLevel::Info => "INFO",
            EventLevel::Warning => "WARNING",
            EventLevel::Error => "ERROR",
        };
        events.append((level, e.message))?;
    }
    out.set_item("events", events)?;
    Ok(out.into_any())
}

/// Load, call `between()` (which may rewrite the file), then
/// `reload_local_configuration()`; returns `{"result", "effective"}`.
#[pyfunction]
fn config_reload<'py>(
    py: Python<'py>,
    configfile: PathBuf,
    env: &Bound<'py, PyDict>,
    between: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut config = load(Some(configfile), env, true)?;
    between.call0()?;
    let result = config
        .reload_local_configuration()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let out = PyDict::new(py);
    out.set_item("result", result)?;
    out.set_item("effective", map_to_py(py, &config.effective())?)?;
    Ok(out.into_any())
}

#[pyfunction]
fn default_config(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    map_to_py(py, &Config::default_config())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(environment_config, m)?)?;
    m.add_function(wrap_pyfunction!(effective_config, m)?)?;
    m.add_function(wrap_pyfunction!(local_config, m)?)?;
    m.add_function(wrap_pyfunction!(config_state, m)?)?;
    m.add_function(wrap_pyfunction!(config_reload, m)?)?;
    m.add_function(wrap_pyfunction!(default_config, m)?)?;
    Ok(())
}

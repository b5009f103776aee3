//! The lines `patroni --validate-config` would print, for comparison with
//! Python Patroni's `validator.schema(config)`:
//!
//! - `validate_config(config, ignore_listen_port=False) -> list[str]` for a
//!   configuration object;
//! - `validate_config_yaml(text, ignore_listen_port=False) -> list[str]`
//!   for YAML text, read with our PyYAML-compatible loader (this is what the
//!   CLI does, and it carries dates that plain objects cannot).

use crate::convert::from_py;
use patroni::config::validate::{validate, ValidateParams};
use patroni::config::{yaml, Value};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn run(py: Python<'_>, value: Value, ignore_listen_port: bool) -> Vec<String> {
    let params = ValidateParams { ignore_listen_port };
    // Validation may probe the network and run `postgres --version`; let
    // other Python threads run meanwhile.
    py.detach(|| validate(&value, &params))
}

#[pyfunction]
#[pyo3(signature = (config, ignore_listen_port = false))]
fn validate_config(config: &Bound<'_, PyAny>, ignore_listen_port: bool) -> PyResult<Vec<String>> {
    let value = from_py(config)?;
    Ok(run(config.py(), value, ignore_listen_port))
}

#[pyfunction]
#[pyo3(signature = (text, ignore_listen_port = false))]
fn validate_config_yaml(
    py: Python<'_>,
    text: &str,
    ignore_listen_port: bool,
) -> PyResult<Vec<String>> {
    let value = yaml::load(text).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(run(py, value, ignore_listen_port))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(validate_config, m)?)?;
    m.add_function(wrap_pyfunction!(validate_config_yaml, m)?)
}

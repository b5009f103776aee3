//! `validate_config(config, ignore_listen_port=False) -> list[str]`: the
//! lines `patroni --validate-config` would print for a configuration
//! object, for comparison with Python Patroni's `validator.schema(config)`.

use crate::convert::from_py;
use patroni::config::validate::{validate, ValidateParams};
use pyo3::prelude::*;

#[pyfunction]
#[pyo3(signature = (config, ignore_listen_port = false))]
fn validate_config(config: &Bound<'_, PyAny>, ignore_listen_port: bool) -> PyResult<Vec<String>> {
    let value = from_py(config)?;
    let params = ValidateParams { ignore_listen_port };
    // Validation may probe the network and run `postgres --version`; let
    // other Python threads run meanwhile.
    Ok(config.py().detach(|| validate(&value, &params)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(validate_config, m)?)
}

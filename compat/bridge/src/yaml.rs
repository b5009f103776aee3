//! `yaml_load`: our YAML 1.1 loader, for differential tests against
//! PyYAML's `yaml.safe_load`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::convert::to_py;

/// Load one YAML document; a syntax or construction error raises
/// `ValueError` with our message (line and column included).
#[pyfunction]
fn yaml_load<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let value =
        patroni::config::yaml::load(text).map_err(|e| PyValueError::new_err(e.to_string()))?;
    to_py(py, &value)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(yaml_load, m)?)?;
    Ok(())
}

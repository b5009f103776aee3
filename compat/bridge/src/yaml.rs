//! `yaml_load` / `yaml_dump`: our YAML 1.1 loader and writer, for
//! differential tests against PyYAML's `yaml.safe_load` and
//! `yaml.safe_dump(default_flow_style=False, allow_unicode=True)`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::convert::{from_py, to_py};

/// Load one YAML document; a syntax or construction error raises
/// `ValueError` with our message (line and column included).
#[pyfunction]
fn yaml_load<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let value =
        patroni::config::yaml::load(text).map_err(|e| PyValueError::new_err(e.to_string()))?;
    to_py(py, &value)
}

/// Write a value as block YAML; `width` is PyYAML's line width option.
#[pyfunction]
#[pyo3(signature = (obj, width = patroni::config::yaml::DEFAULT_WIDTH))]
fn yaml_dump(obj: &Bound<'_, PyAny>, width: usize) -> PyResult<String> {
    let value = from_py(obj)?;
    Ok(patroni::config::yaml::dump_with_width(&value, width))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(yaml_load, m)?)?;
    m.add_function(wrap_pyfunction!(yaml_dump, m)?)?;
    Ok(())
}

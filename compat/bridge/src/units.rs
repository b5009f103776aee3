//! `parse_bool`, `parse_int`, `parse_real` for differential tests against
//! `patroni.utils`.

use patroni::config::units;
use pyo3::prelude::*;

use crate::convert::from_py;

#[pyfunction]
fn parse_bool(value: &Bound<'_, PyAny>) -> PyResult<Option<bool>> {
    Ok(units::parse_bool(&from_py(value)?))
}

#[pyfunction]
#[pyo3(signature = (value, base_unit=None))]
fn parse_int(value: &Bound<'_, PyAny>, base_unit: Option<&str>) -> PyResult<Option<i64>> {
    Ok(units::parse_int(&from_py(value)?, base_unit))
}

#[pyfunction]
#[pyo3(signature = (value, base_unit=None))]
fn parse_real(value: &Bound<'_, PyAny>, base_unit: Option<&str>) -> PyResult<Option<f64>> {
    Ok(units::parse_real(&from_py(value)?, base_unit))
}

/// Python's `repr(float)` as we write it (in JSON, YAML and messages).
#[pyfunction]
fn float_repr(value: f64) -> String {
    patroni::config::value::python_float_repr(value)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(float_repr, m)?)?;
    m.add_function(wrap_pyfunction!(parse_bool, m)?)?;
    m.add_function(wrap_pyfunction!(parse_int, m)?)?;
    m.add_function(wrap_pyfunction!(parse_real, m)?)?;
    Ok(())
}

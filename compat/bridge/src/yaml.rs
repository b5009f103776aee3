//! `yaml_load` / `yaml_dump`: our YAML 1.1 loader and writer, for
//! differential tests against PyYAML's `yaml.safe_load` and
//! `yaml.safe_dump(default_flow_style=False, allow_unicode=True)`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use patroni::config::value::{Map, TimeOfDay, Timestamp, Value};
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::convert::{from_py, to_py};

/// `convert::from_py` plus `datetime.date`/`datetime.datetime`, which
/// safe_load produces and safe_dump writes.
fn value_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut m = Map::new();
        for (k, v) in d.iter() {
            m.insert(value_from_py(&k)?, value_from_py(&v)?);
        }
        return Ok(Value::Map(m));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l
            .iter()
            .map(|i| value_from_py(&i))
            .collect::<PyResult<_>>()
            .map(Value::Seq);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t
            .iter()
            .map(|i| value_from_py(&i))
            .collect::<PyResult<_>>()
            .map(Value::Seq);
    }
    let dt = obj.py().import("datetime")?;
    if obj.is_instance(&dt.getattr("date")?)? {
        let get = |name: &str| -> PyResult<u32> { obj.getattr(name)?.extract() };
        let time = if obj.is_instance(&dt.getattr("datetime")?)? {
            let offset = obj.call_method0("utcoffset")?;
            let utc_offset = if offset.is_none() {
                None
            } else {
                let days: i32 = offset.getattr("days")?.extract()?;
                let seconds: i32 = offset.getattr("seconds")?.extract()?;
                Some(days * 86_400 + seconds)
            };
            Some(TimeOfDay {
                hour: get("hour")?,
                minute: get("minute")?,
                second: get("second")?,
                microsecond: get("microsecond")?,
                utc_offset,
            })
        } else {
            None
        };
        return Ok(Value::Timestamp(Timestamp {
            year: obj.getattr("year")?.extract()?,
            month: get("month")?,
            day: get("day")?,
            time,
        }));
    }
    from_py(obj)
}

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
    let value = value_from_py(obj)?;
    Ok(patroni::config::yaml::dump_with_width(&value, width))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(yaml_load, m)?)?;
    m.add_function(wrap_pyfunction!(yaml_dump, m)?)?;
    Ok(())
}

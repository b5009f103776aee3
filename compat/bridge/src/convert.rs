//! `Value` <-> Python objects, type for type: dict/list/int/float/str/bool/
//! None/datetime.date/datetime.datetime. Differential tests compare what
//! these produce with what Python Patroni produces, types included.

use patroni::config::value::{Map, TimeOfDay, Timestamp, Value};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

pub fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::BigInt(s) => py.get_type::<PyInt>().call1((s.as_str(),))?.into_any(),
        Value::Float(f) => PyFloat::new(py, *f).into_any(),
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::Timestamp(t) => timestamp_to_py(py, t)?,
        Value::Seq(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Map(m) => {
            let dict = PyDict::new(py);
            for (k, v) in m.iter() {
                dict.set_item(to_py(py, k)?, to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

fn timestamp_to_py<'py>(py: Python<'py>, t: &Timestamp) -> PyResult<Bound<'py, PyAny>> {
    let dt = py.import("datetime")?;
    match &t.time {
        None => dt.getattr("date")?.call1((t.year, t.month, t.day)),
        Some(TimeOfDay {
            hour,
            minute,
            second,
            microsecond,
            utc_offset,
        }) => {
            let tz = match utc_offset {
                None => py.None().into_bound(py),
                Some(off) => {
                    let delta = dt.getattr("timedelta")?.call1((0, *off))?;
                    dt.getattr("timezone")?.call1((delta,))?
                }
            };
            dt.getattr("datetime")?.call1((
                t.year,
                t.month,
                t.day,
                *hour,
                *minute,
                *second,
                *microsecond,
                tz,
            ))
        }
    }
}

/// `datetime.date` / `datetime.datetime` (with its UTC offset, if aware).
fn timestamp_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Option<Timestamp>> {
    let dt = obj.py().import("datetime")?;
    if !obj.is_instance(&dt.getattr("date")?)? {
        return Ok(None);
    }
    let field = |name: &str| -> PyResult<u32> { obj.getattr(name)?.extract() };
    let year: i32 = obj.getattr("year")?.extract()?;
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
            hour: field("hour")?,
            minute: field("minute")?,
            second: field("second")?,
            microsecond: field("microsecond")?,
            utc_offset,
        })
    } else {
        None
    };
    Ok(Some(Timestamp {
        year,
        month: field("month")?,
        day: field("day")?,
        time,
    }))
}

pub fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        return Ok(match obj.extract::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::BigInt(obj.str()?.to_string()),
        });
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::Str(s.to_string()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut m = Map::new();
        for (k, v) in d.iter() {
            m.insert(from_py(&k)?, from_py(&v)?);
        }
        return Ok(Value::Map(m));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l
            .iter()
            .map(|i| from_py(&i))
            .collect::<PyResult<_>>()
            .map(Value::Seq);
    }
    if let Some(ts) = timestamp_from_py(obj)? {
        return Ok(Value::Timestamp(ts));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t
            .iter()
            .map(|i| from_py(&i))
            .collect::<PyResult<_>>()
            .map(Value::Seq);
    }
    Err(PyTypeError::new_err(format!(
        "cannot convert {} to a configuration value",
        obj.get_type().name()?
    )))
}

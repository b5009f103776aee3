//! The logging formatters and the file pipeline, for differential tests
//! against Python's `logging` and Patroni's `PatroniLogger`.
//!
//! A record is passed as a dict of `LogRecord` attributes (`name`,
//! `levelno`, `msg`, `created`, `relativeCreated`, `pathname`, `lineno`,
//! `funcName`, `thread`, `threadName`, `process`, `processName`,
//! `exc_text`); missing ones get neutral defaults.

use patroni::config::Value;
use patroni::logging::format::Formatter;
use patroni::logging::{LineFormatter, LogSettings, LoggerHandle, Record};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::{from_py, to_py};

fn get<'py, T: FromPyObjectOwned<'py>>(
    d: &Bound<'py, PyDict>,
    key: &str,
    default: T,
) -> PyResult<T> {
    match d.get_item(key)? {
        Some(v) if !v.is_none() => v.extract::<T>().map_err(Into::into),
        _ => Ok(default),
    }
}

fn record_from(d: &Bound<'_, PyDict>) -> PyResult<Record> {
    let mut r = Record::now(
        &get::<String>(d, "name", "root".into())?,
        get(d, "levelno", 20i64)?,
        get::<String>(d, "msg", String::new())?,
        &get::<String>(d, "pathname", "(unknown file)".into())?,
        get(d, "lineno", 0i64)?,
    );
    r.func_name = get(d, "funcName", r.func_name.clone())?;
    r.created = get(d, "created", r.created)?;
    r.relative_created = get(d, "relativeCreated", r.relative_created)?;
    r.thread = get(d, "thread", r.thread)?;
    r.thread_name = get(d, "threadName", r.thread_name.clone())?;
    r.process = get(d, "process", r.process)?;
    r.process_name = get(d, "processName", r.process_name.clone())?;
    r.exc_text = get(d, "exc_text", None)?;
    Ok(r)
}

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// `logging.Formatter(fmt, datefmt).format(record)` for a plain format.
#[pyfunction]
#[pyo3(signature = (fmt, datefmt, record))]
fn format_record(fmt: &str, datefmt: Option<&str>, record: &Bound<'_, PyDict>) -> PyResult<String> {
    let f = Formatter::new(fmt, datefmt).map_err(value_error)?;
    Ok(f.format(&record_from(record)?))
}

fn settings_from(section: &Bound<'_, PyAny>) -> PyResult<LogSettings> {
    LogSettings::from_value(&from_py(section)?).map_err(value_error)
}

/// The line Patroni's logger writes for `record` under the `log` section
/// `section` (plain or json).
#[pyfunction]
fn format_with_settings(
    section: &Bound<'_, PyAny>,
    record: &Bound<'_, PyDict>,
) -> PyResult<String> {
    let settings = settings_from(section)?;
    let f = LineFormatter::build(&settings).map_err(value_error)?;
    Ok(f.format(&record_from(record)?))
}

/// `log.type: json` with the given format (a string or a list of fields
/// and `{field: new_name}` maps) and static fields.
#[pyfunction]
#[pyo3(signature = (fmt, datefmt, record, static_fields=None))]
fn format_json_record(
    py: Python<'_>,
    fmt: &Bound<'_, PyAny>,
    datefmt: Option<&str>,
    record: &Bound<'_, PyDict>,
    static_fields: Option<&Bound<'_, PyDict>>,
) -> PyResult<String> {
    let section = PyDict::new(py);
    section.set_item("type", "json")?;
    section.set_item("format", fmt)?;
    section.set_item("dateformat", datefmt)?;
    if let Some(sf) = static_fields {
        section.set_item("static_fields", sf)?;
    }
    format_with_settings(section.as_any(), record)
}

/// The parsed settings as a dict, plus the warnings Patroni would log.
#[pyfunction]
fn parse_log_settings<'py>(
    py: Python<'py>,
    section: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let s = settings_from(section)?;
    let d = PyDict::new(py);
    d.set_item("type", format!("{:?}", s.log_type).to_lowercase())?;
    d.set_item("level", s.level)?;
    d.set_item("traceback_debug", s.traceback_debug)?;
    d.set_item("dateformat", s.dateformat.clone())?;
    d.set_item(
        "static_fields",
        to_py(py, &Value::Map(s.static_fields.clone()))?,
    )?;
    d.set_item("max_queue_size", s.max_queue_size)?;
    d.set_item("dir", s.dir.as_ref().map(|p| p.display().to_string()))?;
    d.set_item("mode", s.mode)?;
    d.set_item("file_size", s.file_size)?;
    d.set_item("file_num", s.file_num)?;
    d.set_item("loggers", s.loggers.clone())?;
    d.set_item("deduplicate_heartbeat_logs", s.deduplicate_heartbeat_logs)?;
    d.set_item("warnings", s.warnings.clone())?;
    d.set_item("errors", s.errors.clone())?;
    Ok(d)
}

/// Run `records` through a full pipeline (queue, writer thread, file or
/// stderr) configured by `section`, then stop it. Used to check rotation.
#[pyfunction]
fn write_records(
    py: Python<'_>,
    section: &Bound<'_, PyAny>,
    records: &Bound<'_, PyList>,
) -> PyResult<()> {
    let settings = settings_from(section)?;
    let recs = records
        .iter()
        .map(|r| {
            let d = r
                .cast::<PyDict>()
                .map_err(|_| PyTypeError::new_err("each record must be a dict"))?;
            record_from(d)
        })
        .collect::<PyResult<Vec<_>>>()?;
    py.detach(|| {
        let handle = LoggerHandle::start(&settings).map_err(value_error)?;
        for r in recs {
            handle.submit(r);
        }
        handle.shutdown();
        Ok(())
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(format_record, m)?)?;
    m.add_function(wrap_pyfunction!(format_with_settings, m)?)?;
    m.add_function(wrap_pyfunction!(format_json_record, m)?)?;
    m.add_function(wrap_pyfunction!(parse_log_settings, m)?)?;
    m.add_function(wrap_pyfunction!(write_records, m)?)?;
    Ok(())
}

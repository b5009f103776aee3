//! The PGDATA files (`patroni::postgres`) for differential tests against
//! Python Patroni's `ConfigHandler`.
//!
//! GUC value validation is a table of its own; a test can hand in a
//! Python object with `transform(version, name, value)`,
//! `has_validator(name)` and `is_available(name)` so both sides validate
//! with the same table and the comparison covers everything else.

use patroni::config::{Map, Value};
use patroni::postgres::params::{transform_parameter, GucCatalog, PassThroughGucs};
use patroni::postgres::pg15_catalog::Pg15Catalog;
use patroni::postgres::recovery::ReplicationSource;
use patroni::postgres::{render_node, NodeInput, Role, SyncState};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{from_py, to_py};

/// A [`GucCatalog`] backed by a Python object. Python errors count as
/// "drop the value" / "no", which the comparison then exposes.
struct PyCatalog<'py> {
    obj: Bound<'py, PyAny>,
}

impl GucCatalog for PyCatalog<'_> {
    fn transform(&self, version: i64, name: &str, value: &Value) -> Option<Value> {
        let py = self.obj.py();
        let value = to_py(py, value).ok()?;
        let out = self
            .obj
            .call_method1("transform", (version, name, value))
            .ok()?;
        if out.is_none() {
            return None;
        }
        from_py(&out).ok()
    }

    fn has_validator(&self, name: &str) -> bool {
        self.obj
            .call_method1("has_validator", (name,))
            .and_then(|r| r.is_truthy())
            .unwrap_or(false)
    }

    fn is_available(&self, name: &str) -> bool {
        self.obj
            .call_method1("is_available", (name,))
            .and_then(|r| r.is_truthy())
            .unwrap_or(false)
    }
}

fn as_map(v: Value, what: &str) -> PyResult<Map> {
    match v {
        Value::Map(m) => Ok(m),
        other => Err(PyValueError::new_err(format!(
            "{what} must be a dict, not {}",
            other.type_name()
        ))),
    }
}

/// Render the files for one start. `role` is `primary`, `replica` or
/// `standby_leader`; `source` is `(name, member data)` of the member to
/// stream from. Returns a dict with `postgresql_conf`, `pg_hba_conf`,
/// `pg_ident_conf`, `recovery_conf`, `signal`, `pgpass`, `pgpass_path`
/// and `argv`. `controldata` is parsed `pg_controldata` output;
/// `synchronous_mode_strict` is `None` when synchronous mode is off.
#[pyfunction]
#[pyo3(signature = (effective, major_version, pg_version, role, source=None, remote=false,
                    enforce_hot_standby_feedback=false, catalog=None, cwd="/", home="/",
                    controldata=None, synchronous_mode_strict=None))]
#[allow(clippy::too_many_arguments)]
fn render_pg_files<'py>(
    py: Python<'py>,
    effective: &Bound<'py, PyAny>,
    major_version: i64,
    pg_version: i64,
    role: &str,
    source: Option<(String, Bound<'py, PyAny>)>,
    remote: bool,
    enforce_hot_standby_feedback: bool,
    catalog: Option<Bound<'py, PyAny>>,
    cwd: &str,
    home: &str,
    controldata: Option<std::collections::BTreeMap<String, String>>,
    synchronous_mode_strict: Option<bool>,
) -> PyResult<Bound<'py, PyDict>> {
    let effective = as_map(from_py(effective)?, "effective")?;
    let role = match role {
        "primary" => Role::Primary,
        "replica" => Role::Replica,
        "standby_leader" => Role::StandbyLeader,
        other => return Err(PyValueError::new_err(format!("unknown role {other:?}"))),
    };
    let source = match source {
        Some((name, data)) => {
            let data = as_map(from_py(&data)?, "member data")?;
            ReplicationSource::from_member_data(&name, &data).map(|mut s| {
                s.remote = remote;
                s
            })
        }
        None => None,
    };
    // `catalog="pg15"` selects our PostgreSQL 15 catalog; an object is
    // asked through PyCatalog; nothing passes values through.
    let builtin = catalog
        .as_ref()
        .and_then(|c| c.extract::<String>().ok())
        .filter(|s| s == "pg15")
        .map(|_| Pg15Catalog::new());
    let py_catalog = catalog
        .filter(|_| builtin.is_none())
        .map(|obj| PyCatalog { obj });
    let catalog: &dyn GucCatalog = match (&builtin, &py_catalog) {
        (Some(c), _) => c,
        (None, Some(c)) => c,
        (None, None) => &PassThroughGucs,
    };
    let files = render_node(&NodeInput {
        effective: &effective,
        major_version,
        pg_version,
        role,
        source: source.as_ref(),
        enforce_hot_standby_feedback,
        sync: synchronous_mode_strict.map(|strict| SyncState {
            strict,
            is_primary: role == Role::Primary,
            current: None,
        }),
        controldata: controldata.as_ref(),
        catalog,
        cwd,
        home,
    })
    .map_err(|e| PyValueError::new_err(e.to_string()))?;

    let out = PyDict::new(py);
    out.set_item("postgresql_conf", files.postgresql_conf)?;
    out.set_item("pg_hba_conf", files.pg_hba_conf)?;
    out.set_item("pg_ident_conf", files.pg_ident_conf)?;
    out.set_item("recovery_conf", files.recovery_conf)?;
    out.set_item("signal", files.signal.map(|s| s.file_name()))?;
    out.set_item("pgpass", files.pgpass)?;
    out.set_item("pgpass_path", files.pgpass_path)?;
    out.set_item("argv", files.argv)?;
    Ok(out)
}

/// `slot_name_from_member_name`.
#[pyfunction]
fn slot_name_from_member_name(name: &str) -> String {
    patroni::postgres::slot_name_from_member_name(name)
}

/// `ConfigHandler.format_dsn` for a major version.
#[pyfunction]
fn format_dsn(params: &Bound<'_, PyAny>, major_version: i64) -> PyResult<String> {
    let params = as_map(from_py(params)?, "params")?;
    Ok(patroni::postgres::format_dsn(&params, major_version))
}

/// `ConfigHandler._pgpass_content`.
#[pyfunction]
fn pgpass_content(record: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    let record = as_map(from_py(record)?, "record")?;
    Ok(patroni::postgres::pgpass_content(&record))
}

/// `Postgresql.controldata()` over captured output.
#[pyfunction]
fn parse_controldata(output: &str) -> std::collections::BTreeMap<String, String> {
    patroni::postgres::controldata::parse(output)
}

/// `ConfigHandler._sanitize_auto_conf` over a file's text.
#[pyfunction]
fn sanitize_auto_conf(text: &str) -> Option<String> {
    patroni::postgres::conf::sanitize_auto_conf(text)
}

/// `replace_pg_hba` during a custom bootstrap, with resolved addresses.
#[pyfunction]
#[pyo3(signature = (replication_user, superuser, local_socket, addresses))]
fn custom_bootstrap_pg_hba(
    replication_user: &str,
    superuser: Option<&str>,
    local_socket: bool,
    addresses: Vec<String>,
) -> String {
    patroni::postgres::conf::custom_bootstrap_pg_hba(
        replication_user,
        superuser,
        local_socket,
        &addresses,
    )
}

/// `transform_postgresql_parameter_value` with our PostgreSQL 15
/// catalog: `(kept, value)`.
#[pyfunction]
fn pg15_transform<'py>(
    py: Python<'py>,
    version: i64,
    name: &str,
    value: &Bound<'py, PyAny>,
) -> PyResult<(bool, Bound<'py, PyAny>)> {
    let value = from_py(value)?;
    match transform_parameter(&Pg15Catalog::new(), version, name, &value) {
        Some(v) => Ok((true, to_py(py, &v)?)),
        None => Ok((false, py.None().into_bound(py))),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(pg15_transform, m)?)?;
    m.add_function(wrap_pyfunction!(sanitize_auto_conf, m)?)?;
    m.add_function(wrap_pyfunction!(custom_bootstrap_pg_hba, m)?)?;
    m.add_function(wrap_pyfunction!(render_pg_files, m)?)?;
    m.add_function(wrap_pyfunction!(slot_name_from_member_name, m)?)?;
    m.add_function(wrap_pyfunction!(format_dsn, m)?)?;
    m.add_function(wrap_pyfunction!(pgpass_content, m)?)?;
    m.add_function(wrap_pyfunction!(parse_controldata, m)?)?;
    Ok(())
}

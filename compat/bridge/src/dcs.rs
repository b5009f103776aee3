//! `patroni_rs.Dcs`: our DCS backends driven from Python, so the
//! cross-implementation tests can run Python Patroni's DCS classes and ours
//! against the same etcd and compare what each side reads and writes.
//!
//! The class owns a private multi-thread tokio runtime; every method blocks
//! until the backend call completes, with the GIL released, so two Python
//! threads (or a Python Patroni object in another thread) really do run
//! concurrently with us. Backend errors become Python exceptions, one class
//! per [`DcsError`] variant, all deriving from `patroni_rs.DcsError`, with
//! a `kind` attribute (`unreachable`, `cas_failed`, `not_found`, `other`)
//! for tests that prefer a single `except`.
//!
//! `update_leader()` and `touch_member()` take the cluster snapshot from the
//! last `get_cluster()` call, like the HA loop which reads the cluster once
//! per cycle and passes that snapshot to its writes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use patroni::dcs::etcd::Etcd;
use patroni::dcs::etcd3::Etcd3;
use patroni::dcs::settings::EtcdConnection;
use patroni::dcs::{Dcs as DcsBackend, DcsError as BackendError, KeyPaths, Timing};
use patroni::model::json::compact;
use patroni::model::{
    Cluster, ClusterConfig, Failover, HistoryEntry, Member, MemberStatus, Status, SyncState,
    TimelineHistory,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::Value as Json;

create_exception!(
    patroni_rs,
    DcsError,
    PyException,
    "A DCS call failed; `kind` says how."
);
create_exception!(
    patroni_rs,
    DcsUnreachable,
    DcsError,
    "The DCS did not answer within retry_timeout."
);
create_exception!(
    patroni_rs,
    DcsCasFailed,
    DcsError,
    "A compare-and-set or create-if-absent lost."
);
create_exception!(
    patroni_rs,
    DcsNotFound,
    DcsError,
    "The key, lease or session does not exist."
);
create_exception!(
    patroni_rs,
    DcsOther,
    DcsError,
    "The DCS answered with something unusable."
);

/// The Python exception for a backend error, with `kind` set.
fn to_py_err(py: Python<'_>, e: BackendError) -> PyErr {
    let (err, kind) = match &e {
        BackendError::Unreachable(_) => (DcsUnreachable::new_err(e.to_string()), "unreachable"),
        BackendError::CasFailed => (DcsCasFailed::new_err(e.to_string()), "cas_failed"),
        BackendError::NotFound(_) => (DcsNotFound::new_err(e.to_string()), "not_found"),
        BackendError::Other(_) => (DcsOther::new_err(e.to_string()), "other"),
    };
    // Setting an attribute on a fresh exception instance cannot fail in
    // practice; if it ever does, the class alone still tells the kind.
    let _ = err.value(py).setattr("kind", kind);
    err
}

/// A duration in seconds from Python, refusing what `Duration` cannot hold.
fn seconds(what: &str, s: f64) -> PyResult<Duration> {
    if s.is_finite() && s > 0.0 && s < 1e9 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(PyValueError::new_err(format!(
            "{what} must be a positive number of seconds, got {s}"
        )))
    }
}

/// Where the backend and the runtime live until `close()`.
struct Inner {
    runtime: Arc<tokio::runtime::Runtime>,
    backend: Arc<dyn DcsBackend>,
}

/// One node's DCS client: `Dcs(kind, hosts, scope, name, namespace="/service/",
/// ttl=30, retry_timeout=10, loop_wait=10)` with `kind` `"etcd3"` or `"etcd"`
/// (the v2 API) and `hosts` a list of `host:port`.
#[pyclass(module = "patroni_rs", name = "Dcs")]
struct PyDcs {
    kind: String,
    name: String,
    inner: Mutex<Option<Inner>>,
    /// The snapshot of the last `get_cluster()`, for the writes that take one.
    last_cluster: Mutex<Option<Cluster>>,
}

impl PyDcs {
    fn handles(&self) -> PyResult<(Arc<tokio::runtime::Runtime>, Arc<dyn DcsBackend>)> {
        let guard = self
            .inner
            .lock()
            .map_err(|_| PyRuntimeError::new_err("Dcs state poisoned by an earlier panic"))?;
        match guard.as_ref() {
            Some(i) => Ok((i.runtime.clone(), i.backend.clone())),
            None => Err(PyRuntimeError::new_err("Dcs is closed")),
        }
    }

    /// Run one backend call to completion with the GIL released.
    fn run<T, F, Fut>(&self, py: Python<'_>, call: F) -> PyResult<T>
    where
        T: Send,
        F: FnOnce(Arc<dyn DcsBackend>) -> Fut + Send,
        Fut: std::future::Future<Output = Result<T, BackendError>>,
    {
        let (runtime, backend) = self.handles()?;
        py.detach(move || runtime.block_on(call(backend)))
            .map_err(|e| to_py_err(py, e))
    }

    fn last_cluster(&self) -> Option<Cluster> {
        self.last_cluster.lock().ok().and_then(|c| c.clone())
    }
}

#[pymethods]
impl PyDcs {
    #[new]
    #[pyo3(signature = (kind, hosts, scope, name, namespace="/service/", ttl=30.0,
                        retry_timeout=10.0, loop_wait=10.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        kind: &str,
        hosts: Vec<String>,
        scope: &str,
        name: &str,
        namespace: &str,
        ttl: f64,
        retry_timeout: f64,
        loop_wait: f64,
    ) -> PyResult<PyDcs> {
        if hosts.is_empty() {
            return Err(PyValueError::new_err("hosts must not be empty"));
        }
        let timing = Timing {
            ttl: seconds("ttl", ttl)?,
            retry_timeout: seconds("retry_timeout", retry_timeout)?,
            loop_wait: seconds("loop_wait", loop_wait)?,
        };
        let paths = KeyPaths::new(namespace, scope, name);
        let backend: Arc<dyn DcsBackend> = match kind {
            "etcd3" => Arc::new(Etcd3::new(
                paths,
                EtcdConnection {
                    hosts,
                    protocol: "http".into(),
                    ..Default::default()
                },
                timing,
            )),
            "etcd" => Arc::new(
                Etcd::new(
                    paths,
                    EtcdConnection {
                        hosts,
                        protocol: "http".into(),
                        ..Default::default()
                    },
                    timing,
                )
                .map_err(|e| to_py_err(py, e))?,
            ),
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown DCS kind {other:?}: expected \"etcd3\" or \"etcd\""
                )))
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("patroni-rs-dcs")
            .enable_all()
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start tokio runtime: {e}")))?;
        Ok(PyDcs {
            kind: kind.to_owned(),
            name: name.to_owned(),
            inner: Mutex::new(Some(Inner {
                runtime: Arc::new(runtime),
                backend,
            })),
            last_cluster: Mutex::new(None),
        })
    }

    #[getter]
    fn kind(&self) -> &str {
        &self.kind
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Stop the backend (its etcd3 watcher included) and the runtime. Later
    /// calls raise `RuntimeError`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self
            .inner
            .lock()
            .map_err(|_| PyRuntimeError::new_err("Dcs state poisoned by an earlier panic"))?
            .take();
        if let Some(Inner { runtime, backend }) = taken {
            py.detach(move || {
                // The backend's Drop aborts its tasks; it must go first,
                // inside the runtime's context.
                {
                    let _ctx = runtime.enter();
                    drop(backend);
                }
                if let Ok(rt) = Arc::try_unwrap(runtime) {
                    rt.shutdown_timeout(Duration::from_secs(2));
                }
            });
        }
        Ok(())
    }

    /// `set_timing`: new ttl / retry_timeout / loop_wait, in seconds.
    fn set_timing(&self, ttl: f64, retry_timeout: f64, loop_wait: f64) -> PyResult<()> {
        let timing = Timing {
            ttl: seconds("ttl", ttl)?,
            retry_timeout: seconds("retry_timeout", retry_timeout)?,
            loop_wait: seconds("loop_wait", loop_wait)?,
        };
        self.handles()?.1.set_timing(timing);
        Ok(())
    }

    /// The cluster as a plain dict (see [`cluster_to_py`]); the snapshot is
    /// kept for `update_leader()` and `touch_member()`.
    fn get_cluster<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let cluster = self.run(py, |b| async move { b.get_cluster().await })?;
        let view = cluster_to_py(py, &cluster)?;
        if let Ok(mut last) = self.last_cluster.lock() {
            *last = Some(cluster);
        }
        Ok(view)
    }

    #[pyo3(signature = (create_new=true, sysid=String::new()))]
    fn initialize(&self, py: Python<'_>, create_new: bool, sysid: String) -> PyResult<()> {
        self.run(py, move |b| async move {
            b.initialize(create_new, &sysid).await
        })
    }

    fn cancel_initialization(&self, py: Python<'_>) -> PyResult<()> {
        self.run(py, |b| async move { b.cancel_initialization().await })
    }

    fn attempt_to_acquire_leader(&self, py: Python<'_>) -> PyResult<bool> {
        self.run(py, |b| async move { b.attempt_to_acquire_leader().await })
    }

    /// Refresh the leader key against the last `get_cluster()` snapshot (an
    /// empty cluster when there was none).
    fn update_leader(&self, py: Python<'_>) -> PyResult<bool> {
        let cluster = self.last_cluster().unwrap_or_default();
        self.run(py, move |b| async move { b.update_leader(&cluster).await })
    }

    fn delete_leader(&self, py: Python<'_>) -> PyResult<bool> {
        self.run(py, |b| async move { b.delete_leader().await })
    }

    /// Publish our member key. With `use_cluster` (the default) the last
    /// `get_cluster()` snapshot is passed, so an unchanged value may be
    /// skipped as the backend documents.
    #[pyo3(signature = (value, use_cluster=true))]
    fn touch_member(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        use_cluster: bool,
    ) -> PyResult<()> {
        let value = text_or(value, member_node)?;
        let cluster = if use_cluster {
            self.last_cluster()
        } else {
            None
        };
        self.run(py, move |b| async move {
            b.touch_member(cluster.as_ref(), &value).await
        })
    }

    /// `config`: a str is stored as is, a dict as compact JSON.
    #[pyo3(signature = (value, version=None))]
    fn set_config_value(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        version: Option<i64>,
    ) -> PyResult<()> {
        let value = text_or(value, |v| Ok(compact(&v)))?;
        self.run(py, move |b| async move {
            b.set_config_value(&value, version).await
        })
    }

    /// `failover`: a str is stored as is; a dict (`leader`, `member`,
    /// `scheduled_at`) goes through our [`Failover`] writer.
    #[pyo3(signature = (value, version=None))]
    fn set_failover_value(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        version: Option<i64>,
    ) -> PyResult<()> {
        let value = text_or(value, |v| {
            Ok(Failover::from_node(None, &compact(&v)).to_node())
        })?;
        self.run(py, move |b| async move {
            b.set_failover_value(&value, version).await
        })
    }

    /// `manual_failover(leader, candidate, scheduled_at, version)`: the
    /// value Patroni builds for a switchover, through our [`Failover`].
    #[pyo3(signature = (leader, candidate, scheduled_at=None, version=None))]
    fn manual_failover(
        &self,
        py: Python<'_>,
        leader: Option<String>,
        candidate: Option<String>,
        scheduled_at: Option<String>,
        version: Option<i64>,
    ) -> PyResult<()> {
        let value = Failover {
            version: None,
            leader: leader.filter(|s| !s.is_empty()),
            candidate: candidate.filter(|s| !s.is_empty()),
            scheduled_at: scheduled_at.filter(|s| !s.is_empty()),
        }
        .to_node();
        self.run(py, move |b| async move {
            b.set_failover_value(&value, version).await
        })
    }

    /// `sync`, stored as is. Returns the new version of the key.
    #[pyo3(signature = (value, version=None))]
    fn set_sync_state_value(
        &self,
        py: Python<'_>,
        value: String,
        version: Option<i64>,
    ) -> PyResult<i64> {
        self.run(py, move |b| async move {
            b.set_sync_state_value(&value, version).await
        })
    }

    /// `write_sync_state(leader, sync_standby, quorum, version)`: the value
    /// built by our [`SyncState`] writer. Returns the new version.
    #[pyo3(signature = (leader, sync_standby, quorum, version=None))]
    fn write_sync_state(
        &self,
        py: Python<'_>,
        leader: String,
        sync_standby: Vec<String>,
        quorum: i64,
        version: Option<i64>,
    ) -> PyResult<i64> {
        let value = SyncState::new(&leader, &sync_standby, quorum).to_node();
        self.run(py, move |b| async move {
            b.set_sync_state_value(&value, version).await
        })
    }

    #[pyo3(signature = (version=None))]
    fn delete_sync_state(&self, py: Python<'_>, version: Option<i64>) -> PyResult<()> {
        self.run(
            py,
            move |b| async move { b.delete_sync_state(version).await },
        )
    }

    /// `history`: a str is stored as is; a list of entries goes through our
    /// [`TimelineHistory`] writer (entries without a timeline and an LSN
    /// are refused).
    fn set_history_value(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = text_or(value, history_node)?;
        self.run(
            py,
            move |b| async move { b.set_history_value(&value).await },
        )
    }

    /// `status`: a str is stored as is; a dict (`optime`, `slots`,
    /// `retain_slots`) goes through our [`Status`] writer.
    fn write_status(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = text_or(value, |v| Ok(Status::from_json(&v).to_node()))?;
        self.run(py, move |b| async move { b.write_status(&value).await })
    }

    /// `failsafe`: a str is stored as is, a dict as compact JSON.
    fn write_failsafe(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = text_or(value, |v| Ok(compact(&v)))?;
        self.run(py, move |b| async move { b.write_failsafe(&value).await })
    }

    fn delete_cluster(&self, py: Python<'_>) -> PyResult<()> {
        self.run(py, |b| async move { b.delete_cluster().await })
    }

    /// Wait up to `timeout` seconds for a change; `True` when woken.
    #[pyo3(signature = (leader_version=None, timeout=1.0))]
    fn watch(&self, py: Python<'_>, leader_version: Option<i64>, timeout: f64) -> PyResult<bool> {
        let timeout = seconds("timeout", timeout)?;
        self.run(py, move |b| async move {
            Ok(b.watch(leader_version, timeout).await)
        })
    }

    fn __repr__(&self) -> String {
        format!("patroni_rs.Dcs(kind={:?}, name={:?})", self.kind, self.name)
    }
}

/// The text to store for a value given from Python: a `str` as is (so
/// tests can store arbitrary bytes), anything else converted to JSON and
/// serialized by `write`, which is where our model writers are exercised.
fn text_or(
    value: &Bound<'_, PyAny>,
    write: impl FnOnce(Json) -> PyResult<String>,
) -> PyResult<String> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(s.to_string());
    }
    write(py_to_json(value)?)
}

/// A member value through our [`MemberStatus`] writer (Patroni's field
/// order) when it has the fields a running node always publishes, else as
/// compact JSON in the given order.
fn member_node(v: Json) -> PyResult<String> {
    let text = compact(&v);
    let member = Member::from_node("", None, &text);
    Ok(match MemberStatus::from_member(&member) {
        Some(status) => status.to_node(),
        None => text,
    })
}

/// A history list through our [`TimelineHistory`] writer.
fn history_node(v: Json) -> PyResult<String> {
    let Json::Array(lines) = v else {
        return Err(PyTypeError::new_err("history must be a list of entries"));
    };
    let entries = lines
        .iter()
        .map(|line| {
            HistoryEntry::from_json(line).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "history entry {} has no integer timeline and LSN",
                    compact(line)
                ))
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(TimelineHistory::to_node(&entries))
}

/// A Python object made of dict/list/tuple/str/int/float/bool/None as a
/// JSON value, keys in dict order.
fn py_to_json(obj: &Bound<'_, PyAny>) -> PyResult<Json> {
    if obj.is_none() {
        return Ok(Json::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Json::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(i.into());
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(u.into());
        }
        return Err(PyValueError::new_err(format!(
            "integer {} does not fit in 64 bits",
            obj.str()?
        )));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return serde_json::Number::from_f64(f.value())
            .map(Json::Number)
            .ok_or_else(|| PyValueError::new_err("NaN and infinity are not valid JSON"));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Json::String(s.to_string()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut m = serde_json::Map::new();
        for (k, v) in d.iter() {
            let key = k
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err("JSON object keys must be str"))?
                .to_string();
            m.insert(key, py_to_json(&v)?);
        }
        return Ok(Json::Object(m));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l
            .iter()
            .map(|i| py_to_json(&i))
            .collect::<PyResult<_>>()
            .map(Json::Array);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t
            .iter()
            .map(|i| py_to_json(&i))
            .collect::<PyResult<_>>()
            .map(Json::Array);
    }
    Err(PyTypeError::new_err(format!(
        "cannot store {} in the DCS",
        obj.get_type().name()?
    )))
}

/// A JSON value as the Python object `json.loads` would return.
fn json_to_py<'py>(py: Python<'py>, v: &Json) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Json::Null => py.None().into_bound(py),
        Json::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Json::String(s) => s.into_pyobject(py)?.into_any(),
        Json::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Json::Object(m) => json_map_to_py(py, m)?.into_any(),
    })
}

fn json_map_to_py<'py>(
    py: Python<'py>,
    m: &serde_json::Map<String, Json>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in m {
        dict.set_item(k, json_to_py(py, v)?)?;
    }
    Ok(dict)
}

fn config_to_py<'py>(py: Python<'py>, c: &ClusterConfig) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("data", json_map_to_py(py, &c.data)?)?;
    d.set_item("version", c.version)?;
    d.set_item("modify_version", c.modify_version)?;
    Ok(d)
}

/// The plain-dict view of a [`Cluster`]:
///
/// - `initialize`: str or None;
/// - `config`: None or `{data, version, modify_version}`;
/// - `leader`: None or `{name, version, session}`;
/// - `members`: `{name: {data, version, session}}`;
/// - `failover`: None or `{leader, member, scheduled_at, version}`;
/// - `sync`: `{leader, sync_standby, voters, quorum, version}` (`voters`:
///   the `sync_standby` names, Python's `SyncState.voters`);
/// - `status`: `{optime, slots, retain_slots}`;
/// - `history`: None or `{lines, version}`;
/// - `failsafe`: None or a dict.
fn cluster_to_py<'py>(py: Python<'py>, c: &Cluster) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("initialize", c.initialize.as_deref())?;
    match &c.config {
        Some(cfg) => d.set_item("config", config_to_py(py, cfg)?)?,
        None => d.set_item("config", py.None())?,
    }
    match &c.leader {
        Some(l) => {
            let ld = PyDict::new(py);
            ld.set_item("name", &l.name)?;
            ld.set_item("version", l.version)?;
            ld.set_item("session", l.session.as_deref())?;
            d.set_item("leader", ld)?;
        }
        None => d.set_item("leader", py.None())?,
    }
    let members = PyDict::new(py);
    for m in &c.members {
        let md = PyDict::new(py);
        md.set_item("data", json_map_to_py(py, &m.data)?)?;
        md.set_item("version", m.version)?;
        md.set_item("session", m.session.as_deref())?;
        members.set_item(&m.name, md)?;
    }
    d.set_item("members", members)?;
    match &c.failover {
        Some(f) => {
            let fd = PyDict::new(py);
            fd.set_item("leader", f.leader.as_deref())?;
            fd.set_item("member", f.candidate.as_deref())?;
            fd.set_item("scheduled_at", f.scheduled_at.as_deref())?;
            fd.set_item("version", f.version)?;
            d.set_item("failover", fd)?;
        }
        None => d.set_item("failover", py.None())?,
    }
    let sync = PyDict::new(py);
    sync.set_item("leader", c.sync.leader.as_deref())?;
    sync.set_item("sync_standby", c.sync.sync_standby.as_deref())?;
    sync.set_item("voters", c.sync.members())?;
    sync.set_item("quorum", c.sync.quorum)?;
    sync.set_item("version", c.sync.version)?;
    d.set_item("sync", sync)?;
    let status = PyDict::new(py);
    status.set_item("optime", c.status.last_lsn)?;
    match &c.status.slots {
        Some(s) => status.set_item("slots", json_map_to_py(py, s)?)?,
        None => status.set_item("slots", py.None())?,
    }
    status.set_item("retain_slots", &c.status.retain_slots)?;
    d.set_item("status", status)?;
    match &c.history {
        Some(h) => {
            let hd = PyDict::new(py);
            let lines = PyList::empty(py);
            for line in &h.lines {
                lines.append(json_to_py(py, line)?)?;
            }
            hd.set_item("lines", lines)?;
            hd.set_item("version", h.version)?;
            d.set_item("history", hd)?;
        }
        None => d.set_item("history", py.None())?,
    }
    match &c.failsafe {
        Some(f) => d.set_item("failsafe", json_map_to_py(py, f)?)?,
        None => d.set_item("failsafe", py.None())?,
    }
    Ok(d)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyDcs>()?;
    m.add("DcsError", py.get_type::<DcsError>())?;
    m.add("DcsUnreachable", py.get_type::<DcsUnreachable>())?;
    m.add("DcsCasFailed", py.get_type::<DcsCasFailed>())?;
    m.add("DcsNotFound", py.get_type::<DcsNotFound>())?;
    m.add("DcsOther", py.get_type::<DcsOther>())?;
    Ok(())
}

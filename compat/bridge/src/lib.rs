//! `patroni_rs`: the patroni-rs library seen from Python.
//!
//! Built with maturin (`maturin build -m compat/bridge/Cargo.toml`). The
//! differential tests in `pytests/` call these functions and Python
//! Patroni's own on the same inputs and compare the results. Each area of
//! the library has its own file here.

use pyo3::prelude::*;

mod config;
mod convert;
mod dcs;
mod logging;
mod postgres;
mod quorum;
mod slots;
mod units;
mod validate;
mod yaml;

#[pymodule]
fn patroni_rs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", patroni::PATRONI_VERSION)?;
    yaml::register(m)?;
    config::register(m)?;
    dcs::register(m)?;
    logging::register(m)?;
    postgres::register(m)?;
    quorum::register(m)?;
    slots::register(m)?;
    units::register(m)?;
    validate::register(m)?;
    Ok(())
}

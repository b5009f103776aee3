//! Python's `str()` of a configuration value, which is what Patroni writes
//! into PostgreSQL's files (`'{0}'.format(value)`).
//!
//! Scalars print as Python prints them (`True`, `None`, `0.5`, `1e+20`),
//! dates and datetimes in ISO form with a space, and containers as their
//! `repr` (a list in `postgresql.parameters` ends up as `['a', 'b']`,
//! which PostgreSQL then rejects, exactly as it does under Patroni).

pub use crate::config::pytext::py_str;

//! `postgresql.parameters` as a case-insensitive mapping.
//!
//! PostgreSQL parameter names are case-insensitive, and Patroni keeps them
//! in a `CaseInsensitiveDict`: setting `Max_Connections` replaces an
//! existing `max_connections` entry *in its original position* but the
//! stored name takes the spelling of the latest assignment. We keep
//! parameters in an ordinary [`Map`] and route every write through
//! [`ci_set`], which gives exactly that behaviour; lookups by name use
//! [`ci_get`]. Names are lower-cased with Unicode rules, as Python's
//! `str.lower()` does.

use crate::config::{Map, Value};

/// Set `name` to `value`, matching an existing entry case-insensitively.
pub fn ci_set(params: &mut Map, name: &str, value: Value) {
    let lower = name.to_lowercase();
    let exists = params.str_entries().any(|(k, _)| k.to_lowercase() == lower);
    if !exists {
        params.set(name, value);
        return;
    }
    // Rebuild so that the key itself can take the new spelling in place.
    let entries = std::mem::take(params);
    let mut value = Some(value);
    *params = entries
        .into_iter()
        .map(|(k, v)| match &k {
            Value::Str(s) if s.to_lowercase() == lower => match value.take() {
                Some(new) => (Value::Str(name.to_owned()), new),
                None => (k, v),
            },
            _ => (k, v),
        })
        .collect();
}

/// `CaseInsensitiveDict.update`: [`ci_set`] for every string-keyed entry.
pub fn ci_update(params: &mut Map, updates: Map) {
    for (k, v) in updates {
        if let Value::Str(name) = k {
            ci_set(params, &name, v);
        }
    }
}

/// Whether a parameter is present, in any letter case.
pub fn ci_contains(params: &Map, name: &str) -> bool {
    ci_get(params, name).is_some()
}

/// Remove a parameter matching in any letter case (the first match).
pub fn ci_remove(params: &mut Map, name: &str) -> Option<Value> {
    let lower = name.to_lowercase();
    let key = params
        .str_entries()
        .find(|(k, _)| k.to_lowercase() == lower)
        .map(|(k, _)| k.to_owned())?;
    params.remove(&key)
}

/// Set only when absent in any letter case (`dict.setdefault`).
pub fn ci_setdefault(params: &mut Map, name: &str, value: Value) {
    if !ci_contains(params, name) {
        params.set(name, value);
    }
}

/// Case-insensitive lookup.
pub fn ci_get<'a>(params: &'a Map, name: &str) -> Option<&'a Value> {
    let lower = name.to_lowercase();
    params
        .str_entries()
        .find(|(k, _)| k.to_lowercase() == lower)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_spelling_wins_in_first_position() {
        let mut p = Map::new();
        ci_set(&mut p, "max_connections", Value::Int(100));
        ci_set(&mut p, "work_mem", Value::Str("4MB".into()));
        ci_set(&mut p, "Max_Connections", Value::Int(200));
        let entries: Vec<_> = p
            .str_entries()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        assert_eq!(
            entries,
            [
                ("Max_Connections".to_owned(), Value::Int(200)),
                ("work_mem".to_owned(), Value::Str("4MB".into()))
            ]
        );
        assert_eq!(ci_get(&p, "MAX_CONNECTIONS"), Some(&Value::Int(200)));
    }
}

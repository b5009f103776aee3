//! Construction: the composed node graph to a [`Value`] tree, with the
//! behaviour of PyYAML's `SafeConstructor`.
//!
//! What is reproduced on purpose:
//! - merge keys (`<<`): the merged pairs are put *before* the mapping's own
//!   pairs and the mapping is then built like a Python dict, so explicit
//!   keys win over merged ones, and within a list of merge sources the
//!   earlier source wins. The flattening mutates the shared nodes in place
//!   as PyYAML does, which matters when merge sources are aliased.
//! - the `=` ("value") key becomes the plain string key `"="` in a mapping;
//!   a scalar tag on a mapping (`!!str {=: x}`) takes that key's value; a
//!   bare `=` anywhere else has no constructor and is an error.
//! - unhashable keys (a list or a mapping) are an error.
//!
//! What differs: Python can build recursive lists and dicts (`&a [*a]`),
//! a tree of values cannot, so an alias to one of its own ancestors is an
//! error here. The tags PyYAML maps to `bytes`, `set` and lists of tuples
//! (`!!binary`, `!!set`, `!!omap`, `!!pairs`) have no configuration value
//! equivalent and are refused with a clear message.

use crate::config::value::{Map, Value};

use super::compose::{Document, Node, MAX_DEPTH};
use super::compose::{
    NodeId, NodeKind, TAG_BOOL, TAG_FLOAT, TAG_INT, TAG_MAP, TAG_MERGE, TAG_NULL, TAG_SEQ, TAG_STR,
    TAG_TIMESTAMP, TAG_VALUE,
};
use super::scalar;
use super::YamlError;

/// Upper bound on the number of values produced, aliases expanded. Aliases
/// are copied into the tree, so a small "billion laughs" document would
/// otherwise exhaust memory.
const MAX_VALUES: usize = 2_000_000;

struct Constructor {
    nodes: Vec<Node>,
    /// Finished values, with the number of values each contains (PyYAML
    /// also constructs each node once and shares the result).
    done: Vec<Option<(Value, usize)>>,
    in_progress: Vec<bool>,
    produced: usize,
}

pub(super) fn construct(doc: Document) -> Result<Value, YamlError> {
    let Some(root) = doc.root else {
        return Ok(Value::Null);
    };
    let count = doc.nodes.len();
    let mut c = Constructor {
        nodes: doc.nodes,
        done: (0..count).map(|_| None).collect(),
        in_progress: vec![false; count],
        produced: 0,
    };
    c.construct(root, 0).map(|(v, _)| v)
}

/// `dict[key] = value`, where every `.nan` PyYAML builds is the same float
/// object, so all NaN keys are one key (identity, not equality, matches).
fn insert_like_pyyaml(map: &mut Map, key: Value, value: Value) {
    if matches!(key, Value::Float(f) if f.is_nan()) {
        if let Some((_, slot)) = map
            .iter_mut()
            .find(|(k, _)| matches!(k, Value::Float(f) if f.is_nan()))
        {
            *slot = value;
            return;
        }
    }
    map.insert(key, value);
}

impl Constructor {
    fn error(&self, id: NodeId, message: impl Into<String>) -> YamlError {
        let node = &self.nodes[id];
        YamlError {
            message: message.into(),
            line: node.line,
            column: node.column,
        }
    }

    fn charge(&mut self, id: NodeId, count: usize) -> Result<(), YamlError> {
        self.produced = self.produced.saturating_add(count);
        if self.produced > MAX_VALUES {
            return Err(self.error(
                id,
                format!("the document expands to more than {MAX_VALUES} values through aliases"),
            ));
        }
        Ok(())
    }

    /// Build the value of node `id`; returns it with its value count.
    fn construct(&mut self, id: NodeId, depth: usize) -> Result<(Value, usize), YamlError> {
        if let Some((value, count)) = &self.done[id] {
            let (value, count) = (value.clone(), *count);
            self.charge(id, count)?;
            return Ok((value, count));
        }
        if self.in_progress[id] {
            return Err(self.error(
                id,
                "recursive structure: an alias refers to a node that contains it \
                 (recursive YAML documents are not supported)",
            ));
        }
        if depth > MAX_DEPTH {
            return Err(self.error(
                id,
                format!("values are nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.in_progress[id] = true;
        let built = self.construct_tagged(id, depth);
        self.in_progress[id] = false;
        let (value, count) = built?;
        self.charge(id, 1)?;
        self.done[id] = Some((value.clone(), count));
        Ok((value, count))
    }

    fn construct_tagged(&mut self, id: NodeId, depth: usize) -> Result<(Value, usize), YamlError> {
        let tag = self.nodes[id].tag.clone();
        let scalar = |c: &mut Self, f: fn(&str) -> Result<Value, String>| {
            let text = c.scalar_text(id, 0)?;
            f(&text).map(|v| (v, 1)).map_err(|m| c.error(id, m))
        };
        match tag.as_str() {
            TAG_NULL => scalar(self, |_| Ok(Value::Null)),
            TAG_BOOL => scalar(self, scalar::construct_bool),
            TAG_INT => scalar(self, scalar::construct_int),
            TAG_FLOAT => scalar(self, scalar::construct_float),
            TAG_TIMESTAMP => scalar(self, scalar::construct_timestamp),
            TAG_STR => scalar(self, |s| Ok(Value::Str(s.to_owned()))),
            TAG_SEQ => {
                let NodeKind::Seq(items) = &self.nodes[id].kind else {
                    let found = self.nodes[id].kind_name();
                    return Err(
                        self.error(id, format!("expected a sequence node, but found {found}"))
                    );
                };
                let items = items.clone();
                let mut out = Vec::with_capacity(items.len());
                let mut count = 1;
                for item in items {
                    let (v, n) = self.construct(item, depth + 1)?;
                    count += n;
                    out.push(v);
                }
                Ok((Value::Seq(out), count))
            }
            TAG_MAP => self.construct_mapping(id, depth),
            "tag:yaml.org,2002:binary"
            | "tag:yaml.org,2002:set"
            | "tag:yaml.org,2002:omap"
            | "tag:yaml.org,2002:pairs" => Err(self.error(
                id,
                format!("the tag {tag:?} is valid YAML but not supported in a configuration"),
            )),
            _ => Err(self.error(
                id,
                format!("could not determine a constructor for the tag {tag:?}"),
            )),
        }
    }

    /// The text of a scalar node; for a mapping, the text of its `=` key's
    /// value (PyYAML's `construct_scalar`).
    fn scalar_text(&self, id: NodeId, depth: usize) -> Result<String, YamlError> {
        if depth > MAX_DEPTH {
            return Err(self.error(id, "maximum recursion depth exceeded"));
        }
        match &self.nodes[id].kind {
            NodeKind::Scalar(text) => Ok(text.clone()),
            NodeKind::Map(pairs) => {
                if let Some((_, v)) = pairs.iter().find(|(k, _)| self.nodes[*k].tag == TAG_VALUE) {
                    return self.scalar_text(*v, depth + 1);
                }
                Err(self.error(id, "expected a scalar node, but found mapping"))
            }
            NodeKind::Seq(_) => Err(self.error(id, "expected a scalar node, but found sequence")),
        }
    }

    fn map_pairs(&self, id: NodeId) -> &[(NodeId, NodeId)] {
        match &self.nodes[id].kind {
            NodeKind::Map(pairs) => pairs,
            _ => &[],
        }
    }

    fn map_pairs_mut(&mut self, id: NodeId) -> Option<&mut Vec<(NodeId, NodeId)>> {
        match &mut self.nodes[id].kind {
            NodeKind::Map(pairs) => Some(pairs),
            _ => None,
        }
    }

    /// Resolve the merge keys of mapping `id` in place: each `<<` entry is
    /// removed and the pairs of its source mapping(s) are put in front.
    fn flatten(&mut self, id: NodeId, depth: usize) -> Result<(), YamlError> {
        if depth > MAX_DEPTH {
            return Err(self.error(id, "merge keys are chained too deeply"));
        }
        let mut merged: Vec<(NodeId, NodeId)> = Vec::new();
        let mut index = 0;
        // The pair list is re-read on every step: a nested flatten of an
        // aliased node may have changed it, as in PyYAML.
        while let Some(&(key, value)) = self.map_pairs(id).get(index) {
            if self.nodes[key].tag == TAG_MERGE {
                if let Some(pairs) = self.map_pairs_mut(id) {
                    pairs.remove(index);
                }
                match &self.nodes[value].kind {
                    NodeKind::Map(_) => {
                        self.flatten(value, depth + 1)?;
                        merged.extend_from_slice(self.map_pairs(value));
                    }
                    NodeKind::Seq(sources) => {
                        let mut batches = Vec::new();
                        for source in sources.clone() {
                            if !matches!(self.nodes[source].kind, NodeKind::Map(_)) {
                                let found = self.nodes[source].kind_name();
                                return Err(self.error(
                                    source,
                                    format!("expected a mapping for merging, but found {found}"),
                                ));
                            }
                            self.flatten(source, depth + 1)?;
                            batches.push(self.map_pairs(source).to_vec());
                        }
                        for batch in batches.into_iter().rev() {
                            merged.extend(batch);
                        }
                    }
                    NodeKind::Scalar(_) => {
                        return Err(self.error(
                            value,
                            "expected a mapping or list of mappings for merging, but found scalar",
                        ))
                    }
                }
            } else {
                if self.nodes[key].tag == TAG_VALUE {
                    self.nodes[key].tag = TAG_STR.to_owned();
                }
                index += 1;
            }
        }
        if !merged.is_empty() {
            if let Some(pairs) = self.map_pairs_mut(id) {
                merged.append(pairs);
                *pairs = merged;
            }
        }
        Ok(())
    }

    fn construct_mapping(&mut self, id: NodeId, depth: usize) -> Result<(Value, usize), YamlError> {
        if !matches!(self.nodes[id].kind, NodeKind::Map(_)) {
            let found = self.nodes[id].kind_name();
            return Err(self.error(id, format!("expected a mapping node, but found {found}")));
        }
        self.flatten(id, depth)?;
        let pairs = self.map_pairs(id).to_vec();
        let mut map = Map::new();
        let mut count = 1;
        for (key_id, value_id) in pairs {
            let (key, n) = self.construct(key_id, depth + 1)?;
            if matches!(key, Value::Seq(_) | Value::Map(_)) {
                return Err(self.error(
                    key_id,
                    format!(
                        "found unhashable key (a {}) while constructing a mapping",
                        key.type_name()
                    ),
                ));
            }
            count += n;
            let (value, n) = self.construct(value_id, depth + 1)?;
            count += n;
            insert_like_pyyaml(&mut map, key, value);
        }
        Ok((Value::Map(map), count))
    }
}

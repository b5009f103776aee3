//! Composition: saphyr-parser's event stream to a graph of tagged nodes,
//! the equivalent of PyYAML's `Composer`.
//!
//! Nodes live in an arena and refer to each other by index, so an alias is
//! simply a second reference to the anchored node (PyYAML shares the node
//! object the same way). The constructor relies on that sharing: merge
//! flattening mutates nodes in place, exactly like PyYAML does.
//!
//! Tags are resolved here: explicit tags are expanded to full tag URIs, and
//! untagged plain scalars (or anything tagged with the non-specific `!`)
//! go through the YAML 1.1 resolver.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, ScanError, Span, Tag};

use super::indent::{repair, Shifts, MAX_REPAIRS};
use super::resolve::{resolve_scalar, Implicit};
use super::tabs::check_tabs;
use super::YamlError;

pub(super) const TAG_NULL: &str = "tag:yaml.org,2002:null";
pub(super) const TAG_BOOL: &str = "tag:yaml.org,2002:bool";
pub(super) const TAG_INT: &str = "tag:yaml.org,2002:int";
pub(super) const TAG_FLOAT: &str = "tag:yaml.org,2002:float";
pub(super) const TAG_TIMESTAMP: &str = "tag:yaml.org,2002:timestamp";
pub(super) const TAG_STR: &str = "tag:yaml.org,2002:str";
pub(super) const TAG_SEQ: &str = "tag:yaml.org,2002:seq";
pub(super) const TAG_MAP: &str = "tag:yaml.org,2002:map";
pub(super) const TAG_MERGE: &str = "tag:yaml.org,2002:merge";
pub(super) const TAG_VALUE: &str = "tag:yaml.org,2002:value";

/// Deeper nesting is refused. PyYAML's recursive composer hits Python's
/// recursion limit (1000 frames, two per level) a little below 500 levels.
pub(super) const MAX_DEPTH: usize = 400;

pub(super) type NodeId = usize;

#[derive(Debug)]
pub(super) enum NodeKind {
    Scalar(String),
    Seq(Vec<NodeId>),
    Map(Vec<(NodeId, NodeId)>),
}

#[derive(Debug)]
pub(super) struct Node {
    pub tag: String,
    pub kind: NodeKind,
    /// 1-based line and column of the node's first character.
    pub line: usize,
    pub column: usize,
}

impl Node {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Scalar(_) => "scalar",
            NodeKind::Seq(_) => "sequence",
            NodeKind::Map(_) => "mapping",
        }
    }
}

/// The composed document: the node arena and the root.
pub(super) struct Document {
    pub nodes: Vec<Node>,
    pub root: Option<NodeId>,
}

pub(super) fn error_at(mark: &Marker, message: impl Into<String>) -> YamlError {
    YamlError {
        message: message.into(),
        line: mark.line(),
        column: mark.col() + 1,
    }
}

/// A container being filled.
enum Open {
    Seq(NodeId),
    /// A mapping, with the key read so far when waiting for its value.
    Map(NodeId, Option<NodeId>),
}

struct Composer<'a> {
    source: &'a str,
    /// Byte offset of each character, built on first need (anchors only).
    char_offsets: Option<Vec<usize>>,
    nodes: Vec<Node>,
    stack: Vec<Open>,
    /// saphyr anchor id -> node.
    anchors: HashMap<usize, NodeId>,
    /// Anchor names seen in this document, for PyYAML's duplicate check.
    anchor_names: HashMap<String, (usize, usize)>,
    root: Option<NodeId>,
    /// Character ranges of quoted and block scalars, for [`check_tabs`].
    tab_zones: Vec<Range<usize>>,
    /// Parallel to `stack`: whether each open collection is in flow context.
    flow: Vec<bool>,
}

/// Parse `source` and compose its single document (`None` for an empty
/// stream). More than one document is an error, as in `yaml.safe_load`.
pub(super) fn compose(source: &str) -> Result<Document, YamlError> {
    let mut text = Cow::Borrowed(source);
    let mut shifts = Shifts::default();
    let mut repairs = 0;
    loop {
        match compose_once(&text) {
            Ok(mut doc) => {
                for node in &mut doc.nodes {
                    node.column = shifts.column(node.line, node.column);
                }
                return Ok(doc);
            }
            Err(Failure::Scan(e)) => {
                let (line, col) = (e.marker().line(), e.marker().col());
                if repairs < MAX_REPAIRS {
                    if let Some(fixed) = repair(&text, e.info(), line, col, &mut shifts) {
                        text = Cow::Owned(fixed);
                        repairs += 1;
                        continue;
                    }
                }
                return Err(YamlError {
                    message: e.info().to_owned(),
                    line,
                    column: shifts.column(line, col + 1),
                });
            }
            Err(Failure::Other(mut e)) => {
                e.column = shifts.column(e.line, e.column);
                return Err(e);
            }
        }
    }
}

/// Why one parse attempt failed: saphyr's own error (possibly one
/// [`repair`] can work around) or ours.
enum Failure {
    Scan(ScanError),
    Other(YamlError),
}

impl From<YamlError> for Failure {
    fn from(e: YamlError) -> Failure {
        Failure::Other(e)
    }
}

fn compose_once(source: &str) -> Result<Document, Failure> {
    let mut composer = Composer {
        source,
        char_offsets: None,
        nodes: Vec::new(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        anchor_names: HashMap::new(),
        root: None,
        tab_zones: Vec::new(),
        flow: Vec::new(),
    };
    let mut parser = Parser::new_from_str(source);
    let mut documents = 0usize;
    let mut first_doc_mark = None;
    loop {
        let (event, span) = match parser.next_event() {
            None => break,
            Some(Err(e)) => return Err(Failure::Scan(e)),
            Some(Ok(ev)) => ev,
        };
        match event {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    let first = first_doc_mark.unwrap_or(span.start);
                    return Err(Failure::Other(error_at(
                        &span.start,
                        format!(
                            "expected a single document in the stream, but found another document \
                             (the first one starts at line {}, column {})",
                            first.line(),
                            first.col() + 1
                        ),
                    )));
                }
                first_doc_mark = Some(span.start);
            }
            Event::Alias(id) => {
                composer.check_alias_name(&span)?;
                let node = *composer
                    .anchors
                    .get(&id)
                    .ok_or_else(|| error_at(&span.start, "found undefined alias"))?;
                composer.attach(node, &span)?;
            }
            Event::Scalar(value, style, anchor, tag) => {
                let tag = match full_tag(tag.as_deref()) {
                    Some(t) if t != "!" => t,
                    // Untagged plain scalars and the `!` tag are resolved;
                    // other untagged scalars are strings.
                    explicit => {
                        if style == ScalarStyle::Plain || explicit.is_some() {
                            implicit_tag(&value).to_owned()
                        } else {
                            TAG_STR.to_owned()
                        }
                    }
                };
                if style != ScalarStyle::Plain {
                    composer
                        .tab_zones
                        .push(span.start.index()..span.end.index());
                }
                if style == ScalarStyle::Plain {
                    composer.check_flow_plain(&value, &span)?;
                }
                let bare_empty = value.is_empty() && anchor == 0 && tag == TAG_NULL;
                if bare_empty && composer.expects_key() && composer.is_implicit_empty_key(&span) {
                    return Err(Failure::Other(error_at(
                        &span.start,
                        "expected a key before ':' (an empty key needs an explicit '?')",
                    )));
                }
                if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded)
                    && composer.stack.is_empty()
                    && composer.starts_in_column_zero(&span)
                {
                    return Err(Failure::Other(error_at(
                        &span.start,
                        "the content of a top-level block scalar must be indented",
                    )));
                }
                let mut value = value.into_owned();
                if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded)
                    && composer.ends_input_without_line_break(&span)
                    && value.ends_with('\n')
                {
                    // PyYAML adds no line break the input does not have;
                    // saphyr ends the last line with one regardless.
                    value.pop();
                }
                let id = composer.new_node(tag, NodeKind::Scalar(value), &span);
                composer.register_anchor(anchor, id, &span)?;
                composer.attach(id, &span)?;
            }
            Event::SequenceStart(anchor, tag) => {
                let tag = collection_tag(tag.as_deref(), TAG_SEQ);
                let id = composer.new_node(tag, NodeKind::Seq(Vec::new()), &span);
                composer.register_anchor(anchor, id, &span)?;
                composer.attach(id, &span)?;
                composer.push(Open::Seq(id), '[', &span)?;
            }
            Event::MappingStart(anchor, tag) => {
                let tag = collection_tag(tag.as_deref(), TAG_MAP);
                let id = composer.new_node(tag, NodeKind::Map(Vec::new()), &span);
                composer.register_anchor(anchor, id, &span)?;
                composer.attach(id, &span)?;
                composer.push(Open::Map(id, None), '{', &span)?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                composer.stack.pop();
                composer.flow.pop();
            }
        }
    }
    check_tabs(source, &composer.tab_zones)?;
    Ok(Document {
        nodes: composer.nodes,
        root: composer.root,
    })
}

/// The full tag URI of an explicit tag, `None` when there is none.
fn full_tag(tag: Option<&Tag>) -> Option<String> {
    tag.map(|t| format!("{}{}", t.handle, t.suffix))
}

fn collection_tag(tag: Option<&Tag>, default: &str) -> String {
    match full_tag(tag) {
        Some(t) if t != "!" => t,
        _ => default.to_owned(),
    }
}

fn implicit_tag(value: &str) -> &'static str {
    match resolve_scalar(value) {
        Implicit::Null => TAG_NULL,
        Implicit::Bool => TAG_BOOL,
        Implicit::Int => TAG_INT,
        Implicit::Float => TAG_FLOAT,
        Implicit::Timestamp => TAG_TIMESTAMP,
        Implicit::Merge => TAG_MERGE,
        Implicit::Value => TAG_VALUE,
        Implicit::Str => TAG_STR,
    }
}

/// `line` without a trailing `# comment` (a `#` at the start of the line
/// or after a blank). Quotes are not tracked: this only looks for a `?`
/// indicator, which a quoted scalar cannot end a line with anyway.
fn strip_comment(line: &str) -> &str {
    let mut previous_blank = true;
    for (i, c) in line.char_indices() {
        if c == '#' && previous_blank {
            return &line[..i];
        }
        previous_blank = c == ' ' || c == '\t';
    }
    line
}

/// Whether `line` holds only node properties (tags, anchors) and blanks.
fn is_properties_only(line: &str) -> bool {
    let mut words = line.split_whitespace().peekable();
    words.peek().is_some() && words.all(|w| w.starts_with(['!', '&']))
}

/// Whether `line` is `[properties] |` or `>` with its indicators and an
/// optional comment: a block scalar header, not content.
fn is_block_header(line: &str) -> bool {
    let mut words = line
        .split_whitespace()
        .skip_while(|w| w.starts_with(['!', '&']));
    let Some(indicator) = words.next() else {
        return false;
    };
    let valid = indicator.starts_with(['|', '>'])
        && indicator[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || c == '+' || c == '-');
    valid && words.next().is_none_or(|w| w.starts_with('#'))
}

/// Characters PyYAML accepts in anchor and alias names.
fn is_pyyaml_anchor_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// saphyr ends an anchor name at a blank or a flow indicator.
fn ends_saphyr_anchor(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | '[' | ']' | '{' | '}')
}

impl Composer<'_> {
    fn new_node(&mut self, tag: String, kind: NodeKind, span: &Span) -> NodeId {
        self.nodes.push(Node {
            tag,
            kind,
            line: span.start.line(),
            column: span.start.col() + 1,
        });
        self.nodes.len() - 1
    }

    /// Open a collection; `bracket` is how it starts in flow style.
    fn push(&mut self, open: Open, bracket: char, span: &Span) -> Result<(), YamlError> {
        let flow = self.in_flow() || self.opens_flow_collection(span, bracket);
        self.flow.push(flow);
        if self.stack.len() >= MAX_DEPTH {
            return Err(error_at(
                &span.start,
                format!("collections are nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.stack.push(open);
        Ok(())
    }

    /// Put a finished (or just opened) node into its parent.
    fn attach(&mut self, id: NodeId, span: &Span) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => {
                if self.root.is_some() {
                    return Err(error_at(&span.start, "unexpected second root node"));
                }
                self.root = Some(id);
            }
            Some(Open::Seq(seq)) => {
                if let NodeKind::Seq(items) = &mut self.nodes[*seq].kind {
                    items.push(id);
                }
            }
            Some(Open::Map(map, pending)) => match pending.take() {
                None => *pending = Some(id),
                Some(key) => {
                    if let NodeKind::Map(pairs) = &mut self.nodes[*map].kind {
                        pairs.push((key, id));
                    }
                }
            },
        }
        Ok(())
    }

    /// Whether the first non-blank line of a block scalar's content starts
    /// in column 0. PyYAML wants a top-level block scalar indented by at
    /// least one space; YAML 1.2 does not.
    fn starts_in_column_zero(&mut self, span: &Span) -> bool {
        if span.start.col() != 0 {
            return false;
        }
        let (Some(start), Some(end)) = (
            self.char_to_byte(span.start.index()),
            self.char_to_byte(span.end.index())
                .or(Some(self.source.len())),
        ) else {
            return false;
        };
        let mut lines = self.source[start..end.max(start)].lines().peekable();
        // With properties or no content the span starts at the header
        // (properties may sit on lines of their own before it).
        while lines.peek().is_some_and(|l| is_properties_only(l)) {
            lines.next();
        }
        if lines.peek().is_some_and(|l| is_block_header(l)) {
            lines.next();
        }
        lines
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| !l.starts_with([' ', '\t']))
    }

    fn in_flow(&self) -> bool {
        self.flow.last().copied().unwrap_or(false)
    }

    /// Whether the collection starting at `span` is written in flow style:
    /// `[` for a sequence, `{` for a mapping, after its tag and anchor (a
    /// block mapping starting with `[` has a flow sequence as first key).
    fn opens_flow_collection(&mut self, span: &Span, bracket: char) -> bool {
        let Some(at) = self.char_to_byte(span.start.index()) else {
            return false;
        };
        let mut rest = self.source[at..].trim_start();
        while rest.starts_with(['!', '&']) {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            rest = rest[end..].trim_start();
        }
        rest.starts_with(bracket)
    }

    /// PyYAML's scanner ends a plain scalar at `?` inside a flow
    /// collection (and then finds a key indicator where none may be), and
    /// does not let one start with `|` or `>` there. saphyr reads both as
    /// part of the scalar.
    fn check_flow_plain(&self, value: &str, span: &Span) -> Result<(), YamlError> {
        if !self.in_flow() {
            return Ok(());
        }
        if value.starts_with(['|', '>']) {
            return Err(error_at(
                &span.start,
                "a plain scalar in a flow collection cannot start with '|' or '>'",
            ));
        }
        if value.contains('?') {
            return Err(error_at(
                &span.start,
                "'?' inside a plain scalar in a flow collection is a key indicator for PyYAML; quote the scalar",
            ));
        }
        Ok(())
    }

    /// Whether the next node attached is a mapping key.
    fn expects_key(&self) -> bool {
        matches!(self.stack.last(), Some(Open::Map(_, None)))
    }

    /// saphyr reads `: value` with nothing before the `:` as a mapping
    /// with an empty key; PyYAML only accepts an empty key after an
    /// explicit `?`. `span` is the empty key's, positioned on the `:`.
    fn is_implicit_empty_key(&mut self, span: &Span) -> bool {
        let Some(at) = self.char_to_byte(span.start.index()) else {
            return false;
        };
        if !self.source[at..].starts_with(':') {
            return false;
        }
        // The last significant character before the `:`, skipping blanks
        // and comments on earlier lines.
        let before = &self.source[..at];
        let mut lines = before.rsplit('\n');
        let mut first = true;
        let previous = lines.find_map(|line| {
            let line = if first {
                first = false;
                line
            } else {
                strip_comment(line)
            };
            line.trim_end().chars().last()
        });
        previous != Some('?')
    }

    /// Whether `span` reaches the end of an input whose last line has no
    /// line break.
    fn ends_input_without_line_break(&mut self, span: &Span) -> bool {
        if self.source.ends_with(['\n', '\r']) {
            return false;
        }
        let source = self.source;
        let total = self
            .char_offsets
            .get_or_insert_with(|| source.char_indices().map(|(b, _)| b).collect())
            .len();
        span.end.index() >= total
    }

    fn char_to_byte(&mut self, index: usize) -> Option<usize> {
        let source = self.source;
        let offsets = self
            .char_offsets
            .get_or_insert_with(|| source.char_indices().map(|(b, _)| b).collect());
        offsets.get(index).copied()
    }

    /// Read the anchor/alias name starting right after the `&`/`*` at
    /// character `index`; checks PyYAML's stricter naming rules.
    fn read_name(&mut self, index: usize, mark: &Marker) -> Result<Option<String>, YamlError> {
        let Some(start) = self.char_to_byte(index) else {
            return Ok(None);
        };
        let rest = &self.source[start..];
        let name: String = rest
            .chars()
            .take_while(|c| !ends_saphyr_anchor(*c))
            .collect();
        let next = rest[name.len()..].chars().next();
        if let Some(bad) = name.chars().find(|c| !is_pyyaml_anchor_char(*c)) {
            return Err(error_at(
                mark,
                format!("expected alphabetic or numeric character in anchor or alias name, but found {bad:?}"),
            ));
        }
        if let Some(c @ ('[' | '{')) = next {
            return Err(error_at(
                mark,
                format!("expected alphabetic or numeric character in anchor or alias name, but found {c:?}"),
            ));
        }
        Ok(Some(name))
    }

    fn check_alias_name(&mut self, span: &Span) -> Result<(), YamlError> {
        let at = span.start.index();
        if let Some(star) = self.char_to_byte(at) {
            if self.source[star..].starts_with('*') {
                self.read_name(at + 1, &span.start)?;
            }
        }
        Ok(())
    }

    /// Remember an anchored node, checking the name like PyYAML does
    /// (saphyr allows redefining an anchor, PyYAML refuses).
    fn register_anchor(&mut self, anchor: usize, id: NodeId, span: &Span) -> Result<(), YamlError> {
        if anchor == 0 {
            return Ok(());
        }
        self.anchors.insert(anchor, id);
        let Some(name_at) = self.find_anchor_token(span.start.index()) else {
            return Ok(());
        };
        let Some(name) = self.read_name(name_at, &span.start)? else {
            return Ok(());
        };
        let here = (span.start.line(), span.start.col() + 1);
        if let Some((line, column)) = self.anchor_names.insert(name.clone(), here) {
            return Err(error_at(
                &span.start,
                format!("found duplicate anchor {name:?}; first occurrence at line {line}, column {column}"),
            ));
        }
        Ok(())
    }

    /// The node's properties (tag and anchor, in either order) start at
    /// character `index`; return the character index just after the `&`.
    fn find_anchor_token(&mut self, index: usize) -> Option<usize> {
        let start = self.char_to_byte(index)?;
        let text = &self.source[start..];
        let mut chars = text.chars().enumerate().peekable();
        for _ in 0..2 {
            // Blanks and comments may separate the two properties.
            while let Some((_, c)) = chars.peek().copied() {
                if c.is_whitespace() {
                    chars.next();
                } else if c == '#' {
                    while chars.next_if(|(_, c)| *c != '\n').is_some() {}
                } else {
                    break;
                }
            }
            match chars.next()? {
                (i, '&') => return Some(index + i + 1),
                (_, '!') => while chars.next_if(|(_, c)| !c.is_whitespace()).is_some() {},
                _ => return None,
            }
        }
        None
    }
}

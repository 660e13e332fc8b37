//! Tolerant JSON decoding for hand-written connector files.
//!
//! Real connector files are not always RFC 8259 JSON: some start with a byte-order mark, some
//! are Windows-1252, some have trailing commas, raw tabs inside strings or duplicate keys. Each
//! of those has one obvious reading, so it is accepted with a warning. Broken structure
//! (a missing comma, an unclosed bracket, a truncated file) has no obvious reading: it is an
//! error naming the line and column in the original file, and no fix is guessed.
//!
//! Valid files take one `serde_json` pass (which also spots duplicate keys); the repairing
//! scanner runs only after that pass fails, so well-formed input costs what plain `serde_json`
//! costs.
//!
//! Positions are `line:column`, both from 1, in characters of the original file (after any
//! byte-order mark), so an editor's "go to" lands on them.

use std::borrow::Cow;
use std::fmt;

use portico_model::Diagnostic;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// How many findings of one kind are listed one by one before the rest are summed up.
const LISTED: usize = 20;

/// Parses `bytes` (the contents of the file named `file`). Returns the value and warnings for
/// everything that had to be tolerated, or an error `<file>:<line>:<column>: <message>`.
pub fn parse(bytes: &[u8], file: &str) -> Result<(Value, Vec<Diagnostic>), Diagnostic> {
    let mut warnings = Vec::new();
    let body = match bytes.strip_prefix(BOM) {
        Some(rest) => {
            warnings.push(Diagnostic::warning(file, "UTF-8 byte-order mark ignored"));
            rest
        }
        None => bytes,
    };
    if body.iter().all(|b| is_space(*b)) {
        return Err(Diagnostic::error(format!("{file}:1:1"), "the file is empty"));
    }
    let strict = match parse_value(body) {
        Ok((value, duplicates)) => {
            warnings.extend(duplicate_warnings(&duplicates, body, None, file));
            return Ok((value, warnings));
        }
        Err(error) => error,
    };
    let lines = Lines::new(body);
    let repaired = Repair::run(body);
    if !repaired.changed() {
        return Err(syntax_error(&strict, body, &lines, None, file));
    }
    match parse_value(&repaired.text) {
        Ok((value, duplicates)) => {
            warnings.extend(repaired.warnings(body, &lines, file));
            warnings.extend(duplicate_warnings(&duplicates, &repaired.text, Some((&repaired, &lines, body)), file));
            Ok((value, warnings))
        }
        Err(error) => Err(syntax_error(&error, &repaired.text, &lines, Some((&repaired, body)), file)),
    }
}

/// `serde_json`'s message without its " at line X column Y" tail: the position is given
/// separately, in the original file's terms.
pub(crate) fn message_of(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let tail = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&tail) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

// --- The strict pass: serde_json, building the `Value` and noting duplicate keys ---------

/// One step of the path from the root to a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step<S = String> {
    Key(S),
    Index(usize),
}

/// The path to the value being read, as a chain of borrowed steps on the stack: nothing is
/// allocated unless a duplicate key needs naming.
struct PathNode<'a> {
    parent: Option<&'a PathNode<'a>>,
    step: Step<&'a str>,
}

fn owned_path(mut node: Option<&PathNode<'_>>) -> Vec<Step> {
    let mut steps = Vec::new();
    while let Some(n) = node {
        steps.push(match n.step {
            Step::Key(k) => Step::Key(k.to_owned()),
            Step::Index(i) => Step::Index(i),
        });
        node = n.parent;
    }
    steps.reverse();
    steps
}

/// A key seen more than once in one object.
#[derive(Debug)]
struct Duplicate {
    /// The path to the object holding the key.
    object: Vec<Step>,
    key: String,
    /// Which occurrence this is: 1 for the second, 2 for the third, …
    occurrence: usize,
}

impl Duplicate {
    /// RFC 6901 JSON pointer to the key's value.
    fn pointer(&self) -> String {
        let mut out = String::new();
        for step in self.object.iter().map(|s| match s {
            Step::Key(k) => Step::Key(k.as_str()),
            Step::Index(i) => Step::Index(*i),
        }) {
            push_pointer_step(&mut out, step);
        }
        push_pointer_step(&mut out, Step::Key(&self.key));
        out
    }
}

fn push_pointer_step(out: &mut String, step: Step<&str>) {
    out.push('/');
    match step {
        Step::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
        Step::Index(i) => out.push_str(&i.to_string()),
    }
}

fn parse_value(bytes: &[u8]) -> Result<(Value, Vec<Duplicate>), serde_json::Error> {
    let mut duplicates = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = ValueSeed { path: None, duplicates: &mut duplicates }.deserialize(&mut de)?;
    de.end()?;
    Ok((value, duplicates))
}

/// Builds a `Value` exactly as `serde_json`'s own visitor does (last duplicate wins, in the
/// first one's place), noting each duplicate key on the way.
struct ValueSeed<'a> {
    path: Option<&'a PathNode<'a>>,
    duplicates: &'a mut Vec<Duplicate>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let node = PathNode { parent: self.path, step: Step::Index(items.len()) };
            match seq.next_element_seed(ValueSeed { path: Some(&node), duplicates: &mut *self.duplicates })? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        // Occurrences so far of each duplicated key; empty in all but a handful of files.
        let mut repeated: Vec<(String, usize)> = Vec::new();
        while let Some(key) = access.next_key::<String>()? {
            let node = PathNode { parent: self.path, step: Step::Key(&key) };
            let value = access.next_value_seed(ValueSeed { path: Some(&node), duplicates: &mut *self.duplicates })?;
            match map.entry(key) {
                serde_json::map::Entry::Vacant(entry) => {
                    entry.insert(value);
                }
                serde_json::map::Entry::Occupied(mut entry) => {
                    let key = entry.key().clone();
                    let occurrence = match repeated.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, n)) => {
                            *n += 1;
                            *n
                        }
                        None => {
                            repeated.push((key.clone(), 1));
                            1
                        }
                    };
                    self.duplicates.push(Duplicate { object: owned_path(self.path), key, occurrence });
                    entry.insert(value);
                }
            }
        }
        Ok(Value::Object(map))
    }
}

// --- The repairing scanner: runs only when the strict pass failed -------------------------

/// A stretch of the repaired text and where it came from in the original.
#[derive(Debug, Clone, Copy)]
struct Span {
    repaired: usize,
    original: usize,
    /// For a substitution (a tab written as `\t`, a Windows-1252 byte as UTF-8): how many
    /// original bytes it replaced. `None` for a verbatim copy.
    replaced: Option<usize>,
}

/// The original text with every tolerated oddity rewritten into strict JSON, and a record of
/// what changed where.
struct Repair {
    text: Vec<u8>,
    spans: Vec<Span>,
    /// Original offsets of removed trailing commas.
    trailing_commas: Vec<usize>,
    /// Original offsets and bytes of raw control characters found inside strings.
    controls: Vec<(usize, u8)>,
    /// Original offsets of bytes that are not UTF-8, read as Windows-1252.
    not_utf8: Vec<usize>,
}

impl Repair {
    fn run(original: &[u8]) -> Repair {
        let mut r = Repair {
            text: Vec::with_capacity(original.len() + 64),
            spans: vec![Span { repaired: 0, original: 0, replaced: None }],
            trailing_commas: Vec::new(),
            controls: Vec::new(),
            not_utf8: Vec::new(),
        };
        let mut in_string = false;
        let mut escaped = false;
        // The last byte outside strings that was not white space: a comma after `[`, `{`, `:`
        // or another comma is not a trailing comma, it is a hole, and stays an error.
        let mut last_significant = 0u8;
        let mut i = 0;
        while i < original.len() {
            let b = original[i];
            if b >= 0x80 {
                let width = utf8_width(&original[i..]);
                if width > 0 {
                    r.copy(i, &original[i..i + width]);
                    i += width;
                } else {
                    let (decoded, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(&original[i..=i]);
                    r.substitute(i, 1, decoded.as_bytes());
                    r.not_utf8.push(i);
                    i += 1;
                }
                escaped = false;
                continue;
            }
            if in_string {
                if escaped {
                    escaped = false;
                    r.copy(i, &[b]);
                } else if b == b'\\' {
                    escaped = true;
                    r.copy(i, &[b]);
                } else if b == b'"' {
                    in_string = false;
                    last_significant = b;
                    r.copy(i, &[b]);
                } else if b < 0x20 && b != b'\n' && b != b'\r' {
                    // A raw line break is left alone: inside a string it more likely means a
                    // missing closing quote than a deliberate multi-line value.
                    r.controls.push((i, b));
                    r.substitute(i, 1, escape_control(b).as_bytes());
                } else {
                    r.copy(i, &[b]);
                }
            } else if b == b'"' {
                in_string = true;
                r.copy(i, &[b]);
            } else if b == b','
                && !matches!(last_significant, 0 | b'[' | b'{' | b',' | b':')
                && closes_next(original, i + 1)
            {
                r.trailing_commas.push(i);
            } else {
                if !is_space(b) {
                    last_significant = b;
                }
                r.copy(i, &[b]);
            }
            i += 1;
        }
        r
    }

    fn changed(&self) -> bool {
        !(self.trailing_commas.is_empty() && self.controls.is_empty() && self.not_utf8.is_empty())
    }

    fn copy(&mut self, original: usize, bytes: &[u8]) {
        let contiguous = self
            .spans
            .last()
            .is_some_and(|s| s.replaced.is_none() && s.original + (self.text.len() - s.repaired) == original);
        if !contiguous {
            self.spans.push(Span { repaired: self.text.len(), original, replaced: None });
        }
        self.text.extend_from_slice(bytes);
    }

    fn substitute(&mut self, original: usize, original_len: usize, bytes: &[u8]) {
        self.spans.push(Span { repaired: self.text.len(), original, replaced: Some(original_len) });
        self.text.extend_from_slice(bytes);
    }

    /// Maps an offset in the repaired text back to the original. Offsets are "bytes read so
    /// far", so an offset inside a substitution means the whole original byte was read.
    fn original_offset(&self, repaired: usize) -> usize {
        let at = self.spans.partition_point(|s| s.repaired <= repaired).saturating_sub(1);
        let Some(span) = self.spans.get(at) else { return repaired };
        match span.replaced {
            Some(len) if repaired > span.repaired => span.original + len,
            Some(_) => span.original,
            None => span.original + (repaired - span.repaired),
        }
    }

    fn warnings(&self, original: &[u8], lines: &Lines, file: &str) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        if let Some(&first) = self.not_utf8.first() {
            let byte = original[first];
            let (decoded, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(&original[first..=first]);
            let others = match self.not_utf8.len() - 1 {
                0 => String::new(),
                1 => " and 1 other byte".to_owned(),
                n => format!(" and {n} other bytes"),
            };
            out.push(Diagnostic::warning(
                format!("{file}:{}", lines.at(original, first)),
                format!("not valid UTF-8: byte 0x{byte:02X} (\"{decoded}\"){others} read as Windows-1252"),
            ));
        }
        listed(&mut out, &self.trailing_commas, "trailing commas", |&at| {
            Diagnostic::warning(format!("{file}:{}", lines.at(original, at)), "trailing comma")
        });
        listed(&mut out, &self.controls, "raw control characters in strings", |&(at, b)| {
            Diagnostic::warning(
                format!("{file}:{}", lines.at(original, at)),
                format!("raw {} inside a string, read as {}", control_name(b), escape_control(b)),
            )
        });
        out
    }
}

/// Adds one warning per finding, up to [`LISTED`], then one that counts the rest.
fn listed<T>(out: &mut Vec<Diagnostic>, items: &[T], what: &str, warn: impl Fn(&T) -> Diagnostic) {
    out.extend(items.iter().take(LISTED).map(&warn));
    if items.len() > LISTED {
        let last = warn(&items[LISTED]);
        out.push(Diagnostic::warning(last.at, format!("and {} more {what}", items.len() - LISTED)));
    }
}

/// True when the next byte that is not white space closes an object or array.
fn closes_next(bytes: &[u8], from: usize) -> bool {
    bytes[from.min(bytes.len())..].iter().find(|b| !is_space(**b)).is_some_and(|b| matches!(b, b'}' | b']'))
}

/// The length of the well-formed UTF-8 sequence starting `bytes`, or 0 if there is none.
fn utf8_width(bytes: &[u8]) -> usize {
    let width = match bytes[0] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return 0,
    };
    match bytes.get(..width) {
        Some(sequence) if std::str::from_utf8(sequence).is_ok() => width,
        _ => 0,
    }
}

fn escape_control(b: u8) -> Cow<'static, str> {
    match b {
        b'\t' => Cow::Borrowed("\\t"),
        0x08 => Cow::Borrowed("\\b"),
        0x0C => Cow::Borrowed("\\f"),
        _ => Cow::Owned(format!("\\u{b:04x}")),
    }
}

fn control_name(b: u8) -> Cow<'static, str> {
    match b {
        b'\t' => Cow::Borrowed("tab"),
        _ => Cow::Owned(format!("control character U+{b:04X}")),
    }
}

// --- Positions ------------------------------------------------------------------------------

/// Where each line of a text starts, to turn byte offsets into `line:column`.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &[u8]) -> Lines {
        let mut starts = vec![0];
        starts.extend(text.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1));
        Lines { starts }
    }

    /// The line (from 1) holding `offset`, and where that line starts.
    fn line_of(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        (line, self.starts[line - 1])
    }

    /// `line:column` of the character starting at byte `offset`.
    fn at(&self, text: &[u8], offset: usize) -> String {
        let (line, start) = self.line_of(offset);
        format!("{line}:{}", characters(&text[start..offset.min(text.len())]) + 1)
    }

    /// `line:column` of a `serde_json` position: `offset` bytes read, the error on the last
    /// one. Column 0 ("nothing read on this line yet") is shown as column 1.
    fn after(&self, text: &[u8], offset: usize) -> String {
        let (line, start) = self.line_of(offset);
        format!("{line}:{}", characters(&text[start..offset.min(text.len())]).max(1))
    }

    /// The byte offset `serde_json` means by `line`/`column` in the text these lines index.
    fn offset(&self, line: usize, column: usize) -> usize {
        self.starts.get(line.saturating_sub(1)).map_or(0, |start| start + column)
    }
}

/// Characters as the importer reads them: UTF-8 sequences, and single bytes read as
/// Windows-1252.
fn characters(bytes: &[u8]) -> usize {
    bytes.utf8_chunks().map(|chunk| chunk.valid().chars().count() + chunk.invalid().len()).sum()
}

/// The error for broken JSON, placed in the original file. `repaired` is the repair the
/// failing text came from, and the original it was made from.
fn syntax_error(
    error: &serde_json::Error,
    parsed: &[u8],
    original_lines: &Lines,
    repaired: Option<(&Repair, &[u8])>,
    file: &str,
) -> Diagnostic {
    let (original, offset) = match repaired {
        None => (parsed, original_lines.offset(error.line(), error.column())),
        Some((repair, original)) => {
            let offset = Lines::new(parsed).offset(error.line(), error.column());
            (original, repair.original_offset(offset))
        }
    };
    Diagnostic::error(format!("{file}:{}", original_lines.after(original, offset)), message_of(error))
}

fn duplicate_warnings(
    duplicates: &[Duplicate],
    parsed: &[u8],
    repaired: Option<(&Repair, &Lines, &[u8])>,
    file: &str,
) -> Vec<Diagnostic> {
    if duplicates.is_empty() {
        return Vec::new();
    }
    let fresh_lines;
    let (lines, original) = match repaired {
        Some((_, lines, original)) => (lines, original),
        None => {
            fresh_lines = Lines::new(parsed);
            (&fresh_lines, parsed)
        }
    };
    let mut out = Vec::new();
    listed(&mut out, duplicates, "duplicate keys", |d| {
        let found = locate_key(parsed, &d.object, &d.key, d.occurrence);
        let at = match (found, repaired) {
            (Some(offset), Some((repair, _, _))) => {
                format!("{file}:{}", lines.at(original, repair.original_offset(offset)))
            }
            (Some(offset), None) => format!("{file}:{}", lines.at(original, offset)),
            (None, _) => file.to_owned(),
        };
        Diagnostic::warning(at, format!("duplicate key `{}` at {}: the last value is used", d.key, d.pointer()))
    });
    out
}

// --- Finding a key again in text that is known to be valid JSON ----------------------------

/// `line:column` of the value at `path` in a file that [`parse`] accepted: of its key when the
/// last step is a key, else of the value itself. `None` when the path cannot be followed.
pub(crate) fn locate(bytes: &[u8], path: &[Step]) -> Option<String> {
    let text = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let offset = match path.split_last() {
        None => skip_space(text, 0),
        Some((Step::Key(key), object)) => {
            let found = locate_object(text, object)?;
            members(text, found)?.filter(|m| m.key == *key).last()?.key_at
        }
        Some((Step::Index(n), array)) => elements(text, locate_object(text, array)?)?.nth(*n)?,
    };
    (offset < text.len()).then(|| Lines::new(text).at(text, offset))
}

/// The offset where the value at `path` starts. Where the path passes through duplicated keys
/// it follows the last one, as the parsed value does.
fn locate_object(text: &[u8], path: &[Step]) -> Option<usize> {
    let mut at = skip_space(text, 0);
    for step in path {
        at = match step {
            Step::Key(k) => members(text, at)?.filter(|m| m.key == *k).last()?.value,
            Step::Index(n) => elements(text, at)?.nth(*n)?,
        };
    }
    Some(at)
}

/// The byte offset of the opening quote of the `occurrence`-th (from 0) `key` in the object
/// at `object`.
fn locate_key(text: &[u8], object: &[Step], key: &str, occurrence: usize) -> Option<usize> {
    members(text, locate_object(text, object)?)?.filter(|m| m.key == key).nth(occurrence).map(|m| m.key_at)
}

struct Member<'t> {
    key_at: usize,
    key: Cow<'t, str>,
    value: usize,
}

fn members(text: &[u8], at: usize) -> Option<impl Iterator<Item = Member<'_>>> {
    (text.get(at) == Some(&b'{')).then_some(())?;
    let mut pos = at + 1;
    Some(std::iter::from_fn(move || {
        pos = skip_space(text, pos);
        if text.get(pos) != Some(&b'"') {
            return None;
        }
        let key_at = pos;
        let key_end = string_end(text, pos);
        let raw = text.get(key_at..key_end)?;
        let key = match std::str::from_utf8(raw.get(1..raw.len().saturating_sub(1))?) {
            Ok(plain) if !plain.contains('\\') => Cow::Borrowed(plain),
            _ => Cow::Owned(serde_json::from_slice::<String>(raw).ok()?),
        };
        pos = skip_space(text, key_end);
        (text.get(pos) == Some(&b':')).then_some(())?;
        let value = skip_space(text, pos + 1);
        pos = skip_space(text, value_end(text, value));
        if text.get(pos) == Some(&b',') {
            pos += 1;
        }
        Some(Member { key_at, key, value })
    }))
}

fn elements(text: &[u8], at: usize) -> Option<impl Iterator<Item = usize> + '_> {
    (text.get(at) == Some(&b'[')).then_some(())?;
    let mut pos = at + 1;
    Some(std::iter::from_fn(move || {
        pos = skip_space(text, pos);
        if matches!(text.get(pos), None | Some(b']')) {
            return None;
        }
        let value = pos;
        pos = skip_space(text, value_end(text, value));
        if text.get(pos) == Some(&b',') {
            pos += 1;
        }
        Some(value)
    }))
}

fn skip_space(text: &[u8], mut pos: usize) -> usize {
    while text.get(pos).is_some_and(|b| is_space(*b)) {
        pos += 1;
    }
    pos
}

/// Just past the string whose opening quote is at `at`.
fn string_end(text: &[u8], at: usize) -> usize {
    let mut pos = at + 1;
    while let Some(&b) = text.get(pos) {
        pos += if b == b'\\' { 2 } else { 1 };
        if b == b'"' {
            break;
        }
    }
    pos.min(text.len())
}

/// Just past the value starting at `at`.
fn value_end(text: &[u8], at: usize) -> usize {
    match text.get(at) {
        Some(b'"') => string_end(text, at),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut pos = at;
            while let Some(&b) = text.get(pos) {
                match b {
                    b'"' => {
                        pos = string_end(text, pos);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return pos + 1;
                        }
                    }
                    _ => {}
                }
                pos += 1;
            }
            pos
        }
        _ => {
            let mut pos = at;
            while text.get(pos).is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !is_space(*b)) {
                pos += 1;
            }
            pos
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(text: &str) -> (Value, Vec<String>) {
        let (value, warnings) = parse(text.as_bytes(), "f.json").unwrap();
        (value, warnings.iter().map(ToString::to_string).collect())
    }

    fn err(bytes: &[u8]) -> String {
        parse(bytes, "f.json").unwrap_err().to_string()
    }

    #[test]
    fn valid_json_is_read_as_serde_json_reads_it() {
        let text = r#"{"b": [1, -2, 3.5, true, null, "x\u00e9\n"], "a": {"c": {}}, "d": []}"#;
        let (value, warnings) = ok(text);
        assert_eq!(value, serde_json::from_str::<Value>(text).unwrap());
        assert!(warnings.is_empty());
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["b", "a", "d"], "keys keep their order");
    }

    #[test]
    fn crlf_is_plain_white_space() {
        let (value, warnings) = ok("{\r\n  \"a\": 1\r\n}\r\n");
        assert_eq!(value, json!({"a": 1}));
        assert!(warnings.is_empty());
    }

    #[test]
    fn byte_order_mark_is_stripped_with_a_warning() {
        let (value, warnings) = parse(b"\xEF\xBB\xBF{\"a\": 1}", "f.json").unwrap();
        assert_eq!(value, json!({"a": 1}));
        assert_eq!(warnings, [Diagnostic::warning("f.json", "UTF-8 byte-order mark ignored")]);
    }

    #[test]
    fn positions_after_a_byte_order_mark_ignore_it() {
        assert_eq!(err(b"\xEF\xBB\xBF{\"a\": 1 \"b\": 2}"), "f.json:1:9: expected `,` or `}`");
    }

    #[test]
    fn trailing_commas_are_dropped_with_a_warning_each() {
        let (value, warnings) = ok("{\n  \"a\": [1, 2,],\n  \"b\": {\"c\": 3,\n  },\n}");
        assert_eq!(value, json!({"a": [1, 2], "b": {"c": 3}}));
        assert_eq!(
            warnings,
            ["f.json:2:13: trailing comma", "f.json:3:15: trailing comma", "f.json:4:4: trailing comma"]
        );
    }

    #[test]
    fn a_comma_with_nothing_before_it_is_not_a_trailing_comma() {
        assert_eq!(err(b"[,]"), "f.json:1:2: expected value");
        assert_eq!(err(b"{\"a\": 1,,}"), "f.json:1:9: key must be a string");
        assert_eq!(err(b"{\"a\": ,}"), "f.json:1:7: expected value");
    }

    #[test]
    fn commas_inside_strings_are_left_alone() {
        let (value, warnings) = ok(r#"{"a": "x,]", "b": "\",}"}"#);
        assert_eq!(value, json!({"a": "x,]", "b": "\",}"}));
        assert!(warnings.is_empty());
    }

    #[test]
    fn tabs_inside_strings_are_read_as_escapes() {
        let (value, warnings) = ok("{\"a\": \"x\ty\t\"}");
        assert_eq!(value, json!({"a": "x\ty\t"}));
        assert_eq!(
            warnings,
            ["f.json:1:9: raw tab inside a string, read as \\t", "f.json:1:11: raw tab inside a string, read as \\t"]
        );
    }

    #[test]
    fn other_control_characters_inside_strings_are_read_as_escapes() {
        let (value, warnings) = ok("[\"a\u{1}b\"]");
        assert_eq!(value, json!(["a\u{1}b"]));
        assert_eq!(warnings, ["f.json:1:4: raw control character U+0001 inside a string, read as \\u0001"]);
    }

    #[test]
    fn a_line_break_inside_a_string_stays_an_error() {
        assert_eq!(
            err(b"{\"a\": \"x\ny\"}"),
            "f.json:2:1: control character (\\u0000-\\u001F) found while parsing a string"
        );
    }

    #[test]
    fn errors_after_tabs_in_strings_point_into_the_original_line() {
        // Each tab becomes two bytes (`\t`) in the repaired text; the column must not move.
        let text = "{\n\t\"a\": \"\t\t\t\" \"b\": 1\n}";
        assert_eq!(err(text.as_bytes()), "f.json:2:13: expected `,` or `}`");
        assert_eq!(text.lines().nth(1).unwrap().chars().nth(12), Some('"'));
    }

    #[test]
    fn errors_after_removed_trailing_commas_point_into_the_original_line() {
        assert_eq!(err(b"[[1,], [2,] 3]"), "f.json:1:13: expected `,` or `]`");
    }

    #[test]
    fn windows_1252_bytes_are_decoded_with_a_warning() {
        let (value, warnings) =
            parse(b"{\n \"name\": \"Br\xF8nn\xF8ysund\",\n \"x\": \"soft\xADhyphen\"\n}", "f.json").unwrap();
        assert_eq!(value, json!({"name": "Brønnøysund", "x": "soft\u{AD}hyphen"}));
        assert_eq!(
            warnings,
            [Diagnostic::warning(
                "f.json:2:13",
                "not valid UTF-8: byte 0xF8 (\"ø\") and 2 other bytes read as Windows-1252"
            )]
        );
    }

    #[test]
    fn valid_utf8_beside_windows_1252_bytes_is_kept() {
        let (value, _) = parse(
            "[\"é\", \"\u{2603}\", \"".as_bytes().iter().chain(b"\xE9\"]").copied().collect::<Vec<u8>>().as_slice(),
            "f.json",
        )
        .unwrap();
        assert_eq!(value, json!(["é", "\u{2603}", "é"]));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(err("{\"é☃\": 1 \"b\": 2}".as_bytes()), "f.json:1:10: expected `,` or `}`");
        assert_eq!(err(b"{\"\xE9\": 1 \"b\": 2}"), "f.json:1:9: expected `,` or `}`");
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_and_name_the_pointer() {
        let text = "{\n \"paths\": {\"/a/b~c\": {\"get\": {\"description\": \"one\",\n   \"description\": \"two\"}}},\n \"z\": 1\n}";
        let (value, warnings) = ok(text);
        assert_eq!(value["paths"]["/a/b~c"]["get"]["description"], "two");
        assert_eq!(
            warnings,
            ["f.json:3:4: duplicate key `description` at /paths/~1a~1b~0c/get/description: the last value is used"]
        );
    }

    #[test]
    fn duplicate_keys_keep_the_first_place() {
        let (value, warnings) = ok(r#"[{"a": 1, "b": 2, "a": 3, "a": 4}]"#);
        assert_eq!(serde_json::to_string(&value).unwrap(), r#"[{"a":4,"b":2}]"#);
        assert_eq!(
            warnings,
            [
                "f.json:1:19: duplicate key `a` at /0/a: the last value is used",
                "f.json:1:27: duplicate key `a` at /0/a: the last value is used"
            ]
        );
    }

    #[test]
    fn duplicate_keys_are_placed_in_the_original_after_repairs() {
        let (_, warnings) = ok("{\"a\": \"\t\", \"a\": [1,],}");
        assert_eq!(
            warnings,
            [
                "f.json:1:19: trailing comma",
                "f.json:1:21: trailing comma",
                "f.json:1:8: raw tab inside a string, read as \\t",
                "f.json:1:12: duplicate key `a` at /a: the last value is used"
            ]
        );
    }

    #[test]
    fn missing_comma_is_an_error_at_the_original_position() {
        let text = "{\n  \"a\": 1\n  \"b\": 2\n}";
        assert_eq!(err(text.as_bytes()), "f.json:3:3: expected `,` or `}`");
        let d = parse(text.as_bytes(), "f.json").unwrap_err();
        assert!(d.is_error());
        assert_eq!(d.at, "f.json:3:3");
        assert_eq!(d.message, "expected `,` or `}`");
    }

    #[test]
    fn no_fix_is_guessed_for_broken_structure_even_beside_tolerated_oddities() {
        assert_eq!(err(b"{\"a\": [1,],\n \"b\": \"\t\"\n \"c\": 1}"), "f.json:3:2: expected `,` or `}`");
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert_eq!(err(b"{\n  \"a\": {\"b\": 1}\n"), "f.json:3:1: EOF while parsing an object");
        assert_eq!(err(b"{\"a\": [1, 2"), "f.json:1:11: EOF while parsing a list");
        assert_eq!(err(b"{\"a\": \"xy"), "f.json:1:9: EOF while parsing a string");
    }

    #[test]
    fn unbalanced_brackets_are_errors() {
        assert_eq!(err(b"{\"a\": 1}\n}"), "f.json:2:1: trailing characters");
        assert_eq!(err(b"{\"a\": [1}"), "f.json:1:9: expected `,` or `]`");
    }

    #[test]
    fn empty_input_is_an_error() {
        assert_eq!(err(b""), "f.json:1:1: the file is empty");
        assert_eq!(err(b" \r\n\t"), "f.json:1:1: the file is empty");
        assert_eq!(err(b"\xEF\xBB\xBF"), "f.json:1:1: the file is empty");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert_eq!(err(deep.as_bytes()), "f.json:1:128: recursion limit exceeded");
        let deep = format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        assert!(err(deep.as_bytes()).ends_with("recursion limit exceeded"));
        let fine = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(fine.as_bytes(), "f.json").is_ok());
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        for bytes in [&b"\xFF\xFE"[..], b"\"", b"\\", b"{\"a\\", b"[\"\\\xF8", b",", b"}", b"\x00", b"nul", b"[1,"] {
            let d = parse(bytes, "f.json").unwrap_err();
            assert!(d.is_error() && d.at.starts_with("f.json:"), "{bytes:?}: {d}");
        }
    }

    #[test]
    fn locate_finds_keys_and_elements_in_tolerated_files() {
        let text = b"\xEF\xBB\xBF{\n \"a\": [1, {\"b\":\t\"x\ty\",},],\n \"a\": [7, {\"b\": 2}]\n}";
        let key = |k: &str| Step::Key(k.to_owned());
        assert_eq!(locate(text, &[key("a"), Step::Index(1), key("b")]).as_deref(), Some("3:12"));
        assert_eq!(locate(text, &[key("a"), Step::Index(0)]).as_deref(), Some("3:8"));
        assert_eq!(locate(text, &[key("a")]).as_deref(), Some("3:2"));
        assert_eq!(locate(text, &[]).as_deref(), Some("1:1"));
        assert_eq!(locate(text, &[key("b")]), None);
        assert_eq!(locate(text, &[key("a"), Step::Index(5)]), None);
        assert_eq!(locate(text, &[key("a"), key("b")]), None);
    }

    #[test]
    fn message_loses_only_the_position_tail() {
        let e = serde_json::from_str::<Value>("[1 2]").unwrap_err();
        assert_eq!(message_of(&e), "expected `,` or `]`");
    }
}

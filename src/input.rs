//! Reading input files: TOML (and JSON) with errors located to the file, line and field.

use std::ops::Range;
use std::path::{Path, PathBuf};

use miette::NamedSource;
use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::{Error, FieldError, InputError};

/// An input file's text, kept so that later checks can point at the offending line.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user gave it (or as resolved relative to an instance file).
    pub path: PathBuf,
    /// The whole text.
    pub text: String,
}

impl SourceFile {
    /// Reads a file, naming it in the error when it cannot be read.
    ///
    /// ```
    /// let err = watos::input::SourceFile::read("no/such/file.toml").unwrap_err();
    /// assert!(err.to_string().contains("no/such/file.toml"));
    /// ```
    pub fn read(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
            help: Some(match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "check the path; paths inside an instance file are relative to that file".into()
                }
                _ => "check the file's permissions and that it is UTF-8 text".into(),
            }),
        })?;
        Ok(SourceFile {
            path: path.to_path_buf(),
            text,
        })
    }

    /// A source held in memory (tests, `--model` given inline).
    pub fn from_text(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        SourceFile {
            path: path.into(),
            text: text.into(),
        }
    }

    /// Deserializes the whole file as TOML; a syntax or type error names its line and key.
    ///
    /// serde names neither the key of a syntax error (the document does not parse, so there is no
    /// tree to look it up in) nor the key of a missing field (its span is the enclosing table):
    /// both are recovered here so that every error says which key to fix, with a hint of what
    /// would be valid.
    pub fn parse_toml<T: DeserializeOwned>(&self) -> Result<T, Error> {
        toml::from_str(&self.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim().to_string();
            if DeTable::parse(&self.text).is_err() {
                let field =
                    key_on_line(&self.text, span.start).unwrap_or_else(|| "(document)".into());
                let help = if message.starts_with("duplicate key") {
                    "each key once per table: remove one of the two"
                } else {
                    TOML_SYNTAX_HELP
                };
                return self.error_at(span, field, message, Some(help.into()));
            }
            if let Some(missing) = missing_field(&message) {
                // The span is the header of the table that lacks the key; empty for the top level.
                let table = if span.is_empty() {
                    None
                } else {
                    field_at(&self.text, span.start)
                };
                let field = match table {
                    Some(t) => format!("{t}.{missing}"),
                    None => missing.to_string(),
                };
                let help = format!("add `{missing} = ...` to this table");
                return self.error_at(span, field, message, Some(help));
            }
            let field = field_at(&self.text, span.start).unwrap_or_else(|| "(document)".into());
            let key = field.rsplit('.').next().unwrap_or(&field).to_string();
            let help = value_help(&message, split_indices(&key).0, false);
            self.error_at(span, field, message, help)
        })
    }

    /// Deserializes the whole file as JSON; an error names its line and field path.
    pub fn parse_json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let de = &mut serde_json::Deserializer::from_str(&self.text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let offset = offset_of_line_col(&self.text, inner.line(), inner.column());
            // serde_json appends the position, which the error already shows as file:line.
            let full = inner.to_string();
            let suffix = format!(" at line {} column {}", inner.line(), inner.column());
            let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
            if inner.is_syntax() || inner.is_eof() {
                let help = "JSON: keys in double quotes, `\"key\": value` pairs separated by commas, no trailing comma";
                return self.error_at(offset..offset, "(document)".into(), message, Some(help.into()));
            }
            let parent = (path != ".").then_some(path);
            if let Some(missing) = missing_field(&message) {
                let field = match parent {
                    Some(p) => format!("{p}.{missing}"),
                    None => missing.to_string(),
                };
                let help = format!("add \"{missing}\": ... to the object");
                return self.error_at(offset..offset, field, message, Some(help));
            }
            let field = parent.unwrap_or_else(|| "(document)".into());
            let key = field.rsplit('.').next().unwrap_or(&field).to_string();
            let help = value_help(&message, split_indices(&key).0, true);
            self.error_at(offset..offset, field, message, help)
        })
    }

    /// Turns a field-level validation failure into an error pointing at that field's line.
    pub fn field_error(&self, err: FieldError) -> Error {
        let span = locate(&self.text, &err.field)
            .filter(|s| !s.is_empty())
            .or_else(|| locate_quoted_key(&self.text, &err.field))
            .unwrap_or(0..0);
        let help = (!err.help.is_empty()).then_some(err.help);
        self.error_at(span, err.field, err.message, help)
    }

    fn error_at(
        &self,
        span: Range<usize>,
        field: String,
        message: String,
        help: Option<String>,
    ) -> Error {
        let line = self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1;
        let len = span.end.saturating_sub(span.start);
        Error::Input(Box::new(InputError {
            file: self.path.display().to_string(),
            line,
            field,
            message,
            src: NamedSource::new(self.path.display().to_string(), self.text.clone()),
            span: (span.start, len).into(),
            help,
        }))
    }
}

/// Shown with every TOML syntax error: the parser says what it expected at that spot, this says
/// what a line should look like.
const TOML_SYNTAX_HELP: &str = "TOML lines are `key = value`: numbers bare (96, 2.0), text in double quotes, arrays in [ ], tables under a [name] header";

/// The key of `missing field `key`` errors.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next().filter(|k| !k.is_empty())
}

/// What would be valid, for serde's unknown-field and wrong-type messages: the closest expected
/// key (a typo is the usual cause), or how to write a value of the expected type, in TOML or JSON.
fn value_help(message: &str, key: &str, json: bool) -> Option<String> {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let mut names = rest.split('`').step_by(2);
        let unknown = names.next()?;
        let best = names
            .filter(|n| !n.is_empty())
            .map(|n| (edit_distance(unknown, n), n))
            .min()?;
        return (best.0 <= 2.max(unknown.len() / 3)).then(|| format!("did you mean `{}`?", best.1));
    }
    let (found, expected) = message
        .strip_prefix("invalid type: ")?
        .split_once(", expected ")?;
    let kind = match expected {
        "u8" | "u16" | "u32" | "u64" | "i8" | "i16" | "i32" | "i64" | "an integer" => {
            "a whole number, written without quotes"
        }
        "f32" | "f64" | "a float" => "a number, written without quotes",
        "a boolean" => "true or false, written without quotes",
        "a string" => "text in double quotes",
        _ => return None,
    };
    // `"96"` where a number belongs: show the fix itself.
    let quoted = found
        .strip_prefix("string \"")
        .and_then(|s| s.strip_suffix('"'))
        .filter(|s| s.trim().parse::<f64>().is_ok());
    Some(match (quoted, json) {
        (Some(v), true) => format!("{kind}: \"{key}\": {}", v.trim()),
        (Some(v), false) => format!("{kind}: {key} = {}", v.trim()),
        (None, _) => format!("{kind} (expected {expected})"),
    })
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The dotted key written on the line holding byte `offset`, for syntax errors (the document does
/// not parse, so only its text can say which key the broken line was writing): `key = ...` under
/// the nearest `[table]` header above it, or the header itself.
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let header = |line: &str| {
        let name = line
            .trim()
            .trim_start_matches('[')
            .split(']')
            .next()?
            .trim();
        (!name.is_empty()).then(|| name.to_string())
    };
    let line = text[start..].lines().next().unwrap_or("").trim();
    if line.starts_with('[') {
        return header(line);
    }
    let key: String = line
        .chars()
        .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .collect();
    if key.is_empty() {
        return None;
    }
    let table = text[..start]
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('['))
        .and_then(header);
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key,
    })
}

/// Resolves a path written inside `base_file` relative to that file's directory.
pub fn relative_to(base_file: &Path, written: &str) -> PathBuf {
    let p = Path::new(written);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    base_file
        .parent()
        .map(|dir| dir.join(p))
        .unwrap_or_else(|| p.to_path_buf())
}

fn offset_of_line_col(text: &str, line: usize, col: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (start + col.saturating_sub(1)).min(text.len())
}

/// Byte span of a dotted field path (`wafer.rows`, `stage[1].layers`, `faulty_dies[0]`) in a TOML text.
fn locate(text: &str, field: &str) -> Option<Range<usize>> {
    let doc = DeTable::parse(text).ok()?;
    let mut best: Range<usize> = 0..0;
    let mut table: &DeTable = doc.get_ref();
    let mut value: Option<&Spanned<DeValue>> = None;
    for part in field.split('.') {
        let (key, indices) = split_indices(part);
        if let Some(v) = value {
            table = match v.get_ref() {
                DeValue::Table(t) => t,
                _ => return Some(best),
            };
        }
        let Some((k, v)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == key) else {
            return Some(best);
        };
        best = k.span().start..v.span().end;
        let mut v = v;
        for i in indices {
            match v.get_ref() {
                DeValue::Array(a) if i < a.len() => {
                    v = &a[i];
                    best = v.span();
                }
                _ => return Some(best),
            }
        }
        value = Some(v);
    }
    Some(best)
}

/// Fallback for JSON and for keys the TOML walk cannot reach: the first `"key"` in the text.
fn locate_quoted_key(text: &str, field: &str) -> Option<Range<usize>> {
    let key = split_indices(field.rsplit('.').next()?).0;
    let quoted = format!("\"{key}\"");
    text.find(&quoted).map(|start| start..start + quoted.len())
}

fn split_indices(part: &str) -> (&str, Vec<usize>) {
    let key_end = part.find('[').unwrap_or(part.len());
    let indices = part[key_end..]
        .split(['[', ']'])
        .filter_map(|s| s.parse().ok())
        .collect();
    (&part[..key_end], indices)
}

/// The dotted key whose value contains byte `offset` (for errors toml reports by span only).
fn field_at(text: &str, offset: usize) -> Option<String> {
    let doc = DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    find_in_table(doc.get_ref(), offset, &mut path).then(|| path.join("."))
}

/// Depth-first: the deepest key whose key or value span holds `offset`. Tables opened by a header
/// only span the header, so every table is searched, not just the ones whose span matches.
fn find_in_table(table: &DeTable, offset: usize, path: &mut Vec<String>) -> bool {
    for (k, v) in table.iter() {
        path.push(k.get_ref().to_string());
        if find_in_value(v, offset, path)
            || k.span().contains(&offset)
            || v.span().contains(&offset)
        {
            return true;
        }
        path.pop();
    }
    false
}

fn find_in_value(v: &Spanned<DeValue>, offset: usize, path: &mut Vec<String>) -> bool {
    match v.get_ref() {
        DeValue::Table(t) => find_in_table(t, offset, path),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                if let Some(last) = path.last_mut() {
                    let base = last.split('[').next().unwrap_or_default().to_string();
                    *last = format!("{base}[{i}]");
                }
                if find_in_value(item, offset, path) || item.span().contains(&offset) {
                    return true;
                }
            }
            if let Some(last) = path.last_mut() {
                *last = last.split('[').next().unwrap_or_default().to_string();
            }
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "name = \"x\"\n[wafer]\nrows = 7\ncols = -8\n\n[[stage]]\nlayers = 3\n[[stage]]\nlayers = 4\n";

    #[test]
    fn locates_nested_fields_and_array_tables() {
        let span = locate(DOC, "wafer.cols").unwrap();
        assert_eq!(&DOC[span], "cols = -8");
        let span = locate(DOC, "stage[1].layers").unwrap();
        assert_eq!(&DOC[span], "layers = 4");
    }

    #[test]
    fn field_error_names_file_and_line() {
        let src = SourceFile::from_text("hw.toml", DOC);
        let err = src.field_error(FieldError::new("wafer.cols", "must be positive", "e.g. 8"));
        let text = err.to_string();
        assert!(text.starts_with("hw.toml:4:"), "{text}");
        assert!(text.contains("wafer.cols"), "{text}");
    }

    #[test]
    fn type_errors_carry_the_key() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct W {
            rows: u32,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct D {
            name: String,
            wafer: W,
        }
        let src = SourceFile::from_text("d.toml", "name = \"x\"\n[wafer]\nrows = \"seven\"\n");
        let text = src.parse_toml::<D>().unwrap_err().to_string();
        assert!(text.starts_with("d.toml:3:"), "{text}");
        assert!(text.contains("wafer.rows"), "{text}");
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct W {
        rows: u32,
        cols: u32,
    }
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct D {
        name: String,
        wafer: W,
    }

    fn input_error(text: &str) -> InputError {
        match SourceFile::from_text("d.toml", text).parse_toml::<D>() {
            Err(Error::Input(e)) => *e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_keys_are_named_with_their_table() {
        let e = input_error("# c\n[wafer]\nrows = 1\n");
        assert_eq!((e.line, e.field.as_str()), (2, "wafer.cols"));
        assert!(e.help.is_some_and(|h| h.contains("cols = ")));
        let e = input_error("[wafer]\nrows = 1\ncols = 2\n");
        assert_eq!(e.field, "name");
    }

    #[test]
    fn typos_get_the_closest_key() {
        let e = input_error("name = \"x\"\n[wafer]\nrows = 1\ncolls = 2\n");
        assert_eq!((e.line, e.field.as_str()), (4, "wafer.colls"));
        assert_eq!(e.help.as_deref(), Some("did you mean `cols`?"));
        let e = input_error("name = \"x\"\n[wafer]\nrows = 1\ncols = 2\nzebra = 3\n");
        assert_eq!(e.help, None, "nothing is close to `zebra`");
    }

    #[test]
    fn quoted_numbers_show_the_fix() {
        let e = input_error("name = \"x\"\n[wafer]\nrows = \"7\"\ncols = 2\n");
        assert_eq!(e.field, "wafer.rows");
        assert!(e.help.is_some_and(|h| h.ends_with("rows = 7")));
    }

    #[test]
    fn syntax_errors_name_the_key_of_their_line() {
        let e = input_error("name = \"x\"\n[wafer]\nrows 7\ncols = 2\n");
        assert_eq!((e.line, e.field.as_str()), (3, "wafer.rows"));
        assert!(e.help.is_some_and(|h| h.contains("key = value")));
        let e = input_error("name = \"x\"\n[wafer\nrows = 7\n");
        assert_eq!((e.line, e.field.as_str()), (2, "wafer"));
    }

    #[test]
    fn json_errors_drop_the_repeated_position() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct C {
            hidden_size: u32,
            vocab_size: u32,
        }
        let src = SourceFile::from_text("c.json", "{\n  \"hidden_size\": 8\n}\n");
        let Err(Error::Input(e)) = src.parse_json::<C>() else {
            panic!("expected an input error")
        };
        assert_eq!((e.line, e.field.as_str()), (3, "vocab_size"));
        assert_eq!(e.message, "missing field `vocab_size`");
    }
}

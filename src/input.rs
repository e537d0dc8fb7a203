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
    pub fn parse_toml<T: DeserializeOwned>(&self) -> Result<T, Error> {
        toml::from_str(&self.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let field = field_at(&self.text, span.start).unwrap_or_else(|| "(document)".into());
            self.error_at(span, field, e.message().trim().to_string(), None)
        })
    }

    /// Deserializes the whole file as JSON; an error names its line and field path.
    pub fn parse_json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let de = &mut serde_json::Deserializer::from_str(&self.text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            let offset = offset_of_line_col(&self.text, inner.line(), inner.column());
            self.error_at(offset..offset, field, inner.to_string(), None)
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
}

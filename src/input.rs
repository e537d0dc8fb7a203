//! Reading input files: TOML (and JSON) with errors located to the file, line and field.

mod excerpt;
mod hints;
mod locate;
pub mod ranges;

use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use toml::de::DeTable;

use crate::error::{Error, FieldError, InputError};

pub use excerpt::Excerpt;
use hints::{missing_field, value_help, TOML_SYNTAX_HELP};
use locate::{field_at, key_on_line, locate, locate_quoted_key, offset_of_line_col, split_indices};

/// Largest input file read. Real files are a few kB; the cap keeps a wrong path (a disk image, a
/// log) from being read into memory whole.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// An input file's text, kept so that later checks can point at the offending line.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user gave it (or as resolved relative to an instance file).
    pub path: PathBuf,
    /// The whole text.
    pub text: String,
}

impl SourceFile {
    /// Reads a file, naming it in the error when it cannot be read: a missing file, one that is
    /// not a regular file (a directory, a FIFO, a device such as `/dev/zero`), one larger than
    /// [`MAX_FILE_BYTES`], or one that is not UTF-8 text.
    ///
    /// ```
    /// let err = watos::input::SourceFile::read("no/such/file.toml").unwrap_err();
    /// assert!(err.to_string().contains("no/such/file.toml"));
    /// let err = watos::input::SourceFile::read(env!("CARGO_MANIFEST_DIR")).unwrap_err();
    /// assert!(err.to_string().contains("is a directory"));
    /// ```
    pub fn read(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let fail = |reason: String, help: &str| Error::Io {
            path: path.display().to_string(),
            reason,
            help: Some(help.into()),
        };
        let io = |e: std::io::Error| {
            let help = match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "check the path; paths inside an instance file are relative to that file"
                }
                _ => "check the file's permissions",
            };
            fail(e.to_string(), help)
        };
        // Checked before opening: opening a FIFO blocks until something writes to it.
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_file() {
            return Err(fail(
                format!("is {}, not a regular file", file_kind(&meta)),
                "give the path of a .toml file (or a Hugging Face config.json)",
            ));
        }
        let too_big = |size: String| {
            fail(
                format!("is {size}; input files are read up to {MAX_FILE_BYTES} bytes (16 MiB)"),
                "model, hardware, instance and plan files are a few kB: check the path",
            )
        };
        if meta.len() > MAX_FILE_BYTES {
            return Err(too_big(format!("{} bytes", meta.len())));
        }
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(io)?;
        // The file may have grown since it was measured.
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(too_big("larger than that".into()));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            fail(
                format!(
                    "is not UTF-8 text (byte {} is not valid UTF-8)",
                    e.utf8_error().valid_up_to()
                ),
                "model, hardware, instance and plan files are UTF-8 text",
            )
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
            let help = value_help(&message, split_indices(&key).0, false)
                .or_else(|| self.variants_at::<T>(&span));
            self.error_at(span, field, message, help)
        })
    }

    /// The values an enum field takes, for a value of the wrong type (toml then says only
    /// "wanted string or table"): the text is parsed again with a string in that place, which
    /// serde answers with the list of variants.
    fn variants_at<T: DeserializeOwned>(&self, span: &Range<usize>) -> Option<String> {
        let (before, after) = (self.text.get(..span.start)?, self.text.get(span.end..)?);
        let probe = format!("{before}\"?\"{after}");
        let err = toml::from_str::<T>(&probe).err()?;
        let variants = err
            .message()
            .trim()
            .strip_prefix("unknown variant `?`, expected ")?
            .to_string();
        Some(format!("{variants}, in double quotes"))
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
        let name = self.path.display().to_string();
        let (src, span) = Excerpt::new(name.clone(), &self.text, span);
        Error::Input(Box::new(InputError {
            file: name,
            line,
            field,
            message,
            src,
            span: (span.start, span.end.saturating_sub(span.start)).into(),
            help,
            cause: Vec::new(),
        }))
    }
}

/// What a path names, when it is not a regular file.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a file"
}

/// Deserializes `[[row, col], ...]` checking that every entry has exactly two numbers (serde's
/// fixed-size arrays ignore extra elements in TOML, so `[1, 2, 3]` would be read as `[1, 2]`).
pub(crate) fn pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u32; 2]>, D::Error> {
    Ok(Vec::<Pair>::deserialize(d)?
        .into_iter()
        .map(|p| p.0)
        .collect())
}

/// [`pairs`] for an optional list.
pub(crate) fn optional_pairs<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<[u32; 2]>>, D::Error> {
    Ok(Option::<Vec<Pair>>::deserialize(d)?.map(|v| v.into_iter().map(|p| p.0).collect()))
}

/// `[[[row, col], [row, col]], ...]`: pairs of pairs.
pub(crate) fn pairs_of_pairs<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<[[u32; 2]; 2]>, D::Error> {
    Vec::<PairOf<Pair>>::deserialize(d)
        .map(|v| v.into_iter().map(|p| [p.0[0].0, p.0[1].0]).collect())
}

/// Exactly two numbers.
struct Pair([u32; 2]);

impl<'de> Deserialize<'de> for Pair {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<u32>::deserialize(d)?;
        <[u32; 2]>::try_from(v)
            .map(Pair)
            .map_err(|v| serde::de::Error::invalid_length(v.len(), &"two numbers, [row, col]"))
    }
}

/// Exactly two of `T`.
struct PairOf<T>([T; 2]);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for PairOf<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<T>::deserialize(d)?;
        let n = v.len();
        <[T; 2]>::try_from(v).map(PairOf).map_err(|_| {
            serde::de::Error::invalid_length(n, &"two [row, col] pairs, [[row, col], [row, col]]")
        })
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

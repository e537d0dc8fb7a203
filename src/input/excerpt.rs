//! The text shown under an error: the whole file, except that a very long line (a minified
//! `config.json`) is cut to a window around the error. miette pads the underline to the error's
//! column with a formatting width, and Rust refuses widths above 65,535: without the window an
//! error far along one line would panic while being printed.

use std::ops::Range;

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

/// Lines longer than this (bytes) are shown as a window around the error.
const LONG_LINE: usize = 240;
/// Bytes shown either side of the error on a long line.
const WINDOW: usize = 60;

/// The part of a file an error shows, with where it sits in the file so that miette's
/// `[file:line:column]` stays true.
///
/// ```
/// let text = format!("a = 1\nb = {{ {}c = 2 }}\n", "x = 0, ".repeat(20_000));
/// let at = text.find("c = 2").unwrap();
/// let (excerpt, span) = watos::input::Excerpt::new("f.toml".into(), &text, at..at + 5);
/// assert_eq!(span, at..at + 5);
/// assert!(excerpt.text().len() < 200 && excerpt.text().contains("c = 2"));
/// ```
#[derive(Debug, Clone)]
pub struct Excerpt {
    name: String,
    text: String,
    /// Where `text` starts in the file: byte offset, 0-based line, 0-based column (in bytes, as
    /// miette counts columns).
    offset: usize,
    line: usize,
    column: usize,
}

impl Excerpt {
    /// What to show of `file` under an error at `span` (byte offsets into `file`), and the span
    /// to underline, still in file offsets (clipped to the window on a long line).
    pub fn new(name: String, file: &str, span: Range<usize>) -> (Self, Range<usize>) {
        let start = floor_boundary(file, span.start.min(file.len()));
        let line_start = file[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = file[start..].find('\n').map_or(file.len(), |i| start + i);
        if line_end - line_start <= LONG_LINE {
            let whole = Excerpt {
                name,
                text: file.to_string(),
                offset: 0,
                line: 0,
                column: 0,
            };
            return (whole, span);
        }
        let end = ceil_boundary(file, span.end.clamp(start, line_end).min(start + WINDOW));
        let lo = floor_boundary(file, start.saturating_sub(WINDOW).max(line_start));
        let hi = ceil_boundary(file, (end + WINDOW).min(line_end));
        let window = Excerpt {
            name,
            text: file[lo..hi].to_string(),
            offset: lo,
            line: file[..lo].matches('\n').count(),
            column: lo - line_start,
        };
        (window, start..end)
    }

    /// The text shown.
    pub fn text(&self) -> &str {
        &self.text
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let local = span
            .offset()
            .checked_sub(self.offset)
            .ok_or(MietteError::OutOfBounds)?;
        let inner = self.text.as_str().read_span(
            &SourceSpan::new(local.into(), span.len()),
            context_lines_before,
            context_lines_after,
        )?;
        let column = if inner.line() == 0 {
            inner.column() + self.column
        } else {
            inner.column()
        };
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            SourceSpan::new(
                (inner.span().offset() + self.offset).into(),
                inner.span().len(),
            ),
            inner.line() + self.line,
            column,
            inner.line_count() + self.line,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders a diagnostic at `span` of `text` the way the binary does.
    fn render(text: &str, span: Range<usize>) -> String {
        #[derive(Debug, thiserror::Error, miette::Diagnostic)]
        #[error("bad")]
        struct D {
            #[source_code]
            src: Excerpt,
            #[label("here")]
            span: SourceSpan,
        }
        let (src, span) = Excerpt::new("f.json".into(), text, span);
        let d = D {
            src,
            span: (span.start, span.len()).into(),
        };
        let mut out = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, &d)
            .unwrap();
        out
    }

    #[test]
    fn an_error_far_along_a_long_line_renders_with_its_true_column() {
        let text = format!(
            "{{\"pad\": \"{}\", \"héads\": \"x\"}}\n",
            "é".repeat(70_000)
        );
        let at = text.find("\"x\"").unwrap();
        let out = render(&text, at..at + 3);
        assert!(out.contains(&format!("[f.json:1:{}]", at + 1)), "{out}");
        assert!(
            out.contains("\"héads\": \"x\"") && out.len() < 2_000,
            "{out}"
        );
    }

    #[test]
    fn short_lines_show_the_whole_file() {
        let text = "a = 1\nb = 2\nc = 3\n";
        let out = render(text, 6..11);
        assert!(
            out.contains("[f.json:2:1]") && out.contains("a = 1"),
            "{out}"
        );
    }
}

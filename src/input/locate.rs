//! Finding a field in a file's text: from a dotted path (`stage[1].layers`) to its byte span, and
//! from a byte offset back to the path, so that every error can name its line.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The dotted key written on the line holding byte `offset`, for syntax errors (the document does
/// not parse, so only its text can say which key the broken line was writing): `key = ...` under
/// the nearest `[table]` header above it, or the header itself.
pub(super) fn key_on_line(text: &str, offset: usize) -> Option<String> {
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

pub(super) fn offset_of_line_col(text: &str, line: usize, col: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (start + col.saturating_sub(1)).min(text.len())
}

/// Byte span of a dotted field path (`wafer.rows`, `stage[1].layers`, `faulty_dies[0]`) in a TOML text.
pub(super) fn locate(text: &str, field: &str) -> Option<Range<usize>> {
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
pub(super) fn locate_quoted_key(text: &str, field: &str) -> Option<Range<usize>> {
    let key = split_indices(field.rsplit('.').next()?).0;
    let quoted = format!("\"{key}\"");
    text.find(&quoted).map(|start| start..start + quoted.len())
}

pub(super) fn split_indices(part: &str) -> (&str, Vec<usize>) {
    let key_end = part.find('[').unwrap_or(part.len());
    let indices = part[key_end..]
        .split(['[', ']'])
        .filter_map(|s| s.parse().ok())
        .collect();
    (&part[..key_end], indices)
}

/// The dotted key whose value contains byte `offset` (for errors toml reports by span only).
pub(super) fn field_at(text: &str, offset: usize) -> Option<String> {
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

//! What would be valid, for errors serde reports in its own words: the closest key to a typo, how
//! to write a value of the expected type.

/// Shown with every TOML syntax error: the parser says what it expected at that spot, this says
/// what a line should look like.
pub(super) const TOML_SYNTAX_HELP: &str = "TOML lines are `key = value`: numbers bare (96, 2.0), text in double quotes, arrays in [ ], tables under a [name] header";

/// The key of `missing field `key`` errors.
pub(super) fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next().filter(|k| !k.is_empty())
}

/// What would be valid, for serde's unknown-field and wrong-type messages: the closest expected
/// key (a typo is the usual cause), or how to write a value of the expected type, in TOML or JSON.
pub(super) fn value_help(message: &str, key: &str, json: bool) -> Option<String> {
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
        "a sequence" if json => "a list in square brackets, [a, b, ...]",
        "a sequence" => {
            "a list in square brackets, [a, b, ...] (or [[name]] tables for a list of tables)"
        }
        _ if expected.starts_with("struct ") || expected == "a map" => {
            if json {
                "an object in braces, { \"key\": value, ... }"
            } else {
                "a table: { key = value, ... } or a [name] section"
            }
        }
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

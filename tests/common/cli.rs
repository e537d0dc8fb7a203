//! Running the `watos` binary on scratch files, and reading what it prints.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_watos");

/// A file of the crate (shipped model, hardware or instance), as an absolute path.
pub fn shipped(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .display()
        .to_string()
}

/// The text of a shipped file.
pub fn shipped_text(rel: &str) -> String {
    std::fs::read_to_string(shipped(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `text` with `from` replaced by `to`; fails if `from` is absent, so that a change to the shipped
/// files cannot quietly turn a bad-input test into a good-input one.
pub fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not found in:\n{text}");
    text.replacen(from, to, 1)
}

/// 1-based line of the first line of `text` containing `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not found in:\n{text}"))
        + 1
}

/// A scratch directory the binary runs in, so that files are named as short relative paths.
pub struct Scratch {
    pub dir: TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// Writes `text` to `name` (sub-directories created) and returns `name`.
    pub fn write<'a>(&self, name: &'a str, text: &str) -> &'a str {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create directory");
        }
        std::fs::write(&path, text).expect("write file");
        name
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `watos args...` in this directory.
    pub fn run(&self, args: &[&str]) -> Run {
        run_in(self.dir.path(), args)
    }
}

/// Runs `watos args...` in the crate's directory (for shipped files named relatively).
pub fn run_here(args: &[&str]) -> Run {
    run_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// Runs `watos args...` in `dir`, without colours, and keeps what it printed. Output is a pipe
/// and `COLUMNS` unset, so tables are laid out for 100 columns.
pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    run_with(dir, args, None)
}

/// [`run_in`] with the `COLUMNS` environment variable set to `columns` when given.
pub fn run_with(dir: &Path, args: &[&str], columns: Option<u16>) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("COLUMNS");
    if let Some(c) = columns {
        cmd.env("COLUMNS", c.to_string());
    }
    let out = cmd.output().expect("run watos");
    Run {
        args: args.join(" "),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub struct Run {
    pub args: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stderr as one line: the report wraps long messages at the terminal width and draws a
    /// margin (`×`, `│`) in front of the continuation lines; both are undone here.
    pub fn diagnostic(&self) -> String {
        self.stderr
            .lines()
            .map(|l| l.trim().trim_start_matches(['×', '│']).trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// stdout with its lines joined by spaces, undoing the wrapping of long legends.
    pub fn stdout_unwrapped(&self) -> String {
        self.stdout
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A diagnostic containing every one of `parts`, whatever the exit status.
    pub fn assert_diagnostic(&self, parts: &[&str]) -> &Self {
        let diag = self.diagnostic();
        for part in parts {
            assert!(
                diag.contains(part),
                "missing {part:?} in the diagnostic\n{}",
                self.context()
            );
        }
        self
    }

    pub fn context(&self) -> String {
        format!(
            "watos {}\nexit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "{}", self.context());
        assert!(!self.stderr.contains("panicked"), "{}", self.context());
        self
    }

    /// Exit 2 and a diagnostic containing every one of `parts`.
    pub fn assert_bad_input(&self, parts: &[&str]) -> &Self {
        self.assert_code(2);
        self.assert_diagnostic(parts)
    }

    /// Exit 2 and an error located at `file:line:` on `field`, with every hint.
    pub fn assert_located(&self, file: &str, line: usize, field: &str, hints: &[&str]) -> &Self {
        let head = format!("{file}:{line}: `{field}`:");
        self.assert_bad_input(&[&head]);
        self.assert_bad_input(hints)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.context()))
    }
}

/// The number after `"key": ` in a JSON text, exactly as printed.
pub fn raw_number<'a>(json: &'a str, key: &str) -> &'a str {
    let tag = format!("\"{key}\": ");
    let start = json
        .find(&tag)
        .unwrap_or_else(|| panic!("no {tag} in\n{json}"))
        + tag.len();
    let rest = &json[start..];
    &rest[..rest.find([',', '\n', '}']).unwrap_or(rest.len())]
}

/// The number written right after `prefix` in `text` (e.g. "short by " -> 779.1).
pub fn number_after(text: &str, prefix: &str) -> f64 {
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in\n{text}"))
        + prefix.len();
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {prefix:?} in\n{text}"))
}

pub fn f64_of(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number in {v}"))
}

pub const GPT3: &str = "instances/gpt3-175b-wafer.toml";
pub const LLAMA3: &str = "instances/llama3-70b-wafer.toml";
pub const LLAMA30: &str = "instances/llama-30b-wafer.toml";
pub const CONFIG3: &str = "hardware/wafer-config3.toml";

/// Evaluates GPT-3 on the shipped instance with one file replaced (`--model` or `--hardware`).
pub fn evaluate_with(s: &Scratch, flag: &str, file: &str) -> Run {
    s.run(&[
        "evaluate",
        &shipped(GPT3),
        flag,
        file,
        "--tp",
        "8",
        "--pp",
        "7",
    ])
}

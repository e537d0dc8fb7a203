//! The `watos` command line.

mod bench;
mod compare;
mod evaluate;
mod explore;
mod faults;
mod progress;
mod solve;
mod validate;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::error::{Error, FieldError};
use crate::hardware::{AttentionKernel, Hardware};
use crate::instance::{Instance, Training};
use crate::workload::Model;

pub use progress::Progress;

/// Plans LLM training on wafer-scale chips: parallelism, recomputation, memory placement, and how
/// far the plan can be from the best one.
#[derive(Debug, Parser)]
#[command(name = "watos", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Score one plan: step time and its breakdown, memory per device, MFU, feasibility.
    Evaluate(evaluate::EvaluateArgs),
    /// Find the plan with the smallest step time, with a proven lower bound and gap.
    Solve(solve::SolveArgs),
    /// Solve every shipped instance and report how fast, how close to optimal, and how fast the
    /// evaluator runs.
    Bench(bench::BenchArgs),
    /// Check the evaluator against published measurements of real GPU training runs.
    Validate(validate::ValidateArgs),
    /// Which wafer to build: sweep a design space for one model or a weighted mix.
    Explore(explore::ExploreArgs),
    /// Join the slices of `watos explore --shard I/N` into the report of a single run.
    Merge(explore::MergeArgs),
    /// Solve instances with every strategy (watos and its baselines) and compare them.
    Compare(compare::CompareArgs),
    /// Break random dies or links of a wafer at several rates and compare fault-aware plans with
    /// fault-unaware ones.
    Faults(faults::FaultsArgs),
}

/// Where the instance comes from: a file, flags, or a file with flags overriding it.
#[derive(Debug, Clone, Args)]
pub struct InstanceArgs {
    /// Instance file (model, hardware, training setup). Optional when --model, --hardware,
    /// --batch and --seq are all given.
    pub instance: Option<PathBuf>,
    /// Model file (watos TOML or Hugging Face config.json); replaces the instance's.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Hardware file; replaces the instance's.
    #[arg(long)]
    pub hardware: Option<PathBuf>,
    /// Global batch in sequences; replaces the instance's.
    #[arg(long)]
    pub batch: Option<u32>,
    /// Sequence length in tokens; replaces the instance's.
    #[arg(long)]
    pub seq: Option<u32>,
    /// Attention kernel; replaces the hardware's default.
    #[arg(long, value_enum)]
    pub attention: Option<AttentionArg>,
    /// 16-bit format of weights and activations; replaces the instance's (fp16 adds loss scaling).
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionArg>,
}

/// How results print.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Print one JSON object instead of tables (on failure too: `{"error": {...}}`).
    #[arg(long)]
    pub json: bool,
    /// Every table and column: also each stage's DRAM by category.
    #[arg(long)]
    pub wide: bool,
    /// Print the die map (on a wafer) even when it is wider or longer than the terminal.
    #[arg(long)]
    pub map: bool,
    /// Draw the die map as an SVG picture into this file (on a wafer).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

impl OutputArgs {
    /// The layout of text output at the width of standard output (`verbose`: with the solver's
    /// diagnostics).
    ///
    /// ```
    /// let out = watos::cli::OutputArgs { json: false, wide: true, map: false, svg: None };
    /// let view = out.view(false);
    /// assert!(view.wide && view.width >= 40);
    /// ```
    pub fn view(&self, verbose: bool) -> crate::report::View {
        crate::report::View {
            width: crate::report::View::output_width(),
            wide: self.wide,
            verbose,
            map: self.map,
        }
    }
}

/// Framework rules any strategy can be held to; each adds to the instance's `[limits]`.
#[derive(Debug, Clone, Default, Args)]
pub struct FrameworkArgs {
    /// Nothing parked in other devices' DRAM.
    #[arg(long)]
    pub no_parking: bool,
    /// The tensor degree divides the key/value heads.
    #[arg(long)]
    pub tp_divides_kv_heads: bool,
    /// On a cluster, tensor-parallel groups stay inside a node.
    #[arg(long)]
    pub tp_within_node: bool,
    /// DRAM per device kept free for the framework, in GB; replaces the instance's `reserve_gb`.
    #[arg(long, allow_negative_numbers = true)]
    pub reserve_gb: Option<f64>,
}

impl FrameworkArgs {
    /// The instance with these rules added to its limits; a reserve out of range or leaving no
    /// DRAM is an error naming `--reserve-gb`.
    pub fn apply(&self, mut inst: Instance) -> Result<Instance, Error> {
        let lim = &mut inst.limits;
        lim.no_parking |= self.no_parking;
        lim.tp_divides_kv_heads |= self.tp_divides_kv_heads;
        lim.tp_within_node |= self.tp_within_node;
        if let Some(r) = self.reserve_gb {
            crate::input::ranges::RESERVE_GB
                .check("--reserve-gb", r, "GB per device, e.g. 3")
                .map_err(flag_error)?;
            inst.check_reserve(Some(r)).map_err(|mut e| {
                e.field = "--reserve-gb".into();
                flag_error(e)
            })?;
            inst.limits.reserve_gb = Some(r);
        }
        Ok(inst)
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PrecisionArg {
    Fp16,
    Bf16,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AttentionArg {
    Flash,
    Unfused,
}

impl InstanceArgs {
    /// Loads the instance file (if any) and applies the overrides.
    pub fn load(&self) -> Result<Instance, Error> {
        let mut inst = match &self.instance {
            Some(path) => Some(Instance::load(path)?),
            None => None,
        };
        let model = match (&self.model, &inst) {
            (Some(p), _) => Model::load(p)?,
            (None, Some(i)) => i.model.clone(),
            (None, None) => return Err(missing("--model")),
        };
        let hardware = match (&self.hardware, &inst) {
            (Some(p), _) => Hardware::load(p)?,
            (None, Some(i)) => i.hardware.clone(),
            (None, None) => return Err(missing("--hardware")),
        };
        for (flag, value, range, example) in [
            (
                "--batch",
                self.batch,
                crate::input::ranges::GLOBAL_BATCH,
                "e.g. 512",
            ),
            (
                "--seq",
                self.seq,
                crate::input::ranges::SEQ_LEN,
                "e.g. 2048",
            ),
        ] {
            if let Some(v) = value {
                range.check_count(flag, v, example).map_err(flag_error)?;
            }
        }
        let mut training = match &inst {
            Some(i) => i.training.clone(),
            None => Training {
                global_batch: self.batch.ok_or_else(|| missing("--batch"))?,
                seq_len: self.seq.ok_or_else(|| missing("--seq"))?,
                precision: crate::instance::Precision::Bf16,
                grad_dtype: crate::instance::GradDtype::Fp32,
                optimizer: crate::instance::Optimizer::Adam,
                attention: None,
                execution: None,
            },
        };
        if let Some(b) = self.batch {
            training.global_batch = b;
        }
        if let Some(s) = self.seq {
            training.seq_len = s;
        }
        if let Some(p) = self.precision {
            training.precision = match p {
                PrecisionArg::Fp16 => crate::instance::Precision::Fp16,
                PrecisionArg::Bf16 => crate::instance::Precision::Bf16,
            };
        }
        if let Some(a) = self.attention {
            training.attention = Some(match a {
                AttentionArg::Flash => AttentionKernel::Flash,
                AttentionArg::Unfused => AttentionKernel::Unfused,
            });
        }
        let name = match inst.as_ref() {
            Some(i) if self.model.is_none() && self.hardware.is_none() => i.name.clone(),
            _ => format!("{} on {}", model.name, hardware.name),
        };
        let mut out = Instance::new(name, model, hardware, training)?;
        if let Some(i) = inst.take() {
            out.limits = i.limits;
            out.model_path = if self.model.is_some() {
                self.model.clone()
            } else {
                i.model_path
            };
            out.hardware_path = if self.hardware.is_some() {
                self.hardware.clone()
            } else {
                i.hardware_path
            };
        }
        // What the model file holds that watos does not model is said, never dropped (the JSON
        // output carries it too, as `model_warnings`).
        for w in &out.model.warnings {
            eprintln!("warning: model {}: {w}", out.model.name);
        }
        Ok(out)
    }
}

fn missing(flag: &str) -> Error {
    Error::invalid(
        flag,
        "needed when no instance file is given",
        "give an instance file, or all of --model, --hardware, --batch and --seq",
    )
}

/// A range or consistency failure of a command-line value (`field` is the flag).
pub(crate) fn flag_error(e: FieldError) -> Error {
    Error::invalid(e.field, e.message, e.help)
}

/// Writes `text` to standard output. A reader that has gone away (`watos solve X | head`) is not
/// an error: nobody wants the rest, so it is dropped quietly and the exit status stays the
/// command's own.
pub(crate) fn print(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Write {
            path: "standard output".into(),
            reason: e.to_string(),
            help: None,
        }),
        _ => Ok(()),
    }
}

/// Draws the die map of `plan` into `--svg FILE` when one was given.
pub(crate) fn write_svg(
    output: &OutputArgs,
    inst: &Instance,
    plan: &crate::plan::Plan,
    e: &crate::cost::Evaluation,
) -> Result<(), Error> {
    let Some(path) = &output.svg else {
        return Ok(());
    };
    let text = crate::report::die_map_svg(inst, plan, e)?;
    std::fs::write(path, text).map_err(|err| Error::Write {
        path: path.display().to_string(),
        reason: err.to_string(),
        help: Some("check that the directory exists, is writable and has room".into()),
    })
}

/// A JSON value on standard output, pretty-printed as every `--json` object is.
pub(crate) fn print_json(value: &serde_json::Value) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Solver(format!("cannot write the result as JSON: {e}")))?;
    print(&format!("{text}\n"))
}

/// The first Ctrl-C asks the search to stop and return the best plan so far with its proven gap
/// (status `interrupted`); a second one quits at once.
fn on_ctrl_c() {
    use std::sync::atomic::Ordering;
    // Without a handler Ctrl-C still quits, only without the plan found so far.
    let _ = ctrlc::set_handler(|| {
        if crate::formulation::INTERRUPTED.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
        eprint("\nwatos: stopping with the best plan so far (Ctrl-C again to quit now)\n");
    });
}

/// Writes to standard error, which may be closed too (`2>&-`): nothing else can be done then.
fn eprint(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

impl Command {
    /// Whether the command was asked for JSON.
    fn json(&self) -> bool {
        match self {
            Command::Evaluate(a) => a.output.json,
            Command::Solve(a) => a.output.json,
            Command::Bench(a) => a.json,
            Command::Validate(a) => a.json,
            Command::Explore(a) => a.output.json || a.shard.is_some(),
            Command::Merge(a) => a.output.json,
            Command::Compare(a) => a.json,
            Command::Faults(a) => a.json,
        }
    }
}

/// A command line clap cannot parse: its own message on stderr, and with `--json` the same as an
/// error object on stdout. Help and version requests print as usual.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue};
    // clap prints help and version to stdout and errors to stderr, and reports a closed stream
    // instead of panicking.
    let _ = e.print();
    if !e.use_stderr() {
        return ExitCode::SUCCESS;
    }
    if std::env::args().any(|a| a == "--json") {
        let field = match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(s)) => serde_json::json!(s),
            _ => serde_json::Value::Null,
        };
        let message = e.render().to_string();
        let message = message.lines().next().unwrap_or_default();
        let _ = print_json(&serde_json::json!({ "error": {
            "kind": "usage",
            "file": null,
            "line": null,
            "field": field,
            "message": message.trim_start_matches("error: "),
            "help": "watos --help lists the commands and flags",
        }}));
    }
    ExitCode::from(2)
}

/// Exit status: 0 success, 1 an error not caused by the input, 2 bad input, 3 an infeasible plan
/// or instance ([`Error::exit_code`]). With `--json`, standard output holds exactly one JSON
/// object whatever the status: the result, or `{"error": {...}}`.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let json = cli.command.json();
    on_ctrl_c();
    let result = match cli.command {
        Command::Evaluate(args) => evaluate::run(&args),
        Command::Solve(args) => solve::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Explore(args) => explore::run(&args),
        Command::Merge(args) => explore::merge(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Faults(args) => faults::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if json {
                let _ = print_json(&err.to_json());
            }
            let code = err.exit_code();
            eprint(&format!("{:?}\n", miette::Report::new(err)));
            ExitCode::from(code)
        }
    }
}

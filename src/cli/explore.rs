//! `watos explore`: which wafer to build, for one model or a mix; `watos merge`: the report of a
//! sweep run in slices.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;

use crate::error::Error;
use crate::explore::{self, sweep::Slice, DesignSpace, ExploreOptions, Report, Workload};
use crate::input::{ranges, SourceFile};
use crate::instance::{Instance, Limits, Training};
use crate::workload::Model;

#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// Design space file (hardware/spaces/*.toml).
    pub space: PathBuf,
    /// A model to train: an instance file (its model and training setup; its hardware is
    /// replaced by each design) or a model file (with --batch and --seq). `FILE=WEIGHT` gives its
    /// share of the mix's training FLOPs (default 1). Repeat for a mix.
    #[arg(long = "model", required = true)]
    pub models: Vec<String>,
    /// Global batch in sequences, for model files.
    #[arg(long)]
    pub batch: Option<u32>,
    /// Sequence length in tokens, for model files.
    #[arg(long)]
    pub seq: Option<u32>,
    /// Gap every design the report shows is solved to.
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    pub gap: f64,
    /// Gap the sweep solves designs to.
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    pub coarse_gap: f64,
    /// Pruning tolerance: skip a design whose bound cannot beat the designs solved so far by more
    /// than this share (default: the coarse gap); 0 skips only designs strictly beaten, and makes
    /// `watos merge` of slices equal a single run.
    #[arg(long, allow_negative_numbers = true)]
    pub prune_gap: Option<f64>,
    /// Rows of the best-designs table.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Plans may not recompute activations (every layer keeps its activations).
    #[arg(long)]
    pub no_recompute: bool,
    /// Leave out the sensitivities of the best design.
    #[arg(long)]
    pub no_sensitivity: bool,
    /// Run slice I of N (0-based: the designs whose number is I modulo N) and print its JSON for
    /// `watos merge`.
    #[arg(long)]
    pub shard: Option<String>,
    /// Also write the slice's JSON (for `watos merge`) to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the plots (front.svg, split.svg) into this directory.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Threads (default: every core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// HiGHS random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: i32,
    /// `sweep`: every design solved by the solve engine, pruned by bounds; `mip`: one MIP that
    /// chooses the design and the plan together (small spaces).
    #[arg(long, value_enum, default_value = "sweep")]
    pub method: MethodArg,
    #[command(flatten)]
    pub output: super::OutputArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    Sweep,
    Mip,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The JSON of every slice of one `watos explore --shard I/N` run.
    #[arg(required = true)]
    pub slices: Vec<PathBuf>,
    /// Write the plots (front.svg, split.svg) into this directory.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    #[command(flatten)]
    pub output: super::OutputArgs,
}

/// `I/N` with `I < N`.
fn shard(text: &str) -> Result<[u64; 2], Error> {
    let bad = || {
        Error::invalid(
            "--shard",
            format!("`{text}` is not I/N with 0 <= I < N"),
            "e.g. --shard 0/8 for the first of eight slices (Slurm: $SLURM_ARRAY_TASK_ID/8)",
        )
    };
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (i, n): (u64, u64) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i >= n || n > 1 << 20 {
        return Err(bad());
    }
    Ok([i, n])
}

/// A `--model` argument: `FILE` or `FILE=WEIGHT`, an instance file or a model file.
fn workload(arg: &str, batch: Option<u32>, seq: Option<u32>) -> Result<Workload, Error> {
    let (file, weight) = match arg.rsplit_once('=') {
        Some((f, w)) if !Path::new(arg).exists() => {
            let weight: f64 = w.trim().parse().map_err(|_| {
                Error::invalid(
                    "--model",
                    format!("`{w}` in `{arg}` is not a number"),
                    "FILE=WEIGHT, e.g. models/gpt3-175b.toml=0.5",
                )
            })?;
            ranges::MIX_WEIGHT
                .check("--model", weight, "a share of the mix, e.g. 0.5")
                .map_err(super::flag_error)?;
            (f, weight)
        }
        _ => (arg, 1.0),
    };
    let src = SourceFile::read(file)?;
    let is_instance = toml::from_str::<toml::Table>(&src.text)
        .map(|t| t.contains_key("training"))
        .unwrap_or(false);
    if is_instance {
        let inst = Instance::load(file)?;
        return Ok(Workload {
            name: inst.model.name.clone(),
            model: inst.model,
            training: inst.training,
            limits: inst.limits,
            weight,
            path: Some(file.into()),
        });
    }
    let model = Model::load(file)?;
    let need = |flag: &str| {
        Error::invalid(
            flag,
            format!("`{file}` is a model file, which has no training setup"),
            "give --batch and --seq, or an instance file (instances/*.toml)",
        )
    };
    let training: Training = toml::from_str(&format!(
        "global_batch = {}\nseq_len = {}",
        batch.ok_or_else(|| need("--batch"))?,
        seq.ok_or_else(|| need("--seq"))?
    ))
    .map_err(|e| Error::invalid("--batch", e.to_string(), "e.g. --batch 512 --seq 2048"))?;
    training
        .validate()
        .map_err(|e| Error::invalid(format!("--{}", e.field), e.message, e.help))?;
    Ok(Workload {
        name: model.name.clone(),
        model,
        training,
        limits: Limits::default(),
        weight,
        path: Some(file.into()),
    })
}

/// Prints how far a sweep has got: a bar on a terminal, else a line every few seconds.
struct Display {
    bar: Option<indicatif::ProgressBar>,
    last: Mutex<Instant>,
    quiet: bool,
}

impl Display {
    fn new(quiet: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = (terminal && !quiet).then(|| {
            let b = indicatif::ProgressBar::new(0);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{bar:30}] {pos}/{len} designs {msg} ({elapsed})",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            b
        });
        Display {
            bar,
            last: Mutex::new(Instant::now()),
            quiet,
        }
    }

    fn show(&self, p: explore::sweep::Progress) {
        let msg = format!("{} solved, {} skipped by bound", p.solved, p.pruned);
        if let Some(b) = &self.bar {
            b.set_length(p.total);
            b.set_position(p.decided);
            b.set_message(msg);
        } else if !self.quiet {
            let Ok(mut last) = self.last.lock() else {
                return;
            };
            if last.elapsed() >= Duration::from_secs(5) {
                *last = Instant::now();
                super::eprint(&format!(
                    "explore: {}/{} designs, {msg}\n",
                    p.decided, p.total
                ));
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| Error::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
        help: Some("check that the directory exists, is writable and has room".into()),
    })
}

fn json_text<T: serde::Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string_pretty(v)
        .map(|t| t + "\n")
        .map_err(|e| Error::Solver(format!("cannot write the result as JSON: {e}")))
}

pub fn run(args: &ExploreArgs) -> Result<ExitCode, Error> {
    super::solve::check_search_flags(args.gap, 1)?;
    if !(args.gap..1.0).contains(&args.coarse_gap) {
        return Err(Error::invalid(
            "--coarse-gap",
            format!(
                "{} is not a fraction from --gap ({}) to 1",
                args.coarse_gap, args.gap
            ),
            "e.g. 0.05",
        ));
    }
    let prune_gap = args.prune_gap.unwrap_or(args.coarse_gap);
    if !(0.0..1.0).contains(&prune_gap) {
        return Err(Error::invalid(
            "--prune-gap",
            format!("{prune_gap} is not a fraction from 0 to 1"),
            "e.g. 0.05, or 0 to skip only designs strictly beaten",
        ));
    }
    if !(1..=1000).contains(&args.top) {
        return Err(Error::invalid(
            "--top",
            format!("{} is not from 1 to 1000", args.top),
            "e.g. 10",
        ));
    }
    let shard = match &args.shard {
        Some(s) => shard(s)?,
        None => [0, 1],
    };
    let space = DesignSpace::load(&args.space)?;
    let workloads = args
        .models
        .iter()
        .map(|m| workload(m, args.batch, args.seq))
        .collect::<Result<Vec<_>, _>>()?;
    for w in &workloads {
        for warning in &w.model.warnings {
            super::eprint(&format!("warning: model {}: {warning}\n", w.name));
        }
    }
    let opts = ExploreOptions {
        coarse_gap: args.coarse_gap,
        gap: args.gap,
        prune_gap,
        top: args.top,
        seed: args.seed,
        recompute: !args.no_recompute,
        sensitivity: !args.no_sensitivity,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs.unwrap_or(0))
        .build()
        .map_err(|e| Error::Solver(format!("cannot start threads: {e}")))?;
    if args.method == MethodArg::Mip {
        let [w] = workloads.as_slice() else {
            return Err(Error::invalid(
                "--method",
                "the co-exploration MIP takes one model",
                "give one --model, or --method sweep for a mix",
            ));
        };
        let found = pool.install(|| explore::mip::co_explore(&space, w, &opts))?;
        if args.output.json {
            super::print_json(&serde_json::to_value(&found).unwrap_or_default())?;
        } else {
            super::print(&crate::report::explore::mip_text(
                &space,
                &found,
                &args.output.view(false),
            ))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let display = Display::new(args.output.json && args.shard.is_none());
    let slice =
        pool.install(|| explore::sweep(&space, &workloads, &opts, shard, &|p| display.show(p)));
    display.finish();
    let slice = slice?;
    if let Some(path) = &args.out {
        write(path, &json_text(&slice)?)?;
    }
    if args.shard.is_some() {
        if args.out.is_none() {
            super::print(&json_text(&slice)?)?;
        }
        super::eprint(&format!(
            "slice {}/{}: {} designs, {} solved, {} skipped by bound, {:.1} s\n",
            shard[0],
            shard[1],
            slice.points,
            slice.records.len(),
            slice.run.pruned,
            slice.run.seconds
        ));
        return Ok(ExitCode::SUCCESS);
    }
    // The report of a single run goes through the slice's JSON, as a merge's does.
    let slice: Slice = serde_json::from_str(&json_text(&slice)?)
        .map_err(|e| Error::Solver(format!("reading the sweep back: {e}")))?;
    report(
        Report::from_slices(vec![slice])?,
        args.svg.as_deref(),
        &args.output,
    )
}

pub fn merge(args: &MergeArgs) -> Result<ExitCode, Error> {
    let mut slices = Vec::new();
    for path in &args.slices {
        let src = SourceFile::read(path)?;
        slices.push(src.parse_json::<Slice>()?);
    }
    report(
        Report::from_slices(slices)?,
        args.svg.as_deref(),
        &args.output,
    )
}

fn report(r: Report, svg: Option<&Path>, output: &super::OutputArgs) -> Result<ExitCode, Error> {
    if let Some(dir) = svg {
        std::fs::create_dir_all(dir).map_err(|e| Error::Write {
            path: dir.display().to_string(),
            reason: e.to_string(),
            help: None,
        })?;
        write(&dir.join("front.svg"), &explore::plot::front(&r)?)?;
        write(&dir.join("split.svg"), &explore::plot::split(&r)?)?;
    }
    if output.json {
        super::print_json(&serde_json::to_value(&r).unwrap_or_default())?;
    } else {
        super::print(&crate::report::explore::text(&r, &output.view(false)))?;
    }
    Ok(ExitCode::SUCCESS)
}

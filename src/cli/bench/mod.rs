//! `watos bench`: how fast each formulation solves each instance, how close it gets, and where the
//! time goes. Wall-clock figures, so a report, not a test.
//!
//! Each instance is solved by each formulation in turn, one at a time, so that runs do not share
//! the machine with each other. A run that finds no plan (a limit, an instance nothing fits, an
//! enumeration too large) is a row with its reason, not an error: the series goes on.

mod child;
mod measure;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::error::Error;
use crate::formulation::SolverOptions;
use crate::input::ranges::TIME_LIMIT;
use crate::instance::Instance;
use crate::report::{bench_csv, bench_markdown, bench_table, scaling_svg, PlotSetting, View};

use super::solve::FormulationArg;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Instance files, or directories whose instance files (*.toml, not their subdirectories) are
    /// all solved, in order of their device count. Default: instances/, the shipped instances (each
    /// solves in about a second); the scaling series is instances/scale/.
    #[arg(value_name = "INSTANCE")]
    pub instances: Vec<PathBuf>,
    /// Formulations to run on every instance, each in a solve of its own: decomposition,
    /// monolithic, exhaustive (enumeration; a run it cannot finish within the time limit is
    /// stopped). Repeat the flag or separate names with commas.
    #[arg(
        long = "formulation",
        value_name = "NAME",
        value_enum,
        value_delimiter = ',',
        default_value = "decomposition"
    )]
    pub formulations: Vec<FormulationArg>,
    /// Wall-clock budget of each solve (one instance by one formulation), seconds: the best plan so
    /// far is reported with its gap. Instances' own `time_limit_s` are not used, so that every
    /// instance gets the same budget.
    #[arg(long, default_value_t = 60.0, allow_negative_numbers = true)]
    pub time_limit: f64,
    /// Node limit of each MIP (results repeat exactly, unlike time limits).
    #[arg(long)]
    pub node_limit: Option<u64>,
    /// Proven gap to reach.
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    pub gap: f64,
    /// HiGHS threads.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print a GitHub Markdown table instead (the README's).
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
    /// Every column, however wide the table gets.
    #[arg(long)]
    pub wide: bool,
    /// Also write every figure, one row per instance and formulation, to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Also draw solve time against devices (log-log, one colour per formulation) to this SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

pub fn run(args: &BenchArgs) -> Result<ExitCode, Error> {
    TIME_LIMIT
        .check("--time-limit", args.time_limit, "seconds, e.g. 30")
        .map_err(super::flag_error)?;
    super::solve::check_search_flags(args.gap, args.threads)?;
    // Every file is read before anything is solved: a typo fails now, not after an hour.
    let instances = collect(&args.instances)?;
    let solver = SolverOptions {
        gap: args.gap,
        threads: args.threads,
        time_limit_s: Some(args.time_limit),
        node_limit: args.node_limit,
        ..Default::default()
    };
    let bar = if args.json || args.markdown {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new((instances.len() * args.formulations.len()) as u64)
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{bar:20}] {pos}/{len} runs {msg} ({elapsed})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut rows = Vec::new();
    for (path, inst) in &instances {
        for f in &args.formulations {
            rows.push(measure::run(path, inst, f.name(), &solver, &bar));
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    if let Some(path) = &args.csv {
        write(path, &bench_csv(&rows))?;
    }
    if let Some(path) = &args.svg {
        let setting = PlotSetting {
            gap_target: args.gap,
            time_limit_s: Some(args.time_limit),
            threads: args.threads,
        };
        let svg = scaling_svg(&rows, &setting).map_err(|reason| Error::Write {
            path: path.display().to_string(),
            reason: format!("drawing the plot: {reason}"),
            help: None,
        })?;
        write(path, &svg)?;
    }
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if args.json {
        super::print_json(&json!({
            "instances": rows,
            "logical_cpus": cpus,
            "threads": args.threads,
            "gap_target": args.gap,
            "time_limit_s": args.time_limit,
            "node_limit": args.node_limit,
        }))?;
    } else if args.markdown {
        super::print(&bench_markdown(&rows, args.gap))?;
    } else {
        let view = View {
            width: View::output_width(),
            wide: args.wide,
            ..View::default()
        };
        let machine = format!(
            "Machine: {cpus} logical CPUs; HiGHS threads {}; time limit {} s per solve.",
            args.threads, args.time_limit
        );
        super::print(&format!(
            "{}{}",
            bench_table(&rows, args.gap, &view),
            view.wrap(&machine, "")
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The instances the arguments name, loaded; a directory's in order of their device count (then
/// name), the arguments in their own order.
fn collect(args: &[PathBuf]) -> Result<Vec<(PathBuf, Instance)>, Error> {
    let default = [PathBuf::from("instances")];
    let args = if args.is_empty() { &default[..] } else { args };
    let mut out = Vec::new();
    for arg in args {
        if !arg.is_dir() {
            out.push((arg.clone(), Instance::load(arg)?));
            continue;
        }
        let mut found = Vec::new();
        for path in instance_files(arg)? {
            let inst = Instance::load(&path)?;
            found.push((path, inst));
        }
        if found.is_empty() {
            return Err(Error::invalid(
                "INSTANCE",
                format!("{} holds no instance files (*.toml)", arg.display()),
                "give instance files or directories of them, e.g. instances/scale",
            ));
        }
        found.sort_by(|a, b| {
            let devices = |i: &Instance| i.fabric().healthy_count();
            devices(&a.1).cmp(&devices(&b.1)).then(a.0.cmp(&b.0))
        });
        out.extend(found);
    }
    Ok(out)
}

/// The `*.toml` files directly in `dir`.
fn instance_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Io {
        path: dir.display().to_string(),
        reason: e.to_string(),
        help: Some("give instance files or directories of them, e.g. instances/scale".into()),
    })?;
    Ok(entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect())
}

/// Writes an output file, naming it if that fails.
fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| Error::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
        help: Some("check that the directory exists, is writable and has room".into()),
    })
}

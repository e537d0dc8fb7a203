//! `watos compare`: every instance solved by every strategy, side by side.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::compare::{compare_instance, speedup_means, unknown};
use crate::error::Error;
use crate::formulation::SolverOptions;
use crate::input::ranges::TIME_LIMIT;
use crate::instance::Instance;
use crate::report::View;
use crate::strategy::{self, SearchOptions, Silent};

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Instance files.
    #[arg(required = true)]
    pub instances: Vec<PathBuf>,
    /// Strategies, comma-separated (default: watos and every baseline there is: megatron,
    /// gpu-node). watos's speed-ups are over each of the others.
    #[arg(long, value_delimiter = ',')]
    pub strategies: Option<Vec<String>>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also draw the throughputs as grouped bars into this SVG file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Proven gap each search stops at (0.01 = 1%).
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    pub gap: f64,
    /// HiGHS threads.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// Wall-clock budget of each search in seconds (default: the instance's `time_limit_s`, else
    /// 60 s, as `watos solve`).
    #[arg(long, allow_negative_numbers = true)]
    pub time_limit: Option<f64>,
    #[command(flatten)]
    pub framework: super::FrameworkArgs,
}

/// The strategies to run: as given (each known, each once), or the default list.
fn strategy_names(given: Option<&[String]>) -> Result<Vec<String>, Error> {
    let Some(given) = given else {
        return Ok(strategy::COMPARED
            .iter()
            .filter(|n| strategy::by_name(n).is_some())
            .map(|n| n.to_string())
            .collect());
    };
    let mut names: Vec<String> = Vec::new();
    for n in given.iter().map(|n| n.trim()) {
        if strategy::by_name(n).is_none() {
            return Err(unknown(n));
        }
        if !names.iter().any(|m| m == n) {
            names.push(n.to_string());
        }
    }
    if names.is_empty() {
        return Err(Error::invalid(
            "--strategies",
            "no strategy given",
            format!(
                "e.g. --strategies watos,megatron; known: {}",
                strategy::NAMES.join(", ")
            ),
        ));
    }
    Ok(names)
}

pub fn run(args: &CompareArgs) -> Result<ExitCode, Error> {
    super::solve::check_search_flags(args.gap, args.threads)?;
    if let Some(t) = args.time_limit {
        TIME_LIMIT
            .check("--time-limit", t, "seconds, e.g. 60")
            .map_err(super::flag_error)?;
    }
    let names = strategy_names(args.strategies.as_deref())?;
    let instances: Vec<Instance> = args
        .instances
        .iter()
        .map(|p| args.framework.apply(Instance::load(p)?))
        .collect::<Result<_, _>>()?;
    let bar = super::Progress::new(!args.json);
    {
        use crate::strategy::Observer;
        bar.start((instances.len() * names.len()) as u64, "solves");
    }
    let mut all = Vec::new();
    for inst in &instances {
        let opts = SearchOptions {
            solver: SolverOptions {
                gap: args.gap,
                threads: args.threads,
                time_limit_s: Some(
                    args.time_limit
                        .or(inst.limits.time_limit_s)
                        .unwrap_or(super::solve::DEFAULT_TIME_LIMIT_S),
                ),
                ..Default::default()
            },
            local_search: true,
        };
        bar.0.set_message(inst.name.clone());
        all.push(compare_instance(inst, &names, &opts, &Silent, &|_| {
            bar.0.inc(1)
        })?);
    }
    bar.0.finish_and_clear();
    let means = speedup_means(&all);
    if let Some(path) = &args.svg {
        let svg = crate::report::comparison_svg(&all, &names).map_err(|reason| Error::Write {
            path: path.display().to_string(),
            reason,
            help: None,
        })?;
        std::fs::write(path, svg).map_err(|e| Error::Write {
            path: path.display().to_string(),
            reason: e.to_string(),
            help: Some("check that the directory exists, is writable and has room".into()),
        })?;
    }
    if args.json {
        super::print_json(&crate::report::comparison_json(&all, &means))?;
    } else {
        let view = View {
            width: View::output_width(),
            ..View::default()
        };
        super::print(&crate::report::comparison_text(&all, &means, &view))?;
    }
    Ok(ExitCode::SUCCESS)
}

//! `watos faults`: how much throughput fault-aware planning keeps as dies or links break.

use std::process::ExitCode;

use clap::Args;

use crate::error::Error;
use crate::formulation::SolverOptions;
use crate::input::ranges::TIME_LIMIT;
use crate::strategy::faults::{sweep, FaultKind};
use crate::strategy::{Observer, SearchOptions};

use super::{InstanceArgs, Progress};

#[derive(Debug, Args)]
pub struct FaultsArgs {
    #[command(flatten)]
    pub instance: InstanceArgs,
    /// Fractions of the dies (or links) made faulty, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,0.05,0.1,0.2,0.3",
        allow_negative_numbers = true
    )]
    pub rates: Vec<f64>,
    /// Random fault patterns per rate (seeds 0 to N - 1).
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// What breaks: dies, links, or both (each its own rows).
    #[arg(long, value_enum, default_value = "both")]
    pub kind: KindArg,
    /// Wall-clock budget of each solve in seconds (the best plan so far is kept).
    #[arg(long, default_value_t = 60.0, allow_negative_numbers = true)]
    pub time_limit: f64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    Dies,
    Links,
    Both,
}

pub fn run(args: &FaultsArgs) -> Result<ExitCode, Error> {
    for (i, r) in args.rates.iter().enumerate() {
        if !(0.0..1.0).contains(r) {
            return Err(Error::invalid(
                "--rates",
                format!("rate {} ({r}) is not a fraction in [0, 1)", i + 1),
                "e.g. --rates 0,0.05,0.1,0.2,0.3",
            ));
        }
    }
    if !(1..=1000).contains(&args.seeds) {
        return Err(Error::invalid(
            "--seeds",
            format!("{} is not from 1 to 1000", args.seeds),
            "e.g. --seeds 3",
        ));
    }
    TIME_LIMIT
        .check(
            "--time-limit",
            args.time_limit,
            "seconds per solve, e.g. 60",
        )
        .map_err(super::flag_error)?;
    let inst = args.instance.load()?;
    let kinds: &[FaultKind] = match args.kind {
        KindArg::Dies => &[FaultKind::Dies],
        KindArg::Links => &[FaultKind::Links],
        KindArg::Both => &FaultKind::ALL,
    };
    let opts = SearchOptions {
        solver: SolverOptions {
            time_limit_s: Some(args.time_limit),
            ..SolverOptions::default()
        },
        local_search: true,
    };
    let progress = Progress::counting(!args.json);
    progress.start(
        kinds.len() as u64 * args.rates.len() as u64 * args.seeds,
        "fault patterns",
    );
    let result = sweep(&inst, kinds, &args.rates, args.seeds, &opts, &|| {
        progress.advance(1)
    });
    progress.finish();
    let s = result?;
    if args.json {
        super::print_json(&crate::report::faults_json(&s))?;
    } else {
        let view = crate::report::View {
            width: crate::report::View::output_width(),
            ..Default::default()
        };
        super::print(&crate::report::faults_text(&s, &view))?;
    }
    Ok(ExitCode::SUCCESS)
}

//! `watos solve`: the best plan with a proven bound.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::error::Error;
use crate::formulation::SolverOptions;
use crate::input::ranges::TIME_LIMIT;
use crate::strategy::megatron::args::arguments;
use crate::strategy::{self, SearchOptions};
use crate::units::GB;

use super::{InstanceArgs, Progress};

/// `watos solve`'s wall-clock budget when neither `--time-limit` nor the instance sets one.
pub const DEFAULT_TIME_LIMIT_S: f64 = 60.0;

#[derive(Debug, Args)]
pub struct SolveArgs {
    #[command(flatten)]
    pub instance: InstanceArgs,
    /// Wall-clock budget in seconds; the best plan found so far is returned with its proven gap
    /// (so does Ctrl-C). Default: the instance's `time_limit_s`, else 60.
    #[arg(long, allow_negative_numbers = true)]
    pub time_limit: Option<f64>,
    /// Stop once the plan is proven within this relative gap of optimal (0.01 = 1%).
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    pub gap: f64,
    /// HiGHS threads.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// Node limit per configuration's MIP (results repeat exactly, unlike time limits).
    #[arg(long)]
    pub node_limit: Option<u64>,
    /// HiGHS random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: i32,
    /// Enumerate the whole space instead (small instances only); the same as
    /// `--formulation exhaustive`.
    #[arg(long, conflicts_with = "formulation")]
    pub exhaustive: bool,
    /// The strategy: `watos` (the default, the decomposition), one of watos's formulations, or a
    /// baseline: `megatron` (Megatron-LM's rules; on a GPU cluster with the arguments that run
    /// the plan) or `gpu-node` (megatron on 8 Blackwell Ultra GPUs with the memory of the
    /// instance's hardware).
    #[arg(long, conflicts_with_all = ["formulation", "exhaustive"])]
    pub strategy: Option<String>,
    /// `decomposition`: branch-and-bound over configurations with one MIP each (fast);
    /// `monolithic`: one MIP choosing among configurations, for comparison; `exhaustive`: every
    /// plan enumerated (small instances).
    #[arg(long, value_enum, default_value = "decomposition")]
    pub formulation: FormulationArg,
    /// Keep the MIP's plan as it is (no evaluator-scored refinement).
    #[arg(long)]
    pub no_local_search: bool,
    /// Write the plan (with its placement) to this TOML file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub framework: super::FrameworkArgs,
    #[command(flatten)]
    pub output: super::OutputArgs,
    /// Also the solver's internal figures (diagnostics): the MIP's objective, nodes, relaxations.
    #[arg(long)]
    pub verbose: bool,
}

/// The gap target and thread count, as `solve` and `bench` take them.
pub(super) fn check_search_flags(gap: f64, threads: u32) -> Result<(), Error> {
    if !(0.0..1.0).contains(&gap) {
        return Err(Error::invalid(
            "--gap",
            format!("{gap} is not a fraction in [0, 1)"),
            "e.g. 0.01 for 1%",
        ));
    }
    if !(1..=1024).contains(&threads) {
        return Err(Error::invalid(
            "--threads",
            format!("{threads} is not from 1 to 1024"),
            "e.g. 1 or 2",
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormulationArg {
    Decomposition,
    Monolithic,
    Exhaustive,
}

impl FormulationArg {
    /// The strategy's name (`strategy::NAMES`).
    pub fn name(self) -> &'static str {
        match self {
            FormulationArg::Decomposition => "decomposition",
            FormulationArg::Monolithic => "monolithic",
            FormulationArg::Exhaustive => "exhaustive",
        }
    }
}

pub fn run(args: &SolveArgs) -> Result<ExitCode, Error> {
    if let Some(t) = args.time_limit {
        TIME_LIMIT
            .check("--time-limit", t, "seconds, e.g. 60")
            .map_err(super::flag_error)?;
    }
    check_search_flags(args.gap, args.threads)?;
    let inst = args.framework.apply(args.instance.load()?)?;
    let solver = SolverOptions {
        gap: args.gap,
        threads: args.threads,
        time_limit_s: Some(
            args.time_limit
                .or(inst.limits.time_limit_s)
                .unwrap_or(DEFAULT_TIME_LIMIT_S),
        ),
        node_limit: args.node_limit,
        seed: args.seed,
        ..Default::default()
    };
    let (flag, name) = match (&args.strategy, args.exhaustive) {
        (Some(s), _) => ("--strategy", s.as_str()),
        (None, true) => ("--exhaustive", "exhaustive"),
        (None, false) => ("--formulation", args.formulation.name()),
    };
    let chosen = strategy::by_name(name).ok_or_else(|| {
        Error::invalid(
            flag,
            format!("no strategy `{name}`"),
            format!("known: {}", strategy::NAMES.join(", ")),
        )
    })?;
    let opts = SearchOptions {
        solver,
        local_search: !args.no_local_search,
    };
    let progress = Progress::new(!args.output.json);
    let strategy::Outcome {
        instance: inst,
        solution: mut sol,
    } = strategy::run(chosen.as_ref(), &inst, &opts, &progress)?;
    let launch = inst
        .hardware
        .cluster
        .is_some()
        .then(|| arguments(&sol.plan, &inst))
        .flatten();
    sol.plan
        .pin_placement(inst.fabric())
        .map_err(crate::cost::plan_error)?;
    if let Some(path) = &args.out {
        std::fs::write(
            path,
            format!(
                "# watos solve: {}\n# step time {} s (evaluated), lower bound {} s, gap {:.4}\n{}",
                inst.name,
                sol.evaluation.step_time_s,
                sol.lower_bound_s,
                sol.gap,
                sol.plan.to_toml()?
            ),
        )
        .map_err(|e| Error::Write {
            path: path.display().to_string(),
            reason: e.to_string(),
            help: Some("check that the directory exists, is writable and has room".into()),
        })?;
    }
    super::write_svg(&args.output, &inst, &sol.plan, &sol.evaluation)?;
    if args.output.json {
        let mut v = crate::report::solution_json(&inst, &sol);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("strategy".into(), json!(name));
            obj.insert("reserve_gb".into(), json!(inst.reserved_bytes / GB));
            obj.insert("megatron".into(), json!(launch));
        }
        super::print_json(&v)?;
    } else {
        let view = args.output.view(args.verbose);
        let mut text = crate::report::solution_text(&inst, &sol, &view);
        text.push_str(&crate::report::strategy_text(
            name,
            chosen.space(),
            &inst,
            launch.as_ref(),
            &view,
        ));
        super::print(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}

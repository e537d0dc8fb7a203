//! `watos bench`: the solver's speed and proof on every shipped instance, and the evaluator's
//! throughput. Wall-clock figures, so a report, not a test.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::Serialize;

use crate::cost::{evaluate_with, ConfigCosts};
use crate::error::Error;
use crate::formulation::SolverOptions;
use crate::instance::Instance;
use crate::plan::Config;
use crate::report::fmt_s;
use crate::strategy::{self, SearchOptions};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Directory of instance files to solve.
    #[arg(long, default_value = "instances")]
    pub instances: PathBuf,
    /// Proven gap to reach.
    #[arg(long, default_value_t = 0.01)]
    pub gap: f64,
    /// HiGHS threads.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One instance's figures.
#[derive(Debug, Serialize)]
pub struct BenchRow {
    pub instance: String,
    pub plan: String,
    pub step_time_s: f64,
    pub lower_bound_s: f64,
    pub gap: f64,
    pub status: String,
    pub solve_time_s: f64,
    pub mips_solved: usize,
    pub configurations: usize,
    /// Mean wall time of one evaluation of the solved plan.
    pub evaluate_s: f64,
}

pub fn run(args: &BenchArgs) -> Result<ExitCode, Error> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.instances)
        .map_err(|e| Error::Io {
            path: args.instances.display().to_string(),
            reason: e.to_string(),
            help: Some("give --instances a directory of instance .toml files".into()),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let bar = super::Progress::new(!args.json);
    {
        use crate::strategy::Observer;
        bar.start(files.len() as u64, "instances");
    }
    let mut rows = Vec::new();
    for path in &files {
        bar.0.set_message(path.display().to_string());
        let inst = Instance::load(path)?;
        let opts = SearchOptions {
            solver: SolverOptions {
                gap: args.gap,
                threads: args.threads,
                ..Default::default()
            },
            local_search: true,
        };
        let sol = strategy::solve(&inst, &opts)?;
        let costs = ConfigCosts::new(&inst, Config::of(&sol.plan));
        let placement = sol
            .plan
            .placement(inst.fabric())
            .map_err(crate::cost::plan_error)?;
        let reps = 200;
        let start = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(evaluate_with(&inst, &sol.plan, &costs, &placement));
        }
        rows.push(BenchRow {
            instance: inst.name.clone(),
            plan: sol.plan.to_string(),
            step_time_s: sol.evaluation.step_time_s,
            lower_bound_s: sol.lower_bound_s,
            gap: sol.gap,
            status: sol.status.to_string(),
            solve_time_s: sol.solve_time_s,
            mips_solved: sol.configs.solved,
            configurations: sol.configs.total,
            evaluate_s: start.elapsed().as_secs_f64() / reps as f64,
        });
        bar.0.inc(1);
    }
    bar.0.finish_and_clear();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
    } else {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_header(vec![
            "instance",
            "plan",
            "step time",
            "lower bound",
            "gap",
            "status",
            "solve time",
            "MIPs / configurations",
            "one evaluation",
        ]);
        for r in &rows {
            t.add_row(vec![
                r.instance.clone(),
                r.plan.clone(),
                fmt_s(r.step_time_s),
                fmt_s(r.lower_bound_s),
                format!("{:.2}%", 100.0 * r.gap),
                r.status.clone(),
                fmt_s(r.solve_time_s),
                format!("{} / {}", r.mips_solved, r.configurations),
                fmt_s(r.evaluate_s),
            ]);
        }
        println!("{t}");
        println!(
            "machine: {} logical CPUs; HiGHS threads {}; gap target {:.2}%",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            args.threads,
            100.0 * args.gap
        );
    }
    Ok(ExitCode::SUCCESS)
}

//! `watos bench`: the solver's speed and proof on every shipped instance, and the evaluator's
//! throughput. Wall-clock figures, so a report, not a test.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use comfy_table::{Cell, CellAlignment, ColumnConstraint, ContentArrangement, Width};
use serde::Serialize;
use serde_json::json;

use crate::cost::{evaluate_with, ConfigCosts};
use crate::error::Error;
use crate::formulation::SolverOptions;
use crate::instance::Instance;
use crate::plan::Config;
use crate::report::{fmt_gap, fmt_s, View};
use crate::strategy::{self, SearchOptions};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Directory of instance files to solve.
    #[arg(long, default_value = "instances")]
    pub instances: PathBuf,
    /// Proven gap to reach.
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    pub gap: f64,
    /// HiGHS threads.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Every column: also the lower bound and the MIPs solved.
    #[arg(long)]
    pub wide: bool,
}

/// One instance's figures.
#[derive(Debug, Serialize)]
pub struct BenchRow {
    /// The instance file's name, without `.toml`.
    pub file: String,
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
    super::solve::check_search_flags(args.gap, args.threads)?;
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
    if files.is_empty() {
        return Err(Error::invalid(
            "--instances",
            format!(
                "{} holds no instance files (*.toml)",
                args.instances.display()
            ),
            "give a directory of instance files, e.g. instances/",
        ));
    }
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
            file: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
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
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if args.json {
        return super::print_json(&json!({
            "instances": rows,
            "logical_cpus": cpus,
            "threads": args.threads,
            "gap_target": args.gap,
        }))
        .map(|()| ExitCode::SUCCESS);
    }
    let view = View {
        width: View::output_width(),
        wide: args.wide,
        ..View::default()
    };
    let mut t = view.table();
    let mut header = vec![
        "instance",
        "plan",
        "step time",
        "gap",
        "status",
        "solve\ntime",
    ];
    if args.wide {
        header.extend(["lower\nbound", "MIPs /\nconfigs", "one\nevaluation"]);
    }
    t.set_header(header);
    for r in &rows {
        let mut row = vec![
            Cell::new(&r.file),
            Cell::new(&r.plan),
            right(fmt_s(r.step_time_s)),
            right(fmt_gap(r.gap)),
            Cell::new(&r.status),
            right(fmt_s(r.solve_time_s)),
        ];
        if args.wide {
            row.extend([
                right(fmt_s(r.lower_bound_s)),
                right(format!("{} / {}", r.mips_solved, r.configurations)),
                right(fmt_s(r.evaluate_s)),
            ]);
        }
        t.add_row(row);
    }
    View::keep_whole(&mut t, 2..9);
    // Wide enough for "sequence-parallel" whole (the width counts the padding).
    if let Some(c) = t.column_mut(1) {
        c.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(19)));
    }
    if args.wide {
        // Every column was asked for: as wide as they need.
        t.set_content_arrangement(ContentArrangement::Disabled);
    }
    let mut legend = format!(
        "Machine: {cpus} logical CPUs; HiGHS threads {}; gap target {}.",
        args.threads,
        fmt_gap(args.gap)
    );
    legend.push_str(if args.wide {
        " MIPs / configs: configurations solved as a MIP, of all enumerated. One evaluation: the evaluator's mean time on the solved plan."
    } else {
        " --wide: the lower bound, the MIPs solved and the evaluator's speed."
    });
    super::print(&format!("{t}\n{}", view.wrap(&legend, "")))?;
    Ok(ExitCode::SUCCESS)
}

fn right(text: String) -> Cell {
    Cell::new(text).set_alignment(CellAlignment::Right)
}

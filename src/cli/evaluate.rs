//! `watos evaluate`: score one plan.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::cost::evaluate;
use crate::error::{Error, FieldError};
use crate::plan::Plan;
use crate::plan::Recompute;

use super::InstanceArgs;

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub instance: InstanceArgs,
    /// Plan file (as written by `watos solve --out`).
    #[arg(long, conflicts_with_all = ["dp", "tp", "pp", "micro_batch", "recompute", "sequence_parallel", "interleave", "zero1", "dp_overlap"])]
    pub plan: Option<PathBuf>,
    /// Data-parallel degree.
    #[arg(long)]
    pub dp: Option<u32>,
    /// Tensor-parallel degree.
    #[arg(long)]
    pub tp: Option<u32>,
    /// Pipeline-parallel degree (layers split as evenly as possible).
    #[arg(long)]
    pub pp: Option<u32>,
    /// Micro-batch size in sequences.
    #[arg(long)]
    pub micro_batch: Option<u32>,
    /// Recomputation for every layer.
    #[arg(long, value_enum)]
    pub recompute: Option<RecomputeArg>,
    /// Sequence parallelism (Korthikanti et al.).
    #[arg(long)]
    pub sequence_parallel: bool,
    /// Interleaved 1F1B with this many model chunks per device.
    #[arg(long)]
    pub interleave: Option<u32>,
    /// Shard optimizer state over data-parallel replicas (ZeRO-1).
    #[arg(long)]
    pub zero1: bool,
    /// Overlap the gradient all-reduce with the last micro-batch's backward pass (PyTorch DDP).
    #[arg(long)]
    pub dp_overlap: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RecomputeArg {
    None,
    Selective,
    Full,
}

impl From<RecomputeArg> for Recompute {
    fn from(r: RecomputeArg) -> Self {
        match r {
            RecomputeArg::None => Recompute::None,
            RecomputeArg::Selective => Recompute::Selective,
            RecomputeArg::Full => Recompute::Full,
        }
    }
}

/// A plan field named the way the command line spells it.
fn flag_error(e: FieldError) -> Error {
    let flag = match e.field.split(['.', '[']).next().unwrap_or("") {
        "dp" => "--dp",
        "tp" => "--tp",
        "pp" | "stage" => "--pp",
        "micro_batch" => "--micro-batch",
        "interleave" => "--interleave",
        _ => "the plan",
    };
    Error::invalid(flag, e.message, e.help)
}

pub fn run(args: &EvaluateArgs) -> Result<ExitCode, Error> {
    let inst = args.instance.load()?;
    let plan = match &args.plan {
        Some(path) => Plan::load(path, &inst)?,
        None => {
            let mut plan = Plan::uniform(
                inst.model.layers,
                args.dp.unwrap_or(1),
                args.tp.unwrap_or(1),
                args.pp.unwrap_or(1).min(inst.model.layers.max(1)),
                args.micro_batch.unwrap_or(1),
                args.recompute
                    .map(Recompute::from)
                    .unwrap_or(Recompute::None),
            );
            if let Some(pp) = args.pp {
                plan.pp = pp;
            }
            plan.sequence_parallel = args.sequence_parallel;
            plan.interleave = args.interleave.unwrap_or(1);
            plan.zero1 = args.zero1;
            plan.dp_overlap = args.dp_overlap;
            plan.check(&inst).map_err(flag_error)?;
            plan
        }
    };
    let eval = evaluate(&inst, &plan)?;
    if args.json {
        println!("{}", crate::report::evaluation_json(&inst, &plan, &eval));
    } else {
        print!("{}", crate::report::evaluation_text(&inst, &plan, &eval));
    }
    Ok(if eval.feasible {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

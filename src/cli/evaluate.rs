//! `watos evaluate`: score one plan.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::cost::evaluate;
use crate::error::{Error, FieldError};
use crate::instance::Instance;
use crate::plan::Plan;
use crate::plan::Recompute;

use super::InstanceArgs;

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub instance: InstanceArgs,
    /// Plan file (as written by `watos solve --out`).
    #[arg(long, conflicts_with_all = ["dp", "ep", "tp", "pp", "micro_batch", "recompute", "sequence_parallel", "interleave", "zero1", "dp_overlap"])]
    pub plan: Option<PathBuf>,
    /// Data-parallel degree.
    #[arg(long)]
    pub dp: Option<u32>,
    /// Expert-parallel degree: MoE layers' routed experts split over groups of this many
    /// data-parallel replicas (divides --dp and the experts).
    #[arg(long)]
    pub ep: Option<u32>,
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
    #[command(flatten)]
    pub output: super::OutputArgs,
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
fn flag_error(e: FieldError, plan: &Plan) -> Error {
    let flag = match e.field.split(['.', '[']).next().unwrap_or("") {
        "dp" => "--dp",
        "ep" => "--ep",
        "tp" => "--tp",
        "micro_batch" => "--micro-batch",
        "interleave" => "--interleave",
        // Stage layers that do not split into interleaved chunks.
        "stage" if plan.interleave > 1 => "--interleave",
        "pp" | "stage" => "--pp",
        _ => "the plan",
    };
    Error::invalid(flag, e.message, e.help)
}

impl EvaluateArgs {
    /// Whether any flag describing a plan was given.
    fn has_plan_flags(&self) -> bool {
        self.dp.is_some()
            || self.ep.is_some()
            || self.tp.is_some()
            || self.pp.is_some()
            || self.micro_batch.is_some()
            || self.recompute.is_some()
            || self.interleave.is_some()
            || self.sequence_parallel
            || self.zero1
            || self.dp_overlap
    }

    /// The plan the flags describe: unset degrees are 1, layers split as evenly as possible.
    fn plan_from_flags(&self, inst: &Instance) -> Result<Plan, Error> {
        let layers = inst.model.layers;
        let (dp, tp, pp) = (
            self.dp.unwrap_or(1),
            self.tp.unwrap_or(1),
            self.pp.unwrap_or(1),
        );
        if pp > layers {
            return Err(Error::invalid(
                "--pp",
                format!(
                    "{pp} is more than the {layers} layers of {}",
                    inst.model.name
                ),
                format!("at most {layers}: every pipeline stage holds at least one layer"),
            ));
        }
        let devices = u64::from(dp) * u64::from(tp) * u64::from(pp);
        let healthy = inst.fabric().healthy_count();
        if devices > u64::from(healthy) {
            let given: Vec<String> = [("--dp", self.dp), ("--tp", self.tp), ("--pp", self.pp)]
                .into_iter()
                .filter_map(|(flag, v)| v.map(|v| format!("{flag} {v}")))
                .collect();
            return Err(Error::invalid(
                given.join(" x "),
                format!(
                    "dp {dp} x tp {tp} x pp {pp} = {devices} devices, but {} has {healthy} healthy",
                    inst.hardware.name
                ),
                format!("use at most {healthy} devices (unset degrees are 1)"),
            ));
        }
        let mut plan = Plan::uniform(
            layers,
            dp,
            tp,
            pp,
            self.micro_batch.unwrap_or(1),
            self.recompute
                .map(Recompute::from)
                .unwrap_or(Recompute::None),
        );
        plan.ep = self.ep.unwrap_or(1);
        plan.sequence_parallel = self.sequence_parallel;
        plan.interleave = self.interleave.unwrap_or(1);
        plan.zero1 = self.zero1;
        plan.dp_overlap = self.dp_overlap;
        plan.check(inst).map_err(|e| flag_error(e, &plan))?;
        Ok(plan)
    }
}

/// Flags a plan can be given with, for the request when none is.
const PLAN_FLAGS: &str = "give a plan: --plan PLAN.toml (as `watos solve --out` writes it), or its degrees --dp D --tp T --pp P (unset ones are 1) with --ep E (expert parallelism), --micro-batch B, --recompute none|selective|full, --sequence-parallel, --interleave V, --zero1, --dp-overlap; `watos solve INSTANCE` finds the best plan";

pub fn run(args: &EvaluateArgs) -> Result<ExitCode, Error> {
    let inst = args.instance.load()?;
    let plan = match &args.plan {
        Some(path) => Plan::load(path, &inst)?,
        None if !args.has_plan_flags() => {
            return Err(Error::invalid(
                "evaluate",
                "needs a plan to score",
                PLAN_FLAGS,
            ))
        }
        None => args.plan_from_flags(&inst)?,
    };
    let eval = evaluate(&inst, &plan)?;
    super::write_svg(&args.output, &inst, &plan, &eval)?;
    if args.output.json {
        super::print_json(&crate::report::evaluation_json(&inst, &plan, &eval))?;
    } else {
        super::print(&crate::report::evaluation_text(
            &inst,
            &plan,
            &eval,
            &args.output.view(false),
        ))?;
    }
    Ok(if eval.feasible {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

//! The Megatron-LM command-line arguments that run a plan (NVIDIA/Megatron-LM,
//! `megatron/training/arguments.py`).

use serde::Serialize;

use crate::hardware::Fabric;
use crate::instance::Instance;
use crate::plan::{Plan, Recompute, Stage, WeightSource};

/// How to launch a plan with Megatron-LM: `world_size` processes (one per device; the
/// data-parallel degree is `world_size / (tensor x pipeline)`), each given `args`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Launch {
    pub world_size: u64,
    /// One argument per entry, flags and their values apart (as a shell would split them).
    pub args: Vec<String>,
}

impl Launch {
    /// The arguments as one line.
    pub fn line(&self) -> String {
        self.args.join(" ")
    }
}

/// The one recomputation mode of every layer of the plan, if there is one.
fn single_mode(plan: &Plan) -> Option<Recompute> {
    let layers: u64 = plan.stages.iter().map(|s| u64::from(s.layers)).sum();
    Recompute::ALL.into_iter().find(|r| {
        plan.stages
            .iter()
            .map(|s| u64::from(s.mode_totals().get(*r)))
            .sum::<u64>()
            == layers
    })
}

/// The Megatron-LM arguments of a plan, or `None` if Megatron-LM cannot run it: something
/// parked, weights held in SRAM, recomputation that differs between layers, stages that are not
/// equal but for the first and last, virtual stages that do not divide a stage, or devices
/// other than Megatron's rank order.
///
/// ```
/// use watos::{Hardware, Instance, Model, Plan, plan::Recompute, strategy::megatron::args::arguments};
/// let dir = env!("CARGO_MANIFEST_DIR");
/// let model = Model::load(format!("{dir}/models/gpt3-175b.toml")).unwrap();
/// let hw = Hardware::load(format!("{dir}/hardware/dgx-h100-80gb.toml")).unwrap();
/// let training = toml::from_str("global_batch = 512\nseq_len = 2048").unwrap();
/// let inst = Instance::new("GPT-3 on H100", model, hw, training).unwrap();
/// let mut plan = Plan::uniform(96, 1, 8, 7, 2, Recompute::Selective);
/// plan.sequence_parallel = true;
/// let l = arguments(&plan, &inst).unwrap();
/// assert_eq!(l.world_size, 56);
/// assert!(l.line().starts_with("--tensor-model-parallel-size 8 --pipeline-model-parallel-size 7 --decoder-first-pipeline-num-layers 13 --decoder-last-pipeline-num-layers 13"));
/// assert!(l.line().ends_with("--recompute-granularity selective --sequence-parallel"));
/// ```
pub fn arguments(plan: &Plan, inst: &Instance) -> Option<Launch> {
    let parks = plan.stages.iter().any(|s| !s.park.is_empty());
    let sram = plan.stages.iter().any(|s| s.weights == WeightSource::Sram);
    if parks || sram || !rank_order(plan, inst.fabric()) {
        return None;
    }
    let mode = single_mode(plan)?;
    let n: Vec<u32> = plan.stages.iter().map(|s| s.layers).collect();
    let v = plan.interleave.max(1);
    if n.iter().any(|k| k % v != 0) {
        return None;
    }
    let p = n.len();
    let even = n.iter().all(|k| *k == n[0]);
    // The stages between the first and last must be equal.
    if p > 2 && n[1..p - 1].iter().any(|k| *k != n[1]) {
        return None;
    }
    let mut args: Vec<String> = Vec::new();
    let mut flag = |name: &str, value: Option<String>| {
        args.push(name.to_string());
        args.extend(value);
    };
    flag("--tensor-model-parallel-size", Some(plan.tp.to_string()));
    flag("--pipeline-model-parallel-size", Some(plan.pp.to_string()));
    if plan.ep > 1 {
        flag("--expert-model-parallel-size", Some(plan.ep.to_string()));
    }
    if !even {
        // Two stages: the first's count fixes the last's. Otherwise each end that differs from
        // the middle is given; an end not given gets the middle's count.
        let middle = if p > 2 { n[1] } else { u32::MAX };
        if n[0] != middle {
            flag(
                "--decoder-first-pipeline-num-layers",
                Some(n[0].to_string()),
            );
        }
        if p > 2 && n[p - 1] != middle {
            flag(
                "--decoder-last-pipeline-num-layers",
                Some(n[p - 1].to_string()),
            );
        }
    }
    if v > 1 {
        if even {
            flag(
                "--num-layers-per-virtual-pipeline-stage",
                Some((n[0] / v).to_string()),
            );
        } else {
            flag(
                "--num-virtual-stages-per-pipeline-rank",
                Some(v.to_string()),
            );
        }
    }
    flag("--micro-batch-size", Some(plan.micro_batch.to_string()));
    flag(
        "--global-batch-size",
        Some(inst.training.global_batch.to_string()),
    );
    match mode {
        Recompute::None => {}
        Recompute::Selective => flag("--recompute-granularity", Some("selective".into())),
        Recompute::Full => {
            flag("--recompute-granularity", Some("full".into()));
            flag("--recompute-method", Some("uniform".into()));
            flag("--recompute-num-layers", Some("1".into()));
        }
    }
    for (on, name) in [
        (plan.sequence_parallel, "--sequence-parallel"),
        (plan.zero1, "--use-distributed-optimizer"),
        (plan.dp_overlap, "--overlap-grad-reduce"),
    ] {
        if on {
            flag(name, None);
        }
    }
    Some(Launch {
        world_size: plan.devices(),
        args,
    })
}

/// Whether the plan runs on the devices of Megatron's rank order (the default placement on a
/// cluster, [`super::snake_dies`] on a wafer), pinned or not.
fn rank_order(plan: &Plan, fabric: &Fabric) -> bool {
    let mut megatron = plan.clone();
    let dies = super::snake_dies(&crate::plan::Config::of(plan), fabric);
    for (j, s) in megatron.stages.iter_mut().enumerate() {
        s.dies = dies.as_ref().and_then(|d| d.get(j).cloned());
    }
    match (plan.placement(fabric), megatron.placement(fabric)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The plan that Megatron-LM arguments run: the inverse of [`arguments`] for a model of `layers`
/// layers on `world_size` processes (devices in Megatron's rank order, the default placement).
/// An argument it does not know, a missing value or degrees that do not divide the world are
/// errors naming the argument.
///
/// ```
/// use watos::strategy::megatron::args::parse;
/// let line = "--tensor-model-parallel-size 8 --pipeline-model-parallel-size 4 --decoder-first-pipeline-num-layers 21 --micro-batch-size 2 --global-batch-size 512 --recompute-granularity selective --sequence-parallel";
/// let args: Vec<String> = line.split(' ').map(String::from).collect();
/// let plan = parse(&args, 96, 64).unwrap();
/// assert_eq!((plan.dp, plan.tp, plan.pp, plan.micro_batch), (2, 8, 4, 2));
/// assert_eq!(plan.stages.iter().map(|s| s.layers).collect::<Vec<_>>(), vec![21, 25, 25, 25]);
/// ```
pub fn parse(args: &[String], layers: u32, world_size: u64) -> Result<Plan, String> {
    let mut it = args.iter();
    let (mut tp, mut pp, mut mb, mut ep) = (1u32, 1u32, 1u32, 1u32);
    let (mut first, mut last, mut per_virtual, mut virtual_stages) = (None, None, None, None);
    let mut mode = Recompute::None;
    let (mut sp, mut zero1, mut overlap) = (false, false, false);
    while let Some(flag) = it.next() {
        let mut value = || -> Result<u32, String> {
            let v = it.next().ok_or(format!("{flag} needs a value"))?;
            v.parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(format!("{flag} {v}: expected a positive whole number"))
        };
        match flag.as_str() {
            "--tensor-model-parallel-size" => tp = value()?,
            "--pipeline-model-parallel-size" => pp = value()?,
            "--expert-model-parallel-size" => ep = value()?,
            "--decoder-first-pipeline-num-layers" => first = Some(value()?),
            "--decoder-last-pipeline-num-layers" => last = Some(value()?),
            "--num-layers-per-virtual-pipeline-stage" => per_virtual = Some(value()?),
            "--num-virtual-stages-per-pipeline-rank" => virtual_stages = Some(value()?),
            "--micro-batch-size" => mb = value()?,
            "--global-batch-size" => {
                value()?;
            }
            "--recompute-granularity" => {
                mode = match it.next().map(String::as_str) {
                    Some("selective") => Recompute::Selective,
                    Some("full") => Recompute::Full,
                    other => return Err(format!("{flag} {other:?}: expected selective or full")),
                }
            }
            "--recompute-method" => {
                it.next();
            }
            "--recompute-num-layers" => {
                value()?;
            }
            "--sequence-parallel" => sp = true,
            "--use-distributed-optimizer" => zero1 = true,
            "--overlap-grad-reduce" => overlap = true,
            other => return Err(format!("{other}: not an argument watos writes")),
        }
    }
    let group = u64::from(tp) * u64::from(pp);
    if world_size % group != 0 {
        return Err(format!(
            "tensor {tp} x pipeline {pp} does not divide the {world_size} processes"
        ));
    }
    let dp = u32::try_from(world_size / group).map_err(|_| "world size too large".to_string())?;
    let p = pp as usize;
    // Layers of the stages Megatron fills evenly: all but the ends that are given.
    let given: u32 = first.unwrap_or(0) + last.filter(|_| p > 1).unwrap_or(0);
    let rest_stages = pp - u32::from(first.is_some()) - u32::from(last.is_some() && p > 1);
    let rest = layers
        .checked_sub(given)
        .ok_or("the first and last stages hold more layers than the model")?;
    let middle = match rest_stages {
        0 if rest == 0 => 0,
        0 => return Err("the first and last stages do not hold every layer".into()),
        k if rest % k == 0 => rest / k,
        k => return Err(format!("{rest} layers do not split evenly over {k} stages")),
    };
    let mut n = vec![middle; p];
    if let Some(f) = first {
        n[0] = f;
    }
    if let (Some(l), true) = (last, p > 1) {
        n[p - 1] = l;
    }
    let interleave = match (per_virtual, virtual_stages) {
        (Some(k), _) if n[0] % k == 0 => n[0] / k,
        (Some(k), _) => {
            return Err(format!(
                "{k} layers per virtual stage do not divide {}",
                n[0]
            ))
        }
        (None, Some(v)) => v,
        (None, None) => 1,
    };
    Ok(Plan {
        dp,
        ep,
        tp,
        pp,
        micro_batch: mb,
        sequence_parallel: sp,
        interleave,
        zero1,
        dp_overlap: overlap,
        weight_streaming: false,
        stages: n.into_iter().map(|k| Stage::new(k, mode)).collect(),
    })
}

//! The sweep of one slice of a design space: every design within its budgets gets a bound without
//! a solve, best bound first designs are solved to the coarse gap in waves on rayon's threads, and
//! a design the rules no longer need ([`super::rules`]) is skipped by its bound. Then the designs
//! a report may show are solved again to the final gap, the best one's sensitivities are solved,
//! and so are the reference wafers.
//!
//! Bounds, each a valid lower bound on the step time of every plan of a design: first
//! `work / (devices x peak x best efficiency)` (every configuration's compute bound is at least
//! that) or infinite when the model's state cannot fit all the wafer's memory; then, for the
//! designs still needed, the least cheap bound over the configuration frontier
//! ([`Frontier`]: memory tests and the stage model's quick bound, the decomposition's own first
//! bounds); after a solve, its proven lower bound.
//!
//! Each solve runs on a one-thread rayon pool with one HiGHS thread and a fixed seed, so its
//! result is the same whatever machine or thread count runs it.

use std::collections::BinaryHeap;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cost::work::model_flops_per_step;
use crate::error::Error;
use crate::formulation::SolverOptions;
use crate::hardware::Hardware;
use crate::instance::Instance;
use crate::plan::Config;
use crate::strategy::space::{state_ratio, Frontier, ModelFigures, Refinement};
use crate::strategy::{self, SearchOptions};

use super::answer::{candidates, scores, Sensitivity};
use super::budget::{Broken, Budget};
use super::rules::{Keys, State};
use super::space::{Design, DesignSpace};
use super::{ExploreOptions, Outcome, Workload, WorkloadInfo};

/// Designs popped from the bound order per round, at most: refined or solved in parallel. Fixed,
/// so that a sweep does the same work whatever the thread count.
const ROUND: usize = 8;

/// A slice of a sweep: everything a report needs from it, and what the sweep did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Slice {
    pub space: SpaceInfo,
    pub workloads: Vec<WorkloadInfo>,
    pub options: ExploreOptions,
    /// This slice, `index` of `count`: the designs whose number is `index` modulo `count`.
    pub shard: [u64; 2],
    /// Designs of the slice, and those that break a budget (by the first budget broken).
    pub points: u64,
    pub broken: Vec<(Broken, u64)>,
    /// Designs within budget whose memory cannot hold a model's state, per model.
    pub cannot_hold: Vec<u64>,
    /// Every design solved (for at least one model).
    pub records: Vec<Record>,
    pub references: Vec<ReferenceResult>,
    pub run: RunStats,
}

/// The space a slice comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceInfo {
    pub name: String,
    pub path: String,
    /// FNV-1a hash of the space file and the models: slices of one sweep share it.
    pub fingerprint: String,
    pub points: u64,
    pub technologies: Vec<String>,
}

/// One solved design.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub design: Design,
    pub label: String,
    pub budget: Budget,
    pub keys: Keys,
    /// The tightest proven lower bound on each model's step time.
    #[serde(with = "super::inf::vec")]
    pub lower_bound_s: Vec<f64>,
    /// Each model solved to the coarse gap (plans left out).
    pub coarse: Vec<Option<Outcome>>,
    /// The designs a report may show: the better of the coarse solve and a solve to the final
    /// gap, with its plan.
    pub fine: Vec<Option<Outcome>>,
    /// The slice's best design: its score with 10% less and more of each resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitivity: Vec<Sensitivity>,
}

/// A reference wafer's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceResult {
    pub name: String,
    pub hardware: String,
    pub budget: Budget,
    /// The number of a design of the space with the same device, mesh and links, if any.
    pub in_space: Option<u64>,
    pub outcomes: Vec<Outcome>,
    pub score: f64,
}

/// What the sweep did (differs between runs that slice the space differently; no answer depends
/// on it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunStats {
    pub seconds: f64,
    pub threads: usize,
    /// Designs whose frontier bound was computed.
    pub bounded: u64,
    /// Designs skipped by a bound, never solved.
    pub pruned: u64,
    /// Solves to the coarse gap, to the final gap, for sensitivities and references.
    pub coarse_solves: u64,
    pub fine_solves: u64,
    pub other_solves: u64,
}

/// How far a sweep has got, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Designs decided (skipped, cannot fit, or solved) of those within budget.
    pub decided: u64,
    pub total: u64,
    pub solved: u64,
    pub pruned: u64,
    /// Best score so far (objective 0).
    pub best: f64,
}

/// A design within budget, as the sweep carries it.
struct Point {
    design: Design,
    budget: Budget,
    keys: Keys,
    lb: Vec<f64>,
    quick: bool,
    coarse: Vec<Option<Outcome>>,
}

/// The sweep's context: the space, the models and their figures.
pub(crate) struct Ctx<'a> {
    pub space: &'a DesignSpace,
    pub workloads: &'a [Workload],
    pub infos: Vec<WorkloadInfo>,
    figures: Vec<ModelFigures>,
    pub opts: &'a ExploreOptions,
}

impl<'a> Ctx<'a> {
    pub fn new(
        space: &'a DesignSpace,
        workloads: &'a [Workload],
        opts: &'a ExploreOptions,
    ) -> Result<Self, Error> {
        let mut infos = Vec::new();
        let mut figures = Vec::new();
        for w in workloads {
            let inst = instance(w, space.base.clone(), opts)?;
            let t = &inst.training;
            let flops =
                model_flops_per_step(&inst.model, t.seq_len, t.global_batch, inst.attention());
            infos.push(WorkloadInfo {
                name: w.name.clone(),
                weight: w.weight,
                flops_per_step: flops,
                tokens_per_step: t.tokens_per_step(),
            });
            figures.push(ModelFigures::of(&inst));
        }
        Ok(Ctx {
            space,
            workloads,
            infos,
            figures,
            opts,
        })
    }

    /// Objectives: the mix, then each model alone when there are several.
    pub fn objectives(&self) -> usize {
        if self.infos.len() > 1 {
            1 + self.infos.len()
        } else {
            1
        }
    }

    /// Scores per objective from each model's step time (`None`: not solved).
    pub fn scores(&self, steps: &[Option<f64>], wafers: u32) -> Vec<Option<f64>> {
        scores(&self.infos, steps, wafers)
    }

    /// Upper bounds on the scores per objective from lower bounds on each model's step time.
    pub fn upper(&self, lb: &[f64], wafers: u32) -> Vec<f64> {
        let steps: Vec<Option<f64>> = lb.iter().map(|l| Some(*l)).collect();
        self.scores(&steps, wafers)
            .into_iter()
            .map(|s| s.unwrap_or(0.0))
            .collect()
    }
}

/// A model on a piece of hardware, with the sweep's restrictions.
pub(crate) fn instance(
    w: &Workload,
    hw: Hardware,
    opts: &ExploreOptions,
) -> Result<Instance, Error> {
    let mut inst = Instance::new(hw.name.clone(), w.model.clone(), hw, w.training.clone())?;
    inst.limits = w.limits.clone();
    if !opts.recompute {
        inst.limits.recompute = Some(vec![crate::plan::Recompute::None]);
    }
    Ok(inst)
}

/// The first bound: the model's matrix work spread evenly over every device at the best
/// efficiency (infinite when the model's state cannot fit all the memory: a configuration that
/// uses every device as one pipeline of `tp = 1` stages needs the least per device).
fn compute_lb(inst: &Instance, f: &ModelFigures) -> f64 {
    let n = inst.fabric().healthy_count();
    let everything = Config {
        dp: 1,
        ep: 1,
        tp: 1,
        pp: n,
        micro_batch: 1,
        sequence_parallel: false,
        interleave: 1,
        zero1: false,
        dp_overlap: true,
    };
    if state_ratio(inst, f, &everything) > 1.0 {
        return f64::INFINITY;
    }
    let work = 3.0 * f.gemm_flops_per_token * inst.training.tokens_per_step();
    work / (f64::from(n) * inst.hardware.peak_flops() * f.best_efficiency)
}

/// The second bound: the least bound of the configuration frontier once every configuration
/// whose compute bound is below it has its memory tested and its quick bound computed.
fn quick_lb(inst: &Instance) -> f64 {
    let mut f = Frontier::new(inst);
    while let Some(e) = f.pop() {
        if e.refinement != Refinement::Compute {
            return e.bound_s;
        }
        if let Some((_, bounds)) = f.refine(inst, &e) {
            f.push_classes(&e, &bounds);
        }
    }
    f64::INFINITY
}

thread_local! {
    /// A one-thread pool per worker: the solve engine sizes its parallel batches by the pool it
    /// runs on, and one thread makes every solve repeat exactly on any machine.
    static SERIAL: Option<rayon::ThreadPool> =
        rayon::ThreadPoolBuilder::new().num_threads(1).build().ok();
}

/// Solves a model on a piece of hardware to `gap`.
pub(crate) fn solve(inst: &Instance, gap: f64, seed: i32) -> Outcome {
    let opts = SearchOptions {
        solver: SolverOptions {
            gap,
            threads: 1,
            seed,
            ..SolverOptions::default()
        },
        local_search: true,
    };
    let run = || strategy::solve(inst, &opts);
    let result = SERIAL.with(|p| match p {
        Some(pool) => pool.install(run),
        None => run(),
    });
    match result {
        Ok(sol) => Outcome::of(&sol),
        Err(Error::Infeasible(_)) => Outcome::infeasible(f64::INFINITY),
        Err(e) => Outcome {
            status: format!("failed: {e}"),
            ..Outcome::infeasible(0.0)
        },
    }
}

/// Sweeps slice `shard = [index, count]` of `space` for `workloads`.
pub fn sweep(
    space: &DesignSpace,
    workloads: &[Workload],
    opts: &ExploreOptions,
    shard: [u64; 2],
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Slice, Error> {
    let start = Instant::now();
    let ctx = Ctx::new(space, workloads, opts)?;
    let mut run = RunStats {
        threads: rayon::current_num_threads(),
        ..RunStats::default()
    };
    // Budgets, and the first bounds.
    let indices: Vec<u64> = (shard[0]..space.points())
        .step_by(shard[1].max(1) as usize)
        .collect();
    let checked: Vec<Result<Point, Broken>> = indices
        .par_iter()
        .map(|i| {
            let design = space.design(*i);
            let budget = Budget::of(space, &design);
            if let Some(b) = budget.broken() {
                return Err(b);
            }
            let keys = Keys::of(&design, &budget);
            Ok(Point {
                design,
                budget,
                keys,
                lb: Vec::new(),
                quick: false,
                coarse: vec![None; workloads.len()],
            })
        })
        .collect();
    let mut broken: Vec<(Broken, u64)> = Broken::ALL.iter().map(|b| (*b, 0)).collect();
    let mut points = Vec::new();
    for c in checked {
        match c {
            Ok(p) => points.push(p),
            Err(b) => {
                if let Some(e) = broken.iter_mut().find(|(k, _)| *k == b) {
                    e.1 += 1;
                }
            }
        }
    }
    let lbs: Vec<Result<Vec<f64>, Error>> = points
        .par_iter()
        .map(|p| {
            let hw = space.hardware(&p.design);
            workloads
                .iter()
                .zip(&ctx.figures)
                .map(|(w, f)| Ok(compute_lb(&instance(w, hw.clone(), opts)?, f)))
                .collect()
        })
        .collect();
    let mut cannot_hold = vec![0u64; workloads.len()];
    for (p, lb) in points.iter_mut().zip(lbs) {
        p.lb = lb?;
        for (c, l) in cannot_hold.iter_mut().zip(&p.lb) {
            *c += u64::from(l.is_infinite());
        }
    }
    let mut state = State::new(ctx.objectives(), opts.top, opts.prune_gap);
    search(&ctx, &mut points, &mut state, &mut run, progress);
    let mut records = finish(&ctx, points, &mut run);
    if opts.sensitivity {
        sensitivities(&ctx, &mut records, &mut run);
    }
    let references = references(&ctx, &mut run)?;
    run.seconds = start.elapsed().as_secs_f64();
    Ok(Slice {
        space: SpaceInfo {
            name: space.name.clone(),
            path: space.path.display().to_string(),
            fingerprint: fingerprint(space, workloads, opts),
            points: space.points(),
            technologies: space.technologies.iter().map(|t| t.name.clone()).collect(),
        },
        workloads: ctx.infos.clone(),
        options: opts.clone(),
        shard,
        points: indices.len() as u64,
        broken,
        cannot_hold,
        records,
        references,
        run,
    })
}

/// Best bound first, in rounds: designs no rule needs are skipped, designs with only their first
/// bound get the frontier bound, the others are solved to the coarse gap for the models the rules
/// need; a design comes back while a rule needs a model it was not solved for.
fn search(
    ctx: &Ctx,
    points: &mut [Point],
    state: &mut State,
    run: &mut RunStats,
    progress: &(dyn Fn(Progress) + Sync),
) {
    let objectives = ctx.objectives();
    let mut scale = vec![0.0f64; objectives];
    for p in points.iter() {
        for (s, u) in scale.iter_mut().zip(ctx.upper(&p.lb, p.design.wafers)) {
            *s = s.max(u);
        }
    }
    let key = |p: &Point| -> u64 {
        let ub = ctx.upper(&p.lb, p.design.wafers);
        let k = ub
            .iter()
            .zip(&scale)
            .map(|(u, s)| if *s > 0.0 { u / s } else { 0.0 })
            .fold(0.0, f64::max);
        // Bounds are non-negative: their bits order as the numbers do.
        k.to_bits()
    };
    let mut heap: BinaryHeap<(u64, std::cmp::Reverse<usize>)> = points
        .iter()
        .enumerate()
        .map(|(i, p)| (key(p), std::cmp::Reverse(i)))
        .collect();
    let total = points.len() as u64;
    let (mut decided, mut solved) = (0u64, 0u64);
    loop {
        let mut refine = Vec::new();
        let mut todo: Vec<(usize, usize)> = Vec::new();
        while refine.len() + todo.len() < ROUND {
            let Some((_, std::cmp::Reverse(i))) = heap.pop() else {
                break;
            };
            let p = &points[i];
            let ub = ctx.upper(&p.lb, p.design.wafers);
            let need = state.needs(&p.keys, &ub);
            let models: Vec<usize> = (0..ctx.infos.len())
                .filter(|m| {
                    p.coarse[*m].is_none()
                        && (need.objective(0) || (objectives > 1 && need.objective(m + 1)))
                })
                .collect();
            if models.is_empty() {
                decided += 1;
                if p.coarse.iter().all(Option::is_none) {
                    run.pruned += u64::from(ub[0] > 0.0);
                }
            } else if !p.quick {
                refine.push(i);
            } else {
                todo.extend(models.into_iter().map(|m| (i, m)));
            }
        }
        if refine.is_empty() && todo.is_empty() {
            break;
        }
        let refined: Vec<Vec<f64>> = refine
            .par_iter()
            .map(|i| {
                let p = &points[*i];
                let hw = ctx.space.hardware(&p.design);
                ctx.workloads
                    .iter()
                    .zip(&p.lb)
                    .map(|(w, lb)| match instance(w, hw.clone(), ctx.opts) {
                        Ok(inst) if lb.is_finite() => lb.max(quick_lb(&inst)),
                        _ => f64::INFINITY,
                    })
                    .collect()
            })
            .collect();
        for (i, lb) in refine.iter().zip(refined) {
            points[*i].lb = lb;
            points[*i].quick = true;
            run.bounded += 1;
            heap.push((key(&points[*i]), std::cmp::Reverse(*i)));
        }
        let outcomes: Vec<Outcome> = todo
            .par_iter()
            .map(|(i, m)| {
                let p = &points[*i];
                match instance(&ctx.workloads[*m], ctx.space.hardware(&p.design), ctx.opts) {
                    Ok(inst) => solve(&inst, ctx.opts.coarse_gap, ctx.opts.seed),
                    Err(e) => Outcome {
                        status: format!("failed: {e}"),
                        ..Outcome::infeasible(0.0)
                    },
                }
            })
            .collect();
        run.coarse_solves += todo.len() as u64;
        let mut touched = Vec::new();
        for ((i, m), o) in todo.iter().zip(outcomes) {
            let p = &mut points[*i];
            p.lb[*m] = p.lb[*m].max(o.lower_bound_s);
            p.coarse[*m] = Some(o);
            if touched.last() != Some(i) {
                touched.push(*i);
            }
        }
        for i in touched {
            let p = &points[i];
            let steps: Vec<Option<f64>> = p
                .coarse
                .iter()
                .map(|o| o.as_ref().map(|o| o.step_time_s))
                .collect();
            // Each objective once, when the last model it needs is solved: adding a design twice
            // would count it twice among the best.
            let scores = ctx.scores(&steps, p.design.wafers);
            let fresh: Vec<Option<f64>> = scores
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    s.filter(|_| todo.iter().any(|(k, m)| *k == i && (j == 0 || *m == j - 1)))
                })
                .collect();
            state.add(&p.keys, &fresh);
            solved += u64::from(p.coarse.iter().filter(|o| o.is_some()).count() == ctx.infos.len());
            heap.push((key(p), std::cmp::Reverse(i)));
        }
        progress(Progress {
            decided,
            total,
            solved,
            pruned: run.pruned,
            best: if state.threshold(0) > 0.0 {
                state.threshold(0)
            } else {
                0.0
            },
        });
    }
}

/// The designs a report may show, solved again to the final gap (see [`candidates`]); every
/// solved design becomes a record.
fn finish(ctx: &Ctx, points: Vec<Point>, run: &mut RunStats) -> Vec<Record> {
    let mut records: Vec<Record> = points
        .into_iter()
        .filter(|p| p.coarse.iter().any(Option::is_some))
        .map(|p| Record {
            label: ctx.space.label(&p.design),
            design: p.design,
            budget: p.budget,
            keys: p.keys,
            lower_bound_s: p.lb,
            coarse: p.coarse,
            fine: vec![None; ctx.infos.len()],
            sensitivity: Vec::new(),
        })
        .collect();
    let needs = candidates(&records, &ctx.infos, ctx.opts.top, ctx.opts.prune_gap);
    let todo: Vec<(usize, usize)> = needs
        .iter()
        .enumerate()
        .flat_map(|(r, need)| {
            let rec = &records[r];
            (0..ctx.infos.len())
                .filter(move |m| {
                    rec.coarse[*m].is_some()
                        && (need.objective(0) || (need.top.len() > 1 && need.objective(m + 1)))
                })
                .map(move |m| (r, m))
        })
        .collect();
    let outcomes: Vec<Outcome> = todo
        .par_iter()
        .map(|(r, m)| {
            let d = &records[*r].design;
            match instance(&ctx.workloads[*m], ctx.space.hardware(d), ctx.opts) {
                Ok(inst) => solve(&inst, ctx.opts.gap, ctx.opts.seed),
                Err(e) => Outcome {
                    status: format!("failed: {e}"),
                    ..Outcome::infeasible(0.0)
                },
            }
        })
        .collect();
    run.fine_solves += todo.len() as u64;
    for ((r, m), fine) in todo.into_iter().zip(outcomes) {
        let rec = &mut records[r];
        rec.lower_bound_s[m] = rec.lower_bound_s[m].max(fine.lower_bound_s);
        let coarse = rec.coarse[m].clone();
        rec.fine[m] = Some(match coarse {
            Some(c) if c.feasible() && c.step_time_s < fine.step_time_s => c,
            _ => fine,
        });
    }
    for rec in &mut records {
        for o in rec.coarse.iter_mut().flatten() {
            o.plan = None;
        }
    }
    records
}

/// The slice's best design with 10% less and more of each resource (see [`Sensitivity`]).
fn sensitivities(ctx: &Ctx, records: &mut [Record], run: &mut RunStats) {
    let Some(best) = super::answer::best_record(records, &ctx.infos) else {
        return;
    };
    let d = records[best].design;
    let variants = Sensitivity::variants(&d);
    let gap = ctx.opts.gap / 10.0;
    let jobs: Vec<(usize, usize)> = (0..=variants.len())
        .flat_map(|v| (0..ctx.workloads.len()).map(move |m| (v, m)))
        .collect();
    let outcomes: Vec<Outcome> = jobs
        .par_iter()
        .map(|(v, m)| {
            let design = if *v == 0 { d } else { variants[v - 1].2 };
            let hw = ctx.space.hardware(&design);
            match instance(&ctx.workloads[*m], hw, ctx.opts) {
                Ok(inst) => solve(&inst, gap, ctx.opts.seed),
                Err(e) => Outcome {
                    status: format!("failed: {e}"),
                    ..Outcome::infeasible(0.0)
                },
            }
        })
        .collect();
    run.other_solves += jobs.len() as u64;
    let n = ctx.workloads.len();
    let score = |v: usize| {
        let steps: Vec<Option<f64>> = outcomes[v * n..(v + 1) * n]
            .iter()
            .map(|o| Some(o.step_time_s))
            .collect();
        ctx.scores(&steps, d.wafers)[0].unwrap_or(0.0)
    };
    let base = score(0);
    records[best].sensitivity = variants
        .iter()
        .enumerate()
        .map(|(k, (resource, factor, design))| Sensitivity {
            resource: resource.to_string(),
            factor: *factor,
            base_score: base,
            score: score(k + 1),
            step_time_s: outcomes[(k + 1) * n..(k + 2) * n]
                .iter()
                .map(|o| o.step_time_s)
                .collect(),
            broken: Budget::of(ctx.space, design).broken(),
        })
        .collect();
}

/// The reference wafers, solved to the final gap.
fn references(ctx: &Ctx, run: &mut RunStats) -> Result<Vec<ReferenceResult>, Error> {
    let refs = &ctx.space.references;
    let jobs: Vec<(usize, usize)> = (0..refs.len())
        .flat_map(|r| (0..ctx.workloads.len()).map(move |m| (r, m)))
        .collect();
    let outcomes: Vec<Result<Outcome, Error>> = jobs
        .par_iter()
        .map(|(r, m)| {
            let inst = instance(&ctx.workloads[*m], refs[*r].hardware.clone(), ctx.opts)?;
            Ok(solve(&inst, ctx.opts.gap, ctx.opts.seed))
        })
        .collect();
    run.other_solves += jobs.len() as u64;
    let mut out = Vec::new();
    let n = ctx.workloads.len();
    let mut outcomes = outcomes.into_iter();
    for r in refs {
        let o: Vec<Outcome> = outcomes.by_ref().take(n).collect::<Result<_, _>>()?;
        let wafers = r.hardware.wafer.as_ref().map_or(1, |w| w.wafers);
        let steps: Vec<Option<f64>> = o.iter().map(|o| Some(o.step_time_s)).collect();
        out.push(ReferenceResult {
            name: r.name.clone(),
            hardware: r.hardware.name.clone(),
            budget: Budget::of_hardware(
                &r.hardware,
                &crate::hardware::power::PowerModel::default(),
                None,
            ),
            in_space: ctx.space.find(&r.hardware).first().map(|d| d.index),
            score: ctx.scores(&steps, wafers)[0].unwrap_or(0.0),
            outcomes: o,
        });
    }
    Ok(out)
}

/// FNV-1a over the space file, the models and training setups, and the options.
fn fingerprint(space: &DesignSpace, workloads: &[Workload], opts: &ExploreOptions) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(space.text.as_bytes());
    for w in workloads {
        eat(format!("{:?}{:?}{:?}{}", w.model, w.training, w.limits, w.weight).as_bytes());
    }
    eat(format!("{opts:?}").as_bytes());
    format!("{h:016x}")
}

//! The report of a sweep, built from its slices (one slice for a single run, several for `watos
//! merge`) by the same code: the rules ([`super::rules`]) over every solved design pick the designs
//! each answer needs, and those were solved to the final gap by whichever slice held them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;

use super::budget::{Broken, Budget};
use super::rules::{Bucket, Dim, Need, State};
use super::space::Design;
use super::sweep::{Record, ReferenceResult, RunStats, Slice, SpaceInfo};
use super::{mix_score, rate, ExploreOptions, Outcome, WorkloadInfo};

/// The score with 10% less or more of one resource of a design (every other figure the same).
/// The budgets are not enforced: `broken` says which one the changed design breaks, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sensitivity {
    /// `compute`, `DRAM capacity`, `DRAM bandwidth`, `D2D bandwidth` or `SRAM`.
    pub resource: String,
    pub factor: f64,
    /// The design's own score, solved to the same gap as the changed one.
    pub base_score: f64,
    pub score: f64,
    /// Each model's step time.
    #[serde(with = "super::inf::vec")]
    pub step_time_s: Vec<f64>,
    pub broken: Option<Broken>,
}

impl Sensitivity {
    /// Resources changed, with the change: 0.9 and 1.1 of compute per die, capacity per DRAM
    /// stack (taller stacks: same footprint), bandwidth per stack, D2D bandwidth and SRAM.
    pub fn variants(d: &Design) -> Vec<(&'static str, f64, Design)> {
        let mut out = Vec::new();
        for factor in [0.9, 1.1] {
            let v = [
                (
                    "compute",
                    Design {
                        peak_tflops: d.peak_tflops * factor,
                        ..*d
                    },
                ),
                (
                    "DRAM capacity",
                    Design {
                        stack_gb: d.stack_gb * factor,
                        ..*d
                    },
                ),
                (
                    "DRAM bandwidth",
                    Design {
                        stack_tb_per_s: d.stack_tb_per_s * factor,
                        ..*d
                    },
                ),
                (
                    "D2D bandwidth",
                    Design {
                        d2d_tb_per_s: d.d2d_tb_per_s * factor,
                        ..*d
                    },
                ),
                (
                    "SRAM",
                    Design {
                        sram_mb: d.sram_mb * factor,
                        ..*d
                    },
                ),
            ];
            out.extend(v.into_iter().map(|(r, design)| (r, factor, design)));
        }
        out
    }

    /// Relative change of the score.
    pub fn change(&self) -> f64 {
        if self.base_score > 0.0 {
            self.score / self.base_score - 1.0
        } else {
            0.0
        }
    }
}

/// Each record's steps (`fine`: the final solves, else the coarse ones).
fn steps(r: &Record, fine: bool) -> Vec<Option<f64>> {
    let of = if fine { &r.fine } else { &r.coarse };
    of.iter()
        .map(|o| o.as_ref().map(|o| o.step_time_s))
        .collect()
}

/// Scores per objective (the mix, then each model when there are several).
pub(crate) fn scores(
    infos: &[WorkloadInfo],
    steps: &[Option<f64>],
    wafers: u32,
) -> Vec<Option<f64>> {
    let rates: Vec<Option<f64>> = infos
        .iter()
        .zip(steps)
        .map(|(w, s)| s.map(|s| rate(w, s, wafers)))
        .collect();
    let weights: Vec<f64> = infos.iter().map(|w| w.weight).collect();
    let mix = rates
        .iter()
        .copied()
        .collect::<Option<Vec<f64>>>()
        .map(|r| mix_score(&weights, &r));
    let mut out = vec![mix];
    if infos.len() > 1 {
        out.extend(rates);
    }
    out
}

/// What each record is needed for, by the rules over every record's coarse scores.
pub(crate) fn candidates(
    records: &[Record],
    infos: &[WorkloadInfo],
    top: usize,
    tol: f64,
) -> Vec<Need> {
    let objectives = if infos.len() > 1 { 1 + infos.len() } else { 1 };
    let mut state = State::new(objectives, top, tol);
    for r in records {
        state.add(&r.keys, &scores(infos, &steps(r, false), r.design.wafers));
    }
    records
        .iter()
        .map(|r| {
            let lb: Vec<Option<f64>> = r.lower_bound_s.iter().map(|l| Some(*l)).collect();
            let ub: Vec<f64> = scores(infos, &lb, r.design.wafers)
                .into_iter()
                .map(|s| s.unwrap_or(0.0))
                .collect();
            let solved = scores(infos, &steps(r, false), r.design.wafers);
            let mut need = state
                .needs(&r.keys, &ub)
                .or(&state.achieved(&r.keys, &solved));
            // Only what the record was solved for.
            for (j, s) in solved.iter().enumerate() {
                if s.is_none() {
                    need.top[j] = false;
                    if j == 0 {
                        need.front = false;
                        need.buckets.iter_mut().for_each(|b| *b = false);
                    }
                }
            }
            need
        })
        .collect()
}

/// The record of the best design (objective 0, final scores; ties to the lower design number).
pub(crate) fn best_record(records: &[Record], infos: &[WorkloadInfo]) -> Option<usize> {
    ranked(records, infos, 0).first().copied()
}

/// Records solved to the final gap for objective `j`, by final score, best first. Every record
/// the rules needed is among them; a record solved to the final gap that they did not need (a
/// slice solves what its own designs need) scores below what they need, so it changes nothing.
fn ranked(records: &[Record], infos: &[WorkloadInfo], j: usize) -> Vec<usize> {
    let mut v: Vec<(usize, f64)> = (0..records.len())
        .map(|r| (r, final_score(&records[r], infos)[j]))
        .filter(|(_, s)| *s > 0.0)
        .collect();
    v.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(records[a.0].design.index.cmp(&records[b.0].design.index))
    });
    v.into_iter().map(|(r, _)| r).collect()
}

/// A record's final scores per objective (0 where it was not solved to the final gap).
fn final_score(r: &Record, infos: &[WorkloadInfo]) -> Vec<f64> {
    scores(infos, &steps(r, true), r.design.wafers)
        .into_iter()
        .map(|s| s.unwrap_or(0.0))
        .collect()
}

/// One design as a report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shown {
    pub design: Design,
    pub label: String,
    pub budget: Budget,
    /// Objective 0: the model's (or the mix's) model FLOP/s per wafer.
    pub score: f64,
    /// Each model's result, with its plan.
    pub outcomes: Vec<Outcome>,
}

/// The best design for one value of one range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketBest {
    pub dim: Dim,
    pub bucket: Bucket,
    /// The value, as a table prints it.
    pub value: String,
    pub best: Shown,
}

/// The answers of a sweep. Equal for a single run and for the merge of its slices, except `run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub space: SpaceInfo,
    pub workloads: Vec<WorkloadInfo>,
    pub options: ExploreOptions,
    /// Designs of the space, those breaking each budget, and those whose memory cannot hold
    /// each model's state.
    pub points: u64,
    pub broken: Vec<(Broken, u64)>,
    pub cannot_hold: Vec<u64>,
    /// The best designs, best first.
    pub best: Vec<Shown>,
    /// Sensitivities of the best design.
    pub sensitivity: Vec<Sensitivity>,
    /// The best design for each model alone (a mix only).
    pub per_model: Vec<Shown>,
    /// The Pareto front of score against memory area per wafer, least memory first.
    pub front: Vec<Shown>,
    /// The best design for each value of each range.
    pub buckets: Vec<BucketBest>,
    pub references: Vec<ReferenceResult>,
    pub run: RunStats,
}

fn shown(r: &Record, infos: &[WorkloadInfo]) -> Result<Shown, Error> {
    let outcomes = r
        .fine
        .iter()
        .zip(&infos.iter().map(|w| w.name.clone()).collect::<Vec<_>>())
        .map(|(o, name)| {
            o.clone().ok_or_else(|| {
                Error::Solver(format!(
                    "design {} ({}) has no result to the final gap for {name}: the slices come from different sweeps",
                    r.design.index, r.label
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Shown {
        design: r.design,
        label: r.label.clone(),
        budget: r.budget,
        score: final_score(r, infos)[0],
        outcomes,
    })
}

/// A single model's design: only that model's outcome is needed.
fn shown_for(r: &Record, infos: &[WorkloadInfo], m: usize) -> Result<Shown, Error> {
    let o = r.fine[m].clone().ok_or_else(|| {
        Error::Solver(format!(
            "design {} has no result to the final gap for {}",
            r.design.index, infos[m].name
        ))
    })?;
    Ok(Shown {
        design: r.design,
        label: r.label.clone(),
        budget: r.budget,
        score: rate(&infos[m], o.step_time_s, r.design.wafers),
        outcomes: vec![o],
    })
}

impl Report {
    /// The report of the slices of one sweep: every slice of `count`, once.
    pub fn from_slices(slices: Vec<Slice>) -> Result<Self, Error> {
        let Some(first) = slices.first() else {
            return Err(Error::invalid(
                "slices",
                "no slice given",
                "give the JSON of every slice",
            ));
        };
        let count = first.shard[1];
        let mut seen = vec![false; count as usize];
        for s in &slices {
            if s.space.fingerprint != first.space.fingerprint || s.shard[1] != count {
                return Err(Error::invalid(
                    "slices",
                    format!(
                        "slice {}/{} comes from another sweep (space `{}`, fingerprint {}) than slice {}/{} (`{}`, {})",
                        s.shard[0], s.shard[1], s.space.name, s.space.fingerprint,
                        first.shard[0], count, first.space.name, first.space.fingerprint
                    ),
                    "merge the slices of one `watos explore --shard I/N` run, same space, models and options",
                ));
            }
            let i = s.shard[0] as usize;
            if i >= seen.len() || seen[i] {
                return Err(Error::invalid(
                    "slices",
                    format!("slice {i}/{count} is given twice or is out of range"),
                    "give each slice once",
                ));
            }
            seen[i] = true;
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            return Err(Error::invalid(
                "slices",
                format!("slice {missing}/{count} is missing"),
                format!("give all {count} slices"),
            ));
        }
        let infos = first.workloads.clone();
        let options = first.options.clone();
        let mut report = Report {
            space: first.space.clone(),
            workloads: infos.clone(),
            options: options.clone(),
            points: 0,
            broken: first.broken.iter().map(|(b, _)| (*b, 0)).collect(),
            cannot_hold: vec![0; infos.len()],
            best: Vec::new(),
            sensitivity: Vec::new(),
            per_model: Vec::new(),
            front: Vec::new(),
            buckets: Vec::new(),
            references: first.references.clone(),
            run: RunStats::default(),
        };
        let mut records = Vec::new();
        for s in slices {
            report.points += s.points;
            for ((_, total), (_, n)) in report.broken.iter_mut().zip(&s.broken) {
                *total += n;
            }
            for (t, n) in report.cannot_hold.iter_mut().zip(&s.cannot_hold) {
                *t += n;
            }
            let r = &mut report.run;
            r.seconds = r.seconds.max(s.run.seconds);
            r.threads += s.run.threads;
            r.bounded += s.run.bounded;
            r.pruned += s.run.pruned;
            r.coarse_solves += s.run.coarse_solves;
            r.fine_solves += s.run.fine_solves;
            r.other_solves += s.run.other_solves;
            records.extend(s.records);
        }
        records.sort_by_key(|r| r.design.index);
        let ranked0 = ranked(&records, &infos, 0);
        for r in ranked0.iter().take(options.top) {
            report.best.push(shown(&records[*r], &infos)?);
        }
        if let Some(best) = ranked0.first() {
            report.sensitivity = records[*best].sensitivity.clone();
        }
        if infos.len() > 1 {
            for m in 0..infos.len() {
                if let Some(r) = ranked(&records, &infos, m + 1).first() {
                    report.per_model.push(shown_for(&records[*r], &infos, m)?);
                }
            }
        }
        // The front: records by memory, each kept if it beats every one with less.
        let mut front: Vec<usize> = (0..records.len()).collect();
        front.sort_by_key(|r| (records[*r].keys.memory, records[*r].design.index));
        let mut high = 0.0;
        for r in front {
            let s = final_score(&records[r], &infos)[0];
            if s > high {
                high = s;
                // A better design of the same memory area replaces the one before it.
                if report
                    .front
                    .last()
                    .is_some_and(|x| x.budget.memory_mm2 == records[r].budget.memory_mm2)
                {
                    report.front.pop();
                }
                report.front.push(shown(&records[r], &infos)?);
            }
        }
        // The best record per bucket.
        let mut best: BTreeMap<Bucket, (f64, usize)> = BTreeMap::new();
        for (r, record) in records.iter().enumerate() {
            let s = final_score(record, &infos)[0];
            for b in &record.keys.buckets {
                if s > 0.0 && best.get(b).is_none_or(|(x, _)| s > *x) {
                    best.insert(*b, (s, r));
                }
            }
        }
        for (b, (_, r)) in best {
            report.buckets.push(BucketBest {
                dim: b.dim,
                bucket: b,
                value: bucket_value(&b, &records[r], &report.space),
                best: shown(&records[r], &infos)?,
            });
        }
        Ok(report)
    }

    /// The reports's answers without what the run did, for comparing runs.
    pub fn answers_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("run");
        }
        v
    }
}

/// A bucket's value as a table prints it.
fn bucket_value(b: &Bucket, r: &Record, space: &SpaceInfo) -> String {
    let d = &r.design;
    let num = super::space::num;
    match b.dim {
        Dim::Technology => space
            .technologies
            .get(d.technology)
            .cloned()
            .unwrap_or_default(),
        Dim::Mesh if d.wafers > 1 => format!("{} x {}x{}", d.wafers, d.rows, d.cols),
        Dim::Mesh => format!("{}x{}", d.rows, d.cols),
        Dim::PeakTflops => format!("{} TFLOP/s", num(d.peak_tflops)),
        Dim::DramGb => format!("{} GB", num(d.dram_gb())),
        Dim::DramTbPerS => format!("{} TB/s", num(d.dram_tb_per_s())),
        Dim::D2d => format!("{} TB/s", num(d.d2d_tb_per_s)),
        Dim::Split => {
            let lo = b.key as f64 * super::rules::SPLIT_STEP * 100.0;
            format!(
                "{}-{}%",
                num(lo),
                num(lo + super::rules::SPLIT_STEP * 100.0)
            )
        }
    }
}

//! The monolithic formulation (one MIP over many configurations) agrees with the decomposition
//! (`strategy::decomposition`) and with exhaustive enumeration: same optimum within the gap, both bounds
//! below the exhaustive optimum, and its objective at its plan is the evaluator's.

mod common;

use common::*;
use proptest::prelude::*;
use watos::cost::{evaluate_ideal, ConfigCosts};
use watos::formulation::monolithic::MonolithicMip;
use watos::formulation::{MipComm, SolverOptions, StageMip};
use watos::plan::{Config, Recompute};
use watos::solution::Status;
use watos::strategy::monolithic::{self, MonolithicOptions};
use watos::strategy::{self as search, exhaustive, SearchOptions};
use watos::{Instance, Plan};

fn opts(gap: f64, local_search: bool) -> SearchOptions {
    SearchOptions {
        solver: SolverOptions {
            gap,
            threads: 1,
            time_limit_s: None,
            node_limit: Some(10_000),
            seed: 0,
            ..SolverOptions::default()
        },
        local_search,
    }
}

/// Exhaustive enumeration, the decomposition, and the monolithic solve with `per_mip`
/// configurations per MIP for each of `sizes`.
fn check(inst: &Instance, sizes: &[usize]) -> Result<(), TestCaseError> {
    let gap = 0.01;
    let ex = exhaustive::solve(inst, &opts(gap, false).solver);
    let dec = search::solve(inst, &opts(gap, false));
    let (e, d) = match (ex, dec) {
        (Err(_), Err(_)) => {
            for per_mip in sizes {
                let m = monolithic::solve_with(
                    inst,
                    &opts(gap, false),
                    &MonolithicOptions {
                        max_candidates: *per_mip,
                    },
                    &watos::strategy::Silent,
                );
                prop_assert!(
                    m.is_err(),
                    "monolithic finds a plan where exhaustive finds none"
                );
            }
            return Ok(());
        }
        (Ok(e), Ok(d)) => (e, d),
        (e, d) => {
            return Err(TestCaseError::fail(format!(
                "disagree on feasibility: exhaustive {:?}, decomposition {:?}",
                e.map(|s| s.evaluation.step_time_s),
                d.map(|s| s.evaluation.step_time_s),
            )))
        }
    };
    let best = e.evaluation.step_time_s;
    let tol = 1e-9 * best;
    prop_assert!(
        d.lower_bound_s <= best + tol,
        "decomposition bound {} above the exhaustive optimum {best}",
        d.lower_bound_s
    );
    for per_mip in sizes {
        let (m, size) = monolithic::solve_with(
            inst,
            &opts(gap, false),
            &MonolithicOptions {
                max_candidates: *per_mip,
            },
            &watos::strategy::Silent,
        )
        .map_err(|err| {
            TestCaseError::fail(format!(
                "exhaustive found {best} s, monolithic ({per_mip} per MIP) failed: {err}"
            ))
        })?;
        prop_assert_eq!(m.method, watos::solution::Method::Monolithic);
        prop_assert!(size.mips >= 1 && size.rows > 0 && size.columns > 0);
        prop_assert!(m.evaluation.feasible);
        prop_assert!(
            m.lower_bound_s <= best + tol,
            "monolithic ({per_mip} per MIP) bound {} above the exhaustive optimum {best}",
            m.lower_bound_s
        );
        prop_assert!(
            best <= m.evaluation.step_time_s + tol,
            "monolithic plan {} beats exhaustive {best}",
            m.evaluation.step_time_s
        );
        // One switch: placement is ideal, the MIP exact, so the gap is proven.
        prop_assert_eq!(m.status, Status::Optimal, "gap {}", m.gap);
        prop_assert!(
            m.evaluation.step_time_s <= best / (1.0 - gap) + tol,
            "monolithic {} not within {gap} of {best}",
            m.evaluation.step_time_s
        );
        // The two formulations find the same optimum within the gap.
        let (a, b) = (m.evaluation.step_time_s, d.evaluation.step_time_s);
        prop_assert!(
            (a - b).abs() <= gap * a.max(b) + tol,
            "monolithic {a} vs decomposition {b}"
        );
        // The MIP is exact here: its objective at its plan is the evaluator's figure.
        prop_assert!(
            (m.mip_objective_s - m.mip_plan_step_time_s).abs() <= 1e-6 * best,
            "MIP {} vs evaluator {}",
            m.mip_objective_s,
            m.mip_plan_step_time_s
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(proptest_config(12))]

    /// Random small models on one node: all candidates in one MIP, or one or three per MIP (the
    /// cheap bound of the ones left out then enters the bound, and later MIPs get a cutoff).
    #[test]
    fn monolithic_matches_decomposition_and_exhaustive(
        inst in switch_instances(),
    ) {
        check(&inst, &[1, 3, 64])?;
    }
}

/// Every configuration of a small instance with both tiers and parking possible.
fn small() -> (Instance, Vec<ConfigCosts>) {
    let inst = instance(
        model(4, 128, 4, 512),
        node(4, 0.02, 1.0),
        training(4, 128),
        2,
    );
    let costs = watos::strategy::space::configs(&inst)
        .into_iter()
        .map(|c| ConfigCosts::new(&inst, c))
        .collect();
    (inst, costs)
}

/// A plan of a configuration: layers spread over the stages, some recomputed, the first stage
/// parking activations on the last.
fn plan_of(c: &Config, layers: u32) -> Plan {
    let mut plan = Plan::uniform(layers, c.dp, c.tp, c.pp, c.micro_batch, Recompute::None);
    plan.sequence_parallel = c.sequence_parallel;
    plan.zero1 = c.zero1;
    plan.interleave = c.interleave;
    plan.dp_overlap = c.dp_overlap;
    if let Some(s) = plan.stages.first_mut() {
        s.recompute = vec![watos::plan::RecomputeCounts {
            none: s.layers - 1,
            selective: 0,
            full: 1,
        }];
    }
    if c.pp > 1 {
        plan.stages[0].park.push(watos::plan::Park {
            to: c.pp - 1,
            what: watos::plan::ParkKind::Activations,
            bytes: 100_000,
        });
    }
    plan
}

/// One encoding: block k of the monolithic MIP scores a plan exactly as the stand-alone MIP of
/// configuration k and the evaluator with ideal communication do, whatever the other blocks.
#[test]
fn a_block_is_the_stand_alone_mip() {
    let (inst, costs) = small();
    let refs: Vec<&ConfigCosts> = costs.iter().collect();
    let mono = MonolithicMip::ideal(&inst, &refs);
    assert_eq!(mono.len(), costs.len());
    for (k, c) in costs.iter().enumerate() {
        let plan = plan_of(&c.config, inst.model.layers);
        let alone =
            StageMip::new(c, MipComm::ideal(&inst, c), None).objective_of(&plan, inst.fabric());
        let block = mono.objective_of(k, &plan, inst.fabric()).unwrap();
        let ideal = evaluate_ideal(&inst, &plan, c).step_time_s;
        assert!(
            (block - alone).abs() <= 1e-9 * alone,
            "{:?}: block {block} vs stand-alone {alone}",
            c.config
        );
        assert!((block - ideal).abs() <= 1e-9 * ideal, "{block} vs {ideal}");
    }
    assert!(mono
        .objective_of(
            costs.len(),
            &Plan::uniform(4, 1, 1, 1, 1, Recompute::None),
            inst.fabric()
        )
        .is_none());
}

/// z = 1 is the stand-alone MIP: over one configuration the monolithic MIP finds the same
/// optimum and bound (both solved to optimality).
#[test]
fn one_block_solves_like_the_stand_alone_mip() {
    let (inst, costs) = small();
    let exact = SolverOptions {
        gap: 0.0,
        node_limit: Some(10_000),
        ..SolverOptions::default()
    };
    let mut compared = 0;
    for c in costs.iter().filter(|c| c.config.pp > 1).take(6) {
        let alone = StageMip::new(c, MipComm::ideal(&inst, c), None)
            .solve(&exact, None)
            .unwrap();
        let mono = MonolithicMip::ideal(&inst, &[c])
            .solve(&exact, None)
            .unwrap();
        assert_eq!(alone.plan.is_some(), mono.plan.is_some(), "{:?}", c.config);
        if alone.plan.is_none() {
            continue;
        }
        compared += 1;
        assert_eq!(mono.choice, Some(0));
        let tol = 1e-6 * alone.objective_s;
        assert!(
            (alone.objective_s - mono.objective_s).abs() <= tol,
            "{:?}: stand-alone {} vs monolithic {}",
            c.config,
            alone.objective_s,
            mono.objective_s
        );
        assert!(mono.bound_s <= mono.objective_s + tol);
        assert!((alone.bound_s - mono.bound_s).abs() <= tol);
    }
    assert!(compared > 0);
}

/// GPT-3 175B on config 3, eight configurations per MIP: both formulations prove the 1% gap and
/// agree on the step time within it; each one's bound is below the other's plan.
#[test]
fn gpt3_on_config3_agrees_with_the_decomposition() {
    let inst = Instance::load(repo("instances/gpt3-175b-wafer.toml")).unwrap();
    let (m, size) = monolithic::solve_with(
        &inst,
        &opts(0.01, true),
        &MonolithicOptions { max_candidates: 8 },
        &watos::strategy::Silent,
    )
    .unwrap();
    let d = search::solve(&inst, &opts(0.01, true)).unwrap();
    assert_eq!(m.status, Status::Optimal, "gap {}", m.gap);
    assert!(m.gap <= 0.01);
    assert!(m.evaluation.feasible);
    assert!(size.mips >= 1);
    let (a, b) = (m.evaluation.step_time_s, d.evaluation.step_time_s);
    assert!(
        (a - b).abs() <= 0.01 * a.max(b),
        "monolithic {a} vs decomposition {b}"
    );
    assert!(m.lower_bound_s <= b && d.lower_bound_s <= a);
    // Placement is the one relaxation: the MIP is at most the evaluator at its plan.
    assert!(m.mip_objective_s <= m.mip_plan_step_time_s * (1.0 + 1e-9));
}

#[test]
fn an_instance_that_cannot_fit_is_explained() {
    let model = watos::Model::load(repo("models/gpt3-175b.toml")).unwrap();
    let inst = instance(model, wafer(2, 2, 70.0, 400.0, ""), training(8, 2048), 1);
    let err = monolithic::solve_with(
        &inst,
        &opts(0.01, true),
        &Default::default(),
        &watos::strategy::Silent,
    )
    .map(|(s, _)| s)
    .unwrap_err()
    .to_string();
    assert!(err.contains("no feasible plan"), "{err}");
}

//! `watos solve` is right: its bound is below every plan, its plan is as good as exhaustive
//! enumeration finds (within the gap), and it repeats.

mod common;

use common::*;
use proptest::prelude::*;
use watos::formulation::{MipComm, SolverOptions, StageMip};
use watos::solution::Status;
use watos::strategy::{self as search, exhaustive, SearchOptions};
use watos::Instance;

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

fn check_against_exhaustive(inst: &Instance, exact: bool) -> Result<(), TestCaseError> {
    let gap = 0.01;
    let ex = exhaustive::solve(inst, &opts(gap, false).solver);
    let mip = search::solve(inst, &opts(gap, false));
    match (ex, mip) {
        (Err(_), Err(_)) => return Ok(()),
        (Ok(e), Err(m)) => {
            return Err(TestCaseError::fail(format!(
                "exhaustive found {} s, solve failed: {m}",
                e.evaluation.step_time_s
            )))
        }
        (Err(e), Ok(m)) => {
            return Err(TestCaseError::fail(format!(
                "solve found {} s, exhaustive failed: {e}",
                m.evaluation.step_time_s
            )))
        }
        (Ok(e), Ok(m)) => {
            let best = e.evaluation.step_time_s;
            let tol = 1e-9 * best;
            prop_assert!(
                m.lower_bound_s <= best + tol,
                "bound {} above the exhaustive optimum {}",
                m.lower_bound_s,
                best
            );
            prop_assert!(
                best <= m.evaluation.step_time_s + tol,
                "solve's plan {} beats exhaustive {}",
                m.evaluation.step_time_s,
                best
            );
            prop_assert!(m.evaluation.feasible);
            if exact {
                prop_assert_eq!(
                    m.status,
                    Status::Optimal,
                    "gap {} bound {} step {} mip {} exh {}",
                    m.gap,
                    m.lower_bound_s,
                    m.evaluation.step_time_s,
                    m.mip_objective_s,
                    best
                );
                prop_assert!(
                    m.evaluation.step_time_s <= best / (1.0 - gap) + tol,
                    "solve {} not within {gap} of {}",
                    m.evaluation.step_time_s,
                    best
                );
                // The MIP is exact here: its objective at its plan is the evaluator's figure.
                prop_assert!(
                    (m.mip_objective_s - m.mip_plan_step_time_s).abs() <= 1e-6 * best,
                    "MIP {} vs evaluator {}",
                    m.mip_objective_s,
                    m.mip_plan_step_time_s
                );
            }
            // With local search the plan can only get better and stays above the bound.
            let ls = search::solve(inst, &opts(gap, true))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(ls.evaluation.step_time_s <= m.evaluation.step_time_s + tol);
            prop_assert!(ls.lower_bound_s <= ls.evaluation.step_time_s + tol);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(proptest_config(12))]

    /// On one switch every placement is ideal, so the MIP is exact: bound <= exhaustive optimum
    /// <= solve's plan <= optimum / (1 - gap).
    #[test]
    fn mip_matches_exhaustive_on_a_switch(
        inst in switch_instances(),
    ) {
        check_against_exhaustive(&inst, true)?;
    }

    /// A model of two layer kinds (the first layers' FFN narrower or wider): the MIP, which keeps
    /// the layers in order across stages with cumulative counts, agrees with enumeration.
    #[test]
    fn two_layer_kinds_agree_with_exhaustive(inst in two_kind_instances()) {
        check_against_exhaustive(&inst, true)?;
    }

    /// On a mesh the MIP prices communication at the best any placement allows: its bound stays
    /// below the exhaustive optimum of the evaluator, which charges real routes.
    #[test]
    fn bound_holds_on_a_mesh(
        layers in 2u32..=3, hidden in prop::sample::select(vec![64u32, 128]), seq in prop::sample::select(vec![64u32, 128]),
        shape in prop::sample::select(vec![(1u32, 3u32), (2, 2), (1, 4)]), dram_kb in 2_000f64..30_000.0,
    ) {
        let inst = instance(model(layers, hidden, 2, 256), wafer(shape.0, shape.1, dram_kb * 1e-6, 0.5, ""), training(2, seq), 2);
        check_against_exhaustive(&inst, false)?;
    }

    /// Every fabric the schema accepts: several wafers with crossings slower or faster than the
    /// mesh, a broken link, clusters whose network is slower or faster than the node's links.
    /// bound <= exhaustive optimum <= solve's plan.
    #[test]
    fn bound_holds_on_random_fabrics(
        layers in 2u32..=4, hidden in prop::sample::select(vec![64u32, 128]),
        seq in prop::sample::select(vec![64u32, 256]), batch in prop::sample::select(vec![2u32, 6, 12]),
        kind in 0u32..7,
    ) {
        let inst = instance(model(layers, hidden, 2, 256), six_devices(kind), training(batch, seq), 4);
        check_against_exhaustive(&inst, false)?;
    }
}

#[test]
fn gpt3_on_config3_is_proven_within_one_percent() {
    let inst = Instance::load(repo("instances/gpt3-175b-wafer.toml")).unwrap();
    let sol = search::solve(&inst, &opts(0.01, true)).unwrap();
    assert_eq!(sol.status, Status::Optimal);
    assert!(sol.gap <= 0.01, "gap {}", sol.gap);
    assert!(sol.evaluation.feasible);
    assert!(sol.lower_bound_s <= sol.evaluation.step_time_s);
    // The MIP relaxes placement only: its objective is at most the evaluator's figure.
    assert!(sol.mip_objective_s <= sol.mip_plan_step_time_s * (1.0 + 1e-9));
}

#[test]
fn mip_objective_at_its_plan_is_at_most_the_evaluator_and_says_why() {
    // On the 7 x 8 wafer one tensor-parallel group of 8 has to sit in a 1 x 8 line, whose ring
    // runs one way at a time: the evaluator charges it, the bounding MIP does not.
    let inst = Instance::load(repo("instances/llama3-70b-wafer.toml")).unwrap();
    let mut plan = watos::Plan::uniform(80, 1, 8, 7, 1, watos::plan::Recompute::None);
    plan.sequence_parallel = true;
    let costs = watos::cost::ConfigCosts::new(&inst, watos::plan::Config::of(&plan));
    let mip = StageMip::new(&costs, MipComm::ideal(&inst, &costs), None);
    let eval = watos::evaluate(&inst, &plan).unwrap();
    let relaxed = mip.objective_of(&plan, inst.fabric());
    assert!(
        relaxed < eval.step_time_s,
        "{relaxed} vs {}",
        eval.step_time_s
    );
    assert!(watos::formulation::relaxations(inst.fabric())[0]
        .contains("tensor- and data-parallel rings"));
    // With the placement's own communication the MIP agrees with the evaluator.
    let placement = plan.placement(inst.fabric()).unwrap();
    let exact = StageMip::new(
        &costs,
        MipComm::of_placement(&inst, &costs, &placement),
        None,
    );
    let at = exact.objective_of(&plan, inst.fabric());
    assert!(
        (at - eval.step_time_s).abs() <= 1e-9 * eval.step_time_s,
        "{at} vs {}",
        eval.step_time_s
    );
}

#[test]
fn solving_twice_gives_the_same_plan() {
    let inst = Instance::load(repo("instances/llama-30b-wafer.toml")).unwrap();
    let a = search::solve(&inst, &opts(0.01, true)).unwrap();
    let b = search::solve(&inst, &opts(0.01, true)).unwrap();
    assert_eq!(a.plan, b.plan);
    assert_eq!(a.evaluation.step_time_s, b.evaluation.step_time_s);
    assert_eq!(a.lower_bound_s, b.lower_bound_s);
}

#[test]
fn an_instance_that_cannot_fit_is_explained() {
    // GPT-3 175B on one 2 x 2 wafer of 70 GB dies: 3.2 TB of model state against 280 GB.
    let model = watos::Model::load(repo("models/gpt3-175b.toml")).unwrap();
    let hw = wafer(2, 2, 70.0, 400.0, "");
    let inst = instance(model, hw, training(8, 2048), 1);
    let err = search::solve(&inst, &opts(0.01, true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no feasible plan"), "{err}");
    assert!(
        err.contains("optimizer") && err.contains("short by") && err.contains("DRAM"),
        "{err}"
    );
}

proptest! {
    #![proptest_config(proptest_config(24))]

    /// The MIP's objective at any plan of a configuration (random layers, modes, parked bytes and
    /// plan flags, on every kind of fabric) is never above the evaluator's step time, and on one
    /// switch or one mesh it is the evaluator's with ideal communication: one model, not two.
    #[test]
    fn mip_objective_is_the_ideal_evaluator(
        layers in 2u32..=6, pp in 1u32..=3, tp in prop::sample::select(vec![1u32, 2]),
        split in prop::collection::vec(0u32..100, 3), modes in prop::collection::vec(0u32..3, 6),
        park in prop::collection::vec((0u32..3, 0u32..3, 1u64..2_000_000), 0..4), kind in 0u32..7,
        two_kinds in any::<bool>(), dp in 1u32..=2, micro_batch in prop::sample::select(vec![1u32, 2, 4]),
        flags in prop::collection::vec(any::<bool>(), 4),
    ) {
        let pp = pp.min(layers);
        let dp = if tp * pp * dp > 6 { 1 } else { dp };
        let m = if two_kinds { two_kind_model(layers, 1, 128, 1024) } else { model(layers, 128, 4, 512) };
        let inst = instance(m, six_devices(kind), training(8, 128), 4);
        let micro_batch = micro_batch.min(8 / dp);
        let mut plan = watos::Plan::uniform(layers, dp, tp, pp, micro_batch, watos::plan::Recompute::None);
        plan.sequence_parallel = flags[0] && tp > 1;
        plan.zero1 = flags[1] && dp > 1;
        plan.dp_overlap = flags[2] && dp > 1;
        // Interleaving two chunks where every stage's layers split evenly in two and the
        // micro-batches come in rounds of pp (Megatron-LM's rule, which evaluate enforces).
        if flags[3] && pp > 1 && layers % (2 * pp) == 0 && (8 / (dp * micro_batch)) % pp == 0 {
            plan.interleave = 2;
        }
        // Shift layers between stages and spread them over the modes.
        for (j, s) in plan.stages.iter_mut().enumerate() {
            let n = s.layers;
            let full = (split[j % 3] * n / 100).min(n);
            let sel = ((n - full) * modes[j % 6] / 3).min(n - full);
            s.recompute = vec![watos::plan::RecomputeCounts { none: n - full - sel, selective: sel, full }];
        }
        for (from, to, bytes) in park {
            let (from, to) = (from % pp, to % pp);
            if from != to {
                let what = if bytes % 2 == 0 { watos::plan::ParkKind::Activations } else { watos::plan::ParkKind::Optimizer };
                plan.stages[from as usize].park.push(watos::plan::Park { to, what, bytes });
            }
        }
        let costs = watos::cost::ConfigCosts::new(&inst, watos::plan::Config::of(&plan));
        let mip = StageMip::new(&costs, MipComm::ideal(&inst, &costs), None);
        let ideal = watos::cost::evaluate_ideal(&inst, &plan, &costs).step_time_s;
        let at = mip.objective_of(&plan, inst.fabric());
        // One switch or one healthy mesh: no unit boundaries, so the MIP is the ideal evaluator.
        // Several wafers or nodes: the MIP also charges the boundaries a placement must cross,
        // which lifts it above the ideal evaluator but never above the real one.
        if kind <= 1 {
            prop_assert!((at - ideal).abs() <= 1e-9 * ideal, "MIP {at} vs ideal evaluator {ideal}");
        }
        let real = watos::evaluate(&inst, &plan).map_err(|e| TestCaseError::fail(e.to_string()))?.step_time_s;
        prop_assert!(ideal <= real * (1.0 + 1e-12), "ideal {ideal} above real {real}");
        prop_assert!(at <= real * (1.0 + 1e-9), "MIP {at} above the evaluator {real} at {plan}");
        if kind == 0 {
            prop_assert!((real - ideal).abs() <= 1e-9 * real, "on one switch placement is ideal: {real} vs {ideal}");
        }
    }
}

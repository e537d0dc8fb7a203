//! Placement on a wafer: nothing runs on a faulty die and no transfer crosses a faulty link, local
//! search never slows a plan down and repeats for a seed, and on the WATOS config-3 wafer the
//! placement watos picks for GPT-3 175B sends pipeline data over fewer hops than the default snake
//! layout without a slower step.

use watos::cost::{evaluate_with, ConfigCosts};
use watos::formulation::SolverOptions;
use watos::placement::{optimize, Budget, Placement};
use watos::plan::{Config, Plan, Recompute};
use watos::strategy::faults::{draw, FaultKind};
use watos::strategy::{place, solve, SearchOptions};
use watos::{Hardware, Instance};

fn load(name: &str) -> Instance {
    Instance::load(format!(
        "{}/instances/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn with(base: &Instance, hw: Hardware) -> Instance {
    let mut out = Instance::new(
        base.name.clone(),
        base.model.clone(),
        hw,
        base.training.clone(),
    )
    .unwrap();
    out.limits = base.limits.clone();
    out
}

fn opts() -> SearchOptions {
    SearchOptions {
        solver: SolverOptions {
            threads: 1,
            time_limit_s: None,
            seed: 0,
            ..SolverOptions::default()
        },
        local_search: true,
    }
}

/// Every die a placement uses is healthy, and the route between any two of them (a superset of
/// the pipeline sends, rings and parking transfers the evaluator charges) uses working links
/// between healthy dies only.
fn assert_avoids_faults(inst: &Instance, g: &Placement) {
    let f = inst.fabric();
    let used: Vec<u32> = g.devices().map(|(_, _, _, id)| id).collect();
    for id in &used {
        assert!(f.is_healthy(*id), "die {:?} is faulty", f.coord(*id));
    }
    for a in &used {
        for b in &used {
            for (x, y) in f.route(*a, *b) {
                assert!(
                    f.is_healthy(x) && f.is_healthy(y) && f.link_works(x, y),
                    "route {:?} -> {:?} crosses {:?} - {:?}",
                    f.coord(*a),
                    f.coord(*b),
                    f.coord(x),
                    f.coord(y)
                );
            }
        }
    }
}

#[test]
fn solved_plans_avoid_faulty_dies_and_links() {
    let base = load("gpt3-175b-wafer");
    let mut hw = base.hardware.clone();
    let w = hw.wafer.as_mut().unwrap();
    // The case: two faulty dies and one faulty link.
    w.faulty_dies = vec![[2, 3], [5, 6]];
    w.faulty_links = vec![[[0, 1], [0, 2]]];
    let cases = [
        hw,
        draw(&base.hardware, FaultKind::Dies, 0.1, 1).unwrap(),
        draw(&base.hardware, FaultKind::Links, 0.2, 1).unwrap(),
    ];
    for hw in cases {
        let inst = with(&base, hw);
        let sol = solve(&inst, &opts()).unwrap();
        let g = sol.plan.placement(inst.fabric()).unwrap();
        assert_avoids_faults(&inst, &g);
    }
}

#[test]
fn routes_detour_around_random_faults() {
    let base = load("gpt3-175b-wafer");
    for seed in 0..8 {
        for kind in FaultKind::ALL {
            let inst = with(&base, draw(&base.hardware, kind, 0.3, seed).unwrap());
            let f = inst.fabric();
            let healthy: Vec<u32> = (0..f.device_count())
                .filter(|id| f.is_healthy(*id))
                .collect();
            for a in &healthy {
                for b in &healthy {
                    let route = f.route(*a, *b);
                    // A route is a walk from a to b over working links.
                    let mut at = *a;
                    for (x, y) in &route {
                        assert_eq!(*x, at);
                        assert!(f.is_healthy(*y) && f.link_works(*x, *y));
                        at = *y;
                    }
                    assert_eq!(at, *b);
                }
            }
        }
    }
}

/// A plan of `layers` layers, `dp x tp x pp`, evenly split, on the default layout.
fn start(inst: &Instance, dp: u32, tp: u32, pp: u32) -> (Plan, Placement, ConfigCosts) {
    let plan = Plan::uniform(inst.model.layers, dp, tp, pp, 1, Recompute::Full);
    let g = plan.placement(inst.fabric()).unwrap();
    let costs = ConfigCosts::new(inst, Config::of(&plan));
    (plan, g, costs)
}

#[test]
fn local_search_never_slows_a_plan_and_repeats() {
    let base = load("gpt3-175b-wafer");
    let faulted = with(
        &base,
        draw(&base.hardware, FaultKind::Dies, 0.1, 3).unwrap(),
    );
    let links = with(
        &base,
        draw(&base.hardware, FaultKind::Links, 0.1, 3).unwrap(),
    );
    for inst in [&base, &faulted, &links] {
        for (dp, tp, pp) in [(1, 8, 6), (2, 4, 6), (3, 2, 8)] {
            let (plan, g, costs) = start(inst, dp, tp, pp);
            let before = evaluate_with(inst, &plan, &costs, &g).step_time_s;
            for scores in [1, 10, place::PER_PLAN, place::FINAL] {
                let (placed, e) = place::place(inst, &costs, plan.clone(), g.clone(), scores);
                assert!(e.step_time_s <= before, "{} > {before}", e.step_time_s);
                assert_avoids_faults(inst, &placed.placement(inst.fabric()).unwrap());
                if scores == place::PER_PLAN {
                    let again = place::place(inst, &costs, plan.clone(), g.clone(), scores);
                    assert_eq!(placed, again.0);
                }
            }
        }
    }
}

#[test]
fn optimize_stays_within_its_budget() {
    let inst = load("gpt3-175b-wafer");
    let (plan, g, costs) = start(&inst, 1, 8, 7);
    for scores in [1, 5, 40, 200] {
        let mut spent = 0;
        let mut score = |p: &Placement| {
            spent += 1;
            Some((
                evaluate_with(&inst, &plan, &costs, p).step_time_s,
                p.mean_pipeline_hops(inst.fabric()),
            ))
        };
        optimize(
            inst.fabric(),
            g.clone(),
            &mut score,
            Budget { scores, seed: 9 },
        );
        assert!(spent <= scores, "{spent} scores for a budget of {scores}");
    }
}

#[test]
fn gpt3_on_config3_uses_fewer_pipeline_hops_than_the_snake() {
    let inst = load("gpt3-175b-wafer");
    let f = inst.fabric();
    let sol = solve(&inst, &opts()).unwrap();
    let placed = sol.plan.placement(f).unwrap();
    // The same plan on the default layout: the band snake, stage after stage.
    let mut snake = sol.plan.clone();
    for s in &mut snake.stages {
        s.dies = None;
    }
    let g = snake.placement(f).unwrap();
    let costs = ConfigCosts::new(&inst, Config::of(&snake));
    let snake_s = evaluate_with(&inst, &snake, &costs, &g).step_time_s;
    assert!(
        placed.mean_pipeline_hops(f) < g.mean_pipeline_hops(f),
        "{} hops placed, {} on the snake",
        placed.mean_pipeline_hops(f),
        g.mean_pipeline_hops(f)
    );
    assert!(sol.evaluation.step_time_s <= snake_s);
}

/// The placed MIP's pessimistic price of parking (every pair of stages at once) is never above a
/// pair's price alone, and on four wafers, where pairs share each boundary's one link, it is
/// below it for some pair: the price that keeps the placed MIP from parking across boundaries.
#[test]
fn shared_parking_prices_are_pessimistic() {
    use watos::formulation::MipComm;
    let inst = load("deepseek-v3-671b-4wafers");
    let (mut plan, _, _) = start(&inst, 8, 4, 7);
    plan.ep = 8;
    let g = plan.placement(inst.fabric()).unwrap();
    let costs = ConfigCosts::new(&inst, Config::of(&plan));
    let alone = MipComm::of_placement(&inst, &costs, &g).park_bw;
    let shared = MipComm::of_placement_shared(&inst, &costs, &g).park_bw;
    let mut below = 0;
    for (j, row) in shared.iter().enumerate() {
        for (i, bw) in row.iter().enumerate().filter(|(i, _)| *i != j) {
            assert!(
                *bw > 0.0 && *bw <= alone[j][i] * (1.0 + 1e-12),
                "{j} -> {i}"
            );
            if *bw < alone[j][i] * 0.5 {
                below += 1;
            }
        }
    }
    assert!(below > 0, "no pair shares a boundary: {shared:?}");
}

/// Groups the units cannot all hold whole make stages straddle in every placement: Llama 3.1 405B
/// on four 56-die wafers with 16-wide tensor groups (14 groups, 3 per wafer: 2 straddle, in at
/// least one stage) or 32-wide ones (7 groups, 1 per wafer: 3 stages); the aligned class is then
/// empty, and the placement the search picks does straddle that many stages.
#[test]
fn groups_beyond_the_units_capacity_straddle() {
    use watos::cost::comm::{UnitClass, UnitComm};
    let inst = Instance::load(format!(
        "{}/instances/scale/wafer224-llama3.1-405b.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    for (dp, tp, straddling) in [(2, 16, 1), (1, 32, 3), (4, 8, 0)] {
        let (plan, g, costs) = start(&inst, dp, tp, 7);
        let u = UnitComm::of(&costs, inst.fabric()).unwrap();
        assert_eq!(u.min_straddling, straddling, "D{dp} T{tp}");
        let aligned = watos::cost::bound::quick_bound(
            &costs,
            &watos::cost::CommCosts::ideal(&inst, &costs),
            Some(&u.clone().covering(UnitClass::Aligned)),
            true,
        );
        assert_eq!(aligned.is_infinite(), straddling > 0, "D{dp} T{tp}");
        // The default layout of the plan: at least that many stages have a group across wafers.
        let f = inst.fabric();
        let crossing = (0..7)
            .filter(|j| {
                (0..plan.dp as usize).any(|r| {
                    let units: std::collections::BTreeSet<u32> =
                        g.group(r, *j).iter().map(|id| f.unit_of(*id)).collect();
                    units.len() > 1
                })
            })
            .count();
        assert!(crossing >= straddling as usize, "D{dp} T{tp}: {crossing}");
    }
}

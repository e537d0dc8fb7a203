//! Expert parallelism keeps the search's bounds true: on random small MoE instances (a mesh, two
//! wafers, two nodes) and random plans with `ep > 1`, the bounding MIP's objective, the evaluator
//! with ideal communication (the MIP's objective itself on a fabric of one unit) and the
//! configuration's quick bound never exceed the evaluator on the real routes; `watos solve`'s bound stays below the best
//! plan exhaustive enumeration finds over a space that includes every `ep`.

mod common;

use common::*;
use proptest::prelude::*;
use watos::cost::bound::quick_bound;
use watos::cost::comm::{UnitClass, UnitComm};
use watos::cost::{CommCosts, ConfigCosts};
use watos::formulation::{MipComm, SolverOptions, StageMip};
use watos::hardware::Hardware;
use watos::plan::{Config, Recompute, RecomputeCounts};
use watos::strategy::{self as search, exhaustive, SearchOptions};
use watos::{Instance, Model, Plan};

/// `layers` layers of which the first `first_dense` keep a dense FFN, hidden 64, four heads,
/// `experts` routed experts (top `k`) of width 128 and one shared expert.
fn moe_model(layers: u32, experts: u32, k: u32, first_dense: u32, capacity_factor: f64) -> Model {
    toml::from_str(&format!(
        "name='moe'\nlayers={layers}\nhidden=64\nheads=4\nvocab=256\ntied_embeddings=true\nmax_positions=4096\nffn='swiglu'\nbias=false\n[moe]\nexperts={experts}\nexperts_per_token={k}\nexpert_ffn_hidden=128\nshared_experts=1\nfirst_dense_layers={first_dense}\ncapacity_factor={capacity_factor}\n"
    ))
    .unwrap()
}

/// `nodes` nodes of `gpus` GPUs: NVLink inside, a slower network across.
fn cluster(gpus: u32, nodes: u32, dram_gb: f64) -> Hardware {
    toml::from_str(&format!(
        "name='c'\n[device]\npeak_tflops=100\nsram_mb=0\ndram_gb={dram_gb}\ndram_bw_tb_per_s=1\n[software]\nattention='flash'\nexecution='kernels'\n[cluster]\ngpus_per_node={gpus}\nnodes={nodes}\nintra_bw_gb_per_s=200\nintra_latency_us=2\ninter_bw_gb_per_s=25\ninter_latency_us=5\n"
    ))
    .unwrap()
}

/// Eight devices: a 2 x 4 wafer, two 1 x 4 wafers joined by a slow wafer-to-wafer link, or two
/// nodes of four GPUs.
fn fabric(kind: u32, dram_gb: f64) -> Hardware {
    match kind {
        0 => wafer(2, 4, dram_gb, 0.0, ""),
        1 => wafer(
            1,
            4,
            dram_gb,
            0.0,
            "wafers = 2\nw2w_bw_tb_per_s = 0.1\nw2w_latency_ns = 500",
        ),
        _ => cluster(4, 2, dram_gb),
    }
}

/// The least quick bound over the configuration's placement classes: a bound over every plan of
/// the configuration.
fn least_quick_bound(inst: &Instance, costs: &ConfigCosts) -> f64 {
    let comm = CommCosts::ideal(inst, costs);
    let overlap = costs.config.dp_overlap;
    match UnitComm::of(costs, inst.fabric()) {
        None => quick_bound(costs, &comm, None, overlap),
        Some(u) => [UnitClass::Aligned, UnitClass::Straddled]
            .into_iter()
            .map(|class| quick_bound(costs, &comm, Some(&u.clone().covering(class)), overlap))
            .fold(f64::INFINITY, f64::min),
    }
}

proptest! {
    #![proptest_config(proptest_config(32))]

    #[test]
    fn bounds_stay_below_the_evaluator_with_expert_parallelism(
        layers in 2u32..=4, experts in prop::sample::select(vec![2u32, 4, 8]), k in 1u32..=2,
        first_dense in 0u32..=1, capacity_factor in prop::sample::select(vec![1.0f64, 1.25]),
        kind in 0u32..3, tp in prop::sample::select(vec![1u32, 2]), pp in 1u32..=2,
        ep_pick in 0usize..4, split in prop::collection::vec(0u32..100, 2),
        zero1 in any::<bool>(), overlap in any::<bool>(), seq in prop::sample::select(vec![64u32, 256]),
    ) {
        let pp = pp.min(layers);
        let dp = 8 / (tp * pp);
        // Every ep > 1 dividing both dp and the experts.
        let eps: Vec<u32> = (2..=dp).filter(|e| dp % e == 0 && experts % e == 0).collect();
        prop_assume!(!eps.is_empty());
        let ep = eps[ep_pick % eps.len()];
        let inst = instance(moe_model(layers, experts, k.min(experts), first_dense, capacity_factor), fabric(kind, 1.0), training(8, seq), 1);
        let mut plan = Plan::uniform(layers, dp, tp, pp, 1, Recompute::None);
        plan.ep = ep;
        plan.sequence_parallel = tp > 1;
        plan.zero1 = zero1;
        plan.dp_overlap = overlap;
        for (j, s) in plan.stages.iter_mut().enumerate() {
            let n = s.layers;
            let full = (split[j % 2] * n / 100).min(n);
            s.recompute = vec![RecomputeCounts { none: n - full, selective: 0, full }];
        }
        let real = watos::evaluate(&inst, &plan).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(real.breakdown.ep_comm_s > 0.0, "ep {ep} charges no all-to-all");
        let costs = ConfigCosts::new(&inst, Config::of(&plan));
        let ideal = watos::cost::evaluate_ideal(&inst, &plan, &costs).step_time_s;
        let comm = MipComm::ideal(&inst, &costs);
        let units = comm.units.is_some();
        let mip = StageMip::new(&costs, comm, None).objective_of(&plan, inst.fabric());
        let real = real.step_time_s;
        // On a fabric of units the MIP prices the plan's placement class, tighter than the one
        // ideal figure per collective of the ideal evaluator, but still a bound.
        if !units {
            prop_assert!((mip - ideal).abs() <= 1e-9 * ideal, "MIP {mip} vs ideal evaluator {ideal}");
        }
        prop_assert!(mip <= real * (1.0 + 1e-12), "MIP {mip} above real {real}");
        prop_assert!(ideal <= real * (1.0 + 1e-12), "ideal {ideal} above real {real}");
        let quick = least_quick_bound(&inst, &costs);
        prop_assert!(quick <= real * (1.0 + 1e-12), "quick bound {quick} above real {real}");
    }
}

fn opts() -> SearchOptions {
    SearchOptions {
        solver: SolverOptions {
            gap: 0.01,
            threads: 1,
            time_limit_s: None,
            node_limit: Some(10_000),
            seed: 0,
            ..SolverOptions::default()
        },
        local_search: false,
    }
}

proptest! {
    #![proptest_config(proptest_config(6))]

    /// The space searched holds every `ep`; the bound `watos solve` proves stays below the best
    /// plan enumeration finds in it.
    #[test]
    fn solve_bound_holds_over_plans_with_experts(
        experts in prop::sample::select(vec![2u32, 4]), kind in 0u32..3,
        dram_kb in 300f64..3_000.0,
    ) {
        let inst = instance(moe_model(2, experts, 1, 0, 1.0), fabric(kind, dram_kb * 1e-6), training(4, 64), 1);
        let ex = exhaustive::solve(&inst, &opts().solver);
        let sol = search::solve(&inst, &opts());
        match (ex, sol) {
            (Err(_), Err(_)) => {}
            (Ok(e), Ok(s)) => {
                let best = e.evaluation.step_time_s;
                prop_assert!(s.lower_bound_s <= best * (1.0 + 1e-9), "bound {} above the exhaustive optimum {best}", s.lower_bound_s);
                prop_assert!(best <= s.evaluation.step_time_s * (1.0 + 1e-9));
            }
            (e, s) => prop_assert!(false, "exhaustive {:?} vs solve {:?}", e.map(|x| x.evaluation.step_time_s).map_err(|x| x.to_string()), s.map(|x| x.evaluation.step_time_s).map_err(|x| x.to_string())),
        }
    }
}

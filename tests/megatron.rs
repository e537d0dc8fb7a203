//! The megatron strategy: its rules on a GPU cluster, its arguments, and the published runs.

use watos::hardware::Hardware;
use watos::instance::{GradDtype, Instance, Optimizer, Precision, Training};
use watos::plan::{Plan, Recompute, Stage};
use watos::strategy::megatron::args::{arguments, parse};
use watos::strategy::megatron::{rules, search, Megatron, Pins};
use watos::strategy::{run, SearchOptions, Silent, Strategy};
use watos::validate::Measurements;
use watos::Model;

const DIR: &str = env!("CARGO_MANIFEST_DIR");

fn model(name: &str) -> Model {
    Model::load(format!("{DIR}/models/{name}.toml")).unwrap()
}

/// `hardware/{file}.toml` cut to `nodes` nodes.
fn cluster(file: &str, nodes: u32) -> Hardware {
    let mut hw = Hardware::load(format!("{DIR}/hardware/{file}.toml")).unwrap();
    if let Some(c) = hw.cluster.as_mut() {
        c.nodes = nodes;
    }
    hw
}

fn training(global_batch: u32, seq_len: u32) -> Training {
    Training {
        global_batch,
        seq_len,
        precision: Precision::Fp16,
        grad_dtype: GradDtype::Fp32,
        optimizer: Optimizer::Adam,
        attention: None,
        execution: None,
    }
}

/// Megatron's plan on a cluster, with the instance it planned on.
fn megatron(model_name: &str, hw: Hardware, batch: u32) -> (Instance, Plan) {
    let inst = Instance::new("t", model(model_name), hw, training(batch, 2048)).unwrap();
    let out = run(
        &Megatron::default(),
        &inst,
        &SearchOptions::default(),
        &Silent,
    )
    .unwrap();
    (out.instance, out.solution.plan)
}

#[test]
fn on_a_cluster_megatron_parks_nothing_splits_no_kv_head_and_keeps_tensor_groups_in_a_node() {
    // Llama 3 70B has 8 key/value heads for 64 query heads; DGX H100 clusters of 4 and 8 nodes.
    for (name, nodes) in [("llama3-70b", 4), ("gpt3-175b", 8)] {
        let (inst, plan) = megatron(name, cluster("dgx-h100-80gb", nodes), 64);
        let gpus_per_node = inst.hardware.cluster.as_ref().unwrap().gpus_per_node;
        assert!(plan.stages.iter().all(|s| s.park.is_empty()), "{plan}");
        assert_eq!(inst.model.kv_heads() % plan.tp, 0, "{plan}");
        assert_eq!(gpus_per_node % plan.tp, 0, "{plan}");
        // Every device leaves the 3 GB reserve free of the 80 GB it has.
        assert_eq!(inst.reserved_bytes, 3e9);
        let e = watos::evaluate(&inst, &plan).unwrap();
        assert!(e.feasible);
        for s in &e.memory.stages {
            assert!(s.dram_used_bytes <= 80e9 - 3e9, "{}", s.dram_used_bytes);
        }
        // One recomputation mode for every layer, and the arguments run this very plan.
        let launch = arguments(&plan, &inst).expect("a plan Megatron-LM can run");
        let back = parse(&launch.args, inst.model.layers, launch.world_size).unwrap();
        assert_eq!(back, plan, "{}", launch.line());
    }
}

#[test]
fn arguments_parse_back_to_the_plan_for_uneven_and_interleaved_stages() {
    let hw = cluster("dgx-a100-80gb", 8);
    let inst = Instance::new("t", model("gpt3-175b"), hw, training(512, 2048)).unwrap();
    let mut plans = Vec::new();
    for (split, v, mode) in [
        (vec![12; 8], 2, Recompute::Selective),
        (vec![10, 12, 12, 12, 12, 12, 12, 14], 2, Recompute::Full),
        (vec![13, 13, 13, 13, 13, 13, 13, 5], 1, Recompute::None),
        (vec![20, 76], 1, Recompute::Full),
    ] {
        plans.push(Plan {
            dp: 2,
            ep: 1,
            tp: 4,
            pp: split.len() as u32,
            micro_batch: 1,
            sequence_parallel: true,
            interleave: v,
            zero1: true,
            dp_overlap: false,
            weight_streaming: false,
            stages: split.iter().map(|n| Stage::new(*n, mode)).collect(),
        });
    }
    for plan in plans {
        let launch = arguments(&plan, &inst).expect("Megatron-LM can run it");
        let back = parse(&launch.args, 96, launch.world_size).unwrap();
        assert_eq!(back, plan, "{}", launch.line());
    }
    // Expert parallelism (Mixtral's 8 experts over 4 of the 8 replicas).
    let moe = Instance::new(
        "t",
        model("mixtral-8x7b"),
        cluster("dgx-a100-80gb", 8),
        training(512, 4096),
    )
    .unwrap();
    let mut plan = Plan::uniform(32, 8, 2, 4, 1, Recompute::Selective);
    plan.ep = 4;
    plan.sequence_parallel = true;
    let launch = arguments(&plan, &moe).expect("Megatron-LM can run it");
    assert!(
        launch.line().contains("--expert-model-parallel-size 4"),
        "{}",
        launch.line()
    );
    assert_eq!(parse(&launch.args, 32, launch.world_size).unwrap(), plan);
    // Different modes per layer is no Megatron-LM plan.
    let mut mixed = Plan::uniform(96, 1, 8, 2, 1, Recompute::Full);
    mixed.stages[0] = Stage::new(48, Recompute::None);
    assert!(arguments(&mixed, &inst).is_none());
}

/// The instance of a published run: its model, `gpus` A100s, FP16 with FP32 gradients and Adam.
fn published(model_name: &str, gpus: u32, batch: u32) -> Instance {
    let hw = cluster("dgx-a100-80gb", gpus.div_ceil(8));
    Instance::new(model_name, model(model_name), hw, training(batch, 2048)).unwrap()
}

fn pinned(inst: &Instance, pins: Pins) -> Plan {
    let m = rules(inst);
    let sol = search(&m, &pins, "pinned", &SearchOptions::default(), &Silent)
        .unwrap_or_else(|e| panic!("{}: {e}", inst.name));
    sol.plan
}

#[test]
fn megatron_reproduces_the_plans_of_the_published_runs_given_their_settings() {
    let data = Measurements::embedded().unwrap();
    // Narayanan et al. Table 1: full recomputation, no sequence parallelism, no distributed
    // optimizer, equal stages (Megatron-LM of 2021); degrees, micro-batch, interleaving and DDP
    // from the run scripts.
    for r in &data.megatron.rows {
        let inst = published(&r.model, r.gpus, r.batch);
        let dp = r.gpus / (r.tp * r.pp);
        let overlap = r.ddp == "torch";
        let plan = pinned(
            &inst,
            Pins {
                dp: Some(dp),
                tp: Some(r.tp),
                pp: Some(r.pp),
                micro_batch: Some(r.micro_batch),
                interleave: Some(r.interleave),
                recompute: Some(Recompute::Full),
                sequence_parallel: Some(false),
                zero1: Some(false),
                dp_overlap: Some(overlap),
                even_stages: true,
            },
        );
        let mut want = Plan::uniform(r.layers, dp, r.tp, r.pp, r.micro_batch, Recompute::Full);
        want.interleave = r.interleave;
        want.dp_overlap = overlap;
        assert_eq!(plan, want, "{}B", r.params_b);
    }
    // Korthikanti et al. Table 3 with their method: selective recomputation and sequence
    // parallelism, one replica.
    for c in &data.korthikanti.table3.rows {
        let inst = published(&c.model, c.gpus, c.batch);
        let pins = Pins {
            dp: Some(1),
            tp: Some(c.tp),
            pp: Some(c.pp),
            micro_batch: Some(c.micro_batch),
            interleave: Some(c.interleave.unwrap_or(1)),
            recompute: Some(Recompute::Selective),
            sequence_parallel: Some(true),
            zero1: Some(false),
            dp_overlap: Some(false),
            even_stages: true,
        };
        let plan = pinned(&inst, pins);
        let mut want = Plan::uniform(c.layers, 1, c.tp, c.pp, c.micro_batch, Recompute::Selective);
        want.interleave = c.interleave.unwrap_or(1);
        want.sequence_parallel = true;
        assert_eq!(plan, want, "{}", c.name);
    }
}

#[test]
fn the_strategy_is_scored_by_the_evaluator_on_the_instance_it_planned_on() {
    let inst = Instance::new(
        "t",
        model("llama3-70b"),
        cluster("dgx-h100-80gb", 4),
        training(32, 2048),
    )
    .unwrap();
    let m = Megatron::default();
    let out = run(&m, &inst, &SearchOptions::default(), &Silent).unwrap();
    let e = watos::evaluate(&m.instance(&inst).unwrap(), &out.solution.plan).unwrap();
    assert_eq!(e.step_time_s, out.solution.evaluation.step_time_s);
}

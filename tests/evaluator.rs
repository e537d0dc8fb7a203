//! The evaluator end to end against numbers worked out by hand, on hardware chosen so that only
//! the FLOPs count: efficiency 1, bandwidths so large that bytes cost nothing, zero latency.

use watos::cost::evaluate;
use watos::plan::Recompute;
use watos::{Hardware, Instance, Model, Plan, Training};

/// A 2-layer GPT (h 64, 2 heads, vocabulary 128, 32 learned positions) on two ideal devices.
fn ideal() -> Instance {
    let model: Model = toml::from_str("name='tiny'\nlayers=2\nhidden=64\nheads=2\nvocab=128\ntied_embeddings=true\nmax_positions=32").unwrap();
    let hw: Hardware = toml::from_str(
        "name='ideal'\n[device]\npeak_tflops=1\nsram_mb=0\ndram_gb=1\ndram_bw_tb_per_s=1e9\n[software]\nattention='unfused'\nexecution='kernels'\n\
         [efficiency]\ngemm=1\ngemm_half_dim=0\nattention=1\ndram=1\nlink=1\n\
         [cluster]\ngpus_per_node=2\nnodes=1\nintra_bw_gb_per_s=1e12\nintra_latency_us=0\ninter_bw_gb_per_s=1e12\ninter_latency_us=0\n",
    )
    .unwrap();
    let training: Training = toml::from_str("global_batch=4\nseq_len=32").unwrap();
    Instance::new("ideal", model, hw, training).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    approx::relative_eq!(a, b, max_relative = 1e-6)
}

#[test]
fn one_device_runs_at_peak_flops() {
    // Megatron's count: 72 B s L h^2 (1 + s/(6h) + V/(12 L h)) = 72*4*32*2*64^2 * (1 + 1/12 + 1/12)
    // = 75,497,472 * 7/6 = 88,080,384 FLOPs; at 1 TFLOP/s, 88.080384 us.
    let inst = ideal();
    let e = evaluate(&inst, &Plan::uniform(2, 1, 1, 1, 1, Recompute::None)).unwrap();
    assert_eq!(e.model_flops_per_step, 88_080_384.0);
    assert!(close(e.step_time_s, 88.080384e-6), "{}", e.step_time_s);
    assert!(
        close(e.mfu, 1.0) && close(e.hfu, 1.0),
        "{} {}",
        e.mfu,
        e.hfu
    );
    assert_eq!(e.micro_batches, 4);
}

#[test]
fn full_recomputation_adds_one_forward_per_layer() {
    // Forward of one layer per token: 24 h^2 + 4 s h = 98,304 + 8,192 = 106,496 FLOPs; 2 layers,
    // 128 tokens: 27,262,976 FLOPs more, so 115,343,360 FLOPs = 115.34336 us; HFU 1, MFU
    // 88,080,384 / 115,343,360 = 0.763636...
    let inst = ideal();
    let e = evaluate(&inst, &Plan::uniform(2, 1, 1, 1, 1, Recompute::Full)).unwrap();
    assert!(close(e.step_time_s, 115.34336e-6), "{}", e.step_time_s);
    assert!(close(e.hfu, 1.0), "{}", e.hfu);
    assert!(close(e.mfu, 88_080_384.0 / 115_343_360.0), "{}", e.mfu);
}

#[test]
fn two_stages_pay_the_pipeline_bubble() {
    // Per micro-batch (32 tokens): a layer is 3 * 106,496 * 32 = 10,223,616 FLOPs; the head
    // 3 * 2*64*128 * 32 = 1,572,864. Stage 0 (layer + embedding): 10.223616 us; stage 1 (layer +
    // head): 11.79648 us. 1F1B with 4 micro-batches: sum + 3 * max = 22.020096 + 35.38944
    // = 57.409536 us; MFU = 88,080,384 / (57.409536 us * 2 devices * 1 TFLOP/s) = 0.767125...
    let inst = ideal();
    let e = evaluate(&inst, &Plan::uniform(2, 1, 1, 2, 1, Recompute::None)).unwrap();
    assert!(
        close(e.stages[0].time_per_microbatch_s, 10.223616e-6),
        "{}",
        e.stages[0].time_per_microbatch_s
    );
    assert!(
        close(e.stages[1].time_per_microbatch_s, 11.79648e-6),
        "{}",
        e.stages[1].time_per_microbatch_s
    );
    assert!(close(e.step_time_s, 57.409536e-6), "{}", e.step_time_s);
    assert!(
        close(e.breakdown.bubble_s, 57.409536e-6 - 4.0 * 11.79648e-6),
        "{}",
        e.breakdown.bubble_s
    );
    assert!(
        close(e.mfu, 88_080_384.0 / (57.409536e-6 * 2e12)),
        "{}",
        e.mfu
    );
    assert!(close(e.breakdown.total_s(), e.step_time_s));
    assert_eq!(e.critical_stage, 1);
}

#[test]
fn memory_by_hand() {
    // Parameters: a layer 12h^2 + 13h = 49,152 + 832 = 49,984; two layers 99,968; embedding
    // 128*64 + 32*64 = 10,240; final LayerNorm 128 (head tied): 110,336. Adam, FP32 gradients:
    // 2 + 4 + 12 bytes each: 220,672 + 441,344 + 1,324,032 = 1,986,048 bytes.
    // Activations (no recomputation, one micro-batch in flight on one stage): a layer stores
    // s b h (34 + 5 a s / h) = 2,048 * 39 = 79,872 bytes; the embedding's dropout mask 2,048; the
    // head's norm input 4,096 and FP32 logits 4 * 32 * 128 = 16,384: 182,272 bytes. Workspace: one
    // layer's activations, 79,872. DRAM in all: 2,248,192 bytes.
    let inst = ideal();
    let e = evaluate(&inst, &Plan::uniform(2, 1, 1, 1, 1, Recompute::None)).unwrap();
    let m = &e.memory.stages[0];
    assert_eq!(m.weights_bytes, 220_672.0);
    assert_eq!(m.grads_bytes, 441_344.0);
    assert_eq!(m.optimizer_bytes, 1_324_032.0);
    assert_eq!(m.activations_bytes, 182_272.0);
    assert_eq!(m.workspace_bytes, 79_872.0);
    assert_eq!(m.dram_used_bytes, 2_248_192.0);
    assert!(e.feasible);
}

#[test]
fn a_plan_that_does_not_fit_names_what_overflows() {
    // The same model on 1 MB of DRAM: 2.25 MB needed.
    let mut inst = ideal();
    inst.hardware.device.dram_gb = 1e-3;
    let inst = Instance::new(
        "small",
        inst.model.clone(),
        inst.hardware.clone(),
        inst.training.clone(),
    )
    .unwrap();
    let e = evaluate(&inst, &Plan::uniform(2, 1, 1, 1, 1, Recompute::None)).unwrap();
    assert!(!e.feasible);
    let v = &e.violations[0];
    assert_eq!(v.kind(), watos::cost::ViolationKind::Dram);
    assert_eq!(v.figures().0, 2_248_192.0);
    let message = v.to_string();
    assert!(
        message.contains("over by") && message.contains("optimizer"),
        "{message}"
    );
}

/// The same GPT on an ideal wafer of 3 dies in a row, whose 2 heads 3 does not divide.
fn ideal_wafer() -> Instance {
    let model: Model = toml::from_str("name='tiny'\nlayers=2\nhidden=64\nheads=2\nvocab=128\ntied_embeddings=true\nmax_positions=32").unwrap();
    let hw: Hardware = toml::from_str(
        "name='ideal wafer'\n[device]\npeak_tflops=1\nsram_mb=0\ndram_gb=1\ndram_bw_tb_per_s=1e9\n[software]\nattention='unfused'\nexecution='kernels'\n\
         [efficiency]\ngemm=1\ngemm_half_dim=0\nattention=1\ndram=1\nlink=1\n\
         [wafer]\nrows=1\ncols=3\nd2d_bw_tb_per_s=1e9\nd2d_latency_ns=0\n",
    )
    .unwrap();
    let training: Training = toml::from_str("global_batch=4\nseq_len=32").unwrap();
    Instance::new("ideal wafer", model, hw, training).unwrap()
}

#[test]
fn weight_streaming_splits_every_layer_over_all_dies() {
    // 88,080,384 FLOPs per step (one_device_runs_at_peak_flops) spread evenly over the 3 dies,
    // although 3 does not divide the 2 heads: 29,360,128 FLOPs each, 29.360128 us at 1 TFLOP/s,
    // the weight stream and the activation exchange free on this hardware. MFU 1.
    let inst = ideal_wafer();
    let plan = watos::cost::streaming::plan(&inst, 1, Recompute::None);
    assert_eq!((plan.dp, plan.tp, plan.pp), (1, 3, 1));
    let e = evaluate(&inst, &plan).unwrap();
    assert!(close(e.step_time_s, 29.360128e-6), "{}", e.step_time_s);
    assert!(close(e.mfu, 1.0), "{}", e.mfu);
    // The same split is not an ordinary tensor-parallel plan.
    let mut ordinary = plan.clone();
    ordinary.weight_streaming = false;
    let err = evaluate(&inst, &ordinary).unwrap_err().to_string();
    assert!(
        err.contains("does not divide the 2 attention heads"),
        "{err}"
    );
}

#[test]
fn a_streamed_plan_file_round_trips_and_bad_ones_say_why() {
    let inst = ideal_wafer();
    let plan = watos::cost::streaming::plan(&inst, 2, Recompute::Full);
    let text = plan.to_toml().unwrap();
    assert!(text.contains("weight_streaming = true"), "{text}");
    let back: Plan = toml::from_str(&text).unwrap();
    assert_eq!(back, plan);
    let mut two = plan.clone();
    two.tp = 2;
    let err = evaluate(&inst, &two).unwrap_err().to_string();
    assert!(
        err.contains("tp") && err.contains("every healthy die"),
        "{err}"
    );
    let mut sram = plan.clone();
    sram.stages[0].weights = watos::plan::WeightSource::Sram;
    let err = evaluate(&inst, &sram).unwrap_err().to_string();
    assert!(err.contains("stage[0].weights"), "{err}");
}

//! Plans an audit found below the bound `watos solve` printed (issue 8), each typed as a user
//! would: the plan goes through `watos evaluate`, the bound through `watos solve --json`. No plan
//! `evaluate` accepts may score below the bound `solve` prints for the same instance.

mod common;

use common::cli::*;

const MEGATRON_1_7B: &str = "models/megatron-1.7b.toml";
const LLAMA3_70B: &str = "models/llama3-70b.toml";

/// Step time of a plan given by flags or a plan file (feasible, or the test fails).
fn evaluate(s: &Scratch, setup: &[&str], plan: &[&str]) -> f64 {
    let mut args = vec!["evaluate"];
    args.extend_from_slice(setup);
    args.extend_from_slice(plan);
    args.push("--json");
    let run = s.run(&args);
    run.assert_code(0);
    let v = run.json();
    assert_eq!(v["feasible"], true, "{}: {v}", run.args);
    f64_of(&v, "step_time_s")
}

/// `(bound, step time)` that `watos solve --json` prints.
fn solve(s: &Scratch, setup: &[&str]) -> (f64, f64) {
    let mut args = vec!["solve"];
    args.extend_from_slice(setup);
    args.push("--json");
    let run = s.run(&args);
    run.assert_code(0);
    let v = run.json();
    let (bound, step) = (f64_of(&v, "lower_bound_s"), f64_of(&v, "step_time_s"));
    assert!(
        bound <= step,
        "{}: bound {bound} above its plan {step}",
        run.args
    );
    (bound, step)
}

/// The audit's plan scores at `want_s` (the figure of the report, so the plan is the one it
/// meant) and not below the bound; solve's own plan is at least as good as the audit's.
fn check(setup: &[&str], plan: &[&str], want_s: f64, s: &Scratch) {
    let at = evaluate(s, setup, plan);
    assert!(
        (at - want_s).abs() <= 5e-4 * want_s,
        "the audit's plan now scores {at} s, reported {want_s} s"
    );
    let (bound, step) = solve(s, setup);
    assert!(
        bound <= at,
        "bound {bound} s above a plan evaluate accepts at {at} s"
    );
    assert!(
        step <= at * (1.0 + 1e-9),
        "solve's plan {step} s, the audit's {at} s"
    );
}

#[test]
fn micro_batch_above_eight_is_searched() {
    let s = Scratch::new();
    let (m, hw) = (shipped(MEGATRON_1_7B), shipped("hardware/temp-6x8.toml"));
    let setup = [
        "--model",
        &m,
        "--hardware",
        &hw,
        "--batch",
        "1024",
        "--seq",
        "256",
    ];
    let plan = [
        "--dp",
        "16",
        "--tp",
        "3",
        "--pp",
        "1",
        "--micro-batch",
        "32",
        "--recompute",
        "none",
        "--sequence-parallel",
        "--zero1",
    ];
    check(&setup, &plan, 0.0571, &s);
}

#[test]
fn interleaving_with_uneven_stages_is_searched() {
    let s = Scratch::new();
    let stage = |layers: u32| format!("[[stage]]\nlayers = {layers}\nrecompute = \"none\"\n");
    let mut text =
        "dp = 1\ntp = 8\npp = 7\nmicro_batch = 1\nsequence_parallel = true\ninterleave = 4\n"
            .to_string();
    for _ in 0..6 {
        text += &stage(12);
    }
    text += &stage(8);
    let file = s.write("plan.toml", &text);
    let (m, hw) = (shipped(LLAMA3_70B), shipped(CONFIG3));
    let setup = [
        "--model",
        &m,
        "--hardware",
        &hw,
        "--batch",
        "56",
        "--seq",
        "4096",
    ];
    check(&setup, &["--plan", file], 3.777, &s);
}

#[test]
fn data_parallel_overlap_is_searched() {
    let s = Scratch::new();
    let (m, hw) = (shipped(MEGATRON_1_7B), shipped(CONFIG3));
    let setup = [
        "--model",
        &m,
        "--hardware",
        &hw,
        "--batch",
        "112",
        "--seq",
        "2048",
    ];
    let plan = [
        "--dp",
        "28",
        "--tp",
        "2",
        "--pp",
        "1",
        "--micro-batch",
        "2",
        "--recompute",
        "none",
        "--sequence-parallel",
        "--zero1",
        "--dp-overlap",
    ];
    check(&setup, &plan, 0.0918, &s);
}

/// Wafer-to-wafer links 32 times faster than the on-wafer ones: the ideal costs must use the
/// fastest link a flow could take, or a plan whose rings cross wafers beats the bound.
#[test]
fn links_faster_than_the_mesh_are_priced_at_their_speed() {
    let s = Scratch::new();
    let hw = s.write(
        "two-wafers.toml",
        "name = \"two 1x4 wafers, fast crossings\"\n[device]\npeak_tflops = 708.0\nsram_mb = 442.5\n\
         dram_gb = 70.0\ndram_bw_tb_per_s = 2.0\n[wafer]\nrows = 1\ncols = 4\nd2d_bw_tb_per_s = 0.5\n\
         d2d_latency_ns = 200\nwafers = 2\nw2w_bw_tb_per_s = 16.0\n[software]\nattention = \"flash\"\n\
         execution = \"dataflow\"\n",
    );
    let m = shipped(MEGATRON_1_7B);
    let setup = [
        "--model",
        &m,
        "--hardware",
        hw,
        "--batch",
        "16",
        "--seq",
        "2048",
    ];
    let plan = [
        "--dp",
        "4",
        "--tp",
        "2",
        "--pp",
        "1",
        "--micro-batch",
        "2",
        "--recompute",
        "none",
    ];
    let at = evaluate(&s, &setup, &plan);
    let (bound, step) = solve(&s, &setup);
    assert!(bound <= at, "bound {bound} s above {at} s");
    assert!(step <= at, "solve's plan {step} s, a hand-typed one {at} s");
}

//! `watos explore`: design spaces, the sweep's pruning, and shard/merge.

mod common;

use watos::explore::{self, Budget, DesignSpace, ExploreOptions, Report, Workload};
use watos::formulation::SolverOptions;
use watos::instance::Limits;
use watos::strategy::{self, SearchOptions};

fn tiny() -> DesignSpace {
    DesignSpace::load(common::repo("tests/data/spaces/tiny.toml")).unwrap()
}

/// Megatron 1.7B at 64 x 2048 tokens: solves in milliseconds on a wafer.
fn workload() -> Workload {
    Workload {
        name: "Megatron GPT 1.7B".into(),
        model: watos::Model::load(common::repo("models/megatron-1.7b.toml")).unwrap(),
        training: common::training(64, 2048),
        limits: Limits::default(),
        weight: 1.0,
        path: None,
    }
}

fn quiet(_: explore::sweep::Progress) {}

#[test]
fn the_paper_space_holds_its_four_configurations_and_the_temp_like_wafer() {
    let s = DesignSpace::load(common::repo("hardware/spaces/paper.toml")).unwrap();
    assert_eq!(s.references.len(), 5);
    for r in &s.references {
        let found = s.find(&r.hardware);
        assert!(!found.is_empty(), "{} is not a design of the space", r.name);
        // And within the space's budgets under one of its technologies.
        assert!(
            found.iter().any(|d| Budget::of(&s, d).broken().is_none()),
            "{}: every matching design breaks a budget: {:?}",
            r.name,
            found
                .iter()
                .map(|d| Budget::of(&s, d).broken())
                .collect::<Vec<_>>()
        );
    }
}

fn load_text(text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("watos-explore-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!(
        "{:x}.toml",
        text.len() * 31 + text.bytes().map(usize::from).sum::<usize>()
    ));
    let base = common::repo("hardware/wafer-config3.toml");
    std::fs::write(&path, text.replace("BASE", &base)).unwrap();
    DesignSpace::load(&path).unwrap_err().to_string()
}

#[test]
fn bad_spaces_name_the_field_at_fault() {
    let ok = "name = 'x'\nbase = 'BASE'\n[mesh]\nrows = 6\ncols = 8\n[die]\npeak_tflops = 708\n[dram]\nstacks = 2\nstack_gb = 36\nstack_tb_per_s = 1\n[d2d]\nbw_tb_per_s = 4\n";
    for (bad, field) in [
        (
            ok.replace("rows = 6", "rows = { min = 7, max = 6 }"),
            "mesh.rows.max",
        ),
        (ok.replace("stacks = 2", "stacks = []"), "dram.stacks"),
        (ok.replace("stacks = 2", "stacks = 2.5"), "dram.stacks"),
        (
            ok.replace("peak_tflops = 708", "peak_tflops = -1"),
            "die.peak_tflops",
        ),
        (
            ok.replace("bw_tb_per_s = 4", "bw_tb_per_s = { min = 1, max = 8 }"),
            "d2d.bw_tb_per_s.step",
        ),
        (
            ok.replace("cols = 8", "cols = 8\nwafers = [2]"),
            "mesh.wafers",
        ),
        (ok.replace("cols = 8", "cols = 8\nsquare = true"), "square"),
    ] {
        let e = load_text(&bad);
        assert!(e.contains(field), "expected `{field}` in: {e}");
    }
}

/// The SearchOptions the sweep solves each design with, on a one-thread pool as the sweep does.
fn coarse_step_time(s: &DesignSpace, i: u64, w: &Workload, gap: f64) -> f64 {
    let d = s.design(i);
    let mut inst =
        watos::Instance::new("t", w.model.clone(), s.hardware(&d), w.training.clone()).unwrap();
    inst.limits = w.limits.clone();
    let opts = SearchOptions {
        solver: SolverOptions {
            gap,
            threads: 1,
            seed: 0,
            ..SolverOptions::default()
        },
        local_search: true,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| strategy::solve(&inst, &opts))
        .map_or(f64::INFINITY, |sol| sol.evaluation.step_time_s)
}

/// The report's best step time with pruning tolerance `tol`, its designs skipped by a bound, and
/// the fastest step of every design of the space solved as the sweep solves it.
fn best_and_fastest(tol: f64) -> (f64, u64, f64) {
    let s = tiny();
    let w = workload();
    let opts = ExploreOptions {
        top: 1,
        prune_gap: tol,
        sensitivity: false,
        ..ExploreOptions::default()
    };
    let slice = explore::sweep(&s, std::slice::from_ref(&w), &opts, [0, 1], &quiet).unwrap();
    let pruned = slice.run.pruned;
    let report = Report::from_slices(vec![slice]).unwrap();
    let best = report.best[0].outcomes[0].step_time_s;
    let mut fastest = f64::INFINITY;
    for i in 0..s.points() {
        if Budget::of(&s, &s.design(i)).broken().is_none() {
            fastest = fastest.min(coarse_step_time(&s, i, &w, opts.coarse_gap));
        }
    }
    assert!(fastest.is_finite());
    (best, pruned, fastest)
}

#[test]
fn pruning_never_drops_the_best_design() {
    // One wafer per design, so the fastest step is the best score. Strict pruning: nothing
    // solved faster than the report's best, though designs were skipped.
    let (best, pruned, fastest) = best_and_fastest(0.0);
    assert!(pruned > 0, "nothing pruned: the test tests nothing");
    assert!(
        best <= fastest * (1.0 + 1e-9),
        "report {best} vs every design {fastest}"
    );
}

#[test]
fn pruning_with_a_tolerance_stays_within_it() {
    let tol = 0.05;
    let (best, pruned, fastest) = best_and_fastest(tol);
    assert!(pruned > 0, "nothing pruned: the test tests nothing");
    assert!(
        best * (1.0 - tol) <= fastest * (1.0 + 1e-9),
        "report {best} vs every design {fastest}"
    );
}

#[test]
fn shard_and_merge_equal_a_single_run() {
    let s = tiny();
    let w = [workload()];
    let opts = ExploreOptions {
        top: 3,
        // Strict pruning: what one slice skips, every slicing skips.
        prune_gap: 0.0,
        sensitivity: false,
        ..ExploreOptions::default()
    };
    let one =
        Report::from_slices(vec![explore::sweep(&s, &w, &opts, [0, 1], &quiet).unwrap()]).unwrap();
    let slices: Vec<_> = (0..3)
        .map(|i| explore::sweep(&s, &w, &opts, [i, 3], &quiet).unwrap())
        .collect();
    let merged = Report::from_slices(slices).unwrap();
    assert!(!one.best.is_empty() && !one.front.is_empty());
    assert_eq!(one.answers_json(), merged.answers_json());
}

#[test]
fn the_co_exploration_mip_agrees_with_the_sweep() {
    let s = tiny();
    let w = workload();
    let opts = ExploreOptions {
        top: 1,
        prune_gap: 0.0,
        sensitivity: false,
        ..ExploreOptions::default()
    };
    let slice = explore::sweep(&s, std::slice::from_ref(&w), &opts, [0, 1], &quiet).unwrap();
    let swept = Report::from_slices(vec![slice]).unwrap().best[0].outcomes[0].step_time_s;
    let mip = explore::mip::co_explore(&s, &w, &opts).unwrap();
    // The MIP's bound holds over every design and plan, so it is below the sweep's best; and
    // the two best plans agree within the gaps they were solved to.
    assert!(
        mip.lower_bound_s <= swept * (1.0 + 1e-9),
        "{} vs {swept}",
        mip.lower_bound_s
    );
    let step = mip.outcome.step_time_s;
    assert!(
        step <= swept / (1.0 - mip.gap.max(opts.gap)) * (1.0 + 1e-9),
        "{step} vs {swept}"
    );
    assert!(
        swept <= step / (1.0 - opts.gap) * (1.0 + 1e-9),
        "{swept} vs {step}"
    );
}

#[test]
fn the_command_prints_one_json_object_with_svgs_and_merges_its_slices() {
    use common::cli::{run_here, Scratch};
    let dir = Scratch::new();
    let svg = dir.path("svg");
    let base = [
        "explore",
        "tests/data/spaces/tiny.toml",
        "--model",
        "models/megatron-1.7b.toml",
        "--batch",
        "64",
        "--seq",
        "2048",
        "--top",
        "2",
        "--prune-gap",
        "0",
        "--no-sensitivity",
    ];
    let mut args = base.to_vec();
    let svg_arg = svg.display().to_string();
    args.extend(["--json", "--svg", &svg_arg]);
    let one = run_here(&args);
    assert_eq!(one.code, Some(0), "{}", one.context());
    let report = one.json();
    assert_eq!(
        report["best"].as_array().map(Vec::len),
        Some(2),
        "{}",
        one.context()
    );
    for f in ["front.svg", "split.svg"] {
        let text = std::fs::read_to_string(svg.join(f)).unwrap();
        assert!(text.starts_with("<svg") && text.contains("<circle"), "{f}");
    }
    // Two slices through files, merged: the same answers.
    let mut slices = Vec::new();
    for i in 0..2 {
        let out = dir.path(&format!("{i}.json")).display().to_string();
        let shard = format!("{i}/2");
        let mut a = base.to_vec();
        a.extend(["--shard", &shard, "--out", &out]);
        let run = run_here(&a);
        assert_eq!(run.code, Some(0), "{}", run.context());
        slices.push(out);
    }
    let mut m = vec!["merge", "--json"];
    m.extend(slices.iter().map(String::as_str));
    let merged = run_here(&m);
    assert_eq!(merged.code, Some(0), "{}", merged.context());
    let (mut a, mut b) = (report, merged.json());
    a.as_object_mut().unwrap().remove("run");
    b.as_object_mut().unwrap().remove("run");
    assert_eq!(a, b);
    // A bad flag still prints one JSON object, naming it.
    let bad = run_here(&[
        "explore",
        "tests/data/spaces/tiny.toml",
        "--model",
        "models/megatron-1.7b.toml",
        "--json",
    ]);
    assert_eq!(bad.code, Some(2), "{}", bad.context());
    assert!(
        bad.json().to_string().contains("--batch"),
        "{}",
        bad.context()
    );
}

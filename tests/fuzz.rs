//! Random model, hardware, instance and plan files, valid and invalid, through the parsers and the
//! evaluator (and a few through the binary): no panic; every invalid file is exit 2 with the file,
//! line and field of the mistake; every valid one scores with finite, positive figures and
//! MFU <= HFU <= 100%. Fixed seed and bounded case counts, so it repeats and runs in seconds.
//!
//! Valid files draw every number from its whole valid range (`watos::input::ranges`); an invalid
//! one is a valid set with one value broken (out of range, not finite, of the wrong type), one
//! required key removed, an unknown key added, or a file of the wrong kind named.

mod common;

use std::path::Path;

use common::cli::{run_in, Scratch};
use common::files::{case, entry, line_of_key, write, Case, Kind, Rng};
use proptest::prelude::*;
use watos::plan::Plan;
use watos::{Error, Instance};

/// One thing broken in an otherwise valid case: which file, which key, and the new text of the
/// value (`None`: the key removed).
#[derive(Debug)]
struct Break {
    file: &'static str,
    table: &'static str,
    key: &'static str,
    value: Option<String>,
}

fn bad_value(kind: Kind, rng: &mut Rng) -> Option<String> {
    let wrong_type = ["\"x\"", "[1, 2]", "{ a = 1 }"];
    Some(match kind {
        Kind::Number(r) => {
            let mut bad = vec![
                "nan".to_string(),
                "inf".into(),
                "-inf".into(),
                format!("{:e}", r.hi * 10.0 + 1.0),
            ];
            bad.push(if r.lo > 0.0 {
                format!("{:e}", r.lo / 10.0)
            } else {
                "-1.0".into()
            });
            bad.extend(wrong_type.map(String::from));
            rng.pick(&bad).clone()
        }
        Kind::Sized(r) => {
            let mut bad = vec![
                "-1".to_string(),
                "4294967296".into(),
                "1.5".into(),
                "\"7\"".into(),
            ];
            if r.hi < u32::MAX as f64 {
                bad.push(format!("{}", r.hi as u64 + 1));
            }
            if r.lo >= 1.0 {
                bad.push("0".into());
            }
            rng.pick(&bad).clone()
        }
        Kind::Count => rng
            .pick(&["0", "-3", "4294967296", "2.5", "\"1\""])
            .to_string(),
        Kind::Word => rng.pick(&["\"bogus\"", "5", "true"]).to_string(),
        Kind::Flag => rng.pick(&["\"yes\"", "1"]).to_string(),
        Kind::Path => return None,
    })
}

/// Breaks one thing of `c`, in place.
fn break_one(c: &mut Case, rng: &mut Rng) -> Break {
    let which = rng.int(0, 3);
    let file = match which {
        0 => &mut c.model,
        1 => &mut c.hardware,
        2 => &mut c.instance,
        _ => &mut c.plan,
    };
    let name = file.name;
    match rng.int(0, 9) {
        // An unknown key beside the others.
        0 => {
            let table = rng.pick(&file.entries).table;
            file.entries
                .push(entry(table, "zzz_unknown", "1".into(), Kind::Count));
            Break {
                file: name,
                table,
                key: "zzz_unknown",
                value: Some("1".into()),
            }
        }
        // A required key removed.
        1 => {
            let required: Vec<usize> = (0..file.entries.len())
                .filter(|i| file.entries[*i].required)
                .collect();
            let i = *rng.pick(&required);
            let e = file.entries.remove(i);
            Break {
                file: name,
                table: e.table,
                key: e.key,
                value: None,
            }
        }
        // A value broken.
        _ => loop {
            let i = (rng.next() % file.entries.len() as u64) as usize;
            let e = &mut file.entries[i];
            let Some(v) = bad_value(e.kind, rng) else {
                if e.kind == Kind::Path {
                    // The model named where the hardware belongs, or the other way round.
                    e.value = if e.key == "model" {
                        "\"hw.toml\""
                    } else {
                        "\"model.toml\""
                    }
                    .into();
                    return Break {
                        file: name,
                        table: e.table,
                        key: e.key,
                        value: Some(e.value.clone()),
                    };
                }
                continue;
            };
            // `name` takes any text: only a wrong type breaks it.
            if e.key == "name" && v.starts_with('"') {
                continue;
            }
            e.value = v.clone();
            return Break {
                file: name,
                table: e.table,
                key: e.key,
                value: Some(v),
            };
        },
    }
}

/// Loads and scores the case's files, as `watos evaluate inst.toml --plan plan.toml` does.
fn load_and_score(dir: &Path) -> Result<watos::Evaluation, Error> {
    let inst = Instance::load(dir.join("inst.toml"))?;
    let plan = Plan::load(dir.join("plan.toml"), &inst)?;
    watos::evaluate(&inst, &plan)
}

/// The error that names the broken key: the error itself or, for a file named by the instance,
/// its cause.
fn innermost(e: &Error) -> &Error {
    match e {
        Error::Input(i) => i.cause.first().map(innermost).unwrap_or(e),
        _ => e,
    }
}

fn assert_finite_and_sane(e: &watos::Evaluation) -> Result<(), TestCaseError> {
    let step = e.step_time_s;
    prop_assert!(step.is_finite() && step > 0.0, "step time {step}");
    prop_assert!(e.tokens_per_s.is_finite() && e.tokens_per_s > 0.0);
    prop_assert!(
        e.mfu > 0.0 && e.mfu <= e.hfu * (1.0 + 1e-12) && e.hfu <= 1.0 + 1e-9,
        "MFU {} HFU {}",
        e.mfu,
        e.hfu
    );
    let b = &e.breakdown;
    for part in [
        b.compute_s,
        b.recompute_s,
        b.dram_s,
        b.tp_comm_s,
        b.pp_comm_s,
        b.remote_dram_s,
        b.bubble_s,
        b.dp_comm_s,
        b.optimizer_s,
    ] {
        prop_assert!(part.is_finite() && part >= -1e-9 * step, "breakdown {b:?}");
    }
    for s in &e.stages {
        let m = &s.memory;
        for x in [
            m.weights_bytes,
            m.grads_bytes,
            m.optimizer_bytes,
            m.activations_bytes,
            m.workspace_bytes,
            m.dram_used_bytes,
        ] {
            prop_assert!(x.is_finite() && x >= 0.0, "memory {m:?}");
        }
        prop_assert!(s.time_per_microbatch_s.is_finite() && s.time_per_microbatch_s > 0.0);
    }
    Ok(())
}

/// Checks an invalid case failed as it should: exit 2, located in the broken file at the broken
/// key (for a removed key, at its table).
fn assert_located(err: &Error, b: &Break, dir: &Path) -> Result<(), TestCaseError> {
    prop_assert_eq!(err.exit_code(), 2, "{:?}: {}", b, err);
    // A file of the wrong kind is the instance's mistake; anything else is inside the file.
    let inner = if b.file == "inst.toml" {
        err
    } else {
        innermost(err)
    };
    let Error::Input(i) = inner else {
        return Err(TestCaseError::fail(format!("{b:?}: not located: {err}")));
    };
    prop_assert!(
        i.file.ends_with(b.file),
        "{:?}: error in {}: {}",
        b,
        i.file,
        err
    );
    let field_key = i.field.rsplit('.').next().unwrap_or(&i.field);
    let field_key = field_key.split('[').next().unwrap_or(field_key);
    prop_assert_eq!(field_key, b.key, "{:?}: {}", b, err);
    if b.value.is_some() {
        let text = std::fs::read_to_string(dir.join(b.file)).expect("read");
        let line = line_of_key(&text, b.table, b.key);
        prop_assert_eq!(Some(i.line), line, "{:?}: {}\n{}", b, err, text);
    }
    Ok(())
}

fn config(cases: u32) -> ProptestConfig {
    common::proptest_config(cases)
}

proptest! {
    #![proptest_config(config(500))]

    /// Valid files load and score with sane figures.
    #[test]
    fn valid_files_score_with_finite_positive_figures(seed in any::<u64>()) {
        let s = Scratch::new();
        let c = case(seed);
        write(&c, s.dir.path());
        match load_and_score(s.dir.path()) {
            Ok(e) => assert_finite_and_sane(&e)?,
            Err(err) => prop_assert!(false, "valid files refused: {err}\n{}\n{}", c.hardware.text(), c.plan.text()),
        }
    }

    /// One thing broken: exit 2 at that file, line and key.
    #[test]
    fn invalid_files_are_located(seed in any::<u64>()) {
        let s = Scratch::new();
        let mut c = case(seed);
        let b = break_one(&mut c, &mut Rng(seed ^ 0xB4D));
        write(&c, s.dir.path());
        match load_and_score(s.dir.path()) {
            Ok(_) => prop_assert!(false, "{b:?} accepted"),
            Err(err) => assert_located(&err, &b, s.dir.path())?,
        }
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// The same through the binary: one JSON object whatever happens; exit 2 with a location for
    /// broken files, a scored plan (0, or 3 when it does not fit) for valid ones.
    #[test]
    fn the_binary_answers_every_file_with_one_json_object(seed in any::<u64>(), broken in any::<bool>()) {
        let s = Scratch::new();
        let mut c = case(seed);
        let b = broken.then(|| break_one(&mut c, &mut Rng(seed ^ 0xB4D)));
        write(&c, s.dir.path());
        let run = run_in(s.dir.path(), &["evaluate", "inst.toml", "--plan", "plan.toml", "--json"]);
        prop_assert!(!run.stderr.contains("panicked"), "{}", run.context());
        let v = run.json();
        if let Some(b) = b {
            prop_assert_eq!(run.code, Some(2), "{:?}\n{}", b, run.context());
            let e = &v["error"];
            prop_assert!(e["file"].is_string() && e["line"].as_u64().is_some_and(|l| l >= 1) && e["field"].is_string(), "{:?}\n{}", b, run.context());
        } else {
            prop_assert!(matches!(run.code, Some(0 | 3)), "{}", run.context());
            let step = v["step_time_s"].as_f64().unwrap_or(f64::NAN);
            prop_assert!(step.is_finite() && step > 0.0, "{}", run.context());
        }
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// `watos solve` on valid files: a plan with sane figures, or exit 3 with the shortfall, always
    /// one JSON object, within its time limit.
    #[test]
    fn solve_answers_valid_files_with_sane_figures(seed in any::<u64>()) {
        let s = Scratch::new();
        let c = case(seed);
        write(&c, s.dir.path());
        let start = std::time::Instant::now();
        let run = run_in(s.dir.path(), &["solve", "inst.toml", "--json", "--time-limit", "20"]);
        prop_assert!(start.elapsed().as_secs_f64() < 60.0, "{}", run.context());
        let v = run.json();
        match run.code {
            Some(0) => {
                let (mfu, hfu) = (v["mfu"].as_f64().unwrap_or(f64::NAN), v["hfu"].as_f64().unwrap_or(f64::NAN));
                prop_assert!(0.0 < mfu && mfu <= hfu * (1.0 + 1e-12) && hfu <= 1.0 + 1e-9, "{}", run.context());
                let (step, bound) = (v["step_time_s"].as_f64().unwrap_or(f64::NAN), v["lower_bound_s"].as_f64().unwrap_or(f64::NAN));
                prop_assert!(step.is_finite() && bound.is_finite() && 0.0 < bound && bound <= step, "{}", run.context());
            }
            Some(3) => prop_assert_eq!(&v["error"]["kind"], "infeasible", "{}", run.context()),
            _ => prop_assert!(false, "{}", run.context()),
        }
    }
}

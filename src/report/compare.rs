//! `watos compare` as text, JSON and grouped bars.

use comfy_table::Cell;
use serde_json::{json, Value};

use super::{fixed, fmt_count, fmt_pct, fmt_s, right, View};
use crate::compare::{InstanceComparison, Mean, REFERENCE};

/// A speed-up as `2.31x`.
///
/// ```
/// assert_eq!(watos::report::fmt_speedup(2.3149), "2.31x");
/// ```
pub fn fmt_speedup(x: f64) -> String {
    format!("{}x", fixed(x, 2))
}

/// One table per instance (a row per strategy, with watos's speed-up over it), then the means of
/// the speed-ups across instances, each with its legend; reasons for missing plans as notes.
pub fn comparison_text(all: &[InstanceComparison], means: &[Mean], view: &View) -> String {
    let mut out = String::new();
    for c in all {
        out.push_str(&format!("{}\n", c.instance));
        let mut t = view.table();
        // Plans are listed under the table: a plan is a sentence, and as a column it would be
        // squeezed to a few letters per line on an 80-column terminal.
        t.set_header(vec![
            "strategy",
            "step time",
            "tokens/s",
            "MFU",
            "DRAM\nused",
            "compute\nused",
            "watos\nspeed-up",
        ]);
        let mut notes = Vec::new();
        let mut plans = Vec::new();
        for e in &c.strategies {
            let speedup = c
                .speedups
                .iter()
                .find(|s| s.baseline == e.name)
                .map_or("-".to_string(), |s| fmt_speedup(s.speedup));
            let plan = match (&e.plan, &e.reason) {
                (Some(p), _) if e.hardware != c.hardware => {
                    format!("{p} (on {})", e.hardware)
                }
                (Some(p), _) => p.clone(),
                (None, Some(r)) => {
                    notes.push(format!("{}: {r}", e.name));
                    format!("no plan ({})", notes.len())
                }
                (None, None) => "no plan".into(),
            };
            let opt = |x: Option<f64>, f: &dyn Fn(f64) -> String| x.map_or("-".into(), f);
            plans.push(format!("{}: {plan}", e.name));
            t.add_row(vec![
                Cell::new(&e.name),
                right(opt(e.step_time_s, &fmt_s)),
                right(opt(e.tokens_per_s, &fmt_count)),
                right(opt(e.mfu, &fmt_pct)),
                right(opt(e.dram_used, &fmt_pct)),
                right(opt(e.compute_used, &fmt_pct)),
                right(speedup),
            ]);
        }
        out.push_str(&format!("{t}\n"));
        for p in &plans {
            out.push_str(&view.wrap(&format!("  {p}"), "    "));
        }
        for (i, n) in notes.iter().enumerate() {
            out.push_str(&view.wrap(&format!("({}) {n}", i + 1), "    "));
        }
        out.push('\n');
    }
    if !means.is_empty() {
        out.push_str(&format!(
            "Speed-up of {REFERENCE} across instances where both have a plan\n"
        ));
        let mut t = view.table();
        t.set_header(vec![
            "baseline",
            "geometric mean",
            "arithmetic mean",
            "instances",
        ]);
        for m in means {
            t.add_row(vec![
                Cell::new(&m.baseline),
                right(fmt_speedup(m.geometric)),
                right(fmt_speedup(m.arithmetic)),
                right(m.instances.to_string()),
            ]);
        }
        out.push_str(&format!("{t}\n"));
    }
    out.push_str(&view.wrap(
        "DRAM used: bytes held in DRAM over the DRAM of all the hardware's devices (a framework's reserve counts as free). Compute used: FLOPs executed, recomputation included, per second over the peak of all its devices; MFU: model FLOPs over the peak of the devices the plan uses. watos speed-up: the strategy's step time over watos's. A plan on other hardware names it. Every figure is the evaluator's.",
        "",
    ));
    out
}

/// The comparison as one JSON object: `instances` (each with its `strategies` and `speedups`)
/// and `means`.
pub fn comparison_json(all: &[InstanceComparison], means: &[Mean]) -> Value {
    json!({
        "reference": REFERENCE,
        "instances": serde_json::to_value(all).unwrap_or(Value::Null),
        "means": serde_json::to_value(means).unwrap_or(Value::Null),
    })
}

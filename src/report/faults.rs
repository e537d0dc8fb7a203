//! The fault sweep as a table and as JSON.

use comfy_table::Cell;
use serde_json::Value;

use crate::strategy::faults::{FaultKind, Sweep};

use super::{fixed, fmt_count, fmt_pct, right, View};

/// The sweep as a table: per kind and rate, the healthy dies, both planners' mean tokens/s, how
/// much more the fault-aware plans keep, and what they keep of the fault-free plan.
pub fn faults_text(s: &Sweep, view: &View) -> String {
    let mut out = format!(
        "Fault sweep: {} ({} dies, {} links), {} random fault pattern{} per rate\n",
        s.instance,
        s.dies,
        s.links,
        s.seeds,
        if s.seeds == 1 { "" } else { "s" }
    );
    if let Some(f) = &s.fault_free {
        out.push_str(&format!(
            "without faults: {}, {} tokens/s\n",
            f.plan,
            fmt_count(f.tokens_per_s)
        ));
    }
    let mut t = view.table();
    t.set_header(vec![
        "faulty",
        "rate",
        "healthy\ndies",
        "fault-aware\ntokens/s",
        "fault-unaware\ntokens/s",
        "aware vs\nunaware",
        "aware of\nfault-free",
        "plans\naware/unaware",
    ]);
    for row in &s.rows {
        let n = row.trials.len();
        let healthy = row
            .trials
            .iter()
            .map(|t| f64::from(t.healthy_dies))
            .sum::<f64>()
            / n.max(1) as f64;
        let found = |f: &dyn Fn(&crate::strategy::faults::Trial) -> bool| {
            row.trials.iter().filter(|t| f(t)).count()
        };
        let kept = s
            .fault_free
            .as_ref()
            .map(|f| fmt_pct(row.mean_aware_tokens_per_s / f.tokens_per_s));
        t.add_row(vec![
            Cell::new(match row.kind {
                FaultKind::Dies => "dies",
                FaultKind::Links => "links",
            }),
            right(fmt_pct(row.rate)),
            right(fixed(healthy, 1)),
            right(fmt_count(row.mean_aware_tokens_per_s)),
            right(fmt_count(row.mean_unaware_tokens_per_s)),
            right(row.gain.map_or("-".into(), |g| {
                format!("{}{}", if g >= 0.0 { "+" } else { "" }, fmt_pct(g))
            })),
            right(kept.unwrap_or_else(|| "-".into())),
            right(format!(
                "{}/{} of {n}",
                found(&|t| t.aware.is_some()),
                found(&|t| t.unaware.is_some())
            )),
        ]);
    }
    out.push_str(&format!("{t}\n"));
    out.push_str(&view.wrap(
        "Tokens/s are means over the fault patterns, a pattern without a plan counting as 0. fault-aware: watos solving the faulted wafer. fault-unaware: watos's plan for as many healthy dies placed as if none of them were faulty (all faults at the end of the band snake), then moved die by die onto the faulted wafer's snake, skipping faulty dies in order; both scored by the evaluator on the faulted wafer, whose routes detour around faults. aware vs unaware: how much more throughput the fault-aware plans keep.",
        "",
    ));
    out
}

/// The sweep as one JSON object.
pub fn faults_json(s: &Sweep) -> Value {
    serde_json::to_value(s).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
}

//! The report's plots as SVG text (plotters' SVG backend): the Pareto front of throughput against
//! the wafer area spent on memory, and the best throughput over the compute/memory split.

use plotters::prelude::*;

use super::rules::{Dim, SPLIT_STEP};
use super::Report;

const SIZE: (u32, u32) = (720, 480);

/// The score as the plots show it: tokens/s per wafer for one model, model PFLOP/s per wafer for
/// a mix (the tables' units).
///
/// ```
/// use watos::explore::{plot, WorkloadInfo};
/// let w = WorkloadInfo { name: "m".into(), weight: 1.0, flops_per_step: 6e15, tokens_per_step: 1e3 };
/// // 6e15 FLOP/s per wafer at 6e12 FLOP per token: 1,000 tokens/s.
/// assert_eq!(plot::unit(&[w]).0 * 6e15, 1000.0);
/// ```
pub fn unit(workloads: &[super::WorkloadInfo]) -> (f64, &'static str) {
    match workloads {
        [w] if w.flops_per_step > 0.0 => {
            (w.tokens_per_step / w.flops_per_step, "tokens/s per wafer")
        }
        _ => (1e-15, "mix model PFLOP/s per wafer"),
    }
}

fn fail(e: impl std::fmt::Display) -> crate::error::Error {
    crate::error::Error::Solver(format!("cannot draw the plot: {e}"))
}

/// Axis range with a margin, never empty.
fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.05).max(1e-9);
    ((lo - pad).max(0.0), hi + pad)
}

/// The Pareto front (line and points) with the reference wafers (crosses, labelled).
pub fn front(r: &Report) -> Result<String, crate::error::Error> {
    let (k, name) = unit(&r.workloads);
    let pts: Vec<(f64, f64)> = r
        .front
        .iter()
        .map(|s| (s.budget.memory_mm2, s.score * k))
        .collect();
    let refs: Vec<(f64, f64, &str)> = r
        .references
        .iter()
        .filter(|x| x.score > 0.0)
        .map(|x| (x.budget.memory_mm2, x.score * k, x.name.as_str()))
        .collect();
    let (x0, x1) = span(pts.iter().map(|p| p.0).chain(refs.iter().map(|p| p.0)));
    let (y0, y1) = span(pts.iter().map(|p| p.1).chain(refs.iter().map(|p| p.1)));
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(fail)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{}: Pareto front", r.space.name),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(fail)?;
        chart
            .configure_mesh()
            .x_desc("wafer area spent on DRAM stacks and PHYs, mm^2")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| super::space::num(*v))
            .y_desc(name)
            .draw()
            .map_err(fail)?;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), &BLUE))
            .map_err(fail)?
            .label("best design for its memory area")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 4, BLUE.filled())))
            .map_err(fail)?;
        chart
            .draw_series(refs.iter().map(|(x, y, n)| {
                EmptyElement::at((*x, *y))
                    + Cross::new((0, 0), 5, RED.stroke_width(2))
                    + Text::new(n.to_string(), (6, -12), ("sans-serif", 12))
            }))
            .map_err(fail)?
            .label("reference wafers")
            .legend(|(x, y)| Cross::new((x + 8, y), 5, RED.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(fail)?;
        root.present().map_err(fail)?;
    }
    Ok(text)
}

/// The best score in each step of the compute/memory split (DRAM's share of a die site's compute
/// and memory area), at the step's middle.
pub fn split(r: &Report) -> Result<String, crate::error::Error> {
    let (k, name) = unit(&r.workloads);
    let pts: Vec<(f64, f64)> = r
        .buckets
        .iter()
        .filter(|b| b.dim == Dim::Split)
        .map(|b| {
            (
                100.0 * (b.bucket.key as f64 + 0.5) * SPLIT_STEP,
                b.best.score * k,
            )
        })
        .collect();
    let (y0, y1) = span(pts.iter().map(|p| p.1));
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(fail)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{}: throughput over the compute/memory split", r.space.name),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..100.0, y0..y1)
            .map_err(fail)?;
        chart
            .configure_mesh()
            .x_desc("DRAM share of a die site's compute and memory area, %")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| super::space::num(*v))
            .y_desc(format!("best {name}"))
            .draw()
            .map_err(fail)?;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), &BLUE))
            .map_err(fail)?;
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 4, BLUE.filled())))
            .map_err(fail)?;
        root.present().map_err(fail)?;
    }
    Ok(text)
}

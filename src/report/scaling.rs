//! The scaling plot of `watos bench --svg`: time to the gap target against devices, log-log, one
//! colour per formulation. Text is written as SVG `<text>` for the viewer to render, so no font is needed.

use plotters::prelude::*;

use super::bench::fmt_target;
use super::bench::BenchRow;

/// What the plot's subtitle says about how the figures were taken.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotSetting {
    pub gap_target: f64,
    /// Per solve; drawn as a dashed line.
    pub time_limit_s: Option<f64>,
    pub threads: u32,
}

const WIDTH: u32 = 860;
const HEIGHT: u32 = 540;

/// Colours of the formulations, in the order they first appear.
const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// The scaling plot as an SVG document. Each run is a marker at (devices, time): a circle for a
/// wafer, a triangle for a GPU cluster. Filled: proven within the gap target, at the time it was;
/// hollow: never proven, at the time the solve ended (the limit, or a placement gap); a cross: no
/// plan.
///
/// ```
/// use watos::report::{scaling_svg, BenchRow, PlotSetting};
/// let mut row = BenchRow::new("gpu8-llama3-8b", "Llama 3 8B on 8 H100", 8, "decomposition");
/// row.status = "optimal".into();
/// row.solve_time_s = 0.2;
/// row.target_gap_s = Some(0.2);
/// let setting = PlotSetting { gap_target: 0.01, time_limit_s: Some(10.0), threads: 1 };
/// let svg = scaling_svg(&[row], &setting).unwrap();
/// assert!(svg.starts_with("<svg") && svg.contains("decomposition"));
/// ```
pub fn scaling_svg(rows: &[BenchRow], setting: &PlotSetting) -> Result<String, String> {
    let mut svg = String::new();
    draw(&mut svg, rows, setting).map_err(|e| e.to_string())?;
    Ok(svg)
}

fn draw(
    svg: &mut String,
    rows: &[BenchRow],
    setting: &PlotSetting,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(54);
    title.draw(&Text::new(
        format!(
            "watos: time to a {} gap against devices",
            fmt_target(setting.gap_target)
        ),
        (70, 8),
        ("sans-serif", 20).into_font(),
    ))?;
    let limit = setting
        .time_limit_s
        .map_or("no time limit".to_string(), |t| format!("time limit {t} s"));
    title.draw(&Text::new(
        format!(
            "gap target {}, {limit}, {} HiGHS thread{} per solve",
            fmt_target(setting.gap_target),
            setting.threads,
            if setting.threads == 1 { "" } else { "s" }
        ),
        (70, 32),
        ("sans-serif", 13).into_font().color(&RGBColor(90, 90, 90)),
    ))?;
    let (plot_area, legend_area) = body.split_vertically(HEIGHT - 54 - 50);
    let (x0, x1) = extent(rows.iter().map(|r| r.devices as f64), 4.0, 32_768.0);
    let times = rows.iter().map(plotted_s).chain(setting.time_limit_s);
    let (y0, y1) = extent(times, 1e-2, 100.0);
    let mut chart = ChartBuilder::on(&plot_area)
        .margin_right(24)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("devices (dies or GPUs)")
        .y_desc(format!(
            "time to {} gap (hollow: solve time, not reached)",
            fmt_target(setting.gap_target)
        ))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| fmt_axis_s(*y))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    if let Some(t) = setting.time_limit_s {
        chart.draw_series(DashedLineSeries::new(
            [(x0, t), (x1, t)],
            6,
            4,
            RGBColor(120, 120, 120).stroke_width(1),
        ))?;
        chart.draw_series(std::iter::once(Text::new(
            "time limit",
            (x1 / 2.2, t * 1.3),
            ("sans-serif", 12).into_font().color(&RGBColor(90, 90, 90)),
        )))?;
    }
    let mut formulations: Vec<&str> = Vec::new();
    for r in rows {
        if !formulations.contains(&r.formulation.as_str()) {
            formulations.push(&r.formulation);
        }
    }
    for (k, name) in formulations.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        // An enumeration refused for its size solved nothing: no point.
        let points = rows
            .iter()
            .filter(|r| r.formulation == *name && r.status != "too_large");
        let (hollow_triangles, others): (Vec<&BenchRow>, Vec<&BenchRow>) =
            points.partition(|r| hollow_triangle(r));
        chart.draw_series(others.into_iter().map(|r| marker(r, colour)))?;
        // plotters' TriangleMarker is always filled: a hollow one is its outline, in pixels.
        chart.draw_series(hollow_triangles.into_iter().map(|r| {
            EmptyElement::at(at(r))
                + PathElement::new(
                    vec![(0, -7), (6, 4), (-6, 4), (0, -7)],
                    colour.stroke_width(2),
                )
        }))?;
        // The key sits below the plot, where it cannot hide a point.
        let x = 70 + 150 * k as i32;
        legend_area.draw(&Circle::new((x + 5, 12), 5, colour.filled()))?;
        legend_area.draw(&Text::new(
            name.to_string(),
            (x + 16, 6),
            ("sans-serif", 14).into_font(),
        ))?;
    }
    legend_area.draw(&Text::new(
        format!(
            "circle: wafer, triangle: GPU cluster; filled: proven within {}, hollow: not (limit or placement gap), cross: no plan",
            fmt_target(setting.gap_target)
        ),
        (70, 28),
        ("sans-serif", 12).into_font().color(&RGBColor(60, 60, 60)),
    ))?;
    root.present()?;
    Ok(())
}

/// One run's marker (see [`scaling_svg`]), except a hollow triangle (drawn by [`draw`]).
fn marker<DB: DrawingBackend>(
    r: &BenchRow,
    colour: RGBColor,
) -> DynElement<'static, DB, (f64, f64)> {
    let style = if r.reached() {
        colour.filled()
    } else {
        colour.stroke_width(2)
    };
    if r.step_time_s.is_none() {
        Cross::new(at(r), 6, colour.stroke_width(2)).into_dyn()
    } else if r.fabric == "cluster" {
        TriangleMarker::new(at(r), 7, style).into_dyn()
    } else {
        Circle::new(at(r), 6, style).into_dyn()
    }
}

/// A GPU cluster's run with a plan not proven within the gap target.
fn hollow_triangle(r: &BenchRow) -> bool {
    r.fabric == "cluster" && r.step_time_s.is_some() && !r.reached()
}

/// Where a run's marker sits.
fn at(r: &BenchRow) -> (f64, f64) {
    (r.devices as f64, plotted_s(r).max(1e-6))
}

/// A run's height in the plot: when the gap target was reached, else when the solve ended.
fn plotted_s(r: &BenchRow) -> f64 {
    r.target_gap_s.unwrap_or(r.solve_time_s)
}

/// An axis label: `10 s`, `100 ms`, `2.5 ms`.
fn fmt_axis_s(s: f64) -> String {
    let text = super::bench::fmt_short_s(Some(s));
    match text.split_once(' ') {
        Some((v, unit)) if v.contains('.') => {
            format!("{} {unit}", v.trim_end_matches('0').trim_end_matches('.'))
        }
        _ => text,
    }
}

/// A log axis from a little below the least value to a little above the greatest, `lo..hi` when
/// there are none.
fn extent(values: impl Iterator<Item = f64>, lo: f64, hi: f64) -> (f64, f64) {
    let (min, max) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    if !min.is_finite() {
        return (lo, hi);
    }
    (min / 1.6, (max * 1.6).max(min * 4.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_run_is_drawn() {
        let mut rows = Vec::new();
        for (i, (status, fabric, reached, plan)) in [
            ("optimal", "wafer", true, true),
            ("time_limit", "cluster", false, true),
            ("infeasible", "wafer", false, false),
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = BenchRow::new("x", "X", 8 << (3 * i), "decomposition");
            r.status = status.into();
            r.fabric = fabric.into();
            r.solve_time_s = 0.1 * 10f64.powi(i as i32);
            r.target_gap_s = reached.then_some(r.solve_time_s);
            r.step_time_s = plan.then_some(1.0);
            rows.push(r);
        }
        let setting = PlotSetting {
            gap_target: 0.01,
            time_limit_s: Some(10.0),
            threads: 1,
        };
        let svg = scaling_svg(&rows, &setting).unwrap();
        assert!(svg.contains("<circle"), "a filled wafer circle");
        // The unproven cluster run: a hollow triangle, the outline in the formulation's colour.
        assert!(
            svg.lines()
                .any(|l| l.contains("<polyline") && l.contains("stroke=\"#1F77B4\"")),
            "a hollow triangle:\n{svg}"
        );
        assert!(svg.contains("time limit") && svg.contains("gap target 1%"));
        // Text is left to the viewer: no font was needed to lay it out.
        assert!(svg.contains("<text"));
    }

    #[test]
    fn axis_labels_drop_trailing_zeros() {
        assert_eq!(fmt_axis_s(10.0), "10 s");
        assert_eq!(fmt_axis_s(1.0), "1 s");
        assert_eq!(fmt_axis_s(0.0025), "2.5 ms");
    }

    #[test]
    fn axes_cover_the_data_with_room() {
        let (a, b) = extent([8.0, 16_384.0].into_iter(), 1.0, 2.0);
        assert!(a < 8.0 && b > 16_384.0);
        assert_eq!(extent(std::iter::empty(), 1.0, 2.0), (1.0, 2.0));
    }
}

//! `watos compare --svg`: grouped bars of throughput, one group per instance, one bar per
//! strategy, drawn with plotters' SVG backend.

use plotters::prelude::*;

use super::fixed;
use crate::compare::InstanceComparison;

/// Bar colours, one per strategy in order (colour-blind-safe, Okabe and Ito's palette).
const COLOURS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

/// The strategy throughput is shown relative to: `megatron` when it is compared (as the WATOS
/// paper shows it), else the first strategy.
pub fn baseline_of(names: &[String]) -> Option<&str> {
    names
        .iter()
        .find(|n| *n == "megatron")
        .or(names.first())
        .map(String::as_str)
}

/// Each strategy's tokens/s over the baseline's on each instance (`None`: no plan, or the
/// baseline has none there).
///
/// ```
/// assert_eq!(watos::report::relative(&[Some(10.0), Some(25.0), None], Some(10.0)), vec![Some(1.0), Some(2.5), None]);
/// ```
pub fn relative(tokens_per_s: &[Option<f64>], baseline: Option<f64>) -> Vec<Option<f64>> {
    tokens_per_s
        .iter()
        .map(|t| Some(t.as_ref()? / baseline?))
        .collect()
}

/// The SVG of the comparison: per instance, each strategy's throughput relative to
/// [`baseline_of`]'s, its value over the bar, "no plan" where a strategy has none.
pub fn comparison_svg(all: &[InstanceComparison], names: &[String]) -> Result<String, String> {
    let base = baseline_of(names).unwrap_or_default().to_string();
    let groups: Vec<Vec<Option<f64>>> = all
        .iter()
        .map(|c| {
            let t: Vec<Option<f64>> = names
                .iter()
                .map(|n| {
                    c.strategies
                        .iter()
                        .find(|e| &e.name == n)
                        .and_then(|e| e.tokens_per_s)
                })
                .collect();
            let b = names.iter().position(|n| *n == base).and_then(|i| t[i]);
            relative(&t, b)
        })
        .collect();
    let top = groups
        .iter()
        .flatten()
        .flatten()
        .copied()
        .fold(1.0, f64::max)
        * 1.2;
    let width = (220 * all.len().max(1) + 160) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Throughput relative to {base} (tokens/s; same model and batch)"),
                ("sans-serif", 18),
            )
            .margin(16)
            .x_label_area_size(70)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..all.len().max(1) as f64, 0f64..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc(format!("x {base}"))
            .draw()
            .map_err(|e| e.to_string())?;
        let k = names.len().max(1) as f64;
        let slot = 0.8 / k;
        for (i, (c, values)) in all.iter().zip(&groups).enumerate() {
            for (j, v) in values.iter().enumerate() {
                let x0 = i as f64 + 0.1 + j as f64 * slot;
                let colour = COLOURS[j % COLOURS.len()];
                let label = match v {
                    Some(y) => {
                        chart
                            .draw_series(std::iter::once(Rectangle::new(
                                [(x0, 0.0), (x0 + slot * 0.9, *y)],
                                colour.filled(),
                            )))
                            .map_err(|e| e.to_string())?;
                        (fixed(*y, 2), *y)
                    }
                    None => ("no plan".to_string(), 0.0),
                };
                let (px, py) = chart.backend_coord(&(x0 + slot * 0.45, label.1));
                root.draw(&Text::new(
                    label.0,
                    (px - 12, py - 16),
                    ("sans-serif", 11).into_font(),
                ))
                .map_err(|e| e.to_string())?;
            }
            let (px, py) = chart.backend_coord(&(i as f64 + 0.1, 0.0));
            for (n, line) in wrap_label(&c.instance, 30).iter().enumerate() {
                root.draw(&Text::new(
                    line.clone(),
                    (px, py + 10 + 15 * n as i32),
                    ("sans-serif", 12).into_font(),
                ))
                .map_err(|e| e.to_string())?;
            }
        }
        for (j, n) in names.iter().enumerate() {
            let (x, y) = (width as i32 - 150, 40 + 18 * j as i32);
            let colour = COLOURS[j % COLOURS.len()];
            root.draw(&Rectangle::new([(x, y), (x + 12, y + 12)], colour.filled()))
                .map_err(|e| e.to_string())?;
            root.draw(&Text::new(
                n.clone(),
                (x + 18, y),
                ("sans-serif", 12).into_font(),
            ))
            .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// `text` in lines of at most `width` characters, broken at spaces.
fn wrap_label(text: &str, width: usize) -> Vec<String> {
    super::wrap(text, width, "")
        .lines()
        .map(str::to_string)
        .collect()
}

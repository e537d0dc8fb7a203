//! The die map as an SVG picture (`--svg FILE`): dies coloured by stage with their ranks, faulty
//! dies and links crossed out, each link drawn as thick as the transfers routed over it, the
//! pipeline's sends and the parking flows as arrows between groups, and each die's DRAM fill as a
//! bar. Drawn with plotters' SVG backend, primitives only (no fonts needed).

use std::collections::HashMap;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::cost::Evaluation;
use crate::error::Error;
use crate::hardware::{DeviceId, Fabric};
use crate::instance::Instance;
use crate::placement::Placement;
use crate::plan::Plan;

/// Pixels per die, at most (large meshes get smaller dies).
const DIE_PX: i32 = 72;
/// The picture's larger side at most, in pixels.
const MAX_PX: i32 = 2400;

/// Stage colours (Tableau 10), repeated past ten stages.
const PALETTE: [(u8, u8, u8); 10] = [
    (78, 121, 167),
    (242, 142, 43),
    (225, 87, 89),
    (118, 183, 178),
    (89, 161, 79),
    (237, 201, 72),
    (176, 122, 161),
    (255, 157, 167),
    (156, 117, 95),
    (186, 176, 172),
];

/// The SVG text of the die map of `plan` on a wafer; an error on a cluster.
pub fn die_map_svg(inst: &Instance, plan: &Plan, e: &Evaluation) -> Result<String, Error> {
    let fabric = inst.fabric();
    let Fabric::Mesh(m) = fabric else {
        return Err(Error::invalid(
            "--svg",
            format!("{} is a cluster, not a wafer", inst.hardware.name),
            "--svg draws the dies of a wafer; use it with wafer hardware",
        ));
    };
    let g = plan.placement(fabric).map_err(crate::cost::plan_error)?;
    let (rows, cols) = (m.rows as i32, m.cols as i32);
    let die = DIE_PX.min(MAX_PX / rows.max(cols)).max(8);
    let (left, top, legend) = (40, 56, 84);
    let size = (
        (left + cols * die + 20) as u32,
        (top + rows * die + legend) as u32,
    );
    let mut text = String::new();
    draw(&mut text, size, die, (left, top), inst, plan, e, &g)
        .map_err(|err| Error::Solver(format!("cannot draw the die map: {err}")))?;
    Ok(text)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

#[allow(clippy::too_many_arguments)]
fn draw(
    out: &mut String,
    size: (u32, u32),
    die: i32,
    (left, top): (i32, i32),
    inst: &Instance,
    plan: &Plan,
    e: &Evaluation,
    g: &Placement,
) -> Result<(), Box<dyn std::error::Error>> {
    let fabric = inst.fabric();
    let Fabric::Mesh(m) = fabric else {
        return Ok(());
    };
    let root: Area = SVGBackend::with_string(out, size).into_drawing_area();
    root.fill(&WHITE)?;
    let centre = |id: DeviceId| {
        let [r, c] = fabric.coord(id);
        (
            left + c as i32 * die + die / 2,
            top + r as i32 * die + die / 2,
        )
    };
    let font = |px: i32| ("sans-serif", px.max(6)).into_font();
    // Name, plan and figures on lines of their own: together they outrun a small wafer's width.
    let lines = [
        (inst.name.clone(), 6, 14),
        (plan.to_string(), 25, 11),
        (
            format!(
                "step {:.3} s, {:.0} tokens/s; mean pipeline send {:.2} hops",
                e.step_time_s,
                e.tokens_per_s,
                g.mean_pipeline_hops(fabric)
            ),
            39,
            11,
        ),
    ];
    for (line, y, px) in lines {
        root.draw(&Text::new(line, (left, y), font(px).color(&BLACK)))?;
    }
    // Dies: stage colour, rank label, DRAM fill bar; faulty dies crossed out.
    let pad = (die / 14).max(1);
    for id in 0..fabric.device_count() {
        let (x, y) = centre(id);
        let (x0, y0, x1, y1) = (
            x - die / 2 + pad,
            y - die / 2 + pad,
            x + die / 2 - pad,
            y + die / 2 - pad,
        );
        if !fabric.is_healthy(id) {
            root.draw(&Rectangle::new(
                [(x0, y0), (x1, y1)],
                RGBColor(90, 90, 90).filled(),
            ))?;
            for (a, b) in [((x0, y0), (x1, y1)), ((x0, y1), (x1, y0))] {
                root.draw(&PathElement::new(vec![a, b], RED.stroke_width(2)))?;
            }
            continue;
        }
        let Some((r, j, k)) = g.position(id) else {
            root.draw(&Rectangle::new(
                [(x0, y0), (x1, y1)],
                RGBColor(235, 235, 235).filled(),
            ))?;
            continue;
        };
        let (cr, cg, cb) = PALETTE[j % PALETTE.len()];
        root.draw(&Rectangle::new(
            [(x0, y0), (x1, y1)],
            RGBColor(cr, cg, cb).mix(0.55).filled(),
        ))?;
        if j as u32 == e.critical_stage {
            root.draw(&Rectangle::new([(x0, y0), (x1, y1)], BLACK.stroke_width(3)))?;
        }
        if let Some(s) = e.stages.get(j) {
            let fill = (s.memory.dram_used_bytes / s.memory.dram_capacity_bytes).clamp(0.0, 1.0);
            let bar = ((y1 - y0) as f64 * fill) as i32;
            root.draw(&Rectangle::new(
                [(x1 - die / 8, y1 - bar), (x1, y1)],
                RGBColor(40, 40, 40).mix(0.7).filled(),
            ))?;
        }
        let label = if plan.dp > 1 {
            format!("{r}:{j}.{k}")
        } else {
            format!("{j}.{k}")
        };
        root.draw(&Text::new(
            label,
            (x - die / 16, y),
            font(die / 5)
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
    }
    // Links: width by the transfers routed over them; faulty links crossed out in red.
    let loads = link_loads(fabric, plan, g);
    let most = loads.values().copied().max().unwrap_or(1).max(1);
    for id in 0..fabric.device_count() {
        for nb in [id + 1, id + m.cols] {
            let adjacent = (nb == id + 1 && nb % m.cols != 0)
                || (nb == id + m.cols && nb < fabric.device_count());
            if !adjacent || !fabric.is_healthy(id) || !fabric.is_healthy(nb) {
                continue;
            }
            let (a, b) = (centre(id), centre(nb));
            let (a, b) = (toward(a, b, die / 2 - pad), toward(b, a, die / 2 - pad));
            if !fabric.link_works(id, nb) {
                let (mx, my) = ((a.0 + b.0) / 2, (a.1 + b.1) / 2);
                let s = die / 8;
                for (p, q) in [
                    ((mx - s, my - s), (mx + s, my + s)),
                    ((mx - s, my + s), (mx + s, my - s)),
                ] {
                    root.draw(&PathElement::new(vec![p, q], RED.stroke_width(3)))?;
                }
                continue;
            }
            let load = loads.get(&(id, nb)).copied().unwrap_or(0);
            let w = 1 + (7 * load / most) as u32;
            let shade = 200 - (170 * load / most) as u8;
            root.draw(&PathElement::new(
                vec![a, b],
                RGBColor(shade, shade, shade).stroke_width(w),
            ))?;
        }
    }
    // Flows between groups: pipeline sends (black) and parking (purple), centre to centre.
    let mid = |r: usize, j: usize| {
        let pts: Vec<(i32, i32)> = g.group(r, j).iter().map(|id| centre(*id)).collect();
        let n = pts.len().max(1) as i32;
        (
            pts.iter().map(|p| p.0).sum::<i32>() / n,
            pts.iter().map(|p| p.1).sum::<i32>() / n,
        )
    };
    for r in 0..g.replicas() {
        for j in 0..g.stages() {
            if j + 1 < g.stages() {
                arrow(&root, mid(r, j), mid(r, j + 1), BLACK.stroke_width(2), die)?;
            }
            for park in &plan.stages[j].park {
                let to = park.to as usize;
                if to < g.stages() {
                    arrow(
                        &root,
                        mid(r, j),
                        mid(r, to),
                        RGBColor(120, 40, 160).stroke_width(2),
                        die,
                    )?;
                }
            }
        }
    }
    let y = top + m.rows as i32 * die + 18;
    for (i, line) in [
        "Colour: stage; label: stage.rank (replica:stage.rank with data parallelism); black frame: the critical stage.",
        "Bar on each die: DRAM used of capacity. Links: the thicker and darker, the more transfers routed over them.",
        "Arrows: pipeline sends (black), parked memory (purple), group centre to group centre. Red cross: faulty die or link.",
    ]
    .iter()
    .enumerate()
    {
        root.draw(&Text::new(*line, (left, y + 18 * i as i32), font(12).color(&BLACK)))?;
    }
    root.present()?;
    Ok(())
}

/// The point `d` pixels from `a` toward `b` (axis-aligned neighbours).
fn toward(a: (i32, i32), b: (i32, i32), d: i32) -> (i32, i32) {
    (
        a.0 + d * (b.0 - a.0).signum(),
        a.1 + d * (b.1 - a.1).signum(),
    )
}

fn arrow(
    root: &Area,
    a: (i32, i32),
    b: (i32, i32),
    style: ShapeStyle,
    die: i32,
) -> Result<(), Box<dyn std::error::Error>> {
    if a == b {
        return Ok(());
    }
    root.draw(&PathElement::new(vec![a, b], style))?;
    let (dx, dy) = ((b.0 - a.0) as f64, (b.1 - a.1) as f64);
    let len = (dx * dx + dy * dy).sqrt();
    let (ux, uy) = (dx / len, dy / len);
    let s = f64::from(die) / 7.0;
    let p = |along: f64, across: f64| {
        (
            (f64::from(b.0) - ux * along - uy * across) as i32,
            (f64::from(b.1) - uy * along + ux * across) as i32,
        )
    };
    root.draw(&Polygon::new(
        vec![(b.0, b.1), p(s, s / 2.0), p(s, -s / 2.0)],
        style.color.filled(),
    ))?;
    Ok(())
}

/// Transfers routed over each link (both directions together, keyed by the smaller id first):
/// every tensor-parallel ring step, pipeline send, data-parallel ring step and parking pair.
fn link_loads(fabric: &Fabric, plan: &Plan, g: &Placement) -> HashMap<(DeviceId, DeviceId), u64> {
    let mut pairs: Vec<(DeviceId, DeviceId)> = Vec::new();
    let ring = |devs: &[DeviceId], pairs: &mut Vec<(DeviceId, DeviceId)>| {
        if devs.len() > 1 {
            for i in 0..devs.len() {
                pairs.push((devs[i], devs[(i + 1) % devs.len()]));
            }
        }
    };
    for group in g.groups() {
        ring(group, &mut pairs);
    }
    for r in 0..g.replicas() {
        for j in 0..g.stages() {
            if j + 1 < g.stages() {
                pairs.extend(
                    g.group(r, j)
                        .iter()
                        .copied()
                        .zip(g.group(r, j + 1).iter().copied()),
                );
            }
            for park in &plan.stages[j].park {
                if (park.to as usize) < g.stages() {
                    pairs.extend(
                        g.group(r, j)
                            .iter()
                            .copied()
                            .zip(g.group(r, park.to as usize).iter().copied()),
                    );
                }
            }
        }
    }
    for j in 0..g.stages() {
        for k in 0..g.tp() {
            let devs: Vec<DeviceId> = (0..g.replicas()).map(|r| g.group(r, j)[k]).collect();
            ring(&devs, &mut pairs);
        }
    }
    let mut loads = HashMap::new();
    for (a, b) in pairs {
        for (x, y) in fabric.route(a, b) {
            *loads.entry((x.min(y), x.max(y))).or_insert(0) += 1;
        }
    }
    loads
}

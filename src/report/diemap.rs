//! Where everything runs: a text grid of the wafer (stage and tensor rank per die, faulty dies and
//! links, the critical stage marked, lines between groups) and the same facts as JSON.

use serde_json::{json, Value};

use crate::cost::Evaluation;
use crate::hardware::{DeviceId, Fabric};
use crate::instance::Instance;
use crate::placement::Placement;
use crate::plan::Plan;

use super::View;

/// The die map of a plan on a wafer, if it fits the view (or `force`); a line saying how to get it
/// otherwise; nothing on a cluster or for a plan whose placement cannot be built.
pub fn die_map_text(
    inst: &Instance,
    plan: &Plan,
    e: &Evaluation,
    view: &View,
    force: bool,
) -> String {
    let fabric = inst.fabric();
    let Fabric::Mesh(m) = fabric else {
        return String::new();
    };
    let Ok(g) = plan.placement(fabric) else {
        return String::new();
    };
    let labels = labels(fabric, &g, e.critical_stage as usize, plan.dp > 1);
    let cell = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1);
    let width = 4 + m.cols as usize * (cell + 1);
    if !force && (width > usize::from(view.width) || m.rows > 64) {
        return view.wrap(
            &format!(
                "The die map ({} x {} dies) is wider or longer than the terminal: --map prints it anyway, --svg FILE draws it.",
                m.rows, m.cols
            ),
            "",
        );
    }
    let owner = |id: DeviceId| g.position(id).map(|(r, j, _)| (r, j));
    let mut out = format!(
        "Die map: mean pipeline send {:.2} hops\n",
        g.mean_pipeline_hops(fabric)
    );
    out.push_str("    ");
    for c in 0..m.cols {
        out.push_str(&format!("{:>cell$} ", c));
    }
    out.push('\n');
    for r in 0..m.rows {
        out.push_str(&format!("{r:>3} "));
        for c in 0..m.cols {
            let id = r * m.cols + c;
            out.push_str(&format!("{:>cell$}", labels[id as usize]));
            if c + 1 < m.cols {
                let east = id + 1;
                out.push(
                    if !fabric.link_works(id, east) && both_healthy(fabric, id, east) {
                        'x'
                    } else if owner(id) != owner(east) {
                        '|'
                    } else {
                        ' '
                    },
                );
            }
        }
        out.push('\n');
        if r + 1 == m.rows {
            break;
        }
        // The links below this row: a rule under dies whose southern neighbour is in another
        // group, `x` on a faulty link, `=` along a wafer boundary.
        let boundary = (r + 1) % m.wafer_rows() == 0;
        out.push_str("    ");
        for c in 0..m.cols {
            let (id, south) = (r * m.cols + c, (r + 1) * m.cols + c);
            let mark = if !fabric.link_works(id, south) && both_healthy(fabric, id, south) {
                'x'
            } else if boundary {
                '='
            } else if owner(id) != owner(south) {
                '-'
            } else {
                ' '
            };
            let fill = if mark == 'x' { ' ' } else { mark };
            let mut s: Vec<char> = std::iter::repeat_n(fill, cell).collect();
            s[cell / 2] = mark;
            out.extend(s);
            out.push(if boundary { '=' } else { ' ' });
        }
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    }
    out.push_str(&view.wrap(
        &format!(
            "stage.rank on each die{}; *: the critical stage; XX: a faulty die; x: a faulty link; -: an idle die; | and - rules separate groups{}.",
            if plan.dp > 1 { " (replica:stage.rank with data parallelism)" } else { "" },
            if m.wafer_rows() < m.rows { ", = the wafers" } else { "" }
        ),
        "",
    ));
    out
}

fn both_healthy(fabric: &Fabric, a: DeviceId, b: DeviceId) -> bool {
    fabric.is_healthy(a) && fabric.is_healthy(b)
}

/// Each die's label: `stage.rank`, `replica:stage.rank`, `*` on the critical stage, `XX` faulty,
/// `-` idle.
fn labels(fabric: &Fabric, g: &Placement, critical: usize, replicas: bool) -> Vec<String> {
    let mut out: Vec<String> = (0..fabric.device_count())
        .map(|id| if fabric.is_healthy(id) { "-" } else { "XX" }.to_string())
        .collect();
    for (r, j, k, id) in g.devices() {
        let mark = if j == critical { "*" } else { "" };
        out[id as usize] = if replicas {
            format!("{r}:{j}.{k}{mark}")
        } else {
            format!("{j}.{k}{mark}")
        };
    }
    out
}

/// The placement as JSON: every device with its coordinates (`row`, `col` on a wafer; `node`,
/// `gpu` on a cluster), replica, stage and tensor rank; the faulty dies and links; the mean hops
/// of a pipeline send.
pub fn placement_json(fabric: &Fabric, g: &Placement) -> Value {
    let (a, b) = match fabric {
        Fabric::Mesh(_) => ("row", "col"),
        Fabric::Cluster(_) => ("node", "gpu"),
    };
    let mut devices: Vec<(DeviceId, Value)> = g
        .devices()
        .map(|(r, j, k, id)| {
            let [x, y] = fabric.coord(id);
            (
                id,
                json!({ a: x, b: y, "replica": r, "stage": j, "tensor_rank": k }),
            )
        })
        .collect();
    devices.sort_by_key(|(id, _)| *id);
    let mut v = json!({
        "mean_pipeline_hops": g.mean_pipeline_hops(fabric),
        "devices": devices.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    });
    if let (Fabric::Mesh(m), Some(obj)) = (fabric, v.as_object_mut()) {
        let faulty: Vec<[u32; 2]> = (0..fabric.device_count())
            .filter(|id| !fabric.is_healthy(*id))
            .map(|id| fabric.coord(id))
            .collect();
        let mut links = Vec::new();
        for id in 0..fabric.device_count() {
            for nb in [id + 1, id + m.cols] {
                let adjacent = (nb == id + 1 && nb % m.cols != 0)
                    || (nb == id + m.cols && nb < fabric.device_count());
                if adjacent && both_healthy(fabric, id, nb) && !fabric.link_works(id, nb) {
                    links.push([fabric.coord(id), fabric.coord(nb)]);
                }
            }
        }
        obj.insert("rows".into(), json!(m.rows));
        obj.insert("cols".into(), json!(m.cols));
        obj.insert("faulty_dies".into(), json!(faulty));
        obj.insert("faulty_links".into(), json!(links));
    }
    v
}

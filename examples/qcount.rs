use watos::strategy::space::{Frontier, Refinement};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let inst = watos::Instance::new(
        "x",
        watos::Model::load(&args[1]).unwrap(),
        watos::Hardware::load(&args[2]).unwrap(),
        toml::from_str(&format!("global_batch={}\nseq_len={}", args[3], args[4])).unwrap(),
    )
    .unwrap();
    let thr: f64 = args[5].parse().unwrap();
    let t0 = std::time::Instant::now();
    let mut f = Frontier::new(&inst);
    let mut below = vec![];
    while f.least_bound() < thr {
        let e = f.pop().unwrap();
        match e.refinement {
            Refinement::Compute => {
                if let Some((_, b)) = f.refine(&inst, &e) {
                    f.push_classes(&e, &b);
                }
            }
            _ => below.push((e.bound_s, e.config, e.class)),
        }
    }
    println!(
        "{} configs with quick bound < {thr} ({:?}), memory_infeasible {}",
        below.len(),
        t0.elapsed(),
        f.memory_infeasible
    );
    let mut by: std::collections::BTreeMap<(u32, u32, u32), usize> = Default::default();
    for (_, c, _) in &below {
        *by.entry((c.tp, c.pp, c.dp)).or_default() += 1;
    }
    for (k, v) in by.iter().take(40) {
        println!("{:?}: {}", k, v);
    }
    let mut cl: std::collections::BTreeMap<String, usize> = Default::default();
    for (_, _, c) in &below {
        *cl.entry(format!("{c:?}")).or_default() += 1;
    }
    println!("{cl:?}");
    for (b, c, k) in below.iter().take(10) {
        println!(
            "{b:.4} {k:?} D{} T{} P{} b{} v{}",
            c.dp, c.tp, c.pp, c.micro_batch, c.interleave
        );
    }
}

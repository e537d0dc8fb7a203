use std::time::Instant;
use watos::cost::bound::quick_bound;
use watos::cost::comm::UnitComm;
use watos::cost::{CommCosts, ConfigCosts};
use watos::formulation::{MipComm, SolverOptions, StageMip};
use watos::strategy::space::{Frontier, Refinement};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut inst = watos::Instance::new(
        "x",
        watos::Model::load(&args[1]).unwrap(),
        watos::Hardware::load(&args[2]).unwrap(),
        toml::from_str(&format!("global_batch={}\nseq_len={}", args[3], args[4])).unwrap(),
    )
    .unwrap();
    let n: usize = args.get(5).map(|s| s.parse().unwrap()).unwrap_or(20);
    let _ = &mut inst;
    let t0 = Instant::now();
    let mut f = Frontier::new(&inst);
    eprintln!("frontier {} configs in {:?}", f.total, t0.elapsed());
    let mut shown = 0;
    while shown < n {
        let Some(e) = f.pop() else { break };
        match e.refinement {
            Refinement::Compute => {
                if let Some((_, b)) = f.refine(&inst, &e) {
                    f.push_classes(&e, &b);
                }
            }
            _ => {
                let c = ConfigCosts::new(&inst, e.config);
                let mut comm = MipComm::ideal(&inst, &c);
                comm.units = comm.units.map(|u| u.covering(e.class));
                let t = Instant::now();
                let mip = StageMip::new(&c, comm, None);
                let (rows, cols) = (mip.rows(), mip.columns());
                let build = t.elapsed();
                let t = Instant::now();
                let res = mip
                    .solve(
                        &SolverOptions {
                            gap: 0.005,
                            ..Default::default()
                        },
                        None,
                    )
                    .unwrap();
                let ev = res.plan.as_ref().map(|p| {
                    watos::evaluate(&inst, p)
                        .map(|e| (e.step_time_s, e.feasible))
                        .unwrap()
                });
                println!("{:?} {:?} q={:.4} mip_bound={:.4} obj={:.4} eval={:?} status={:?} nodes={} rows={} cols={} build={:?} solve={:?}", e.config, e.class, e.bound_s, res.bound_s, res.objective_s, ev, res.status, res.nodes, rows, cols, build, t.elapsed());
                shown += 1;
            }
        }
    }
    let _ = (quick_bound, UnitComm::of, CommCosts::ideal);
}

use watos::cost::comm::UnitClass;
use watos::cost::ConfigCosts;
use watos::formulation::{MipComm, SolverOptions, StageMip};
use watos::plan::Config;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let inst = watos::Instance::new(
        "x",
        watos::Model::load(&a[1]).unwrap(),
        watos::Hardware::load(&a[2]).unwrap(),
        toml::from_str(&format!("global_batch={}\nseq_len={}", a[3], a[4])).unwrap(),
    )
    .unwrap();
    let n = |i: usize| a[i].parse::<u32>().unwrap();
    let c = Config {
        dp: n(5),
        tp: n(6),
        pp: n(7),
        micro_batch: n(8),
        interleave: n(9),
        sequence_parallel: n(6) > 1,
        zero1: n(5) > 1,
        dp_overlap: true,
    };
    let class = match a[10].as_str() {
        "a" => UnitClass::Aligned,
        "s" => UnitClass::Straddled,
        _ => UnitClass::Any,
    };
    let cutoff: Option<f64> = a.get(11).map(|s| s.parse().unwrap());
    let costs = ConfigCosts::new(&inst, c);
    let mut comm = MipComm::ideal(&inst, &costs);
    comm.units = comm.units.map(|u| u.covering(class));
    let t = std::time::Instant::now();
    let res = StageMip::new(&costs, comm, None)
        .solve(
            &SolverOptions {
                gap: 0.005,
                time_limit_s: Some(30.0),
                ..Default::default()
            },
            cutoff,
        )
        .unwrap();
    println!(
        "bound {:.4} obj {:.4} {:?} nodes {} {:?}",
        res.bound_s,
        res.objective_s,
        res.status,
        res.nodes,
        t.elapsed()
    );
    if let Some(p) = res.plan {
        let e = watos::evaluate(&inst, &p).unwrap();
        println!(
            "eval {:.4} feasible {} breakdown {:?}",
            e.step_time_s, e.feasible, e.breakdown
        );
        let costs = ConfigCosts::new(&inst, c);
        let mut comm = MipComm::ideal(&inst, &costs);
        comm.units = comm.units.map(|u| u.covering(class));
        let m = StageMip::new(&costs, comm, None);
        println!(
            "mip objective at plan {:.4}",
            m.objective_of(&p, inst.fabric())
        );
        let ideal = watos::cost::evaluate_ideal(&inst, &p, &costs);
        println!(
            "ideal {:.4} breakdown {:?}",
            ideal.step_time_s, ideal.breakdown
        );
        for (a, b) in e.stages.iter().zip(&ideal.stages) {
            println!(
                "  stage tau real {:.4} ideal {:.4} parts {:?} | dp {:.4}/{:.4} opt {:.4}",
                a.time_per_microbatch_s,
                b.time_per_microbatch_s,
                a.parts,
                a.dp_comm_s,
                b.dp_comm_s,
                a.optimizer_s
            );
        }
    }
}

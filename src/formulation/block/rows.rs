//! A block's rows: the stage model's time, memory and tail over the block's variables, and the
//! rules a plan follows (layers in order, one weight source per stage, capacities, placement
//! classes). On a fabric of units a stage whose groups may or may not straddle units has its layer
//! counts split by class, each class's stage model scaled by its binary (the perspective of the
//! disjunction): tight where big-M rows would be loose.

use good_lp::{constraint, Expression, Variable};

use crate::cost::stage::{self, ParkFlow, StageComm, StageVars};
use crate::cost::Scalar;
use crate::plan::{ParkKind, WeightSource};

use super::{kind_index, ConfigBlock, LayerVars, Straddle};

/// Whether alternative `k` of `n` of a stage's synchronisation is the 0 that overlap adds.
fn cfg_overlap_zero(c: &crate::cost::ConfigCosts, k: usize, n: usize) -> bool {
    c.config.dp_overlap && k + 1 == n
}
use crate::formulation::Model;

/// Which of a stage's count variables a stage-model call sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counts {
    /// All of them: memory, which does not depend on the class.
    All,
    /// The aligned (or only) class's.
    Inside,
    /// The straddling class's.
    Across,
}

fn sum_of(vars: &LayerVars, k: usize) -> Expression {
    let mut e = Expression::default();
    for by_mode in &vars[k] {
        for v in by_mode.iter().flatten() {
            e += *v;
        }
    }
    e
}

impl ConfigBlock<'_> {
    /// Bytes/s a parking transfer from stage `j` to stage `i` gets at best: on a fabric of units,
    /// an aligned stage's transfers leave its units unless it may have a partner inside them (then
    /// [`Self::parking_rows`] charges the difference where it has none).
    fn park_bw(&self, j: usize, i: usize) -> f64 {
        match (&self.comm.units, self.straddle.get(j)) {
            (Some(u), Some(Straddle::No)) if self.partner[j].is_none() => u.park_across_bw,
            (Some(u), Some(Straddle::No)) => u.park_inside_bw,
            _ => self.comm.park_bw[j][i],
        }
    }

    pub(super) fn layers_of(&self, j: usize, k: usize) -> Expression {
        let mut e = sum_of(&self.x[j], k);
        if let Some(across) = &self.x_across[j] {
            e += sum_of(across, k);
        }
        e
    }

    /// The stage model's decisions of stage `j`, as expressions over the block's variables: the
    /// counts `which` selects; parked bytes with the counts that own the stage's one copy of them.
    fn stage_vars(&self, j: usize, which: Counts) -> StageVars<Expression> {
        let c = self.costs;
        let p = c.config.pp as usize;
        let at = |v: Option<Variable>| v.map_or_else(Expression::default, Expression::from);
        let layers: Vec<[[Expression; 3]; WeightSource::COUNT]> = (0..c.kinds.len())
            .map(|k| {
                let pick = |vars: &LayerVars| vars[k].map(|modes| modes.map(at));
                match (which, &self.x_across[j]) {
                    (Counts::Across, Some(across)) => pick(across),
                    (Counts::Across, None) => {
                        pick(&self.x[j]).map(|m| m.map(|_| Expression::default()))
                    }
                    (Counts::Inside, _) | (Counts::All, None) => pick(&self.x[j]),
                    (Counts::All, Some(across)) => {
                        let (mut a, b) = (pick(&self.x[j]), pick(across));
                        for (ra, rb) in a.iter_mut().zip(&b) {
                            for (xa, xb) in ra.iter_mut().zip(rb) {
                                *xa += xb;
                            }
                        }
                        a
                    }
                }
            })
            .collect();
        let bytes = |v: Variable| Expression::from(v) * self.mem_unit;
        let (mut park_out, mut park_in) = (Vec::new(), Vec::new());
        if which != Counts::Across {
            for what in ParkKind::ALL {
                let table = &self.park[kind_index(what)];
                for i in (0..p).filter(|i| *i != j) {
                    if let Some(v) = table[j][i] {
                        park_out.push(ParkFlow {
                            what,
                            bytes: bytes(v),
                            bw: self.park_bw(j, i),
                            sender_inflight: c.inflight(j as u32),
                        });
                    }
                    if let Some(v) = table[i][j] {
                        park_in.push(ParkFlow {
                            what,
                            bytes: bytes(v),
                            bw: self.comm.park_bw[i][j],
                            sender_inflight: c.inflight(i as u32),
                        });
                    }
                }
            }
        }
        StageVars {
            layers,
            ends_in_sram: if which == Counts::All {
                at(self.y[j])
            } else {
                Expression::default()
            },
            park_out,
            park_in,
        }
    }

    pub(super) fn build(&mut self, model: &mut Model) {
        let c = self.costs;
        let cfg = c.config;
        let p = cfg.pp as usize;
        let big = c.model_layers as f64;
        let one = self.one();
        let per_mem = 1.0 / self.mem_unit;
        self.order_rows(model);
        for j in 0..p {
            let ju = j as u32;
            let count: Expression = (0..c.kinds.len()).map(|k| self.layers_of(j, k)).sum();
            // Each interleaved chunk holds at least one layer.
            model.push(constraint!(count >= one.clone() * cfg.interleave as f64));
            // One weight source per stage: with y = 1 no DRAM layers, with y = 0 no SRAM layers.
            if let Some(y) = self.y[j] {
                for vars in std::iter::once(&self.x[j]).chain(self.x_across[j].as_ref()) {
                    for by in vars {
                        for (dram, sram) in by[0].iter().zip(&by[1]) {
                            if let (Some(n), Some(s)) = (dram, sram) {
                                model.push(constraint!(*s <= big * y));
                                model.push(constraint!(*n + big * y <= one.clone() * big));
                            }
                        }
                    }
                }
            }
            // Each class's layers only when the stage is in that class.
            if let (Some(Straddle::Maybe(a)), Some(_)) =
                (self.straddle.get(j).copied(), &self.x_across[j])
            {
                let inside: Expression = (0..c.kinds.len()).map(|k| sum_of(&self.x[j], k)).sum();
                let across: Expression = (0..c.kinds.len())
                    .map(|k| {
                        self.x_across[j]
                            .as_ref()
                            .map_or_else(Expression::default, |x| sum_of(x, k))
                    })
                    .sum();
                model.push(constraint!(across <= big * a));
                model.push(constraint!(inside <= (one.clone() - a) * big));
            }
            let v = self.stage_vars(j, Counts::All);
            let mem = stage::memory(c, ju, &v, &one);
            if self.y[j].is_some() {
                let sram_cap = one.clone() * c.sram_weight_bytes;
                model.push(constraint!(
                    (mem.weights_sram.clone() - sram_cap) * per_mem <= 0.0
                ));
            }
            let cap = one.clone() * c.dram_capacity_bytes;
            model.push(constraint!((mem.dram_used() - cap) * per_mem <= 0.0));
            let act = mem.parked_out_activations.clone() - mem.activations.clone();
            model.push(constraint!(act * per_mem <= 0.0));
            let opt = mem.parked_out_optimizer.clone() - mem.optimizer.clone();
            model.push(constraint!(opt * per_mem <= 0.0));
            self.time_rows(model, j);
        }
        self.class_rows(model);
    }

    /// Stage `j`'s time and tail rows: with the communication at the best any placement allows,
    /// or on a fabric of units, per placement class.
    fn time_rows(&mut self, model: &mut Model, j: usize) {
        let c = self.costs;
        let cfg = c.config;
        let ju = j as u32;
        let one = self.one();
        let per_time = 1.0 / self.time_unit;
        let any = self.comm.stage.stage(c, ju, cfg.dp_overlap);
        // (tail, and the one of another class to add to it) per class present.
        let (tau, tails) = match self.comm.units.clone() {
            None => {
                let v = self.stage_vars(j, Counts::Inside);
                (
                    stage::time_total(c, ju, &v, &any, &one),
                    vec![stage::tail(c, ju, &v, &any, &one)],
                )
            }
            Some(u) => {
                let (nf, nb) = c.p2p_sends(ju);
                let aligned_dp = [u.dp_aligned];
                // Two aligned groups in different units (none fits a unit with another) reduce a
                // tied embedding across units.
                let apart = u.dp_packed[1].is_none();
                let class = |tp: f64, aligned: bool| StageComm {
                    tp_allreduce_s: tp,
                    p2p_s: (nf + nb) * u.send_inside_s,
                    dp_paths: match (aligned, cfg.dp > 1) {
                        (_, false) => &[],
                        (true, true) => &aligned_dp,
                        (false, true) => any.dp_paths,
                    },
                    tied_s: if aligned && apart && any.tied_s > 0.0 {
                        u.tied_across_s
                    } else {
                        any.tied_s
                    },
                    ..any
                };
                // Chain sends out of the stage cost more when they cross units.
                let delta = u.send_across_s - u.send_inside_s;
                let mut extra = Expression::default();
                let chunks = cfg.interleave as f64;
                if j + 1 < self.x.len() {
                    extra.add_mul(delta * chunks, self.cross[j]);
                }
                if j > 0 {
                    extra.add_mul(delta * chunks, self.cross[j - 1]);
                }
                if let Some(w) = self.wrap.filter(|_| j == 0 || j + 1 == self.x.len()) {
                    extra.add_mul(delta * (chunks - 1.0), w);
                }
                let inside = self.stage_vars(j, Counts::Inside);
                match self.straddle[j] {
                    Straddle::No => {
                        let comm = class(u.tp_inside_s, true);
                        let (act_extra, opt_extra) = self.parking_rows(model, j, &inside, &u);
                        if cfg.dp > 1 {
                            let packed =
                                self.packing_rows(model, j, &inside, &comm, &u, &opt_extra);
                            self.tail.extend(packed);
                        }
                        let mut tail = stage::tail(c, ju, &inside, &comm, &one);
                        tail.optimizer += opt_extra;
                        (
                            stage::time_total(c, ju, &inside, &comm, &one) + extra + act_extra,
                            vec![tail],
                        )
                    }
                    Straddle::Yes => {
                        let comm = class(u.tp_across_s, false);
                        (
                            stage::time_total(c, ju, &inside, &comm, &one) + extra,
                            vec![stage::tail(c, ju, &inside, &comm, &one)],
                        )
                    }
                    Straddle::Maybe(a) => {
                        let (on_in, on_ac) = (one.clone() - a, Expression::from(a));
                        let across = self.stage_vars(j, Counts::Across);
                        let (comm_in, comm_ac) =
                            (class(u.tp_inside_s, true), class(u.tp_across_s, false));
                        let tau = stage::time_total(c, ju, &inside, &comm_in, &on_in)
                            + stage::time_total(c, ju, &across, &comm_ac, &on_ac)
                            + extra;
                        (
                            tau,
                            vec![
                                stage::tail(c, ju, &inside, &comm_in, &on_in),
                                stage::tail(c, ju, &across, &comm_ac, &on_ac),
                            ],
                        )
                    }
                }
            }
        };
        // The tail is the optimizer plus the longest synchronisation of the stage's class: every
        // combination of one alternative per class part (the part of a class not taken is 0).
        let optimizer = <Expression as Scalar>::sum(tails.iter().map(|t| &t.optimizer));
        let mut combos: Vec<Expression> = vec![optimizer];
        for part in &tails {
            combos = combos
                .iter()
                .flat_map(|base| part.dp.iter().map(move |alt| base.clone().plus(alt)))
                .collect();
        }
        for t in combos {
            let t = t * per_time;
            model.push(constraint!(self.tail_max >= t.clone()));
            self.tail.push(t);
        }
        let tau = tau * per_time;
        model.push(constraint!(self.tau_max >= tau.clone()));
        self.tau.push(tau);
    }

    /// An aligned stage whose sends to a neighbour stay inside units brings that neighbour's group
    /// into each unit it uses: its data-parallel rings have fewer members per unit. Rows switched
    /// on by the edges not crossing (`cross = 0`), or ruling it out where no unit can hold the
    /// groups.
    fn packing_rows(
        &self,
        model: &mut Model,
        j: usize,
        v: &StageVars<Expression>,
        comm: &StageComm,
        u: &crate::cost::comm::UnitComm,
        opt_extra: &Expression,
    ) -> Vec<Expression> {
        let mut tails = Vec::new();
        let c = self.costs;
        let ju = j as u32;
        let one = self.one();
        let per_time = 1.0 / self.time_unit;
        let edges: Vec<Variable> = [j.checked_sub(1), (j + 1 < self.x.len()).then_some(j)]
            .into_iter()
            .flatten()
            .map(|e| self.cross[e])
            .collect();
        // More than any synchronisation of the stage can take.
        let (per_param, fixed) =
            c.dp_sync_affine(u.dp_packed.iter().flatten().fold(u.dp_aligned, |a, b| {
                if b.bw_bytes_per_s < a.bw_bytes_per_s {
                    *b
                } else {
                    a
                }
            }));
        // A stage holds at most what its devices' memory allows: every parameter keeps its
        // gradient in DRAM and its 16-bit weight in DRAM or SRAM (optimizer state may be parked).
        // Far below the whole model on a deep pipeline, and the tighter the big-M, the tighter
        // the LP relaxation.
        let (w, g) = (c.state.weights, c.state.grads);
        let held = (c.dram_capacity_bytes / (w + g))
            .max((c.dram_capacity_bytes / g).min(c.sram_weight_bytes / w));
        let most_params = (c.kinds.iter().map(|k| k.params).fold(0.0, f64::max)
            * c.model_layers as f64
            + c.ends_params(ju))
        .min(held);
        let big = per_param * most_params + fixed + comm.tied_s;
        for (intra, path) in u.dp_packed.iter().enumerate().skip(1) {
            // One partner inside (a neighbour or a parking partner: `partner`), or both
            // neighbours inside (neither send crosses); the switch is 0 when that holds.
            let switches: Vec<Expression> = match intra {
                1 => self.partner[j]
                    .map(|q| one.clone() - q)
                    .into_iter()
                    .chain(
                        // Without a partner variable, the neighbours' sends decide alone.
                        edges
                            .iter()
                            .filter(|_| self.partner[j].is_none())
                            .map(|e| Expression::from(*e)),
                    )
                    .collect(),
                _ if edges.len() == 2 => vec![edges.iter().copied().sum()],
                _ => Vec::new(),
            };
            for crossing in switches {
                match path {
                    None => {
                        // Not all of these can stay inside.
                        model.push(constraint!(crossing >= one.clone()));
                    }
                    Some(path) => {
                        let paths = [*path];
                        let packed = StageComm {
                            dp_paths: &paths,
                            ..*comm
                        };
                        let tail = stage::tail(c, ju, v, &packed, &one);
                        for (k, dp) in tail.dp.iter().enumerate() {
                            // The last alternative with overlap is the bare optimizer: no switch.
                            if cfg_overlap_zero(c, k, tail.dp.len()) {
                                continue;
                            }
                            let mut t = tail.optimizer.clone().plus(dp).plus(opt_extra);
                            t -= crossing.clone() * big;
                            let t = t * per_time;
                            model.push(constraint!(self.tail_max >= t.clone()));
                            tails.push(t);
                        }
                    }
                }
            }
        }
        tails
    }

    /// What an aligned stage's parking costs beyond the best inside a unit, when it has no partner
    /// there (`partner = 0`): its parked activations (per micro-batch) and optimizer state (per
    /// step) cross units. Returns the extra stage time and tail, each a variable held above the
    /// difference less a big-M switched off by `partner = 1`.
    fn parking_rows(
        &self,
        model: &mut Model,
        j: usize,
        v: &StageVars<Expression>,
        u: &crate::cost::comm::UnitComm,
    ) -> (Expression, Expression) {
        let Some(q) = self.partner[j] else {
            return (Expression::default(), Expression::default());
        };
        let c = self.costs;
        let per_time = 1.0 / self.time_unit;
        let inflight = c.inflight(j as u32);
        let slower = 1.0 / u.park_across_bw - 1.0 / u.park_inside_bw;
        let mut out = [Expression::default(), Expression::default()];
        let mut most = [0.0, 0.0];
        for f in &v.park_out {
            let (k, per_byte) = match f.what {
                ParkKind::Activations => (0, 2.0 / inflight * slower),
                ParkKind::Optimizer => (1, 2.0 * slower),
            };
            out[k].add_mul(per_byte, &f.bytes);
            // The bytes' own bound caps the difference.
            most[k] += per_byte * self.park_cap[j][k];
        }
        let [act, opt] = out;
        let mut extra = |diff: Expression, big: f64| {
            let v = model.add(good_lp::variable().min(0.0));
            model.push(constraint!(
                (Expression::from(v) - diff + q * big) * per_time >= 0.0
            ));
            Expression::from(v)
        };
        (extra(act, most[0]), extra(opt, most[1]))
    }

    /// The rules that tie placement classes together: a send out of or into an aligned stage
    /// crosses units when two groups cannot share one, and one replica's pipeline, spanning at
    /// least `min_units` units, moves between them by crossing sends or straddling groups; the
    /// straddling class has at least one stage straddling.
    fn class_rows(&self, model: &mut Model) {
        use crate::cost::comm::UnitClass;
        let Some(u) = &self.comm.units else { return };
        let one = self.one();
        let p = self.straddle.len();
        let straddles = |j: usize| match self.straddle[j] {
            Straddle::No => Expression::default(),
            Straddle::Yes => one.clone(),
            Straddle::Maybe(a) => Expression::from(a),
        };
        // Straddling stages: at least one in its class, and at least the stages whose groups the
        // units cannot all hold whole (an aligned class with any such stage is empty).
        let least = match u.class {
            UnitClass::Straddled => u.min_straddling.max(1),
            UnitClass::Any | UnitClass::Aligned => u.min_straddling,
        };
        if least > 0 && !u.must_straddle {
            let any: Expression = (0..p).map(straddles).sum();
            model.push(constraint!(any >= one.clone() * f64::from(least)));
        }
        // Every edge of the pipeline (with interleaving, a cycle: the last stage sends back to
        // the first) as (its crossing binary, its two stages).
        let mut edges: Vec<(Variable, usize, usize)> = (0..p.saturating_sub(1))
            .map(|j| (self.cross[j], j, j + 1))
            .collect();
        edges.extend(self.wrap.map(|w| (w, p - 1, 0)));
        if u.aligned_sends_cross {
            for (c, a, b) in &edges {
                model.push(constraint!(*c + straddles(*a) >= one.clone()));
                model.push(constraint!(*c + straddles(*b) >= one.clone()));
            }
        }
        // A send that stays inside units makes both its stages partners there.
        for (c, a, b) in &edges {
            for q in [self.partner[*a], self.partner[*b]].into_iter().flatten() {
                model.push(constraint!(q + *c >= one.clone()));
            }
        }
        // A chain through `n` units moves between them at least `n - 1` times; a cycle `n` times.
        let mut moves: Expression = edges.iter().map(|e| e.0).sum();
        for j in 0..p {
            moves.add_mul(u.straddle_weight as f64, straddles(j));
        }
        let needed = match self.wrap {
            Some(_) if u.min_units >= 2 => u.min_units,
            _ => u.min_units.saturating_sub(1),
        };
        model.push(constraint!(moves >= one * needed as f64));
    }

    /// Rows that keep each stage's layers the next ones of the model: the layer totals of each
    /// kind, and with several blocks, cumulative counts per block with binaries for where each
    /// stage ends (`reach[j][b]`: stage `j` ends past the start of block `b`).
    fn order_rows(&self, model: &mut Model) {
        let c = self.costs;
        let p = c.config.pp as usize;
        let one = self.one();
        let blocks = &c.layout.blocks;
        if blocks.len() <= 1 {
            for (k, total) in c.layout.totals().iter().enumerate() {
                let sum: Expression = (0..p).map(|j| self.layers_of(j, k)).sum();
                model.push(constraint!(sum == one.clone() * *total as f64));
            }
            return;
        }
        for j in 0..p {
            let cum = &self.cumulative[j];
            for (b, block) in blocks.iter().enumerate() {
                let size = block.layers as f64;
                if let Some(u) = self.reach[j][b] {
                    model.push(constraint!(cum[b] <= size * u));
                }
                if let Some(Some(next)) = self.reach[j].get(b + 1) {
                    model.push(constraint!(cum[b] >= size * *next));
                    if let Some(u) = self.reach[j][b] {
                        model.push(constraint!(*next <= u));
                    }
                }
                if j > 0 {
                    model.push(constraint!(cum[b] >= self.cumulative[j - 1][b]));
                }
                if j + 1 == p {
                    model.push(constraint!(cum[b] == one.clone() * size));
                }
            }
            for k in 0..c.kinds.len() {
                let mut here = Expression::default();
                for (b, block) in blocks.iter().enumerate().filter(|(_, b)| b.kind == k) {
                    let _ = block;
                    here += cum[b];
                    if j > 0 {
                        here -= self.cumulative[j - 1][b];
                    }
                }
                let layers = self.layers_of(j, k);
                model.push(constraint!(layers == here));
            }
        }
    }
}

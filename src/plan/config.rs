//! The top-level choices of a plan: everything its per-stage decisions are made under.

use super::Plan;

/// Parallel degrees, micro-batch and the switches that fix every per-layer cost.
///
/// ```
/// let plan = watos::Plan::uniform(8, 2, 4, 2, 1, watos::plan::Recompute::None);
/// let c = watos::plan::Config::of(&plan);
/// assert_eq!((c.dp, c.tp, c.pp, c.devices()), (2, 4, 2, 16));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Config {
    pub dp: u32,
    /// Expert-parallel degree: each MoE layer's routed experts are split over groups of `ep`
    /// data-parallel replicas (it divides `dp`); 1 for dense models.
    pub ep: u32,
    pub tp: u32,
    pub pp: u32,
    pub micro_batch: u32,
    pub sequence_parallel: bool,
    pub interleave: u32,
    pub zero1: bool,
    /// Gradients reduced during the last micro-batch's backward pass.
    pub dp_overlap: bool,
}

impl Config {
    /// The configuration of a plan.
    pub fn of(plan: &Plan) -> Self {
        Config {
            dp: plan.dp,
            ep: plan.ep,
            tp: plan.tp,
            pp: plan.pp,
            micro_batch: plan.micro_batch,
            sequence_parallel: plan.sequence_parallel,
            interleave: plan.interleave,
            zero1: plan.zero1,
            dp_overlap: plan.dp_overlap,
        }
    }

    /// Replicas holding the same experts, over which expert gradients are reduced: `dp / ep`.
    ///
    /// ```
    /// let mut plan = watos::Plan::uniform(8, 8, 1, 1, 1, watos::plan::Recompute::None);
    /// plan.ep = 4;
    /// assert_eq!(watos::plan::Config::of(&plan).expert_dp(), 2);
    /// ```
    pub fn expert_dp(&self) -> u32 {
        self.dp / self.ep.max(1)
    }

    /// Devices the configuration uses.
    pub fn devices(&self) -> u64 {
        u64::from(self.dp) * u64::from(self.tp) * u64::from(self.pp)
    }
}

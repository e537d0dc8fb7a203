//! The gpu-node strategy: the same model and training setup on one node of 8 Blackwell Ultra GPUs
//! whose memory is scaled to the total of the hardware it is compared with (the WATOS paper's GPU
//! baseline), planned by Megatron-LM's rules ([`super::megatron`]).

use crate::error::Error;
use crate::hardware::Hardware;
use crate::input::SourceFile;
use crate::instance::Instance;
use crate::solution::Solution;
use crate::units::GB;

use super::megatron::{self, Pins};
use super::{Observer, SearchOptions};

/// The node as shipped in `hardware/gpu-node-b300.toml`.
pub const NODE_TOML: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/hardware/gpu-node-b300.toml"
));

/// Megatron-LM on the node.
#[derive(Debug, Clone, Default)]
pub struct GpuNode;

impl super::Strategy for GpuNode {
    fn name(&self) -> &'static str {
        "gpu-node"
    }

    fn space(&self) -> &'static str {
        "the megatron strategy on one node of 8 Blackwell Ultra GPUs with memory scaled to the compared hardware's total"
    }

    fn instance(&self, inst: &Instance) -> Result<Instance, Error> {
        Ok(megatron::rules(&on_node(inst)?))
    }

    fn solve(
        &self,
        inst: &Instance,
        opts: &SearchOptions,
        observer: &dyn Observer,
    ) -> Result<Solution, Error> {
        megatron::search(
            &self.instance(inst)?,
            &Pins::default(),
            self.space(),
            opts,
            observer,
        )
    }
}

/// The node with each GPU's memory scaled to the DRAM of `total_bytes` shared over its GPUs.
///
/// ```
/// let node = watos::strategy::gpu_node::node(3920e9).unwrap();
/// assert_eq!((node.dram_bytes(), node.peak_flops()), (490e9, 2250e12));
/// ```
pub fn node(total_bytes: f64) -> Result<Hardware, Error> {
    let mut hw = Hardware::from_source(&SourceFile::from_text(
        "hardware/gpu-node-b300.toml",
        NODE_TOML,
    ))?;
    let gpus = hw.cluster.as_ref().map_or(1, |c| c.gpus_per_node * c.nodes);
    hw.device.dram_gb = total_bytes / GB / f64::from(gpus);
    hw.name = format!("8 x B300 node, memory scaled to {:.0} GB", total_bytes / GB);
    Ok(hw)
}

/// The instance's model and training on the node, its memory scaled to the instance's DRAM (all
/// healthy devices, any framework reserve included), its limits kept. The execution style is the
/// node's own (GPU kernels), whatever the instance's hardware runs.
///
/// ```
/// let inst = watos::Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/llama3-70b-wafer.toml")).unwrap();
/// let on = watos::strategy::gpu_node::on_node(&inst).unwrap();
/// assert_eq!((on.fabric().healthy_count(), on.hardware.dram_bytes()), (8, 490e9));
/// ```
pub fn on_node(inst: &Instance) -> Result<Instance, Error> {
    let total = inst.physical_dram_bytes() * f64::from(inst.fabric().healthy_count());
    let hw = node(total)?;
    let mut training = inst.training.clone();
    training.execution = None;
    let name = format!("{} on {}", inst.model.name, hw.name);
    let mut out = Instance::new(name, inst.model.clone(), hw, training)?;
    out.limits = inst.limits.clone();
    out.model_path = inst.model_path.clone();
    Ok(out)
}

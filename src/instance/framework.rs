//! Rules a training framework imposes on plans, as data any strategy can be held to: nothing
//! parked in other devices' DRAM, a tensor degree that divides the key/value heads, tensor groups
//! inside a node, and DRAM kept free for the framework itself. An instance's `[limits]` (or the
//! command line's flags) switch them on for any strategy; the megatron strategy always follows
//! them.
//!
//! Where each is honoured: the tensor-degree rules filter configurations ([`Limits::admits_tp`],
//! called by every configuration space); the reserve shrinks the DRAM capacity that the searches
//! and the evaluator see ([`Instance::with_reserve`]); no parking bounds the MIP's parked bytes
//! at 0 and is never produced by the framework strategies.

use crate::error::{ensure, FieldError};
use crate::hardware::Hardware;
use crate::units::GB;

use super::{Instance, Limits};

impl Limits {
    /// Whether tensor degree `t` obeys the tensor-degree rules: it divides the `kv_heads`
    /// key/value heads when `tp_divides_kv_heads`, and on a cluster it divides the GPUs of a node
    /// when `tp_within_node` (groups of consecutive ranks then never straddle two nodes; a wafer
    /// has no nodes).
    ///
    /// ```
    /// let hw = watos::Hardware::load(concat!(env!("CARGO_MANIFEST_DIR"), "/hardware/dgx-a100-80gb.toml")).unwrap();
    /// let lim = watos::instance::Limits { tp_divides_kv_heads: true, tp_within_node: true, ..Default::default() };
    /// assert!(lim.admits_tp(4, 8, &hw));
    /// assert!(!lim.admits_tp(16, 16, &hw)); // two nodes
    /// assert!(!lim.admits_tp(6, 96, &hw)); // 8 GPUs per node: a group of 6 straddles
    /// assert!(!lim.admits_tp(8, 4, &hw)); // a key/value head on two ranks
    /// ```
    pub fn admits_tp(&self, t: u32, kv_heads: u32, hardware: &Hardware) -> bool {
        let kv_ok = !self.tp_divides_kv_heads || kv_heads % t == 0;
        let node_ok = match (&hardware.cluster, self.tp_within_node) {
            (Some(c), true) => c.gpus_per_node % t == 0,
            _ => true,
        };
        kv_ok && node_ok
    }

    /// DRAM per device the framework keeps, in bytes (0 without a reserve).
    pub fn reserve_bytes(&self) -> f64 {
        self.reserve_gb.unwrap_or(0.0) * GB
    }
}

impl Instance {
    /// The instance as a framework that keeps `bytes` of every device's DRAM sees it: the device's
    /// capacity less the reserve, so that every search and the evaluator hold plans to
    /// `DRAM used <= capacity - reserve`. A reserve already taken counts towards it, so applying
    /// the same one twice changes nothing.
    ///
    /// ```
    /// let inst = watos::Instance::load(concat!(env!("CARGO_MANIFEST_DIR"), "/instances/llama-30b-wafer.toml")).unwrap();
    /// let r = inst.with_reserve(3e9).with_reserve(3e9);
    /// assert_eq!((r.hardware.dram_bytes(), r.reserved_bytes), (67e9, 3e9));
    /// assert_eq!(r.physical_dram_bytes(), 70e9);
    /// ```
    pub fn with_reserve(&self, bytes: f64) -> Instance {
        let mut out = self.clone();
        let more = bytes - self.reserved_bytes;
        if more > 0.0 {
            out.hardware.device.dram_gb -= more / GB;
            out.reserved_bytes = bytes;
        }
        out
    }

    /// DRAM of one device as built, the framework's reserve included.
    pub fn physical_dram_bytes(&self) -> f64 {
        self.hardware.dram_bytes() + self.reserved_bytes
    }

    /// Checks that a reserve of `reserve_gb` leaves DRAM to plan with (the field is `reserve_gb`).
    pub fn check_reserve(&self, reserve_gb: Option<f64>) -> Result<(), FieldError> {
        let Some(r) = reserve_gb else { return Ok(()) };
        let have = self.physical_dram_bytes() / GB;
        ensure(r < have, || {
            FieldError::new(
                "reserve_gb",
                format!(
                    "{r} GB per device leaves nothing of the {have} GB of {}",
                    self.hardware.name
                ),
                format!("a reserve below {have} GB, e.g. 3"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst() -> Instance {
        Instance::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/instances/llama3-70b-wafer.toml"
        ))
        .unwrap()
    }

    #[test]
    fn a_larger_reserve_takes_only_the_difference() {
        let r = inst().with_reserve(2e9).with_reserve(5e9);
        assert_eq!(r.hardware.dram_bytes(), 65e9);
        assert_eq!(r.reserved_bytes, 5e9);
        // A smaller one than already taken gives nothing back.
        assert_eq!(r.with_reserve(1e9).hardware.dram_bytes(), 65e9);
    }

    #[test]
    fn a_reserve_must_leave_room() {
        let e = inst().check_reserve(Some(70.0)).unwrap_err();
        assert_eq!(e.field, "reserve_gb");
        assert!(
            e.message.contains("leaves nothing of the 70 GB"),
            "{}",
            e.message
        );
        assert!(inst().check_reserve(Some(69.5)).is_ok());
    }

    #[test]
    fn tensor_rules_ignore_nodes_on_a_wafer() {
        let lim = Limits {
            tp_within_node: true,
            ..Default::default()
        };
        let wafer = &inst().hardware;
        assert!(lim.admits_tp(6, 8, wafer));
        assert!(Limits::default().admits_tp(8, 4, wafer));
    }
}

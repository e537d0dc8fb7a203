//! MIP encodings of the planning problem, built with good_lp and solved by HiGHS. Each encoding
//! is the stage model of `cost::stage` over linear expressions (exact against the evaluator) or a
//! named relaxation of it, so HiGHS's dual bound is a true lower bound on the best step time.

mod block;
mod model;
pub mod monolithic;
pub mod solver;
mod stage_mip;

use good_lp::Expression;

use crate::cost::Scalar;

pub use solver::{interrupted, Deadline, RawStatus, SolverOptions, INTERRUPTED};
pub use stage_mip::{relaxations, MipComm, StageMip, StageMipResult};

pub(crate) use block::ConfigBlock;
pub(crate) use model::Model;
pub(crate) use stage_mip::time_unit;

/// The stage model over linear expressions.
impl Scalar for Expression {
    fn zero() -> Self {
        Expression::default()
    }

    fn add_mul(&mut self, k: f64, x: &Self) {
        Expression::add_mul(self, k, x);
    }
}

//! MIP encodings of the planning problem. Each encoding is exact against the evaluator or a named
//! relaxation of it, so HiGHS's dual bound is a true lower bound on the best step time.

pub mod monolithic;
pub mod solver;
pub mod space;
pub mod stage_mip;

pub use solver::{RawStatus, SolverOptions};
pub use stage_mip::{MipComm, StageMip, StageMipResult, RELAXATIONS};

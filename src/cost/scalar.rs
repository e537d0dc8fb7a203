//! The number type the stage model computes with: `f64` in the evaluator, a linear expression over
//! the decision variables in the MIP (`formulation` implements it for good_lp's `Expression`).
//! Writing stage time and memory once over this trait is what makes the MIP equal the evaluator
//! wherever it is exact.

/// A number that can be scaled and summed: all the stage model needs, so that everything it
/// computes stays linear in the decisions.
///
/// ```
/// use watos::cost::Scalar;
/// let mut x = 1.0;
/// x.add_mul(2.0, &3.0);
/// assert_eq!(x, 7.0);
/// assert_eq!(f64::sum([1.0, 2.0].iter()), 3.0);
/// ```
pub trait Scalar: Clone {
    /// Zero.
    fn zero() -> Self;

    /// `self += k * x`.
    fn add_mul(&mut self, k: f64, x: &Self);

    /// `k * self`.
    fn times(&self, k: f64) -> Self {
        let mut out = Self::zero();
        out.add_mul(k, self);
        out
    }

    /// `self + x`.
    fn plus(mut self, x: &Self) -> Self {
        self.add_mul(1.0, x);
        self
    }

    /// The sum of some values.
    fn sum<'a>(items: impl Iterator<Item = &'a Self>) -> Self
    where
        Self: 'a,
    {
        let mut out = Self::zero();
        for x in items {
            out.add_mul(1.0, x);
        }
        out
    }
}

impl Scalar for f64 {
    fn zero() -> Self {
        0.0
    }

    fn add_mul(&mut self, k: f64, x: &Self) {
        *self += k * x;
    }

    fn times(&self, k: f64) -> Self {
        k * self
    }
}

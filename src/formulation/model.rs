//! A good_lp model that remembers HiGHS columns, and the solve that reads the dual bound back.

use std::collections::HashMap;

use good_lp::{Expression, IntoAffineExpression, ProblemVariables, SolverModel, Variable};

use crate::error::Error;

use crate::formulation::solver::{solve_tuned, RawResult, SolverOptions};

/// A MIP under construction: variables with their HiGHS columns, and rows. Shared by every
/// configuration block of a formulation.
#[derive(Default)]
pub(crate) struct Model {
    pub(super) vars: ProblemVariables,
    /// Column of every variable (HiGHS numbers columns in the order variables are added; good_lp
    /// keeps that number private).
    pub(super) columns: HashMap<Variable, usize>,
    pub(super) constraints: Vec<good_lp::Constraint>,
}

/// A solved `Model`: HiGHS's figures with the objective's constant added back, and the values
/// of the variables.
pub(crate) struct Solved {
    pub raw: RawResult,
    pub(super) columns: HashMap<Variable, usize>,
}

impl Solved {
    /// A variable's value in the best solution (0 without one).
    pub fn value(&self, v: Variable) -> f64 {
        self.raw
            .columns
            .as_ref()
            .and_then(|cols| self.columns.get(&v).and_then(|i| cols.get(*i)))
            .copied()
            .unwrap_or(0.0)
    }
}

impl Model {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, def: good_lp::VariableDefinition) -> Variable {
        let v = self.vars.add(def);
        self.columns.insert(v, self.columns.len());
        v
    }

    pub fn push(&mut self, c: good_lp::Constraint) {
        self.constraints.push(c);
    }

    /// Rows (constraints) handed to HiGHS.
    pub fn rows(&self) -> usize {
        self.constraints.len()
    }

    /// Columns (variables) handed to HiGHS.
    pub fn cols(&self) -> usize {
        self.columns.len()
    }

    /// Minimises `objective`; `cutoff` in the objective's units; `tuning`: HiGHS options of the
    /// formulation ([`solve_tuned`]). good_lp hands HiGHS the coefficients, not the constant: it
    /// is added back to what HiGHS reports (objective, dual bound) and taken off the cutoff.
    pub fn solve(
        self,
        objective: Expression,
        opts: &SolverOptions,
        cutoff: Option<f64>,
        tuning: &[(&str, i32)],
    ) -> Result<Solved, Error> {
        let offset = objective.constant();
        let Model {
            vars,
            columns,
            constraints,
        } = self;
        let mut problem = vars
            .minimise(objective)
            .using(good_lp::solvers::highs::highs);
        for c in constraints {
            problem = problem.with(c);
        }
        let mut raw = solve_tuned(problem, opts, cutoff.map(|c| c - offset), tuning)?;
        raw.objective += offset;
        raw.dual_bound += offset;
        Ok(Solved { raw, columns })
    }
}

//! `watos validate`: predicted against measured for published GPU training runs.

use std::process::ExitCode;

use clap::Args;

use crate::error::Error;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: &ValidateArgs) -> Result<ExitCode, Error> {
    Err(Error::Solver("validate is not built yet".into()))
}

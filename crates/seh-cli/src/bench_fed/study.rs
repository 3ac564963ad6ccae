//! `seh bench federation --mode study`: whole describe studies through the real runtime.

use anyhow::{bail, Result};

use super::FederationBenchArgs;

/// Runs the `study` mode.
pub(super) fn run(_a: &FederationBenchArgs, _threshold: usize) -> Result<()> {
    bail!("--mode study is not implemented yet")
}

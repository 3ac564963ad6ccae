//! `seh`: the Secur-e-Health command line.
//!
//! Each subcommand lives in its own module and turns raw flags into validated
//! configuration before doing any work (see STYLE.md, ripgrep).

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "seh", version, about = "Secur-e-Health: federated survival analysis without moving patient rows")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            Ok(())
        }
        Some(command) => match command {},
    }
}

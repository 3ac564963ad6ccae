//! `seh`: the Secur-e-Health command line.
//!
//! Each subcommand lives in its own module and turns raw flags into validated
//! configuration before doing any work (see STYLE.md, ripgrep).

#![forbid(unsafe_code)]

mod bench;
mod bench_cox;
mod bench_psi;
mod demo;
mod fit;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "seh", version, about = "Secur-e-Health: federated survival analysis without moving patient rows")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fit a model on a local CSV file and print it like R (cox, km, glm).
    Fit(fit::FitArgs),
    /// Demonstration: a Cox fit on the bundled Stanford heart transplant data.
    Demo(demo::DemoArgs),
    /// Measure protocol performance (`seh bench secagg …`).
    Bench(bench::BenchArgs),
}

/// Exit code of a failed command (bad input, failed fit); clap uses 2 for bad flags as well.
const EXIT_FAILURE: u8 = 2;

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        None => {
            use clap::CommandFactory;
            Cli::command().print_help().map_err(anyhow::Error::from)
        }
        Some(Command::Fit(args)) => fit::run(args),
        Some(Command::Demo(args)) => demo::run(args),
        Some(Command::Bench(args)) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seh: error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

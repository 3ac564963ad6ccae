//! `seh`: the Secur-e-Health command line.
//!
//! Each subcommand lives in its own module and turns raw flags into validated
//! configuration before doing any work (see STYLE.md, ripgrep).

#![forbid(unsafe_code)]

mod analysis_opts;
mod audit_cmd;
mod bench;
mod bench_cox;
mod bench_fed;
mod bench_fedcox;
mod bench_he;
mod bench_psi;
mod ceremony_cmd;
mod coordinator_cmd;
mod data_cmd;
mod demo;
mod federate;
mod federate_models;
mod fit;
mod he_key_cmd;
mod keys;
mod keys_gen;
mod lifecycle;
mod node_cmd;
mod output;
mod policy_cmd;
mod sample_cmd;
mod study;
mod study_run;
mod trust;
mod workdir;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "seh", version, about = "Secur-e-Health: federated survival analysis without moving patient rows")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Set by `seh federate`/`seh demo`/`seh bench` on the processes they start: exit when
    /// standard input (a pipe from the launcher) reaches end-of-file, i.e. when the launcher ends.
    #[arg(long, global = true, hide = true)]
    exit_with_parent: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fit a model on a local CSV file and print it like R (cox, km, glm).
    Fit(fit::FitArgs),
    /// Demonstration: a Cox fit on the bundled Stanford heart transplant data.
    Demo(demo::DemoArgs),
    /// Run an analysis over a local federation: coordinator and sites as separate processes.
    #[command(subcommand)]
    Federate(federate::FederateCommand),
    /// Run a site node.
    Node(node_cmd::NodeArgs),
    /// Run the coordinator.
    Coordinator(coordinator_cmd::CoordinatorArgs),
    /// Submit studies and fetch verified results (researcher).
    #[command(subcommand)]
    Study(study::StudyCommand),
    /// Verify audit logs.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Party identities (`gen` on each party's machine), the roster (`assemble`), local trials (`init`).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Measure protocol performance (`seh bench secagg …`).
    Bench(bench::BenchArgs),
    /// Site data: import CSV / FHIR R4 into a site store, build cohorts, synthesise FHIR exports.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// Site policies: `seh policy template` writes the example policy for the researchers served.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
}

/// The process allocator: mimalloc. A SecAgg+ round allocates and frees
/// several 8 MB vectors per party; glibc's malloc maps fresh pages for each
/// (faulted in and zeroed by the kernel every round), mimalloc reuses them.
/// `seh bench secagg --parties 10 --length 1000000`, same code, back to back
/// on the shared (loaded) 2-core machine: secure round 0.224–0.261 s with
/// glibc, 0.174–0.178 s with mimalloc; plain round 0.072–0.090 s → 0.038 s.
/// jemalloc gained nothing (it unmaps blocks above 8 MiB at once). Details in
/// docs/CRYPTO.md, "SecAgg+ benchmark".
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code of a failed command (bad input, failed fit); clap uses 2 for bad flags as well.
const EXIT_FAILURE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.exit_with_parent {
        lifecycle::exit_when_stdin_closes();
    }
    let result = match cli.command {
        None => {
            use clap::CommandFactory;
            Cli::command().print_help().map_err(anyhow::Error::from)
        }
        Some(Command::Fit(args)) => fit::run(args),
        Some(Command::Demo(args)) => demo::run(args),
        Some(Command::Federate(cmd)) => federate::run(cmd),
        Some(Command::Node(args)) => node_cmd::run(args),
        Some(Command::Coordinator(args)) => coordinator_cmd::run(args),
        Some(Command::Study(cmd)) => study::run(cmd),
        Some(Command::Audit(cmd)) => audit_cmd::run(cmd),
        Some(Command::Keys(cmd)) => keys::run(cmd),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Data(cmd)) => data_cmd::run(cmd),
        Some(Command::Policy(cmd)) => policy_cmd::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seh: error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

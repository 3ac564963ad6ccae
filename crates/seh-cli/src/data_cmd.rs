//! `seh data …`: the site data commands (import, cohort, synth, tables).
//!
//! The site secret (32 bytes, hex) pseudonymises patient ids; it lives beside
//! the store (`STORE.secret`, mode 0600) unless `--secret` names another file,
//! and is created on first import. Keep it out of backups shared with others.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use seh_crypto::pseudonym::SiteSecret;
use seh_data::cohort::{self, CohortDef};
use seh_data::source::ClinicalSource;
use seh_data::Store;

/// `seh data` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Import a numeric CSV table, a FHIR R4 NDJSON export directory or an opt-out list into a site store.
    Import(ImportArgs),
    /// Build a cohort (counting-process rows) from a definition file.
    Cohort(CohortArgs),
    /// Write a deterministic synthetic FHIR export per site.
    Synth(SynthArgs),
    /// List the analysis tables and record counts of a store.
    Tables(StoreArgs),
    /// Write one site's share of an embedded public data set (for trying a federation).
    Sample(crate::sample_cmd::SampleArgs),
}

/// The store and its secret.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The site's SQLite store (created if missing).
    #[arg(long)]
    store: PathBuf,
    /// Site secret file (hex, 32 bytes); default: STORE.secret next to the store.
    #[arg(long)]
    secret: Option<PathBuf>,
}

/// `seh data import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// A numeric CSV file (header row; empty/NA = missing) to store as --table.
    #[arg(long, requires = "table", conflicts_with_all = ["fhir", "opt_out"])]
    csv: Option<PathBuf>,
    /// Name of the table for --csv.
    #[arg(long)]
    table: Option<String>,
    /// A directory of FHIR R4 bulk-export NDJSON files (Patient.ndjson, Condition.ndjson, ...).
    #[arg(long, conflicts_with = "opt_out")]
    fhir: Option<PathBuf>,
    /// An opt-out list: CSV with header `patient,purpose,date`.
    #[arg(long)]
    opt_out: Option<PathBuf>,
}

/// `seh data cohort`.
#[derive(Debug, Args)]
pub struct CohortArgs {
    /// The site's SQLite store (or use --pg).
    #[arg(long, required_unless_present = "pg")]
    store: Option<PathBuf>,
    /// Site secret file; default: STORE.secret (required with --pg).
    #[arg(long)]
    secret: Option<PathBuf>,
    /// Read from a PostgreSQL OMOP CDM database instead (postgresql://user@host:port/db).
    #[arg(long, conflicts_with = "store", requires = "secret")]
    pg: Option<String>,
    /// Schema of the OMOP tables (with --pg).
    #[arg(long, default_value = "public")]
    pg_schema: String,
    /// The cohort definition (TOML).
    #[arg(long)]
    def: PathBuf,
    /// Also write the table as CSV here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Store the table in the store under this name (default: the definition's name, `-` for none).
    #[arg(long)]
    table: Option<String>,
}

/// `seh data synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Patients over all sites.
    #[arg(long)]
    patients: usize,
    /// Number of sites.
    #[arg(long, default_value_t = 1)]
    sites: usize,
    /// Output directory (site1/, site2/, ... are created in it).
    #[arg(long)]
    out: PathBuf,
    /// RNG seed (equal arguments give identical files).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write flat CSV files of the generated records (for independent checks).
    #[arg(long)]
    flat: bool,
}

fn secret_path(store: &Path, secret: &Option<PathBuf>) -> PathBuf {
    secret.clone().unwrap_or_else(|| seh_data::secret::default_path(store))
}

fn load_secret(path: &Path, create: bool) -> Result<SiteSecret> {
    if !path.exists() {
        if !create {
            bail!("{}: no site secret (import data first or pass --secret)", path.display());
        }
        let secret = seh_data::secret::create(path)?;
        eprintln!("created site secret {} (keep it private; the store cannot be re-keyed)", path.display());
        return Ok(secret);
    }
    Ok(seh_data::secret::read(path)?)
}

/// Runs `seh data …`.
pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Import(a) => import(a),
        DataCommand::Cohort(a) => cohort_cmd(a),
        DataCommand::Synth(a) => synth(a),
        DataCommand::Tables(a) => tables(a),
        DataCommand::Sample(a) => crate::sample_cmd::run(&a),
    }
}

fn open_store(a: &StoreArgs, create: bool) -> Result<Store> {
    let secret = load_secret(&secret_path(&a.store, &a.secret), create)?;
    Ok(Store::open(&a.store, secret)?)
}

fn import(a: ImportArgs) -> Result<()> {
    let mut store = open_store(&a.store, true)?;
    let start = Instant::now();
    if let Some(csv) = &a.csv {
        let table = a.table.as_deref().unwrap_or_default();
        let info = store.import_csv(csv, table)?;
        println!(
            "table `{}`: {} rows, {} columns ({})",
            info.name,
            info.nrows,
            info.columns.len(),
            info.columns.join(", ")
        );
    } else if let Some(dir) = &a.fhir {
        let s = store.import_fhir_dir(dir)?;
        let secs = start.elapsed().as_secs_f64();
        for (ty, c) in &s.by_type {
            println!(
                "{ty:<20} inserted {:>9}  replaced {:>7}  unchanged {:>9}  stale {:>5}",
                c.inserted, c.replaced, c.unchanged, c.stale
            );
        }
        for f in &s.skipped_files {
            println!("skipped {} (resource type not imported)", f.display());
        }
        println!(
            "{} resources from {} files in {secs:.2} s ({:.0} resources/s); peak memory (VmHWM) {:.0} MiB",
            s.resources,
            s.files.len(),
            s.resources as f64 / secs.max(1e-9),
            crate::bench_cox::peak_rss_mb()
        );
    } else if let Some(list) = &a.opt_out {
        let r = store.import_opt_outs(list)?;
        for line in &r.future_dated {
            eprintln!(
                "warning: {}: line {line}: field `date`: the opt-out takes effect after today; \
                 until then the patient's rows are analysed",
                list.display()
            );
        }
        println!("opt-out list: {} entries ({} dated after today)", r.entries, r.future_dated.len());
    } else {
        bail!("nothing to import: give --csv FILE --table NAME, --fhir DIR or --opt-out FILE");
    }
    Ok(())
}

fn cohort_cmd(a: CohortArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.def).with_context(|| format!("{}: cannot read", a.def.display()))?;
    let def = CohortDef::from_toml(&text, &a.def.display().to_string())?;
    let (built, store) = if let Some(url) = &a.pg {
        let secret_file = a.secret.as_ref().context("--pg needs --secret")?;
        let mut src = seh_data::pg::OmopSource::connect(url, &a.pg_schema, load_secret(secret_file, false)?)?;
        (cohort::build(&def, &mut src as &mut dyn ClinicalSource)?, None)
    } else {
        let path = a.store.clone().context("--store or --pg is required")?;
        let sa = StoreArgs { store: path, secret: a.secret.clone() };
        if !sa.store.exists() {
            bail!("{}: no such store (import data first)", sa.store.display());
        }
        let mut store = open_store(&sa, false)?;
        (cohort::build(&def, &mut store as &mut dyn ClinicalSource)?, Some(store))
    };
    println!("cohort `{}`: {}", def.name, built.report);
    if let Some(out) = &a.out {
        seh_data::csv::write_csv(&built.frame, out)?;
        println!("wrote {}", out.display());
    }
    let table = a.table.clone().unwrap_or_else(|| def.name.replace('-', "_"));
    if let (Some(mut store), true) = (store, table != "-") {
        let info = store.write_cohort(&table, &built, &format!("cohort:{}", a.def.display()))?;
        println!("stored table `{}` ({} rows)", info.name, info.nrows);
    }
    Ok(())
}

fn synth(a: SynthArgs) -> Result<()> {
    if a.patients == 0 || a.sites == 0 || a.sites > a.patients {
        bail!("need --patients >= --sites >= 1");
    }
    let params = seh_data::synth::SynthParams { patients: a.patients, sites: a.sites, seed: a.seed, flat: a.flat };
    for s in seh_data::synth::generate(&params, &a.out)? {
        println!("{}: {} patients, {} resources", s.dir.display(), s.patients, s.resources);
    }
    Ok(())
}

fn tables(a: StoreArgs) -> Result<()> {
    if !a.store.exists() {
        bail!("{}: no such store", a.store.display());
    }
    let store = open_store(&a, false)?;
    for (t, n) in store.counts()? {
        println!("{t:<22} {n:>10}");
    }
    for t in store.tables()? {
        println!("table {:<16} {:>8} rows  {} ({})", t.name, t.nrows, t.columns.join(", "), t.source);
    }
    Ok(())
}

/// A site-store table as the data of a local fit (`seh fit … --store S --table T [--purpose P]`).
#[derive(Clone, Debug)]
pub struct StoreTable {
    /// The store file.
    pub store: PathBuf,
    /// The table.
    pub table: String,
    /// The site secret file (default: STORE.secret).
    pub secret: Option<PathBuf>,
    /// Keep only the rows whose patients' consent permits this purpose today.
    pub purpose: Option<String>,
}

impl StoreTable {
    /// The name shown in messages and `Call:` lines: `STORE:TABLE`.
    pub fn name(&self) -> String {
        format!("{}:{}", self.store.display(), self.table)
    }

    /// Reads the table. With a purpose it goes through the node's loader
    /// ([`seh_node::store_site::load`]: the rows' patient pseudonyms and the store's FHIR `Consent`
    /// records and opt-out list) and keeps the rows a `seh federate` site would keep: the opt-out
    /// regime of its policy (a patient without an applicable record stays; a deny or an opt-out
    /// removes every row of the patient), evaluated at today's date. Prints the kept/removed row
    /// counts to stderr.
    pub fn load(&self) -> Result<seh_stats::DataFrame> {
        let Some(purpose) = &self.purpose else {
            if !self.store.is_file() {
                bail!("{}: no such store", self.store.display());
            }
            let sa = StoreArgs { store: self.store.clone(), secret: self.secret.clone() };
            return Ok(open_store(&sa, false)?.read_table(&self.table)?);
        };
        if let Err(e) = seh_policy::consent::check_purpose_code(purpose) {
            bail!("--purpose: {e}");
        }
        let cfg = seh_node::store_site::StoreToml {
            path: self.store.clone(),
            table: self.table.clone(),
            secret: self.secret.clone(),
        };
        let site = seh_node::store_site::load(&cfg, seh_policy::consent::ConsentRegime::OptOut)?;
        let rows: Vec<(usize, &str)> = site.patient_keys.iter().map(String::as_str).enumerate().collect();
        let purpose_code = seh_policy::consent::Purpose::act_reason(purpose);
        let today = seh_node::governance::today();
        let (kept, audit) = site.consent.filter_rows(rows, |r| r.1, &purpose_code, today);
        let idx: Vec<usize> = kept.into_iter().map(|r| r.0).collect();
        let a = audit.audit_value();
        eprintln!(
            "consent for {purpose}: {} of {} rows kept ({} removed: {} opted out, {} by a deny, {} without consent; \
             {} kept rows have an opt-out dated after today)",
            idx.len(),
            site.data.nrows(),
            a.removed,
            a.by_opt_out,
            a.by_deny_provision,
            a.by_no_applicable_consent,
            a.kept_with_pending_opt_out
        );
        Ok(site.data.take_rows(&idx))
    }
}

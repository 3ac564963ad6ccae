//! `seh audit verify --log FILE --key HEX|--federation F --member NAME [--site-head [SITE=]FILE]…
//! [--format text|json]`: checks an audit log's hash chain and signatures and names the first
//! tampered line; for the coordinator's log (given the federation file) also checks the log heads
//! the sites co-signed with their group key, and that the log still holds the head each given
//! site persisted (which catches co-signature records cut off the end of the log).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ed25519_dalek::VerifyingKey;
use seh_protocol::federation::Federation;
use seh_protocol::hex;
use seh_protocol::log_head::{check_site_head, HeadRef, SiteHeadError};
use serde::Serialize;

use crate::keys::load_federation;
use crate::study::Format;

/// `seh audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify a log.
    Verify(VerifyArgs),
}

/// Flags of `seh audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The audit log (JSON Lines).
    #[arg(long)]
    pub log: PathBuf,
    /// The signer's Ed25519 public key (64 hex characters) …
    #[arg(long, conflicts_with_all = ["federation", "member"])]
    pub key: Option<String>,
    /// … or the federation file and …
    #[arg(long, requires = "member")]
    pub federation: Option<PathBuf>,
    /// … the member (site or coordinator) that wrote the log.
    #[arg(long, requires = "federation")]
    pub member: Option<String>,
    /// With the coordinator's log: a site's persisted co-signed head file
    /// (`<state>.cosigned-head.json` beside the node's state file), as `SITE=FILE` or `FILE`
    /// (the site is then the file name up to its first dot). Repeatable. Fails, naming the site
    /// and the seq, if the log does not hold that head.
    #[arg(long = "site-head", value_name = "[SITE=]FILE", requires = "federation")]
    pub site_heads: Vec<String>,
    /// Accept a log with no entries. Without it an empty log fails: a daemon writes a `start`
    /// entry as it opens its log, so an empty file is one that was emptied or never used.
    #[arg(long)]
    pub allow_empty: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// The last co-signed head recorded in the coordinator's log.
#[derive(Debug, Serialize)]
struct LastCosigned {
    seq: u64,
    hash: String,
    signers: Vec<String>,
}

/// One `--site-head` and what was found.
#[derive(Debug, Serialize)]
struct SiteHeadStatus {
    site: String,
    file: String,
    seq: Option<u64>,
    /// `ok`, `missing` (the log ends before it), `differs` (another hash at that seq), or
    /// `unreadable` (the file).
    status: &'static str,
}

/// What `seh audit verify` found (the JSON output).
#[derive(Debug, Serialize)]
struct Outcome {
    log: String,
    ok: bool,
    entries: Option<u64>,
    /// Whether the writer's own head file (`<log>.head`) was there and checked.
    own_head_checked: bool,
    cosigned_heads: Option<usize>,
    last_cosigned: Option<LastCosigned>,
    site_heads: Vec<SiteHeadStatus>,
    error: Option<String>,
}

/// Runs `seh audit …`.
pub fn run(cmd: AuditCommand) -> Result<()> {
    let AuditCommand::Verify(a) = cmd;
    let mut out = Outcome {
        log: a.log.display().to_string(),
        ok: false,
        entries: None,
        own_head_checked: false,
        cosigned_heads: None,
        last_cosigned: None,
        site_heads: Vec::new(),
        error: None,
    };
    let result = verify(&a, &mut out);
    out.ok = result.is_ok();
    if let Err(e) = &result {
        out.error = Some(format!("{e:#}"));
    }
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        Format::Text => print_text(&out),
    }
    result
}

fn print_text(out: &Outcome) {
    let Some(entries) = out.entries else { return };
    if entries == 0 {
        // Never a bare "OK" for a file with nothing in it.
        let verdict = if out.ok { "accepted (--allow-empty)" } else { "FAILED" };
        println!("audit log {}: empty log: 0 entries; {verdict}", out.log);
        return;
    }
    let verdict = if out.ok { "OK" } else { "FAILED" };
    println!("audit log {}: {verdict}, {entries} entries, chain and signatures intact", out.log);
    if out.own_head_checked {
        println!("writer's head file: the log holds the last entry it records");
    } else {
        println!("writer's head file: none beside the log (entries cut off the end are not detectable without one)");
    }
    match (&out.cosigned_heads, &out.last_cosigned) {
        (Some(n), Some(last)) => println!(
            "co-signed heads: {n} verified under the federation group key; last co-signed head seq {} \
             (hash {}), signed by {}",
            last.seq,
            last.hash,
            last.signers.join(", ")
        ),
        (Some(_), None) => println!("co-signed heads: none recorded"),
        _ => {}
    }
    for s in &out.site_heads {
        match (s.status, s.seq) {
            ("ok", Some(seq)) => println!("site {}: its co-signed head seq {seq} is in the log", s.site),
            (status, seq) => {
                let seq = seq.map_or_else(|| "?".to_owned(), |q| q.to_string());
                println!("site {}: co-signed head seq {seq}: {status}", s.site);
            }
        }
    }
}

fn verify(a: &VerifyArgs, out: &mut Outcome) -> Result<()> {
    let mut coordinator_fed = None;
    let key = match (&a.key, &a.federation, &a.member) {
        (Some(k), _, _) => {
            let b = hex::decode_array::<32>(k).context("--key: expected 64 hex characters")?;
            VerifyingKey::from_bytes(&b).context("--key: not an Ed25519 public key")?
        }
        (None, Some(f), Some(m)) => {
            let fed = load_federation(f)?;
            if *m == fed.coordinator_name {
                let key = fed.coordinator_key;
                coordinator_fed = Some(fed);
                key
            } else {
                fed.site_by_name(m).with_context(|| format!("`{m}` is not a member"))?.key
            }
        }
        _ => anyhow::bail!("give --key, or --federation and --member"),
    };
    let failed = || format!("audit log {} FAILED verification", a.log.display());
    let (report, own_head) = seh_audit::verify_file(&a.log, &key).with_context(failed)?;
    out.entries = Some(report.entries);
    out.own_head_checked = own_head;
    if report.entries == 0 && !a.allow_empty {
        anyhow::bail!(
            "audit log {}: empty log: 0 entries, nothing to verify (a daemon's log starts with a `start` \
             entry; pass --allow-empty to accept an empty log)",
            a.log.display()
        );
    }
    let Some(fed) = coordinator_fed else {
        anyhow::ensure!(a.site_heads.is_empty(), "--site-head applies to the coordinator's log only");
        return Ok(());
    };
    // The coordinator's log also carries the heads the sites co-signed: an entry rewritten
    // before one of them fails here even if the whole chain was re-hashed and re-signed.
    let entries = seh_audit::read_verified(&a.log, &key).with_context(failed)?;
    let cosigned = seh_protocol::log_head::check_log(&entries, &fed.name, &fed.group_key())
        .with_context(|| format!("audit log {} FAILED co-signed head verification", a.log.display()))?;
    out.cosigned_heads = Some(cosigned.cosigned);
    out.last_cosigned = cosigned.last.map(|(h, signers)| LastCosigned { seq: h.seq, hash: h.hash, signers });
    // The sites' own records of what they co-signed: a log cut back before one of them (its
    // trailing `head_cosign` entries dropped) still verifies above, but fails here.
    let mut first_error = None;
    for arg in &a.site_heads {
        let (site, file) = site_and_file(arg, &fed);
        let (seq, status) = match load_head(&file) {
            Err(e) => {
                first_error.get_or_insert(e);
                (None, "unreadable")
            }
            Ok(head) => {
                let status = match check_site_head(&entries, &site, &head) {
                    Ok(()) => "ok",
                    Err(e) => {
                        let status = match e {
                            SiteHeadError::Missing { .. } => "missing",
                            SiteHeadError::Differs { .. } => "differs",
                        };
                        first_error.get_or_insert(anyhow::Error::new(e));
                        status
                    }
                };
                (Some(head.seq), status)
            }
        };
        out.site_heads.push(SiteHeadStatus { site, file: file.display().to_string(), seq, status });
    }
    match first_error {
        Some(e) => {
            Err(e.context(format!("audit log {} FAILED the check against the sites' co-signed heads", a.log.display())))
        }
        None => Ok(()),
    }
}

/// `SITE=FILE`, or `FILE` whose name up to its first dot is a site of `fed`, or else the file
/// path itself as the name.
fn site_and_file(arg: &str, fed: &Federation) -> (String, PathBuf) {
    if let Some((site, file)) = arg.split_once('=') {
        if fed.site_by_name(site).is_some() {
            return (site.to_owned(), PathBuf::from(file));
        }
    }
    let file = PathBuf::from(arg);
    let stem = file.file_name().and_then(|n| n.to_str()).and_then(|n| n.split('.').next()).unwrap_or_default();
    let site = if fed.site_by_name(stem).is_some() { stem.to_owned() } else { arg.to_owned() };
    (site, file)
}

fn load_head(file: &Path) -> Result<HeadRef> {
    seh_node::load_cosigned_head(file)?
        .with_context(|| format!("site co-signed head file {} does not exist", file.display()))
}

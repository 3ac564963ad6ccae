//! `seh audit verify --log FILE --key HEX|--federation F --member NAME`: checks an audit log's
//! hash chain and signatures and names the first tampered line.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ed25519_dalek::VerifyingKey;
use seh_protocol::hex;

use crate::keys::load_federation;

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
}

/// Runs `seh audit …`.
pub fn run(cmd: AuditCommand) -> Result<()> {
    let AuditCommand::Verify(a) = cmd;
    let key = match (&a.key, &a.federation, &a.member) {
        (Some(k), _, _) => {
            let b = hex::decode_array::<32>(k).context("--key: expected 64 hex characters")?;
            VerifyingKey::from_bytes(&b).context("--key: not an Ed25519 public key")?
        }
        (None, Some(f), Some(m)) => {
            let fed = load_federation(f)?;
            if *m == fed.coordinator_name {
                fed.coordinator_key
            } else {
                fed.site_by_name(m).with_context(|| format!("`{m}` is not a member"))?.key
            }
        }
        _ => anyhow::bail!("give --key, or --federation and --member"),
    };
    let report = seh_audit::verify(&a.log, &key)
        .with_context(|| format!("audit log {} FAILED verification", a.log.display()))?;
    println!("audit log {}: OK, {} entries, chain and signatures intact", a.log.display(), report.entries);
    Ok(())
}

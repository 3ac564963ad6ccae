//! `seh audit verify --log FILE --key HEX|--federation F --member NAME`: checks an audit log's
//! hash chain and signatures and names the first tampered line; for the coordinator's log (given
//! the federation file) also checks the log heads the sites co-signed with their group key.

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
    let report = seh_audit::verify(&a.log, &key)
        .with_context(|| format!("audit log {} FAILED verification", a.log.display()))?;
    println!("audit log {}: OK, {} entries, chain and signatures intact", a.log.display(), report.entries);
    if let Some(fed) = coordinator_fed {
        // The coordinator's log also carries the heads the sites co-signed: an entry rewritten
        // before one of them fails here even if the whole chain was re-hashed and re-signed.
        let entries = seh_audit::read_verified(&a.log, &key)
            .with_context(|| format!("audit log {} FAILED verification", a.log.display()))?;
        let cosigned = seh_protocol::log_head::check_log(&entries, &fed.name, &fed.group_key())
            .with_context(|| format!("audit log {} FAILED co-signed head verification", a.log.display()))?;
        match cosigned.last {
            Some((head, signers)) => println!(
                "co-signed heads: {} verified under the federation group key; last co-signed head seq {} \
                 (hash {}), signed by {}",
                cosigned.cosigned,
                head.seq,
                head.hash,
                signers.join(", ")
            ),
            None => println!("co-signed heads: none recorded"),
        }
    }
    Ok(())
}

//! The researcher's own BFV key pair for key-switched releases from the encrypted store
//! (`seh study he-keygen --out DIR`, then `seh study release --to-key … --key …`).
//!
//! Files (the runtime's parameter set, `bfv-8192`):
//! * `researcher-he.pub` — `ResearcherPublicKey::to_bytes` (public; ≈ 0.4 MB);
//! * `researcher-he.key` — `ResearcherKey::to_bytes` (secret seed + public-key digest, 104 bytes),
//!   created with mode 0600 and never overwritten. Loading refuses a key file that others can
//!   read (Unix), like ssh does.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use seh_crypto::he::{HeContext, ResearcherKey, ResearcherPublicKey};
use seh_protocol::hex;

/// Public-key file name written by `seh study he-keygen`.
pub const PUBLIC_FILE: &str = "researcher-he.pub";
/// Secret-key file name written by `seh study he-keygen`.
pub const SECRET_FILE: &str = "researcher-he.key";

/// `seh study he-keygen`.
#[derive(Debug, Args)]
pub struct HeKeygenArgs {
    /// Directory for `researcher-he.pub` and `researcher-he.key` (created if missing; existing
    /// key files are never overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

/// The runtime's threshold-HE context (the parameter set the federation's keys use).
pub fn context() -> Result<HeContext> {
    seh_protocol::he_site::context().context("threshold-HE parameters")
}

/// Short hex digest naming a researcher public key (as the sites audit it).
pub fn digest_hex(ctx: &HeContext, key: &ResearcherPublicKey) -> String {
    hex::encode(&key.digest(ctx))
}

fn create_new(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Makes the key pair and writes both files; returns the public key's digest (hex).
pub fn keygen(a: &HeKeygenArgs) -> Result<String> {
    let ctx = context()?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let (pub_path, key_path) = (a.out.join(PUBLIC_FILE), a.out.join(SECRET_FILE));
    for p in [&pub_path, &key_path] {
        if p.exists() {
            bail!("{} exists already; not overwriting a researcher key", p.display());
        }
    }
    let key = ResearcherKey::generate(&ctx, &mut rand::rngs::OsRng)?;
    create_new(&key_path, &key.to_bytes(), true)?;
    create_new(&pub_path, &key.public_key().to_bytes(&ctx), false)?;
    Ok(digest_hex(&ctx, key.public_key()))
}

/// Reads a researcher public key file (`researcher-he.pub`).
pub fn load_public(ctx: &HeContext, path: &Path) -> Result<ResearcherPublicKey> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    ResearcherPublicKey::from_bytes(ctx, &bytes).with_context(|| format!("{}", path.display()))
}

/// Reads a researcher secret key file (`researcher-he.key`); refuses one that group or others
/// may read (Unix).
pub fn load_secret(ctx: &HeContext, path: &Path) -> Result<ResearcherKey> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            bail!("{}: the researcher key must be readable by its owner only (chmod 600)", path.display());
        }
    }
    let bytes =
        zeroize::Zeroizing::new(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?);
    ResearcherKey::from_bytes(ctx, &bytes).with_context(|| format!("{}", path.display()))
}

/// Runs `seh study he-keygen`.
pub fn run(a: &HeKeygenArgs) -> Result<()> {
    let digest = keygen(a)?;
    println!("wrote {} and {} (0600)", a.out.join(PUBLIC_FILE).display(), a.out.join(SECRET_FILE).display());
    println!("researcher HE public key digest: {digest}");
    Ok(())
}

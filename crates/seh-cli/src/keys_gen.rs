//! `seh keys gen` and `seh keys assemble`: each party makes its own identity on its own machine,
//! and the roster is assembled from public files only.
//!
//! - `seh keys gen --role site|coordinator|researcher --name N --out DIR` writes the party's
//!   identity directory: `name`, `identity.key` (hex Ed25519 seed, mode 0600, never leaves the
//!   machine), `cert.der` (its mTLS certificate, signed by itself for that key) and `member.json`
//!   (public: role, name, key) — the one file the party sends to whoever assembles the roster.
//! - `seh keys assemble --coordinator F --site F … --researcher F … --out federation.json` builds
//!   the unsigned federation file from those public files (sites numbered in the order given).
//!   The sites then generate their FROST key and sign it in the key ceremony, as for `keys init`.
//!
//! Such a federation has no CA: configurations leave out `ca`, and TLS peers are trusted by the
//! roster's pinned keys ([`seh_net::Trust::Roster`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use ed25519_dalek::{SigningKey, VerifyingKey};
use seh_net::{NodeId, NodeIdentity};
use seh_protocol::federation::{FederationFile, MemberEntry, Membership, SiteEntry};
use seh_protocol::hex;
use serde::{Deserialize, Serialize};

/// Format tag of a public member file.
pub const MEMBER_FORMAT: &str = "secur-e-health member v1";

/// A party's role on the roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleArg {
    /// A data-holding site (runs `seh node`).
    Site,
    /// The coordinator (runs `seh coordinator`).
    Coordinator,
    /// A researcher (runs `seh study`).
    Researcher,
}

impl RoleArg {
    fn name(self) -> &'static str {
        match self {
            RoleArg::Site => "site",
            RoleArg::Coordinator => "coordinator",
            RoleArg::Researcher => "researcher",
        }
    }
}

/// A public member file (`member.json`): what one party tells the others about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberFile {
    /// [`MEMBER_FORMAT`].
    pub format: String,
    /// Role on the roster.
    pub role: RoleArg,
    /// Node id.
    pub name: String,
    /// Ed25519 identity key, 64 hex characters.
    pub key: String,
}

/// Flags of `seh keys gen`.
#[derive(Debug, Args)]
pub struct KeysGenArgs {
    /// The party's role.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// The party's node id (lower-case DNS label, e.g. `hospital-a`).
    #[arg(long)]
    pub name: String,
    /// The identity directory to create (must not already hold an identity).
    #[arg(long)]
    pub out: PathBuf,
}

/// Flags of `seh keys assemble`.
#[derive(Debug, Args)]
pub struct KeysAssembleArgs {
    /// The coordinator's `member.json`.
    #[arg(long)]
    pub coordinator: PathBuf,
    /// A site's `member.json` (repeatable; party ids 1, 2, … in this order).
    #[arg(long = "site", required = true)]
    pub sites: Vec<PathBuf>,
    /// A researcher's `member.json` (repeatable).
    #[arg(long = "researcher")]
    pub researchers: Vec<PathBuf>,
    /// FROST threshold of the sites (default: a strict majority, at least 2).
    #[arg(long)]
    pub threshold: Option<u16>,
    /// Federation name.
    #[arg(long, default_value = "secur-e-health federation")]
    pub name: String,
    /// The unsigned federation file to write (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

/// Creates `dir` (and parents) readable by its owner only.
fn private_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Runs `seh keys gen`.
pub fn gen(a: &KeysGenArgs) -> Result<()> {
    let id = NodeId::parse(&a.name).with_context(|| format!("--name `{}`: a lower-case DNS label", a.name))?;
    if a.out.join("identity.key").exists() {
        bail!("{} already holds an identity (identity.key); choose another --out", a.out.display());
    }
    private_dir(&a.out)?;
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let identity = NodeIdentity::new(id, key.clone());
    let creds = identity.self_signed().context("making the self-signed certificate")?;
    crate::keys::write_secret(&a.out.join("identity.key"), &hex::encode(key.as_bytes()))?;
    std::fs::write(a.out.join("cert.der"), creds.leaf_der().unwrap_or_default())?;
    std::fs::write(a.out.join("name"), &a.name)?;
    let member = MemberFile {
        format: MEMBER_FORMAT.into(),
        role: a.role,
        name: a.name.clone(),
        key: hex::encode(key.verifying_key().as_bytes()),
    };
    let path = a.out.join("member.json");
    std::fs::write(&path, serde_json::to_string_pretty(&member)? + "\n")?;
    println!("{} identity `{}` written to {}", a.role.name(), a.name, a.out.display());
    println!("  identity key {}", member.key);
    println!("  private key  {} (mode 0600: never copy it off this machine)", a.out.join("identity.key").display());
    println!("  public file  {} (send this to whoever assembles the roster)", path.display());
    Ok(())
}

/// Reads and checks a member file: format, role, a valid node id and a valid Ed25519 key.
pub fn read_member(path: &Path, role: RoleArg) -> Result<MemberFile> {
    let text = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    let m: MemberFile =
        serde_json::from_slice(&text).with_context(|| format!("{}: not a member file", path.display()))?;
    if m.format != MEMBER_FORMAT {
        bail!("{}: format `{}` is not `{MEMBER_FORMAT}`", path.display(), m.format);
    }
    if m.role != role {
        bail!("{}: a {} file given where a {} is expected", path.display(), m.role.name(), role.name());
    }
    NodeId::parse(&m.name).with_context(|| format!("{}: name `{}`", path.display(), m.name))?;
    let bytes =
        hex::decode_array::<32>(&m.key).with_context(|| format!("{}: key is not 64 hex digits", path.display()))?;
    VerifyingKey::from_bytes(&bytes).with_context(|| format!("{}: key is not an Ed25519 point", path.display()))?;
    Ok(m)
}

/// The unsigned federation file of the given public member files (checked as the nodes check it).
pub fn assemble(a: &KeysAssembleArgs) -> Result<FederationFile> {
    let coordinator = read_member(&a.coordinator, RoleArg::Coordinator)?;
    let mut names = BTreeSet::from([coordinator.name.clone()]);
    let mut keys = BTreeSet::from([coordinator.key.clone()]);
    let mut unique = |m: &MemberFile, path: &Path| -> Result<()> {
        if !names.insert(m.name.clone()) {
            bail!("{}: the name `{}` is already on the roster", path.display(), m.name);
        }
        if !keys.insert(m.key.clone()) {
            bail!("{}: the key of `{}` is already on the roster (one key per party)", path.display(), m.name);
        }
        Ok(())
    };
    let mut sites = Vec::new();
    for (i, p) in a.sites.iter().enumerate() {
        let m = read_member(p, RoleArg::Site)?;
        unique(&m, p)?;
        let party = u32::try_from(i + 1).context("too many sites")?;
        sites.push(SiteEntry { name: m.name, party, key: m.key });
    }
    let mut researchers = Vec::new();
    for p in &a.researchers {
        let m = read_member(p, RoleArg::Researcher)?;
        unique(&m, p)?;
        researchers.push(MemberEntry { name: m.name, key: m.key });
    }
    let t = a.threshold.unwrap_or((sites.len() / 2 + 1).max(2) as u16);
    let file = FederationFile {
        name: a.name.clone(),
        coordinator: MemberEntry { name: coordinator.name, key: coordinator.key },
        sites,
        researchers,
        frost_threshold: t,
        frost_group: String::new(),
        roster_signature: None,
    };
    Membership::from_file(file.clone()).context("the assembled roster")?;
    Ok(file)
}

/// Runs `seh keys assemble`.
pub fn run_assemble(a: &KeysAssembleArgs) -> Result<()> {
    if a.out.exists() {
        bail!("{} exists; remove it or choose another --out", a.out.display());
    }
    let file = assemble(a)?;
    let text = serde_json::to_string_pretty(&file)? + "\n";
    std::fs::write(&a.out, &text).with_context(|| format!("{}", a.out.display()))?;
    println!(
        "unsigned roster written to {}: coordinator {}, {} sites (threshold {}), {} researchers",
        a.out.display(),
        file.coordinator.name,
        file.sites.len(),
        file.frost_threshold,
        file.researchers.len()
    );
    println!(
        "  sha256 {}   <- every party compares this before the key ceremony",
        seh_protocol::he_cosign::sha256_hex(text.as_bytes())
    );
    Ok(())
}

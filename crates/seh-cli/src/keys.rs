//! `seh keys init`: creates a federation's keys and certificates in a directory.
//!
//! Layout: `federation.json` (public), `ca.der` (trust anchor), and one directory per member with
//! `name`, `identity.key` (hex Ed25519 seed, owner-only) and `cert.der` (its mTLS certificate).
//! The CA private key is not kept: adding members later needs a new `keys init` (interim).
//!
//! No FROST key is made here: the federation file has no group key and no roster signature until
//! the sites run the key ceremony (`seh coordinator ceremony`, with the site nodes running in
//! enrolment mode), in which they generate the group key among themselves (each writes its own
//! `frost.share`) and FROST-sign the roster.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use ed25519_dalek::SigningKey;
use seh_net::{FederationCa, NodeId, NodeIdentity, TlsCredentials};
use seh_protocol::federation::{Federation, Membership};
use seh_protocol::{hex, setup};

/// Flags of `seh keys init`.
#[derive(Debug, Args)]
pub struct KeysInitArgs {
    /// Output directory (created; must not already hold a federation.json).
    #[arg(long)]
    pub dir: PathBuf,
    /// Site node ids, comma-separated (lower-case DNS labels).
    #[arg(long, value_delimiter = ',', required = true)]
    pub sites: Vec<String>,
    /// Researcher node ids, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "researcher")]
    pub researchers: Vec<String>,
    /// Coordinator node id.
    #[arg(long, default_value = "coordinator")]
    pub coordinator: String,
    /// FROST threshold for signing releases (default: a strict majority of the sites).
    #[arg(long)]
    pub threshold: Option<u16>,
    /// Federation name.
    #[arg(long, default_value = "secur-e-health federation")]
    pub name: String,
}

/// `seh keys …`.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Local trials only: create a CA and every party's identity in one directory (a real
    /// federation uses `seh keys gen` on each party's machine and `seh keys assemble`).
    Init(KeysInitArgs),
    /// Make this party's own identity (private key 0600, self-signed certificate, public
    /// `member.json`) on its own machine: the way a real consortium starts.
    Gen(crate::keys_gen::KeysGenArgs),
    /// Build the unsigned federation file from the parties' public `member.json` files.
    Assemble(crate::keys_gen::KeysAssembleArgs),
    /// Verify a signed federation file and print its group key and members, for comparing the
    /// group key out of band (a researcher or site officer reads it to the others, e.g. by phone).
    Show(KeysShowArgs),
}

/// Flags of `seh keys show`.
#[derive(Debug, Args)]
pub struct KeysShowArgs {
    /// The federation file.
    #[arg(long)]
    pub federation: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = crate::study::Format::Text)]
    pub format: crate::study::Format,
}

/// `seh keys show`: the roster signature must verify (else an error naming the file); prints the
/// FROST group key (64 hex characters, what every member should compare out of band), the
/// threshold, the sites that signed the roster and the members with their identity keys.
fn show(a: &KeysShowArgs) -> Result<()> {
    let fed = load_federation(&a.federation)?;
    let text = std::fs::read(&a.federation).with_context(|| format!("{}", a.federation.display()))?;
    let file: seh_protocol::federation::FederationFile = serde_json::from_slice(&text)?;
    let group = hex::encode(&fed.group_key().to_bytes());
    let signers = file.roster_signature.as_ref().map(|r| r.signers.clone()).unwrap_or_default();
    let report = serde_json::json!({
        "federation": fed.name,
        "file": a.federation.display().to_string(),
        "roster_signature": "valid",
        "group_key": group,
        "threshold": fed.frost_threshold,
        "roster_signed_by": signers,
        "coordinator": { "name": file.coordinator.name, "key": file.coordinator.key },
        "sites": file.sites.iter().map(|s| serde_json::json!({ "name": s.name, "party": s.party, "key": s.key })).collect::<Vec<_>>(),
        "researchers": file.researchers.iter().map(|r| serde_json::json!({ "name": r.name, "key": r.key })).collect::<Vec<_>>(),
    });
    match a.format {
        crate::study::Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        crate::study::Format::Text => {
            println!("federation {} ({}): roster signature valid", fed.name, a.federation.display());
            println!("group key  {group}   <- compare this out of band with the other members");
            println!(
                "threshold  {} of {} sites; roster signed by {}",
                fed.frost_threshold,
                file.sites.len(),
                signers.join(", ")
            );
            println!("coordinator {} {}", file.coordinator.name, file.coordinator.key);
            for s in &file.sites {
                println!("site       {} (party {}) {}", s.name, s.party, s.key);
            }
            for r in &file.researchers {
                println!("researcher {} {}", r.name, r.key);
            }
        }
    }
    Ok(())
}

/// Runs `seh keys …`.
pub fn run(cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::Init(a) => {
            init(&a)?;
            println!(
                "federation written to {} (not yet signed: start the site nodes, then run \
                 `seh coordinator ceremony --config COORDINATOR.toml` so the sites generate their key and sign the roster)",
                a.dir.display()
            );
            Ok(())
        }
        KeysCommand::Show(a) => show(&a),
        KeysCommand::Gen(a) => crate::keys_gen::gen(&a),
        KeysCommand::Assemble(a) => crate::keys_gen::run_assemble(&a),
    }
}

/// Writes a new secret file, mode 0600 (fails if it exists).
pub(crate) fn write_secret(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn write_member(dir: &Path, ca: &FederationCa, name: &str, key: &SigningKey) -> Result<PathBuf> {
    let id = NodeId::parse(name).with_context(|| format!("node id `{name}`"))?;
    let node_dir = dir.join(name);
    crate::workdir::create_dir_private(&node_dir)?;
    let identity = NodeIdentity::new(id, key.clone());
    let creds = ca.issue(&identity).with_context(|| format!("certificate for `{name}`"))?;
    std::fs::write(node_dir.join("cert.der"), creds.leaf_der().unwrap_or_default())?;
    std::fs::write(node_dir.join("name"), name)?;
    write_secret(&node_dir.join("identity.key"), &hex::encode(key.as_bytes()))?;
    Ok(node_dir)
}

/// Creates the federation in `a.dir`.
pub fn init(a: &KeysInitArgs) -> Result<()> {
    if a.dir.join("federation.json").exists() {
        bail!("{} already holds a federation.json", a.dir.display());
    }
    crate::workdir::create_dir_private(&a.dir)?;
    let t = a.threshold.unwrap_or((a.sites.len() / 2 + 1).max(2) as u16);
    let mut rng = rand::rngs::OsRng;
    let (file, secrets) = setup::identities(&a.name, &a.coordinator, &a.sites, &a.researchers, t, &mut rng)?;
    let ca = FederationCa::generate(&format!("{} CA", a.name))?;
    std::fs::write(a.dir.join("ca.der"), ca.cert_der())?;
    write_member(&a.dir, &ca, &a.coordinator, &secrets.coordinator)?;
    for (name, key) in &secrets.sites {
        write_member(&a.dir, &ca, name, key)?;
    }
    for (name, key) in &secrets.researchers {
        write_member(&a.dir, &ca, name, key)?;
    }
    let text = serde_json::to_string_pretty(&file)?;
    Membership::from_json(text.as_bytes())?;
    std::fs::write(a.dir.join("federation.json"), text)?;
    Ok(())
}

/// A member's identity loaded from its directory.
pub struct Identity {
    /// Node id.
    pub name: String,
    /// Identity key.
    pub key: SigningKey,
    /// mTLS credentials (certificate + the same key in PKCS#8).
    pub tls: TlsCredentials,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("name", &self.name).field("key", &"<redacted>").finish()
    }
}

/// PKCS#8 v1 DER of an Ed25519 key (RFC 8410).
fn pkcs8(key: &SigningKey) -> Vec<u8> {
    let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    der.extend_from_slice(key.as_bytes());
    der
}

/// Refuses a private key file that its group or others may read or write, naming the file, its
/// mode and the fix (`seh keys init` and the key ceremony write them 0600).
pub fn check_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "{}: mode {mode:04o} gives group/other access to a private key; refusing to use it. \
                 Run `chmod 600 {}` (and check who may have read it)",
                path.display(),
                path.display()
            );
        }
    }
    Ok(())
}

/// Loads `dir/name`, `dir/identity.key` (which must be owner-only), `dir/cert.der`.
pub fn load_identity(dir: &Path) -> Result<Identity> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).with_context(|| format!("{}", dir.join(f).display()));
    let name = read("name")?.trim().to_owned();
    check_private(&dir.join("identity.key"))?;
    let seed = hex::decode_array::<32>(read("identity.key")?.trim())
        .with_context(|| format!("{}: not a 64-hex-character key", dir.join("identity.key").display()))?;
    let key = SigningKey::from_bytes(&seed);
    let cert = std::fs::read(dir.join("cert.der")).with_context(|| format!("{}", dir.join("cert.der").display()))?;
    let tls = TlsCredentials::from_der(vec![cert], pkcs8(&key));
    Ok(Identity { name, key, tls })
}

/// Loads a site's FROST share from `dir/frost.share` (which must be owner-only); `None` if the file does not exist (the site
/// has not taken part in a key ceremony yet).
pub fn load_frost_share(dir: &Path) -> Result<Option<seh_crypto::frost::KeyShare>> {
    let path = dir.join("frost.share");
    if path.exists() {
        check_private(&path)?;
    }
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => zeroize::Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("{}", path.display())),
    };
    let bytes =
        zeroize::Zeroizing::new(hex::decode(text.trim()).with_context(|| format!("{}: not hex", path.display()))?);
    let share = seh_crypto::frost::KeyShare::from_secret_bytes(&bytes)
        .with_context(|| format!("{}: not a FROST key share", path.display()))?;
    Ok(Some(share))
}

/// Loads `federation.json` and checks the sites' roster signature under its group key; errors
/// name the file and why (not signed yet, edited after signing, malformed).
pub fn load_federation(path: &Path) -> Result<Federation> {
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    Federation::from_signed_json(&bytes).with_context(|| format!("{}", path.display()))
}

/// Loads `federation.json` for its members only (signed or not): what the key ceremony and an
/// enrolling node need.
pub fn load_membership(path: &Path) -> Result<Membership> {
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    Membership::from_json(&bytes).with_context(|| format!("{}", path.display()))
}

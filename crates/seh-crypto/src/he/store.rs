//! The coordinator's encrypted store: per-site encrypted statistics kept as
//! files and re-aggregated later without the sites online. Only the release
//! (threshold decryption or key switch) needs `t` sites.
//!
//! Layout: `<root>/<statistic>/<site id>.hev`, each file one serialised
//! [`HeVector`] (written to a temporary file, synced and renamed, so a crash
//! never leaves a half-written entry). Statistic names are 1–64 characters of
//! `[A-Za-z0-9_.-]` not starting with a dot. The store holds ciphertexts only;
//! it needs no key and the coordinator can read nothing from it.

use super::cipher::HeVector;
use super::error::HeError;
use super::keygen::HeContext;
use crate::wire::PartyId;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A directory of encrypted per-site statistics.
#[derive(Debug, Clone)]
pub struct EncryptedStore {
    root: PathBuf,
    ctx: HeContext,
}

fn io_err(op: &'static str, path: &Path, e: std::io::Error) -> HeError {
    HeError::Store { op, path: path.display().to_string(), message: e.to_string() }
}

fn check_name(name: &str) -> Result<(), HeError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(HeError::invalid("statistic", "1-64 characters of [A-Za-z0-9_.-], not starting with '.'"))
    }
}

impl EncryptedStore {
    /// Open (creating if needed) a store rooted at `root`.
    pub fn open(ctx: &HeContext, root: impl Into<PathBuf>) -> Result<EncryptedStore, HeError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| io_err("create", &root, e))?;
        Ok(EncryptedStore { root, ctx: ctx.clone() })
    }

    fn path(&self, statistic: &str, site: PartyId) -> PathBuf {
        self.root.join(statistic).join(format!("{}.hev", site.0))
    }

    /// Keep `site`'s encrypted `statistic` (replacing an earlier one).
    pub fn put(&self, statistic: &str, site: PartyId, ct: &HeVector) -> Result<(), HeError> {
        check_name(statistic)?;
        if !site.is_site() {
            return Err(HeError::invalid("site", "not a site id"));
        }
        let dir = self.root.join(statistic);
        fs::create_dir_all(&dir).map_err(|e| io_err("create", &dir, e))?;
        let bytes = ct.to_bytes(&self.ctx)?;
        let path = self.path(statistic, site);
        let tmp = dir.join(format!(".{}.tmp", site.0));
        let mut f = fs::File::create(&tmp).map_err(|e| io_err("create", &tmp, e))?;
        f.write_all(&bytes).map_err(|e| io_err("write", &tmp, e))?;
        f.sync_all().map_err(|e| io_err("sync", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io_err("rename", &path, e))?;
        Ok(())
    }

    /// Read `site`'s encrypted `statistic` (strictly decoded; errors name the site).
    pub fn get(&self, statistic: &str, site: PartyId) -> Result<HeVector, HeError> {
        check_name(statistic)?;
        let path = self.path(statistic, site);
        let bytes = fs::read(&path).map_err(|e| io_err("read", &path, e))?;
        HeVector::from_bytes(&self.ctx, &bytes, Some(site))
    }

    /// Sites that stored `statistic`, ascending.
    pub fn sites(&self, statistic: &str) -> Result<Vec<PartyId>, HeError> {
        check_name(statistic)?;
        let dir = self.root.join(statistic);
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| io_err("list", &dir, e))? {
            let entry = entry.map_err(|e| io_err("list", &dir, e))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".hev")).and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if PartyId(id).is_site() {
                out.push(PartyId(id));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The encrypted sum of `statistic` over `sites` (all stored sites if
    /// `None`). No site needs to be online.
    pub fn aggregate(&self, statistic: &str, sites: Option<&[PartyId]>) -> Result<HeVector, HeError> {
        let all;
        let sites = match sites {
            Some(s) => s,
            None => {
                all = self.sites(statistic)?;
                &all
            }
        };
        let mut acc: Option<HeVector> = None;
        for &s in sites {
            let ct = self.get(statistic, s)?;
            match &mut acc {
                None => acc = Some(ct),
                Some(a) => a.add_assign(&ct, Some(s))?,
            }
        }
        acc.ok_or(HeError::NotEnoughParties { what: "stored statistic", needed: 1, got: 0 })
    }
}

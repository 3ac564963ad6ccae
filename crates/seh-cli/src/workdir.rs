//! Working directories of local runs (`seh federate`, `seh demo`, `seh bench`).
//!
//! A run without `--workdir` gets a fresh directory under the system temporary
//! directory and removes it when it ends: it holds copies of every site's rows
//! and the federation's private keys, which must not outlive the run. With
//! `--workdir DIR` everything is kept there for inspection.
//!
//! Directories made here are 0700 and files holding keys, rows, state or logs 0600
//! ([`create_private`], [`write_private`]). A temporary directory is also removed when the run
//! is interrupted by SIGINT, SIGTERM or SIGHUP ([`crate::lifecycle`]). One left behind by a
//! SIGKILLed run is found and removed by the next run that makes a temporary directory: each
//! holds a lock file locked for as long as its run lives ([`remove_stale`]).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

/// The lock file inside a temporary working directory, locked while its run lives.
const LOCK_FILE: &str = ".seh-run.lock";

/// A working directory, removed on drop when it was created as a temporary one.
#[derive(Debug)]
pub struct Workdir {
    path: PathBuf,
    temporary: bool,
    /// The locked [`LOCK_FILE`] of a temporary directory (unlocked when this process ends).
    _lock: Option<File>,
}

/// Creates `dir` and its missing parents, each new one 0700.
pub fn create_dir_private(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Creates (or truncates) `path` for writing, 0600 (an existing file is narrowed to 0600).
pub fn create_private(path: &Path) -> Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let f = o.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {} to 0600", path.display()))?;
    }
    Ok(f)
}

/// Writes `bytes` to `path`, 0600.
pub fn write_private(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    use std::io::Write;
    create_private(path)?.write_all(bytes.as_ref()).with_context(|| format!("cannot write {}", path.display()))
}

/// Removes the temporary working directories `prefix-<16 hex>` under `parent` whose run has
/// ended without removing them (a SIGKILLed `seh federate`): their lock file is no longer locked.
/// Returns the directories removed.
pub fn remove_stale(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(parent) else { return removed };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(tag) = name.to_str().and_then(|n| n.strip_prefix(prefix)).and_then(|n| n.strip_prefix('-')) else {
            continue;
        };
        if tag.len() != 16 || !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let dir = e.path();
        // Only a directory with our lock file, which nobody holds any more.
        // (A directory made in the last seconds may not be locked yet.)
        let Ok(lock) = File::open(dir.join(LOCK_FILE)) else { continue };
        let young = lock
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < std::time::Duration::from_secs(1));
        if !young && lock.try_lock().is_ok() && std::fs::remove_dir_all(&dir).is_ok() {
            removed.push(dir);
        }
    }
    removed
}

impl Workdir {
    /// `given` (created if missing, made absolute, kept) or a fresh temporary
    /// directory named `prefix-<random>` (removed on drop).
    pub fn new(given: Option<&Path>, prefix: &str) -> Result<Workdir> {
        let (path, temporary) = match given {
            Some(p) => {
                create_dir_private(p)?;
                (p.canonicalize()?, false)
            }
            None => {
                let parent = std::env::temp_dir();
                for d in remove_stale(&parent, prefix) {
                    eprintln!("seh: removed {}, left behind by a run that was killed", d.display());
                }
                let tag = rand::RngCore::next_u64(&mut rand::rngs::OsRng);
                let p = parent.join(format!("{prefix}-{tag:016x}"));
                let mut b = std::fs::DirBuilder::new();
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
                b.create(&p).with_context(|| format!("creating {}", p.display()))?;
                (p, true)
            }
        };
        let lock = if temporary {
            crate::lifecycle::register_dir(path.clone());
            let f = create_private(&path.join(LOCK_FILE))?;
            f.lock().with_context(|| format!("cannot lock {}", path.join(LOCK_FILE).display()))?;
            Some(f)
        } else {
            None
        };
        Ok(Workdir { path, temporary, _lock: lock })
    }

    /// As [`Workdir::new`], refusing a directory that already holds a federation.
    pub fn for_federation(given: Option<&Path>, prefix: &str) -> Result<Workdir> {
        let w = Workdir::new(given, prefix)?;
        ensure!(!w.path.join("keys").exists(), "{} already holds a federation; give an empty --workdir", w.display());
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn display(&self) -> std::path::Display<'_> {
        self.path.display()
    }

    /// What to report as the run's workdir: the path, or a note that it was removed.
    pub fn report(&self) -> String {
        if self.temporary {
            "(temporary; removed at exit — pass --workdir DIR to keep keys, logs and audit files)".to_string()
        } else {
            self.path.display().to_string()
        }
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if self.temporary {
            crate::lifecycle::unregister_dir(&self.path);
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

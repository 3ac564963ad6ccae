//! Working directories of local runs (`seh federate`, `seh demo`, `seh bench`).
//!
//! A run without `--workdir` gets a fresh directory under the system temporary
//! directory and removes it when it ends: it holds copies of every site's rows
//! and the federation's private keys, which must not outlive the run. With
//! `--workdir DIR` everything is kept there for inspection.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

/// A working directory, removed on drop when it was created as a temporary one.
#[derive(Debug)]
pub struct Workdir {
    path: PathBuf,
    temporary: bool,
}

impl Workdir {
    /// `given` (created if missing, made absolute, kept) or a fresh temporary
    /// directory named `prefix-<random>` (removed on drop).
    pub fn new(given: Option<&Path>, prefix: &str) -> Result<Workdir> {
        let (path, temporary) = match given {
            Some(p) => {
                std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
                (p.canonicalize()?, false)
            }
            None => {
                let tag = rand::RngCore::next_u64(&mut rand::rngs::OsRng);
                let p = std::env::temp_dir().join(format!("{prefix}-{tag:016x}"));
                std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
                (p, true)
            }
        };
        Ok(Workdir { path, temporary })
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
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

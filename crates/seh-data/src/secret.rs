//! The site secret file: 64 hex digits (32 bytes) that key every pseudonym of a store.
//!
//! `seh data` creates it beside the store (`STORE.secret`, mode 0600) on the first import; a node
//! serving the store reads it to open the store ([`crate::Store::open`] checks it against the
//! fingerprint the store recorded). Errors name the file, never the secret.

use std::io::Write;
use std::path::{Path, PathBuf};

use seh_crypto::pseudonym::SiteSecret;
use zeroize::Zeroizing;

use crate::error::DataError;

/// The default secret file of a store: the store's path with `.secret` appended.
pub fn default_path(store: &Path) -> PathBuf {
    let mut s = store.as_os_str().to_owned();
    s.push(".secret");
    PathBuf::from(s)
}

/// Reads a secret file (64 hex digits, surrounding white space ignored).
///
/// # Errors
/// [`DataError::Secret`] naming the file if it cannot be read or is not 64 hex digits.
pub fn read(path: &Path) -> Result<SiteSecret, DataError> {
    let err = |problem: String| DataError::Secret { path: path.to_path_buf(), problem };
    let text =
        Zeroizing::new(std::fs::read_to_string(path).map_err(|e| err(format!("cannot read the site secret: {e}")))?);
    let hex = text.trim().as_bytes();
    if hex.len() != 64 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err(err("a site secret is 64 hex digits".into()));
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    for (b, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |c: u8| char::from(c).to_digit(16).unwrap_or(0) as u8;
        *b = digit(pair[0]) << 4 | digit(pair[1]);
    }
    SiteSecret::from_bytes(&bytes[..]).map_err(|e| err(e.to_string()))
}

/// Creates a new random secret file (fails if it exists; mode 0600 on Unix) and returns it.
///
/// # Errors
/// [`DataError::Secret`] naming the file if it exists or cannot be written.
pub fn create(path: &Path) -> Result<SiteSecret, DataError> {
    let err =
        |e: std::io::Error| DataError::Secret { path: path.to_path_buf(), problem: format!("cannot create: {e}") };
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes[..]);
    let hex: Zeroizing<String> = Zeroizing::new(bytes.iter().map(|b| format!("{b:02x}")).collect());
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(hex.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    SiteSecret::from_bytes(&bytes[..])
        .map_err(|e| DataError::Secret { path: path.to_path_buf(), problem: e.to_string() })
}

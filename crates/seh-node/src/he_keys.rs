//! The node's encrypted-at-rest store of threshold-HE key records
//! ([`seh_protocol::he_keyrec::HeKeyRecord`]): one file per study, so a restarted node keeps its
//! key shares and — above all — their decryption-budget counters (a counter that restarted at
//! zero would let the node exceed the decryptions the parameter set allows).
//!
//! Each file is `SEHHEKS1` ‖ 24-byte random nonce ‖ XChaCha20-Poly1305 ciphertext of the record,
//! under a key derived (HKDF-SHA-256, purpose string) from the node's Ed25519 identity key, with
//! the site name and study id as associated data: a file of another node, of another study, or
//! altered in any byte does not open. Files are written atomically (temporary file, fsync,
//! rename, directory fsync) with mode 0600 in a 0700 directory; plaintext buffers are zeroized.
//!
//! The node reads a study's file when the study first needs its key after a restart (the store is
//! the site machine's [`seh_protocol::he_site::HeKeySource`]); nothing caps how many studies stay
//! releasable, and a file that cannot be used is named in the refusal.

use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::SigningKey;
use rand::RngCore;
use seh_protocol::he_keyrec::HeKeyRecord;
use zeroize::Zeroizing;

use crate::NodeError;

const MAGIC: &[u8; 8] = b"SEHHEKS1";
const NONCE: usize = 24;
const EXT: &str = "hekey";
/// Largest key file read (a record of 20 holders on `bfv-8192` is ≈ 4 MB).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// The directory of threshold-HE key files and the key that seals them.
pub struct HeKeyStore {
    dir: PathBuf,
    site: String,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for HeKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeKeyStore").field("dir", &self.dir).field("key", &"<redacted>").finish()
    }
}

fn state_err(path: &Path, reason: impl Into<String>) -> NodeError {
    NodeError::State { path: path.to_owned(), reason: reason.into() }
}

/// The key-file directory beside the reveal-record state file (`state.json` → `state.he-keys/`).
pub fn dir_beside(state_path: &Path) -> PathBuf {
    state_path.with_extension("he-keys")
}

impl HeKeyStore {
    /// The store in `dir` (created on the first save) of site `site` with identity `identity`.
    pub fn new(dir: PathBuf, site: &str, identity: &SigningKey) -> HeKeyStore {
        let ikm = Zeroizing::new(identity.to_bytes());
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"secur-e-health node at-rest v1"), ikm.as_ref());
        let mut info = b"threshold-HE key share store\0".to_vec();
        info.extend_from_slice(site.as_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA-256's 8160-byte limit, so `expand` cannot fail.
        let _ = hk.expand(&info, key.as_mut());
        HeKeyStore { dir, site: site.to_owned(), key }
    }

    /// The file of `study_id`, or an error if the id is not a 32-digit lower-case hex study id.
    pub fn path_of(&self, study_id: &str) -> Result<PathBuf, NodeError> {
        if study_id.len() != 32 || !study_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(state_err(&self.dir, "a threshold-HE key record names a malformed study id"));
        }
        Ok(self.dir.join(format!("{study_id}.{EXT}")))
    }

    fn aad(&self, study_id: &str) -> Vec<u8> {
        let mut a = MAGIC.to_vec();
        a.extend_from_slice(&(self.site.len() as u32).to_be_bytes());
        a.extend_from_slice(self.site.as_bytes());
        a.extend_from_slice(study_id.as_bytes());
        a
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(self.key.as_ref()))
    }

    /// Seals `rec` and replaces its study's file atomically (mode 0600). Returns once the file and
    /// its directory entry are on disk, so the caller may then send the message that follows.
    pub fn save(&self, rec: &HeKeyRecord) -> Result<(), NodeError> {
        let path = self.path_of(&rec.study_id)?;
        create_private_dir(&self.dir)?;
        let plain = rec.to_bytes();
        let mut nonce = [0u8; NONCE];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = self.aad(&rec.study_id);
        let sealed = self
            .cipher()
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain.as_slice(), aad: &aad })
            .map_err(|_| state_err(&path, "cannot encrypt the key record"))?;
        let mut file = Vec::with_capacity(MAGIC.len() + NONCE + sealed.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&nonce);
        file.extend_from_slice(&sealed);
        write_private(&path, &file)
    }

    /// Opens one key file (`study_id` is taken from its name). Errors name the file: unreadable,
    /// too large, not a key file, or not opening under this node's key (corrupt, altered, renamed,
    /// or another node's file), or a record naming another study.
    pub fn open(&self, path: &Path) -> Result<HeKeyRecord, NodeError> {
        let study_id = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        self.path_of(&study_id).map_err(|_| state_err(path, "the file name is not `<study id>.hekey`"))?;
        let meta = std::fs::metadata(path).map_err(|e| state_err(path, e.to_string()))?;
        #[cfg(unix)]
        {
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
            if mode & 0o077 != 0 {
                let fix = format!(
                    "mode {mode:04o} gives group/other access to a key share; run `chmod 600 {}`",
                    path.display()
                );
                return Err(state_err(path, fix));
            }
        }
        let len = meta.len();
        if len > MAX_FILE_BYTES {
            return Err(state_err(path, "threshold-HE key file is too large"));
        }
        let bytes = std::fs::read(path).map_err(|e| state_err(path, e.to_string()))?;
        if bytes.len() < MAGIC.len() + NONCE || &bytes[..MAGIC.len()] != MAGIC {
            return Err(state_err(path, "not a threshold-HE key file (bad magic or truncated)"));
        }
        let (nonce, sealed) = bytes[MAGIC.len()..].split_at(NONCE);
        let aad = self.aad(&study_id);
        let plain = self
            .cipher()
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| {
                state_err(path, "threshold-HE key file does not open under this node's identity key (corrupt, altered, or another node's or study's file)")
            })?;
        let rec = HeKeyRecord::from_bytes(&plain).map_err(|e| state_err(path, e.to_string()))?;
        if rec.study_id != study_id {
            return Err(state_err(path, "the key record names another study"));
        }
        Ok(rec)
    }

    /// Every key record in the store (none if the directory does not exist), by study id.
    /// Leftover temporary files of an interrupted save are ignored (the previous file stands).
    pub fn load_all(&self) -> Result<Vec<HeKeyRecord>, NodeError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(state_err(&self.dir, e.to_string())),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| state_err(&self.dir, e.to_string()))?.path();
            if path.extension().and_then(|e| e.to_str()) == Some(EXT) {
                paths.push(path);
            }
        }
        paths.sort();
        paths.iter().map(|p| self.open(p)).collect()
    }
}

/// The site machine reads a study's record from the store when the study first needs its key
/// ([`seh_protocol::site::SiteMachine::with_he_key_source`]); errors name the file.
impl seh_protocol::he_site::HeKeySource for HeKeyStore {
    fn load(&self, study_id: &str) -> Result<Option<HeKeyRecord>, String> {
        let path = self.path_of(study_id).map_err(|e| e.to_string())?;
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("state file {}: {e}", path.display())),
            Ok(_) => self.open(&path).map(Some).map_err(|e| e.to_string()),
        }
    }

    fn location(&self, study_id: &str) -> String {
        self.path_of(study_id).map_or_else(|_| self.dir.display().to_string(), |p| p.display().to_string())
    }
}

fn create_private_dir(dir: &Path) -> Result<(), NodeError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|e| state_err(dir, e.to_string()))
}

/// Writes `bytes` to `path` atomically with mode 0600: a temporary file in the same directory,
/// fsync, rename over `path`, fsync of the directory.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    let err = |e: std::io::Error| state_err(path, e.to_string());
    let tmp = path.with_extension("hekey.tmp");
    {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o.open(&tmp).map_err(err)?;
        f.write_all(bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use seh_crypto::wire::{PartyId, SessionId, StudyId};

    fn record(study: u8) -> HeKeyRecord {
        HeKeyRecord {
            study_id: seh_protocol::hex::encode(&[study; 16]),
            session: SessionId { study: StudyId([study; 16]), round: 2 },
            threshold: 2,
            seed: [1; 32],
            digest: [2; 32],
            pk_shares: vec![(PartyId(1), vec![3; 16]), (PartyId(2), vec![4; 16])],
            key_share: Zeroizing::new(vec![5; 64]),
            contributed: Some((3, 1)),
            releases: Vec::new(),
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("seh-hekeys-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    #[test]
    fn records_survive_a_restart_and_files_are_private() {
        let d = dir("roundtrip");
        let store = HeKeyStore::new(d.clone(), "site-a", &key(7));
        assert!(store.load_all().unwrap().is_empty());
        store.save(&record(0xab)).unwrap();
        let mut later = record(0xab);
        later.contributed = Some((9, 2));
        store.save(&later).unwrap();
        store.save(&record(0x01)).unwrap();
        let again = HeKeyStore::new(d.clone(), "site-a", &key(7));
        let got = again.load_all().unwrap();
        assert_eq!(got, vec![record(0x01), later]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let p = again.path_of(&record(0xab).study_id).unwrap();
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700);
        }
        // The plaintext (here the marker bytes of the key share) is not on disk.
        let raw = std::fs::read(again.path_of(&record(0x01).study_id).unwrap()).unwrap();
        assert!(!raw.windows(16).any(|w| w == [5; 16]));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn tampered_foreign_or_renamed_files_are_refused_naming_the_file() {
        let d = dir("tamper");
        let store = HeKeyStore::new(d.clone(), "site-a", &key(7));
        store.save(&record(0xab)).unwrap();
        let path = store.path_of(&record(0xab).study_id).unwrap();
        let good = std::fs::read(&path).unwrap();
        let name = path.display().to_string();
        // One flipped byte.
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let e = store.load_all().unwrap_err().to_string();
        assert!(e.contains(&name) && e.contains("does not open"), "{e}");
        // Another node's identity key, or another site name, cannot open a good file.
        std::fs::write(&path, &good).unwrap();
        assert!(HeKeyStore::new(d.clone(), "site-a", &key(8)).load_all().is_err());
        assert!(HeKeyStore::new(d.clone(), "site-b", &key(7)).load_all().is_err());
        // Renamed to another study's file: refused.
        let other = store.path_of(&record(0x02).study_id).unwrap();
        std::fs::rename(&path, &other).unwrap();
        let e = store.load_all().unwrap_err().to_string();
        assert!(e.contains(&other.display().to_string()), "{e}");
        // Truncated to nothing: named as not a key file.
        std::fs::write(&other, b"SEHH").unwrap();
        let e = store.load_all().unwrap_err().to_string();
        assert!(e.contains("not a threshold-HE key file"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}

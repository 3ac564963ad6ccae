//! Threshold-HE key records loaded on demand: the runtime gives the site a [`HeKeySource`] (the
//! node's encrypted-at-rest key files); a study's key state is read from it the first time the
//! study needs it after a restart (a set-up, a contribution, a share request, a release from
//! the encrypted store), and at most [`MAX_CACHED_KEYS`] key states stay in memory, the least
//! recently used dropped first. Every change to a key state is persisted before the message that
//! follows it leaves, so a dropped key state is exactly its file and is read back when needed:
//! how many studies stay releasable is bounded by the disk, not by the cache. A file that cannot
//! be used is named in the error (or the release refusal), never reported as "no key share".

use seh_crypto::wire::PartyId;

use super::SiteHe;
use crate::error::ProtocolError;
use crate::he_keyrec::HeKeyRecord;

/// Most key states a site with a [`HeKeySource`] keeps in memory (the rest stay on disk).
pub const MAX_CACHED_KEYS: usize = 8;

/// Where a site's persisted threshold-HE key records are read back from (the node's key files).
pub trait HeKeySource: Send + Sync {
    /// The record of `study_id`: `Ok(None)` if none was persisted; `Err(reason)` — naming the file
    /// and why it cannot be used (unreadable, altered, another node's) — otherwise.
    fn load(&self, study_id: &str) -> Result<Option<HeKeyRecord>, String>;

    /// The file (or other place) `study_id`'s record is kept in, for error messages.
    fn location(&self, study_id: &str) -> String;
}

impl std::fmt::Debug for dyn HeKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeKeySource")
    }
}

impl SiteHe {
    /// Reads key records of site `me` from `source` on demand from now on (and lets the
    /// in-memory cache drop least-recently-used key states beyond [`MAX_CACHED_KEYS`]).
    pub fn set_source(&mut self, me: PartyId, source: Box<dyn HeKeySource>) {
        self.source = Some((me, source));
    }

    /// Makes `study_id`'s key state available in memory if a record of it was persisted; marks
    /// it as just used. `Err(reason)` names the file that could not be used.
    pub(crate) fn ensure_key(&mut self, study_id: &str) -> Result<(), String> {
        self.tick += 1;
        if self.keys.contains_key(study_id) {
            self.used_at.insert(study_id.to_owned(), self.tick);
            return Ok(());
        }
        let Some((me, source)) = &self.source else { return Ok(()) };
        let me = *me;
        let Some(rec) = source.load(study_id)? else { return Ok(()) };
        let location = source.location(study_id);
        if rec.study_id != study_id {
            return Err(format!("{location}: the key record names another study"));
        }
        self.restore(me, rec).map_err(|e| format!("{location}: {e}"))
    }

    /// [`Self::ensure_key`] as a protocol error (field: the file) for the steps that need the key.
    pub(crate) fn ensure_key_or_err(&mut self, study_id: &str) -> Result<(), ProtocolError> {
        self.ensure_key(study_id).map_err(|reason| {
            ProtocolError::invalid("threshold-HE key record", "file", format!("cannot use it: {reason}"))
        })
    }

    /// Before `study_id`'s key state is added: with a source, drops the least recently used other
    /// key states beyond [`MAX_CACHED_KEYS`] (they are on disk); without one, keeps everything.
    pub(super) fn make_room(&mut self, study_id: &str) {
        self.tick += 1;
        self.used_at.insert(study_id.to_owned(), self.tick);
        if self.source.is_none() {
            return;
        }
        while self.keys.len() >= MAX_CACHED_KEYS && !self.keys.contains_key(study_id) {
            let oldest = self
                .keys
                .keys()
                .filter(|k| k.as_str() != study_id)
                .min_by_key(|k| self.used_at.get(k.as_str()).copied().unwrap_or(0))
                .cloned();
            let Some(oldest) = oldest else { break };
            self.keys.remove(&oldest);
            self.used_at.remove(&oldest);
        }
    }

    /// Number of key states held in memory now.
    pub fn cached_keys(&self) -> usize {
        self.keys.len()
    }
}

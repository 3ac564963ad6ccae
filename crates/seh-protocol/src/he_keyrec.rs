//! The durable form of one study's threshold-HE key at a site ([`HeKeyRecord`]): what a node
//! must persist — encrypted at rest — so that a restarted node still holds its key share, and
//! so that the share's decryption budget counter never restarts at zero.
//!
//! A record carries the key share (with its use counter, `ThresholdKeyShare::to_bytes`), what
//! rebuilds the collective public key (joint seed and every holder's public-key share), the
//! digest every holder confirmed, the last round this site contributed to (with the decryption
//! shares it gave for it) and every release from the encrypted store it took part in. The
//! [`crate::site::SiteMachine`] emits one ([`crate::site::SiteOutput::RecordHeKey`]) **before**
//! the message whose sending changes it, and takes them back after a restart
//! (`SiteMachine::with_he_keys`).

use std::fmt;

use seh_crypto::wire::{PartyId, Reader, SessionId, StudyId, Writer};
use zeroize::Zeroizing;

use crate::error::ProtocolError;

const MAGIC: &[u8; 8] = b"SEHHEKR1";
/// Largest serialised key share or public-key share accepted in a record (`bfv-8192`: ≈ 0.2 MB).
const MAX_POLY_BYTES: usize = 1 << 22;
/// Most releases from the encrypted store one record remembers.
pub const MAX_RELEASES: usize = 4096;

/// One release from the encrypted store this site took part in: the stored round and the sites
/// whose ciphertexts were summed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ReleaseRecord {
    /// The encrypted round.
    pub round: u32,
    /// Party ids whose ciphertexts were summed, ascending.
    pub sites: Vec<u32>,
}

/// One study's threshold-HE key state at a site, serialisable. Secret: the key share is in it;
/// `Debug` prints only the study and counters.
#[derive(Clone, PartialEq, Eq)]
pub struct HeKeyRecord {
    /// Study id (lower-case hex).
    pub study_id: String,
    /// The key set-up's session.
    pub session: SessionId,
    /// Decryption threshold `t`.
    pub threshold: u32,
    /// The joint seed of the common random polynomial.
    pub seed: [u8; 32],
    /// The collective key's digest every holder confirmed (`he_wire::key_digest`).
    pub digest: [u8; 32],
    /// Every holder's public-key share (`PublicKeyShare::to_bytes`), by holder.
    pub pk_shares: Vec<(PartyId, Vec<u8>)>,
    /// `ThresholdKeyShare::to_bytes` (includes the decryption-budget counter).
    pub key_share: Zeroizing<Vec<u8>>,
    /// Last round this site contributed to, and the decryption shares it gave for it.
    pub contributed: Option<(u32, u32)>,
    /// Releases from the encrypted store this site gave a decryption share for.
    pub releases: Vec<ReleaseRecord>,
}

impl fmt::Debug for HeKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeKeyRecord")
            .field("study_id", &self.study_id)
            .field("holders", &self.pk_shares.len())
            .field("releases", &self.releases.len())
            .field("key_share", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn bad(field: &'static str, reason: &str) -> ProtocolError {
    ProtocolError::invalid("threshold-HE key record", field, reason)
}

impl HeKeyRecord {
    /// Serialises the record (secret: encrypt it before it touches a disk).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let pk: usize = self.pk_shares.iter().map(|(_, b)| b.len() + 8).sum();
        let mut w = Writer::with_capacity(256 + pk + self.key_share.len() + 8 * self.releases.len());
        w.raw(MAGIC).bytes_u32(self.study_id.as_bytes()).raw(&self.session.to_bytes());
        w.u32(self.threshold).raw(&self.seed).raw(&self.digest);
        w.u32(self.pk_shares.len() as u32);
        for (p, b) in &self.pk_shares {
            w.u32(p.0).bytes_u32(b);
        }
        w.bytes_u32(&self.key_share);
        match self.contributed {
            Some((round, given)) => w.u8(1).u32(round).u32(given),
            None => w.u8(0),
        };
        w.u32(self.releases.len() as u32);
        for r in &self.releases {
            w.u32(r.round).u32(r.sites.len() as u32);
            for s in &r.sites {
                w.u32(*s);
            }
        }
        Zeroizing::new(w.into_bytes())
    }

    /// Strictly decodes [`HeKeyRecord::to_bytes`] (bounded counts, no trailing bytes). The key
    /// share itself is parsed when the record is restored into a site machine.
    pub fn from_bytes(bytes: &[u8]) -> Result<HeKeyRecord, ProtocolError> {
        let mut r = Reader::new(bytes, None);
        if r.take("magic", 8)? != MAGIC {
            return Err(bad("magic", "not a threshold-HE key record"));
        }
        let study_id =
            std::str::from_utf8(r.bytes_u32("study id", 64)?).map_err(|_| bad("study id", "not UTF-8"))?.to_owned();
        let session = SessionId { study: StudyId(r.array("session study")?), round: r.u32("session round")? };
        let threshold = r.u32("threshold")?;
        let seed = r.array("seed")?;
        let digest = r.array("digest")?;
        let n = r.count_u32("public-key shares", crate::spec::MAX_HE_SITES)?;
        let mut pk_shares = Vec::with_capacity(n);
        for _ in 0..n {
            let p = PartyId(r.u32("holder")?);
            pk_shares.push((p, r.bytes_u32("public-key share", MAX_POLY_BYTES)?.to_vec()));
        }
        let key_share = Zeroizing::new(r.bytes_u32("key share", MAX_POLY_BYTES)?.to_vec());
        let contributed = match r.u8("contributed")? {
            0 => None,
            1 => Some((r.u32("contributed round")?, r.u32("shares given")?)),
            _ => return Err(bad("contributed", "flag is neither 0 nor 1")),
        };
        let m = r.count_u32("releases", MAX_RELEASES)?;
        let mut releases = Vec::with_capacity(m);
        for _ in 0..m {
            let round = r.u32("release round")?;
            let k = r.count_u32("release sites", crate::spec::MAX_HE_SITES)?;
            let sites = (0..k).map(|_| r.u32("release site")).collect::<Result<Vec<_>, _>>()?;
            releases.push(ReleaseRecord { round, sites });
        }
        r.finish("threshold-HE key record")?;
        Ok(HeKeyRecord { study_id, session, threshold, seed, digest, pk_shares, key_share, contributed, releases })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> HeKeyRecord {
        HeKeyRecord {
            study_id: "00112233445566778899aabbccddeeff".into(),
            session: SessionId { study: StudyId([3; 16]), round: 4 },
            threshold: 2,
            seed: [5; 32],
            digest: [6; 32],
            pk_shares: vec![(PartyId(1), vec![1, 2, 3]), (PartyId(2), vec![4; 10])],
            key_share: Zeroizing::new(vec![9; 40]),
            contributed: Some((7, 1)),
            releases: vec![ReleaseRecord { round: 7, sites: vec![1, 2] }],
        }
    }

    #[test]
    fn records_round_trip_and_reject_truncation_and_trailing_bytes() {
        let r = record();
        let bytes = r.to_bytes();
        assert_eq!(HeKeyRecord::from_bytes(&bytes).unwrap(), r);
        assert!(HeKeyRecord::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(HeKeyRecord::from_bytes(&longer).is_err());
        let mut magic = bytes.to_vec();
        magic[0] ^= 1;
        assert!(HeKeyRecord::from_bytes(&magic).unwrap_err().to_string().contains("magic"));
        let none = HeKeyRecord { contributed: None, releases: vec![], ..record() };
        assert_eq!(HeKeyRecord::from_bytes(&none.to_bytes()).unwrap(), none);
    }

    #[test]
    fn debug_does_not_print_the_key_share() {
        let s = format!("{:?}", record());
        assert!(s.contains("<redacted>") && !s.contains("9, 9"), "{s}");
    }
}

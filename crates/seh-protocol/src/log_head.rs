//! Co-signing the coordinator's audit-log head with the sites' FROST group key.
//!
//! After each study the coordinator asks the study's sites to co-sign a [`HeadDocument`]: its log
//! head `(seq, hash)`, a previous co-signed head and the hashes of every entry in between. The
//! request ([`HeadSignStart`]) also carries those entries' log lines. Each site checks that the
//! document extends the head *it* co-signed last (persisted before it answers), recomputes every
//! entry's hash, signature and `prev` link from the lines ([`check_evidence`]) and refuses
//! otherwise, naming the first bad seq; `t` sites then sign it through the same FROST
//! commit/share flow as a release, under the purpose [`AUDIT_HEAD_PURPOSE`]. The coordinator
//! appends the [`SignedHead`] to its log as an [`EntryKind::HeadCosign`] entry.
//!
//! One co-signature covers a bounded segment ([`next_segment`], [`MAX_SEGMENT_ENTRIES`]); a longer
//! history is co-signed in several segments, each extending an earlier co-signed head.
//!
//! [`check_log`] re-checks a coordinator log against its co-signed heads: an entry edited before
//! a co-signed head is found even when the coordinator re-hashed and re-signed the whole chain,
//! because the group signature fixes the old hashes. [`check_site_head`] checks the log against a
//! head a site persisted, which also catches co-signature records cut off the end of the log.

use seh_audit::{Entry, EntryKind};
use seh_crypto::frost::{self, GroupVerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ProtocolError;
use crate::hex;

mod evidence;
mod segment;

pub use evidence::{check_evidence, MAX_SEGMENT_ENTRIES, MAX_SEGMENT_LINE_BYTES};
pub use segment::{next_document, next_segment, next_segment_within, NextSegment, SegmentLimits};

/// FROST document purpose bound into a log-head co-signature (never accepted for a release).
pub const AUDIT_HEAD_PURPOSE: &str = "audit-head";

/// Most segments a coordinator co-signs after one study (a backlog of up to
/// `MAX_SEGMENTS_PER_RUN` × [`MAX_SEGMENT_ENTRIES`] entries is caught up at once; the rest after
/// later studies).
pub const MAX_SEGMENTS_PER_RUN: u32 = 32;

/// Key of the [`SignedHead`] in the details of an [`EntryKind::HeadCosign`] entry.
pub const COSIGN_DETAIL_KEY: &str = "cosigned_head";

/// A log position: an entry's sequence number and its hash (64 lower-case hex digits).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadRef {
    /// Sequence number.
    pub seq: u64,
    /// Entry hash, hex.
    pub hash: String,
}

/// What the sites co-sign: the coordinator's log head and its link to an earlier co-signed head.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadDocument {
    /// Federation name.
    pub federation: String,
    /// Sequence number of the head entry.
    pub seq: u64,
    /// Hash of the head entry (hex).
    pub hash: String,
    /// The earlier co-signed head this document extends (`None`: from the start of the log).
    pub prev: Option<HeadRef>,
    /// Hashes (hex) of the entries strictly between `prev` (or the start) and the head, in order.
    pub between: Vec<String>,
}

/// Why a site refuses to co-sign a [`HeadDocument`] (names positions, never log contents).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum HeadRefusal {
    /// The document names another federation.
    #[error("the head document names another federation")]
    WrongFederation,
    /// The document is inconsistent in itself.
    #[error("malformed head document: {0}")]
    Malformed(&'static str),
    /// The head is older than the one this site co-signed last: the log was cut or rolled back.
    #[error("head seq {seq} is older than seq {last_seq} that this site co-signed; the log was rolled back")]
    Rollback {
        /// The document's head.
        seq: u64,
        /// This site's last co-signed head.
        last_seq: u64,
    },
    /// The document starts after this site's last co-signed head, so the link cannot be checked.
    #[error("the chain starts at seq {start} after seq {last_seq} that this site co-signed; cannot link it")]
    Gap {
        /// First position covered by the document.
        start: u64,
        /// This site's last co-signed head.
        last_seq: u64,
    },
    /// The document's hash at this site's last co-signed seq differs: history was rewritten.
    #[error("entry seq {last_seq} differs from the head this site co-signed; the coordinator's history was rewritten")]
    Rewritten {
        /// This site's last co-signed head.
        last_seq: u64,
    },
    /// The segment is larger than a site accepts ([`MAX_SEGMENT_ENTRIES`], [`MAX_SEGMENT_LINE_BYTES`]).
    #[error("the segment holds {len} {what}, more than the {max} a site accepts")]
    TooLong {
        /// What was counted.
        what: &'static str,
        /// How many.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The log line sent for entry `seq` does not prove the chain: missing, malformed, modified,
    /// not signed by the coordinator, not linked to the entry before, or not the hash stated.
    #[error("entry seq {seq}: {what}; the chain does not hold")]
    Evidence {
        /// The first entry whose line fails.
        seq: u64,
        /// Why.
        what: &'static str,
    },
}

impl HeadDocument {
    /// The JSON text that is signed.
    pub fn to_json(&self) -> Result<String, ProtocolError> {
        serde_json::to_string(self).map_err(|e| ProtocolError::parse("audit head document", &e))
    }

    /// Parses a document strictly.
    pub fn from_json(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError::parse("audit head document", &e))
    }

    /// First sequence number the document covers (the previous head, or 0).
    pub fn start(&self) -> u64 {
        self.prev.as_ref().map_or(0, |p| p.seq)
    }

    /// The hash the document states for entry `seq`, if it covers it.
    pub fn hash_at(&self, seq: u64) -> Option<&str> {
        if seq == self.seq {
            return Some(&self.hash);
        }
        match &self.prev {
            Some(p) if seq == p.seq => Some(&p.hash),
            Some(p) if seq > p.seq => self.between.get(usize::try_from(seq - p.seq - 1).ok()?).map(String::as_str),
            None => self.between.get(usize::try_from(seq).ok()?).map(String::as_str),
            _ => None,
        }
    }

    /// Every `(seq, hash)` the document states, in order.
    pub fn positions(&self) -> Vec<(u64, &str)> {
        let mut out = Vec::with_capacity(self.between.len() + 2);
        let mut seq = 0;
        if let Some(p) = &self.prev {
            out.push((p.seq, p.hash.as_str()));
            seq = p.seq + 1;
        }
        for h in &self.between {
            out.push((seq, h.as_str()));
            seq += 1;
        }
        out.push((self.seq, self.hash.as_str()));
        out
    }

    fn check_shape(&self) -> Result<(), HeadRefusal> {
        let expected = match &self.prev {
            Some(p) if p.seq >= self.seq => return Err(HeadRefusal::Malformed("previous head is not before the head")),
            Some(p) => self.seq - p.seq - 1,
            None => self.seq,
        };
        if self.between.len() as u64 != expected {
            return Err(HeadRefusal::Malformed("number of in-between hashes does not match the sequence numbers"));
        }
        if self.between.len() >= MAX_SEGMENT_ENTRIES {
            let len = self.between.len().saturating_add(1);
            return Err(HeadRefusal::TooLong { what: "entries", len, max: MAX_SEGMENT_ENTRIES });
        }
        if self.positions().iter().any(|(_, h)| hex::decode_array::<32>(h).is_none()) {
            return Err(HeadRefusal::Malformed("a hash is not 64 hex digits"));
        }
        Ok(())
    }

    /// A site's check: the document is well-formed, names `federation`, and its chain passes
    /// through `last` (the head this site co-signed last; `None` before its first co-signature).
    ///
    /// Errors: the [`HeadRefusal`] naming why the document does not extend `last`.
    pub fn check_extends(&self, federation: &str, last: Option<&HeadRef>) -> Result<(), HeadRefusal> {
        if self.federation != federation {
            return Err(HeadRefusal::WrongFederation);
        }
        self.check_shape()?;
        let Some(last) = last else { return Ok(()) };
        if last.seq > self.seq {
            return Err(HeadRefusal::Rollback { seq: self.seq, last_seq: last.seq });
        }
        if last.seq < self.start() {
            return Err(HeadRefusal::Gap { start: self.start(), last_seq: last.seq });
        }
        match self.hash_at(last.seq) {
            Some(h) if h == last.hash => Ok(()),
            _ => Err(HeadRefusal::Rewritten { last_seq: last.seq }),
        }
    }

    /// The head as a [`HeadRef`].
    pub fn head(&self) -> HeadRef {
        HeadRef { seq: self.seq, hash: self.hash.clone() }
    }
}

/// The bytes a log-head co-signature covers.
pub fn signing_message(document: &str) -> Vec<u8> {
    frost::document_message(AUDIT_HEAD_PURPOSE, document.as_bytes())
}

/// Coordinator → site: co-sign this [`HeadDocument`] (JSON); the site answers with a FROST
/// commitment, then a signature share, exactly as for a release.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSignStart {
    /// The document JSON.
    pub document: String,
    /// The canonical coordinator log lines of the entries the document covers after its previous
    /// head (from seq 0 without one), in order, the head's line last. Metadata only (see
    /// [`check_evidence`]).
    pub entries: Vec<String>,
}

impl HeadSignStart {
    /// A site's whole check of a co-sign request: the document parses, names `federation`,
    /// extends `last` (this site's last co-signed head) and every covered entry's line recomputes
    /// to the stated chain under the coordinator's key `coordinator`.
    ///
    /// Errors: [`ProtocolError::Parse`] for a document that does not parse; otherwise
    /// [`ProtocolError::Invalid`] carrying the [`HeadRefusal`] (which names the first bad seq).
    pub fn check(
        &self,
        federation: &str,
        coordinator: &seh_crypto::wire::VerifyingKey,
        last: Option<&HeadRef>,
    ) -> Result<HeadDocument, ProtocolError> {
        let doc = HeadDocument::from_json(&self.document)?;
        let refused = |r: HeadRefusal| {
            ProtocolError::invalid("coordinator log head", "chain", format!("refused to co-sign: {r}"))
        };
        doc.check_extends(federation, last).map_err(refused)?;
        check_evidence(&doc, &self.entries, coordinator).map_err(refused)?;
        Ok(doc)
    }
}

/// A co-signed log head: the document's exact JSON text, the FROST group signature over
/// [`signing_message`] of it, and the signing sites.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    /// [`HeadDocument`] as JSON.
    pub document: String,
    /// 128 hex characters.
    pub signature: String,
    /// Sites whose signature shares were aggregated.
    pub signers: Vec<String>,
}

impl SignedHead {
    /// Verifies the group signature and returns the document.
    ///
    /// Errors: [`ProtocolError::BadSignature`] if it does not verify under `group`;
    /// [`ProtocolError::Parse`] / [`ProtocolError::Invalid`] for malformed fields.
    pub fn verify(&self, group: &GroupVerifyingKey) -> Result<HeadDocument, ProtocolError> {
        let sig = hex::decode_array::<64>(&self.signature)
            .ok_or_else(|| ProtocolError::invalid("co-signed head", "signature", "not 128 hex characters"))?;
        let sig = frost::Signature::from_bytes(&sig)?;
        frost::verify(group, &signing_message(&self.document), &sig)
            .map_err(|_| ProtocolError::BadSignature { what: "co-signed log head", signer: "the site group".into() })?;
        HeadDocument::from_json(&self.document)
    }

    /// The details object of the [`EntryKind::HeadCosign`] entry that records it.
    pub fn to_details(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(COSIGN_DETAIL_KEY.into(), serde_json::to_value(self).unwrap_or(Value::Null));
        m
    }
}

/// The co-signed heads recorded in `entries` (in log order), with the seq of the recording entry.
///
/// Errors: [`ProtocolError::Invalid`] naming the entry whose details are not a [`SignedHead`].
pub fn recorded(entries: &[Entry]) -> Result<Vec<(u64, SignedHead)>, ProtocolError> {
    let mut out = Vec::new();
    for e in entries.iter().filter(|e| e.kind() == EntryKind::HeadCosign) {
        let signed = e
            .details()
            .get(COSIGN_DETAIL_KEY)
            .and_then(|v| serde_json::from_value::<SignedHead>(v.clone()).ok())
            .ok_or_else(|| {
                ProtocolError::invalid("audit log", format!("entry seq {}", e.seq()), "not a co-signed head record")
            })?;
        out.push((e.seq(), signed));
    }
    Ok(out)
}

/// What [`check_log`] found.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CosignReport {
    /// Number of co-signed heads recorded in the log.
    pub cosigned: usize,
    /// The newest co-signed head and its signers.
    pub last: Option<(HeadRef, Vec<String>)>,
}

/// Why a coordinator log does not match its co-signed heads.
#[derive(Debug, thiserror::Error)]
pub enum LogHeadError {
    /// A co-signature record is malformed or does not verify under the group key.
    #[error("co-signature recorded at entry seq {entry_seq}: {source}")]
    BadCosignature {
        /// The recording entry.
        entry_seq: u64,
        /// Why.
        source: ProtocolError,
    },
    /// The co-signed head names another federation.
    #[error("co-signature recorded at entry seq {entry_seq} is for another federation")]
    WrongFederation {
        /// The recording entry.
        entry_seq: u64,
    },
    /// The log no longer holds what the sites co-signed: an entry was edited (or removed) at or
    /// before the co-signed head, even if the chain was re-hashed and re-signed afterwards.
    #[error(
        "co-signed head seq {head_seq} no longer matches the log: entry seq {entry_seq} {what}; \
         the log was rewritten after the sites co-signed it"
    )]
    HeadMismatch {
        /// The co-signed head.
        head_seq: u64,
        /// The first entry that differs.
        entry_seq: u64,
        /// `differs` or `is missing`.
        what: &'static str,
    },
}

/// Checks a coordinator's verified log `entries` against every co-signed head recorded in it:
/// each signature must verify under `group`, name federation `federation`, and every hash the
/// document states must equal the log's hash at that seq.
///
/// Errors: the first [`LogHeadError`], naming the co-signed head and the entry that differs.
pub fn check_log(entries: &[Entry], federation: &str, group: &GroupVerifyingKey) -> Result<CosignReport, LogHeadError> {
    let records = recorded(entries).map_err(|source| LogHeadError::BadCosignature { entry_seq: 0, source })?;
    let mut report = CosignReport { cosigned: records.len(), last: None };
    for (entry_seq, signed) in &records {
        let doc =
            signed.verify(group).map_err(|source| LogHeadError::BadCosignature { entry_seq: *entry_seq, source })?;
        if doc.federation != federation {
            return Err(LogHeadError::WrongFederation { entry_seq: *entry_seq });
        }
        for (seq, hash) in doc.positions() {
            let found = usize::try_from(seq).ok().and_then(|i| entries.get(i));
            let what = match found {
                None => "is missing",
                Some(e) if e.hash().to_hex() != hash => "differs",
                Some(_) => continue,
            };
            return Err(LogHeadError::HeadMismatch { head_seq: doc.seq, entry_seq: seq, what });
        }
        if report.last.as_ref().is_none_or(|(h, _)| doc.seq > h.seq) {
            report.last = Some((doc.head(), signed.signers.clone()));
        }
    }
    Ok(report)
}

/// Why a coordinator log does not hold a head a site co-signed (from the site's persisted file).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SiteHeadError {
    /// The log ends before the site's head: entries (at least the co-signature records) were
    /// cut from its end.
    #[error(
        "site {site} co-signed head seq {seq}, but the log has only {entries} entries; \
         entries were cut from the end of the log"
    )]
    Missing {
        /// The site whose head it is.
        site: String,
        /// The head's seq.
        seq: u64,
        /// Entries in the log.
        entries: u64,
    },
    /// The log's entry at the head's seq has another hash: the log was rewritten.
    #[error(
        "site {site} co-signed head seq {seq}, but entry seq {seq} of the log has another hash; the log was rewritten"
    )]
    Differs {
        /// The site whose head it is.
        site: String,
        /// The head's seq.
        seq: u64,
    },
}

/// Checks that the coordinator's verified log `entries` still holds `head`, the coordinator log
/// head site `site` co-signed last (what the node persisted from [`crate::site::SiteOutput::RecordLogHead`]):
/// an entry at that seq with that hash. Because the log is hash-chained, this fixes every entry
/// up to the head, and so catches a log cut back before the site's last co-signature, which
/// [`check_log`] alone cannot see.
///
/// Errors: [`SiteHeadError`] naming the site and the seq.
pub fn check_site_head(entries: &[Entry], site: &str, head: &HeadRef) -> Result<(), SiteHeadError> {
    match usize::try_from(head.seq).ok().and_then(|i| entries.get(i)) {
        None => Err(SiteHeadError::Missing { site: site.to_owned(), seq: head.seq, entries: entries.len() as u64 }),
        Some(e) if e.seq() != head.seq || e.hash().to_hex() != head.hash => {
            Err(SiteHeadError::Differs { site: site.to_owned(), seq: head.seq })
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u8) -> String {
        hex::encode(&[i; 32])
    }

    fn doc(prev: Option<(u64, u8)>, seq: u64) -> HeadDocument {
        let from = prev.map_or(0, |(s, _)| s + 1);
        HeadDocument {
            federation: "f".into(),
            seq,
            hash: h(seq as u8),
            prev: prev.map(|(s, b)| HeadRef { seq: s, hash: h(b) }),
            between: (from..seq).map(|s| h(s as u8)).collect(),
        }
    }

    #[test]
    fn extension_rules() {
        let d = doc(Some((3, 3)), 7);
        assert_eq!(d.hash_at(5), Some(h(5).as_str()));
        assert_eq!(d.hash_at(2), None);
        assert_eq!(d.positions().len(), 5);
        assert_eq!(d.check_extends("f", None), Ok(()));
        assert_eq!(d.check_extends("f", Some(&HeadRef { seq: 3, hash: h(3) })), Ok(()));
        assert_eq!(d.check_extends("f", Some(&HeadRef { seq: 5, hash: h(5) })), Ok(()));
        assert_eq!(d.check_extends("g", None), Err(HeadRefusal::WrongFederation));
        assert_eq!(
            d.check_extends("f", Some(&HeadRef { seq: 5, hash: h(9) })),
            Err(HeadRefusal::Rewritten { last_seq: 5 })
        );
        assert_eq!(
            d.check_extends("f", Some(&HeadRef { seq: 2, hash: h(2) })),
            Err(HeadRefusal::Gap { start: 3, last_seq: 2 })
        );
        assert_eq!(
            d.check_extends("f", Some(&HeadRef { seq: 8, hash: h(8) })),
            Err(HeadRefusal::Rollback { seq: 7, last_seq: 8 })
        );
        let mut short = d.clone();
        short.between.pop();
        assert!(matches!(short.check_extends("f", None), Err(HeadRefusal::Malformed(_))));
        let genesis = doc(None, 2);
        assert_eq!(genesis.between.len(), 2);
        assert_eq!(genesis.check_extends("f", None), Ok(()));
    }
}

//! The coordinator's choice of what to ask the sites to co-sign next: a bounded segment of its
//! log that starts at a head the signers co-signed before.
//!
//! One co-signature covers at most [`SegmentLimits::entries`] entries and its request at most
//! [`SegmentLimits::line_bytes`] bytes of log lines, so a long-running coordinator (or the first
//! co-signature of a long log) never builds an over-long audit line or message: it co-signs in
//! segments, each extending an earlier co-signed head, until it reaches its log's end.

use std::collections::BTreeMap;

use seh_audit::{encode_line, Entry};

use super::evidence::{MAX_SEGMENT_ENTRIES, MAX_SEGMENT_LINE_BYTES};
use super::{recorded, HeadDocument, HeadRef, HeadSignStart};
use crate::error::ProtocolError;
use crate::federation::Federation;

/// How much one co-signature may cover.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SegmentLimits {
    /// Most entries (in-between entries plus the head); at least 1.
    pub entries: usize,
    /// Most bytes of log lines in the request; at least one line is always sent.
    pub line_bytes: usize,
}

impl SegmentLimits {
    /// The limits every site enforces ([`MAX_SEGMENT_ENTRIES`], [`MAX_SEGMENT_LINE_BYTES`]).
    pub const DEFAULT: SegmentLimits =
        SegmentLimits { entries: MAX_SEGMENT_ENTRIES, line_bytes: MAX_SEGMENT_LINE_BYTES };
}

impl Default for SegmentLimits {
    fn default() -> Self {
        SegmentLimits::DEFAULT
    }
}

/// The next co-sign request and what it covers.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NextSegment {
    /// The document to co-sign.
    pub document: HeadDocument,
    /// The request to send to the signers (the document's JSON and the covered log lines).
    pub request: HeadSignStart,
    /// `true` if the document's head is the log's last entry; otherwise co-sign again after
    /// recording this co-signature to cover the rest.
    pub reaches_end: bool,
}

/// The last head each signer co-signed, from the log's own records (a site missing here has
/// co-signed nothing the log recorded).
fn latest_heads<'a>(entries: &[Entry], signers: &'a [String]) -> Result<BTreeMap<&'a str, HeadRef>, ProtocolError> {
    let mut latest = BTreeMap::new();
    for (_, signed) in recorded(entries)? {
        let doc = HeadDocument::from_json(&signed.document)?;
        for s in signers.iter().filter(|s| signed.signers.contains(s)) {
            latest.insert(s.as_str(), doc.head());
        }
    }
    Ok(latest)
}

/// The seq of the last entry a segment starting after `start` may cover within `limits`.
fn segment_end(entries: &[Entry], first: u64, limits: SegmentLimits) -> Option<u64> {
    let from = usize::try_from(first).ok()?;
    let mut end = None;
    let mut bytes = 0usize;
    for (n, e) in entries.get(from..)?.iter().enumerate() {
        bytes = bytes.saturating_add(encode_line(e).len());
        if n >= limits.entries.max(1) || (n > 0 && bytes > limits.line_bytes) {
            break;
        }
        end = Some(e.seq());
    }
    end
}

/// The request the coordinator sends to `signers` next, for its (verified) log `entries`, within
/// the default limits the sites enforce. See [`next_segment_within`].
///
/// Errors: a malformed co-signature record in `entries`.
pub fn next_segment(
    entries: &[Entry],
    fed: &Federation,
    signers: &[String],
) -> Result<Option<NextSegment>, ProtocolError> {
    next_segment_within(entries, fed, signers, SegmentLimits::DEFAULT)
}

/// The request the coordinator sends to `signers` next, covering at most `limits`.
///
/// The segment starts at the start of the log or at a head some signer co-signed last (from the
/// log's records), and a site co-signs only a segment that contains its own last head. The start
/// chosen is the earliest one whose segment contains the last head of at least the federation's
/// FROST threshold of signers (so sites that fell behind catch up while a quorum can still
/// sign); if none does, the one containing the most. `None` if the log is empty or nothing was
/// appended after the chosen start.
///
/// Errors: a malformed co-signature record in `entries`.
pub fn next_segment_within(
    entries: &[Entry],
    fed: &Federation,
    signers: &[String],
    limits: SegmentLimits,
) -> Result<Option<NextSegment>, ProtocolError> {
    let latest = latest_heads(entries, signers)?;
    // The start of the log is a candidate only while some signer has co-signed nothing yet.
    let mut starts: Vec<Option<HeadRef>> = Vec::new();
    if signers.iter().any(|s| !latest.contains_key(s.as_str())) {
        starts.push(None);
    }
    starts.extend(latest.values().cloned().map(Some));
    starts.sort_by_key(|s| s.as_ref().map(|h| h.seq));
    starts.dedup();
    let mut best: Option<(usize, Option<HeadRef>, u64)> = None;
    for start in starts {
        let first = start.as_ref().map_or(0, |h| h.seq.saturating_add(1));
        let Some(end) = segment_end(entries, first, limits) else { continue };
        let from = start.as_ref().map_or(0, |h| h.seq);
        let covered = signers
            .iter()
            .filter(|s| match (latest.get(s.as_str()), &start) {
                (None, None) => true,
                (None, Some(_)) => false,
                (Some(h), _) => h.seq >= from && h.seq <= end,
            })
            .count();
        if best.as_ref().is_none_or(|(c, _, _)| covered > *c) {
            best = Some((covered, start, end));
        }
        if covered >= usize::from(fed.frost_threshold) {
            break;
        }
    }
    let Some((_, prev, end)) = best else { return Ok(None) };
    let first = prev.as_ref().map_or(0, |h| h.seq.saturating_add(1));
    let covered: Vec<&Entry> = entries.iter().filter(|e| e.seq() >= first && e.seq() <= end).collect();
    let Some((head, between)) = covered.split_last() else { return Ok(None) };
    let document = HeadDocument {
        federation: fed.name.clone(),
        seq: head.seq(),
        hash: head.hash().to_hex(),
        prev,
        between: between.iter().map(|e| e.hash().to_hex()).collect(),
    };
    // Coordinator log lines are metadata only (ids, names, digests, counts, reasons; never a
    // row value or a contribution): see the `evidence` module.
    let lines = covered.iter().map(|e| String::from_utf8(encode_line(e)).unwrap_or_default()).collect();
    let request = HeadSignStart { document: document.to_json()?, entries: lines };
    let reaches_end = entries.last().is_some_and(|l| l.seq() == document.seq);
    Ok(Some(NextSegment { document, request, reaches_end }))
}

/// The document the coordinator asks `signers` to co-sign next (the document of
/// [`next_segment`]); kept for callers that only need the document.
///
/// Errors: a malformed co-signature record in `entries`.
pub fn next_document(
    entries: &[Entry],
    fed: &Federation,
    signers: &[String],
) -> Result<Option<HeadDocument>, ProtocolError> {
    Ok(next_segment(entries, fed, signers)?.map(|n| n.document))
}

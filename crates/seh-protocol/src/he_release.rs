//! Release from the coordinator's encrypted store, later (`aggregation = "he"`): the coordinator
//! re-adds the stored ciphertexts of one encrypted round ([`crate::he_coord::reaggregate`]),
//! offers the release to the study's key holders, and collects flooded decryption shares from
//! any `t` that accept — the other sites may be offline. Plain state machine, no I/O.
//!
//! Steps (`ProtocolId::ThresholdBfv`, one fresh session round per release):
//! 1. coordinator → every candidate holder: [`step::RELEASE_OFFER`] with [`HeReleaseOffer`];
//! 2. holder → coordinator: [`step::RELEASE_ANSWER`] with [`HeReleaseAnswer`] — its policy
//!    decides (re-applied to the signed study), it checks its key and decryption budget, and
//!    audits; a refusal names its reason;
//! 3. coordinator → `t` accepting holders: [`step::SHARE_REQUEST`] for the sum;
//! 4. holder → coordinator: [`step::DECRYPTION_SHARE`] (flooded; the holder persists its budget
//!    counter before it leaves). A decryptor that fails is replaced by another accepting holder
//!    in one more request.
//!
//! **Key switch to the researcher** ([`ReleaseInputs::target`]): the offer names the digest of the
//! researcher's BFV public key, the share request carries the key itself, and the holders answer
//! with flooded *public-key-switching* shares (same budget charge as a decryption share). The
//! coordinator combines them into a ciphertext under the researcher's key
//! ([`ReleaseStep::Switched`]); it never holds the plaintext. The researcher decrypts it locally
//! and applies the disclosure control itself ([`decrypt_switched`]).
//!
//! **Signed by the researcher** ([`ReleaseInputs::request`]): every offer carries the researcher's
//! signed request ([`crate::he_request`]); a holder refuses an offer that the study's researcher
//! did not sign or that differs from it (another round, another target key, a decryption where a
//! switch was asked for).
//!
//! **Co-signed by the sites** ([`crate::he_cosign`]): once the shares have made the result, the
//! holders that accepted are asked ([`step::RELEASE_SIGN_START`]) to FROST-sign a
//! [`StoreReleaseDocument`] naming the release (for a plain release with the finished result; for
//! a key switch with the digest of the returned ciphertext), through the live release's `frost`
//! commitment / request / share steps. The release ends only with that signature.
//!
//! Only descriptive studies are released this way (their encrypted round is the final result,
//! finished with the same disclosure control as the live release); a model study's rounds are
//! intermediate sums that sites refuse to release alone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use seh_crypto::frost::sign::{SignatureShare, SigningCommitment, SigningRequest};
use seh_crypto::he::{DecryptionShare, HeContext, HeVector, ResearcherKey, ResearcherPublicKey};
use seh_crypto::wire::{PartyId, ProtocolId, SessionGuard, SessionId, SigningKey};
use serde::{Deserialize, Serialize};

use crate::coordinator::{aggregate_or_culprits, Outbound, SignOutcome};
use crate::describe::DescribeResult;
use crate::error::ProtocolError;
use crate::federation::Federation;
use crate::he_cosign::{SignedStoreResult, StoreReleaseDocument, StoreReleaseSignStart};
use crate::he_request::SignedStoreRelease;
use crate::he_wire::{he_error, step};
use crate::messages::{self, frost_step};
use crate::spec::{Analysis, SignedStudy};

/// Offer of a release from the encrypted store (coordinator → holder).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeReleaseOffer {
    /// The study (each holder re-applies its policy).
    pub study: SignedStudy,
    /// The stored encrypted round.
    pub round: u32,
    /// The sites whose ciphertexts are summed (party ids, ascending): every stored one.
    pub sites: Vec<u32>,
    /// Ciphertexts in the sum (what one decryption share charges to the budget).
    pub ciphertexts: u32,
    /// Digest (hex) of the collective key the round was encrypted under.
    pub key_digest: String,
    /// For a key switch: the digest (hex, `ResearcherPublicKey::digest`) of the researcher's BFV
    /// public key the result is switched to; absent for a decryption to the coordinator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_researcher_key: Option<String>,
    /// The researcher's signed request, forwarded unchanged: each holder checks it
    /// ([`SignedStoreRelease::check_offer`]) and refuses an offer the researcher did not sign.
    pub request: SignedStoreRelease,
}

/// A holder's answer to a [`HeReleaseOffer`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeReleaseAnswer {
    /// True: the holder will give a decryption share.
    pub accept: bool,
    /// Why not (empty when accepted); never a value or a key.
    pub reason: String,
}

/// What a release asks the runtime to do next.
#[derive(Debug)]
pub enum ReleaseStep {
    /// Send these and wait for the parties of [`Release::waiting_for`].
    Send(Vec<Outbound>),
    /// The decrypted sum (two's-complement words, as the live round gives them).
    Done {
        /// The sum of the stored round.
        sum: Vec<u64>,
        /// The finished result ([`describe_result`] with the sites' minimum cell count).
        result: DescribeResult,
        /// The holders whose shares decrypted it.
        decryptors: Vec<PartyId>,
        /// The sites' co-signature on the [`StoreReleaseDocument`] carrying `result`.
        signed: SignedStoreResult,
    },
    /// A key switch: the sum as a ciphertext under the researcher's key (`HeVector` bytes);
    /// only the researcher's secret key decrypts it ([`decrypt_switched`]).
    Switched {
        /// `HeVector::to_bytes` of the switched sum.
        ciphertext: Vec<u8>,
        /// The holders whose key-switching shares made it.
        decryptors: Vec<PartyId>,
        /// The sites' co-signature on the [`StoreReleaseDocument`] naming the ciphertext's digest.
        signed: SignedStoreResult,
    },
}

/// The result before it is co-signed.
enum Outcome {
    Plain { sum: Vec<u64>, result: DescribeResult, decryptors: Vec<PartyId> },
    Switched { ciphertext: Vec<u8>, decryptors: Vec<PartyId> },
}

enum Stage {
    Offer(BTreeMap<PartyId, HeReleaseAnswer>),
    Shares {
        willing: Vec<PartyId>,
        decryptors: Vec<PartyId>,
        shares: BTreeMap<PartyId, DecryptionShare>,
        failed: BTreeSet<PartyId>,
        requests: u32,
    },
    Commit {
        document: String,
        outcome: Outcome,
        asked: Vec<PartyId>,
        commitments: BTreeMap<PartyId, SigningCommitment>,
    },
    Sign {
        document: String,
        outcome: Outcome,
        /// The co-signers asked to commit (a bad signer is left out of the next attempt).
        asked: Vec<PartyId>,
        request: SigningRequest,
        shares: BTreeMap<PartyId, SignatureShare>,
    },
    Done,
}

/// One release from the encrypted store.
pub struct Release {
    ctx: HeContext,
    fed: Arc<Federation>,
    key: SigningKey,
    session: SessionId,
    threshold: usize,
    candidates: Vec<PartyId>,
    agg: HeVector,
    target: Option<ResearcherPublicKey>,
    guard: SessionGuard,
    stage: Stage,
    refusals: BTreeMap<PartyId, String>,
    /// Co-signers left out after an invalid signature share.
    excluded_signers: BTreeSet<PartyId>,
    study: SignedStudy,
    stored_round: u32,
    contributors: Vec<PartyId>,
    min_cell_count: u64,
    request_sha256: String,
}

impl std::fmt::Debug for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Release").field("session", &self.session).finish_non_exhaustive()
    }
}

/// Inputs of [`Release::start`].
#[derive(Debug)]
pub struct ReleaseInputs<'a> {
    /// The signed study (descriptive, `aggregation = "he"`).
    pub study: &'a SignedStudy,
    /// A fresh session of the study: its round must exceed every round the study used.
    pub session: SessionId,
    /// The stored round.
    pub round: u32,
    /// The stored ciphertexts of that round, `(site, HeVector bytes)` (all of them are summed).
    pub items: &'a [(PartyId, Vec<u8>)],
    /// Digest of the collective key the round was encrypted under.
    pub key_digest: [u8; 32],
    /// Holders to ask (the study's accepting sites).
    pub candidates: &'a [PartyId],
    /// `Some`: switch the result to this researcher public key instead of decrypting it.
    pub target: Option<&'a ResearcherPublicKey>,
    /// The researcher's signed request (forwarded in every offer; the holders check it).
    pub request: &'a SignedStoreRelease,
    /// The sites' minimum cell count (the largest over the accepting sites' policies): applied
    /// to a plain result, named in the co-signed document of a key switch.
    pub min_cell_count: u64,
}

impl Release {
    /// Re-adds the stored ciphertexts and offers the release to every candidate.
    ///
    /// Errors: a study that is not a descriptive `he` study, fewer than `t` stored ciphertexts
    /// or candidates, a stored ciphertext that does not parse (naming its site).
    pub fn start(
        fed: Arc<Federation>,
        key: SigningKey,
        inputs: ReleaseInputs<'_>,
    ) -> Result<(Release, Vec<Outbound>), ProtocolError> {
        let spec = inputs.study.unverified_spec()?;
        if !matches!(spec.analysis, Analysis::Describe(_)) {
            return Err(ProtocolError::invalid(
                "release from the encrypted store",
                "analysis",
                "only descriptive studies are released from the store (model rounds are intermediate sums)",
            ));
        }
        if spec.aggregation != crate::spec::Aggregation::He {
            return Err(ProtocolError::invalid("release from the encrypted store", "aggregation", "not `he`"));
        }
        let t = spec.threshold as usize;
        if inputs.items.len() < t || inputs.candidates.len() < t {
            return Err(ProtocolError::invalid(
                "release from the encrypted store",
                "sites",
                format!("{} stored ciphertexts and {} holders; t = {t}", inputs.items.len(), inputs.candidates.len()),
            ));
        }
        let ctx = crate::he_site::context()?;
        let agg = crate::he_coord::reaggregate(&ctx, inputs.items, None)?;
        let offer = HeReleaseOffer {
            study: inputs.study.clone(),
            round: inputs.round,
            sites: inputs.items.iter().map(|(p, _)| p.0).collect(),
            ciphertexts: agg.ciphertexts() as u32,
            key_digest: crate::hex::encode(&inputs.key_digest),
            to_researcher_key: inputs.target.map(|k| crate::hex::encode(&k.digest(&ctx))),
            request: inputs.request.clone(),
        };
        let mut candidates = inputs.candidates.to_vec();
        candidates.sort();
        candidates.dedup();
        let r = Release {
            ctx,
            fed,
            key,
            session: inputs.session,
            threshold: t,
            candidates: candidates.clone(),
            agg,
            target: inputs.target.cloned(),
            guard: SessionGuard::new(inputs.session, 8),
            stage: Stage::Offer(BTreeMap::new()),
            refusals: BTreeMap::new(),
            excluded_signers: BTreeSet::new(),
            study: inputs.study.clone(),
            stored_round: inputs.round,
            contributors: inputs.items.iter().map(|(p, _)| *p).collect(),
            min_cell_count: inputs.min_cell_count,
            request_sha256: inputs.request.digest(),
        };
        let payload = messages::to_payload(&offer);
        let out = candidates
            .iter()
            .map(|p| r.outbound(*p, ProtocolId::ThresholdBfv, step::RELEASE_OFFER, payload.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((r, out))
    }

    fn outbound(
        &self,
        to: PartyId,
        protocol: ProtocolId,
        step: u8,
        payload: Vec<u8>,
    ) -> Result<Outbound, ProtocolError> {
        let bytes = messages::seal(&self.key, protocol, step, PartyId::COORDINATOR, to, self.session, payload)?;
        Ok(Outbound { to, round: self.session.round, kind: messages::kind_label(protocol, step), bytes })
    }

    fn name(&self, p: PartyId) -> String {
        self.fed.site(p).map_or_else(|| p.to_string(), |s| s.name.clone())
    }

    /// The session of this release.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// Co-signers left out of the co-signature because they sent an invalid signature share (the
    /// others signed again without them).
    pub fn excluded_signers(&self) -> &BTreeSet<PartyId> {
        &self.excluded_signers
    }

    /// Holders that refused, with their reasons.
    pub fn refusals(&self) -> &BTreeMap<PartyId, String> {
        &self.refusals
    }

    /// The parties whose message the current step waits for.
    pub fn waiting_for(&self) -> Vec<PartyId> {
        match &self.stage {
            Stage::Offer(answers) => self.candidates.iter().filter(|p| !answers.contains_key(p)).copied().collect(),
            Stage::Shares { decryptors, shares, .. } => {
                decryptors.iter().filter(|p| !shares.contains_key(p)).copied().collect()
            }
            Stage::Commit { asked, commitments, .. } => {
                asked.iter().filter(|p| !commitments.contains_key(p)).copied().collect()
            }
            Stage::Sign { request, shares, .. } => {
                request.signers().into_iter().filter(|p| !shares.contains_key(p)).collect()
            }
            Stage::Done => Vec::new(),
        }
    }

    /// Takes a signed envelope from site `from` (the transport-authenticated sender). Errors name
    /// `from`: a bad signature, another session, a replay, a message of another step, a share
    /// that does not parse.
    pub fn receive(&mut self, from: PartyId, bytes: &[u8]) -> Result<(), ProtocolError> {
        let env = messages::open(bytes, self.fed.roster())?;
        let unexpected = |reason: &str| ProtocolError::Unexpected { party: from, reason: reason.to_owned() };
        if env.sender != from || env.recipient != PartyId::COORDINATOR {
            return Err(unexpected("message not from its transport sender or not for the coordinator"));
        }
        self.guard.check(&env)?;
        let frost_error = |e: seh_crypto::frost::FrostError| ProtocolError::Unexpected {
            party: from,
            reason: format!("release co-signature: {e}"),
        };
        match &mut self.stage {
            Stage::Commit { asked, commitments, .. }
                if env.protocol == ProtocolId::Frost && env.step == frost_step::COMMITMENT =>
            {
                if !asked.contains(&from) {
                    return Err(unexpected("signing commitment from a party that was not asked"));
                }
                commitments.insert(from, SigningCommitment::decode(&env.payload).map_err(frost_error)?);
                return Ok(());
            }
            Stage::Sign { request, shares, .. }
                if env.protocol == ProtocolId::Frost && env.step == frost_step::SHARE =>
            {
                if !request.signers().contains(&from) {
                    return Err(unexpected("signature share from a party that was not asked"));
                }
                shares.insert(from, SignatureShare::decode(&env.payload).map_err(frost_error)?);
                return Ok(());
            }
            _ => {}
        }
        if env.protocol != ProtocolId::ThresholdBfv {
            return Err(unexpected("not a threshold-HE message"));
        }
        match &mut self.stage {
            Stage::Offer(answers) if env.step == step::RELEASE_ANSWER && self.candidates.contains(&from) => {
                let a: HeReleaseAnswer = messages::from_payload("release answer", &env.payload)?;
                if !a.accept {
                    self.refusals.insert(from, a.reason.chars().take(300).collect());
                }
                answers.insert(from, a);
                Ok(())
            }
            Stage::Shares { decryptors, shares, .. } if env.step == step::DECRYPTION_SHARE => {
                if !decryptors.contains(&from) {
                    return Err(unexpected("decryption share from a party that was not asked"));
                }
                let share = DecryptionShare::from_bytes(&self.ctx, &env.payload, from).map_err(he_error)?;
                shares.insert(from, share);
                Ok(())
            }
            _ => Err(unexpected("release message out of order")),
        }
    }

    /// Closes the current step (all answered, or the runtime's timeout): after the offer, asks
    /// the first `t` accepting holders for shares; after the shares, decrypts, or asks again
    /// without a failed decryptor. Errors when fewer than `t` holders accept or can decrypt
    /// (naming the refusals).
    pub fn close(&mut self) -> Result<ReleaseStep, ProtocolError> {
        let t = self.threshold;
        let fail = |reason: String| ProtocolError::invalid("release from the encrypted store", "holders", reason);
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Offer(answers) => {
                let willing: Vec<PartyId> = answers.iter().filter(|(_, a)| a.accept).map(|(p, _)| *p).collect();
                if willing.len() < t {
                    return Err(fail(format!(
                        "{} of the t = {t} holders needed accepted{}",
                        willing.len(),
                        self.refusal_text()
                    )));
                }
                let decryptors = willing[..t].to_vec();
                self.request(willing, decryptors, BTreeSet::new(), 0)
            }
            Stage::Shares { willing, decryptors, shares, mut failed, requests } => {
                if decryptors.iter().all(|p| shares.contains_key(p)) {
                    let list: Vec<DecryptionShare> = decryptors.iter().filter_map(|p| shares.get(p).cloned()).collect();
                    let outcome = if self.target.is_some() {
                        let switched = self.agg.key_switch(&self.ctx, &decryptors, &list).map_err(he_error)?;
                        let ciphertext = switched.to_bytes(&self.ctx).map_err(he_error)?;
                        Outcome::Switched { ciphertext, decryptors }
                    } else {
                        let values = self.agg.threshold_decrypt(&self.ctx, &decryptors, &list).map_err(he_error)?;
                        let sum: Vec<u64> = values.into_iter().map(|v| v as u64).collect();
                        let result = describe_result(&self.study, &sum, self.min_cell_count)?;
                        Outcome::Plain { sum, result, decryptors }
                    };
                    // Co-signers: every holder that accepted and did not fail.
                    let signers: Vec<PartyId> = willing.iter().filter(|p| !failed.contains(p)).copied().collect();
                    return self.sign_start(outcome, signers);
                }
                failed.extend(decryptors.iter().filter(|p| !shares.contains_key(p)));
                let mut next: Vec<PartyId> = decryptors.iter().filter(|p| shares.contains_key(p)).copied().collect();
                let others: Vec<PartyId> =
                    willing.iter().filter(|p| !failed.contains(p) && !next.contains(p)).copied().collect();
                next.extend(others);
                if requests >= crate::he_coord::MAX_REQUESTS || next.len() < t {
                    let names: Vec<String> = failed.iter().map(|p| p.to_string()).collect();
                    return Err(fail(format!(
                        "fewer than t = {t} accepting holders gave a decryption share (failed: {})",
                        names.join(", ")
                    )));
                }
                next.truncate(t);
                next.sort();
                self.request(willing, next, failed, requests)
            }
            Stage::Commit { document, outcome, commitments, asked } => {
                let need = usize::from(self.fed.frost_threshold);
                if commitments.len() < need {
                    return Err(fail(format!(
                        "{} of the {need} co-signers needed committed: the release is not co-signed",
                        commitments.len()
                    )));
                }
                let request = SigningRequest::new(&commitments, &crate::he_cosign::signing_message(&document))?;
                let payload = request.encode()?;
                let out = commitments
                    .keys()
                    .map(|p| self.outbound(*p, ProtocolId::Frost, frost_step::REQUEST, payload.clone()))
                    .collect::<Result<Vec<_>, _>>()?;
                self.stage = Stage::Sign { document, outcome, asked, request, shares: BTreeMap::new() };
                Ok(ReleaseStep::Send(out))
            }
            Stage::Sign { document, outcome, asked, request, shares } => {
                if shares.len() < request.signers().len() {
                    return Err(fail(
                        "a co-signer did not return its signature share: the release is not co-signed".into(),
                    ));
                }
                let sig = match aggregate_or_culprits(&request, &shares, &self.fed.frost_group) {
                    SignOutcome::Signed(sig) => sig,
                    // Named bad signers are left out; the others co-sign again (same document).
                    SignOutcome::Culprits(bad, reason) => {
                        let left: Vec<PartyId> = asked.into_iter().filter(|p| !bad.contains(p)).collect();
                        let names: Vec<String> = bad.iter().map(|p| self.name(*p)).collect();
                        if left.len() < usize::from(self.fed.frost_threshold) {
                            return Err(fail(format!(
                                "fewer than the {} co-signers needed are left after excluding {} ({reason}): the \
                                 release is not co-signed",
                                self.fed.frost_threshold,
                                names.join(", ")
                            )));
                        }
                        self.excluded_signers.extend(bad);
                        return self.sign_start(outcome, left);
                    }
                    SignOutcome::Failed(reason) => return Err(fail(format!("co-signature: {reason}"))),
                };
                let signed = SignedStoreResult {
                    document,
                    signature: crate::hex::encode(&sig.to_bytes()),
                    signers: shares.keys().map(|p| self.name(*p)).collect(),
                };
                Ok(match outcome {
                    Outcome::Plain { sum, result, decryptors } => ReleaseStep::Done { sum, result, decryptors, signed },
                    Outcome::Switched { ciphertext, decryptors } => {
                        ReleaseStep::Switched { ciphertext, decryptors, signed }
                    }
                })
            }
            Stage::Done => Err(fail("the release is finished".into())),
        }
    }

    /// Builds the document to co-sign and sends it to `signers`.
    fn sign_start(&mut self, outcome: Outcome, signers: Vec<PartyId>) -> Result<ReleaseStep, ProtocolError> {
        let spec = self.study.unverified_spec()?;
        let (decryptors, result, researcher_key, ciphertext_sha256) = match &outcome {
            Outcome::Plain { result, decryptors, .. } => (decryptors, Some(result.clone()), None, None),
            Outcome::Switched { ciphertext, decryptors } => (
                decryptors,
                None,
                self.target.as_ref().map(|k| crate::hex::encode(&k.digest(&self.ctx))),
                Some(crate::he_cosign::sha256_hex(ciphertext)),
            ),
        };
        let doc = StoreReleaseDocument {
            study_id: spec.study_id.clone(),
            spec_sha256: self.study.digest(),
            stored_round: self.stored_round,
            session_round: self.session.round,
            request_sha256: self.request_sha256.clone(),
            contributors: self.contributors.iter().map(|p| self.name(*p)).collect(),
            decryptors: decryptors.iter().map(|p| self.name(*p)).collect(),
            min_cell_count: self.min_cell_count,
            result,
            researcher_key,
            ciphertext_sha256,
        };
        let document = doc.to_json()?;
        let payload = messages::to_payload(&StoreReleaseSignStart { document: document.clone() });
        let out = signers
            .iter()
            .map(|p| self.outbound(*p, ProtocolId::ThresholdBfv, step::RELEASE_SIGN_START, payload.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        self.stage = Stage::Commit { document, outcome, asked: signers, commitments: BTreeMap::new() };
        Ok(ReleaseStep::Send(out))
    }

    fn refusal_text(&self) -> String {
        if self.refusals.is_empty() {
            return String::new();
        }
        let list: Vec<String> = self.refusals.iter().map(|(p, r)| format!("party {p}: {r}")).collect();
        format!(" (refused — {})", list.join("; "))
    }

    fn request(
        &mut self,
        willing: Vec<PartyId>,
        decryptors: Vec<PartyId>,
        failed: BTreeSet<PartyId>,
        requests: u32,
    ) -> Result<ReleaseStep, ProtocolError> {
        let req = match &self.target {
            Some(k) => self.agg.key_switch_request(&decryptors, k),
            None => self.agg.decrypt_request(&decryptors),
        };
        let payload = req.to_bytes(&self.ctx);
        let out = decryptors
            .iter()
            .map(|p| self.outbound(*p, ProtocolId::ThresholdBfv, step::SHARE_REQUEST, payload.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        self.stage = Stage::Shares { willing, decryptors, shares: BTreeMap::new(), failed, requests: requests + 1 };
        Ok(ReleaseStep::Send(out))
    }
}

/// Finishes a released descriptive sum exactly as the live release does (means, variances,
/// histograms, and the sites' minimum cell count applied): the result the researcher receives.
///
/// Errors: a study that is not descriptive, or a sum that does not fit the study's layout.
pub fn describe_result(
    study: &SignedStudy,
    sum: &[u64],
    min_cell_count: u64,
) -> Result<crate::describe::DescribeResult, ProtocolError> {
    let spec = study.unverified_spec()?;
    let Analysis::Describe(d) = &spec.analysis else {
        return Err(ProtocolError::invalid("release from the encrypted store", "analysis", "not descriptive"));
    };
    crate::policy::release_describe(&spec, d, sum, min_cell_count)
}

/// The researcher's side of a key-switched release: decrypts `ciphertext` (the
/// [`ReleaseStep::Switched`] bytes) with the researcher's secret `key` and finishes the sum as
/// [`describe_result`] does, applying `min_cell_count` (the sites' minimum cell count, as the
/// coordinator reports it) exactly as the plain release does.
///
/// Errors: a ciphertext that does not parse or is of another parameter set, or a study that is not
/// descriptive or does not fit the sum. A ciphertext switched to *another* researcher key cannot
/// be detected here (it decrypts to noise); callers compare the key digest first.
pub fn decrypt_switched(
    study: &SignedStudy,
    ciphertext: &[u8],
    key: &ResearcherKey,
    min_cell_count: u64,
) -> Result<crate::describe::DescribeResult, ProtocolError> {
    let ctx = crate::he_site::context()?;
    let ct = HeVector::from_bytes(&ctx, ciphertext, Some(PartyId::COORDINATOR)).map_err(he_error)?;
    let values = key.decrypt(&ct).map_err(he_error)?;
    let sum: Vec<u64> = values.into_iter().map(|v| v as u64).collect();
    describe_result(study, &sum, min_cell_count)
}

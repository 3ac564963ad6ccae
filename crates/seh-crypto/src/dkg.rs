//! Pedersen/Feldman distributed key generation (joint-Feldman) of the
//! federation's threshold-ElGamal **decryption** key on ristretto255. This
//! key is separate from the FROST signing key ([`crate::frost`]).
//!
//! 1. [`deal`]: every party `j` picks a random secret `a_j0`, deals it t-of-n
//!    with [`crate::shamir::deal`], broadcasts a [`DkgBroadcast`] (Feldman
//!    commitments plus a Schnorr proof of knowledge of `a_j0`, bound to the
//!    session and dealer, which stops rogue-key copying) and sends each peer
//!    its [`DkgShare`] **encrypted, point to point**.
//! 2. [`check_dealing`]: each recipient checks the proof and its share
//!    against the dealer's commitments; a failure is a [`DkgError`] naming the
//!    dealer, to be broadcast as a [`Complaint`].
//! 3. A dealer answers a complaint with a public [`Justification`] (the share
//!    in the clear, [`DealerSecret::justify`]); everyone checks it with
//!    [`check_justification`]. Dealers with an unanswered or bad answer are
//!    disqualified; the rest form the *qualified set* `Q`.
//! 4. [`finish`]: the group key is `Y = Σ_{j∈Q} C_j0`, party `i`'s key share
//!    is `x_i = Σ_{j∈Q} f_j(i)`, and everyone can compute the verification
//!    key `Y_i = x_i·G = Σ_{j∈Q} Σ_k i^k C_jk` of every party from public data.
//!
//! Known limitation (Gennaro et al. 1999): a rushing adversary can bias the
//! distribution of `Y`; threshold ElGamal remains secure with such a key
//! (Gennaro et al. 2003), which is how it is used here.

use crate::elgamal::proof::{prove_dlog, verify_dlog, Proof};
use crate::error::{ShamirError, WireError};
use crate::shamir::{self, Commitments, SecretShare, SHARE_LEN};
use crate::wire::{PartyId, Reader, Writer};
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand::{CryptoRng, RngCore};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop};

const POK_DST: &[u8] = b"SEH-DKG-v1/ristretto255/proof-of-knowledge";

/// DKG errors. Peer-caused variants name the dealer; see [`DkgError::culprit`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DkgError {
    /// Bad configuration (API misuse).
    #[error("invalid DKG configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// The dealer's proof of knowledge of its secret does not verify.
    #[error("dealer {dealer}: invalid proof of knowledge")]
    InvalidProof {
        /// The dealer.
        dealer: PartyId,
    },
    /// The dealer's commitments have the wrong length.
    #[error("dealer {dealer}: {got} commitments, threshold is {threshold}")]
    WrongThreshold {
        /// The dealer.
        dealer: PartyId,
        /// Commitments received.
        got: usize,
        /// Expected threshold.
        threshold: usize,
    },
    /// A share (or justification) does not match the dealer's commitments.
    #[error("dealer {dealer}: share for {recipient} does not match the commitments")]
    InvalidShare {
        /// The dealer.
        dealer: PartyId,
        /// The share's recipient.
        recipient: PartyId,
    },
    /// A qualified dealer's broadcast or share is missing.
    #[error("missing {what} from dealer {dealer}")]
    Missing {
        /// The dealer.
        dealer: PartyId,
        /// Which message.
        what: &'static str,
    },
    /// Fewer qualified dealers than the threshold remain; abort.
    #[error("only {qualified} qualified dealers, threshold is {threshold}")]
    TooFewQualified {
        /// Qualified dealers.
        qualified: usize,
        /// Threshold.
        threshold: usize,
    },
    /// A Shamir-level error.
    #[error(transparent)]
    Shamir(#[from] ShamirError),
    /// A wire decoding error.
    #[error(transparent)]
    Wire(#[from] WireError),
}

impl DkgError {
    /// The misbehaving dealer, if a peer is at fault.
    pub fn culprit(&self) -> Option<PartyId> {
        match self {
            DkgError::InvalidProof { dealer }
            | DkgError::WrongThreshold { dealer, .. }
            | DkgError::InvalidShare { dealer, .. }
            | DkgError::Missing { dealer, .. } => Some(*dealer),
            DkgError::Wire(w) => w.culprit(),
            _ => None,
        }
    }
}

/// Public parameters every party must agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkgConfig {
    parties: Vec<PartyId>,
    threshold: usize,
    context: Vec<u8>,
}

impl DkgConfig {
    /// `parties` (distinct site ids), threshold `2 <= t <= n`, and a session
    /// `context` (study id, key epoch) bound into every proof.
    pub fn new(parties: &[PartyId], threshold: usize, context: &[u8]) -> Result<Self, DkgError> {
        let set: BTreeSet<PartyId> = parties.iter().copied().collect();
        if set.len() != parties.len() || parties.iter().any(|p| !p.is_site()) {
            return Err(DkgError::InvalidConfig { reason: "parties must be distinct site ids" });
        }
        if threshold < 2 || threshold > parties.len() {
            return Err(DkgError::InvalidConfig { reason: "threshold must satisfy 2 <= t <= n" });
        }
        Ok(Self { parties: set.into_iter().collect(), threshold, context: context.to_vec() })
    }

    /// The parties, ascending.
    pub fn parties(&self) -> &[PartyId] {
        &self.parties
    }

    /// The threshold `t`.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    fn pok_context(&self, dealer: PartyId) -> Vec<u8> {
        let mut c = self.context.clone();
        c.extend_from_slice(&dealer.0.to_be_bytes());
        c.extend_from_slice(&(self.threshold as u32).to_be_bytes());
        c
    }

    fn check_member(&self, p: PartyId) -> Result<(), DkgError> {
        if self.parties.binary_search(&p).is_err() {
            return Err(DkgError::InvalidConfig { reason: "party is not in the configuration" });
        }
        Ok(())
    }
}

/// A dealer's broadcast: Feldman commitments and proof of knowledge of `a_j0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkgBroadcast {
    /// `C_jk = a_jk·G`, `k = 0..t`.
    pub commitments: Commitments,
    /// Schnorr proof of knowledge of `a_j0`.
    pub pok: Proof,
}

/// A share from a dealer to one recipient. Confidential: send encrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct DkgShare(pub SecretShare);

impl fmt::Debug for DkgShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DkgShare {{ recipient: {:?}, value: <redacted> }}", self.0.index())
    }
}

/// Broadcast by a recipient whose share from `dealer` failed [`check_dealing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Complaint {
    /// The accused dealer.
    pub dealer: PartyId,
}

/// A dealer's public answer to a complaint: the complainer's share in the clear.
#[derive(Clone, PartialEq, Eq)]
pub struct Justification {
    /// The revealed share (its index is the complainer).
    pub share: SecretShare,
}

impl fmt::Debug for Justification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Justification {{ recipient: {:?} }}", self.share.index())
    }
}

/// The dealer's secret state: every share it dealt (to answer complaints),
/// including its own. Zeroized on drop; `Debug` is redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DealerSecret {
    #[zeroize(skip)]
    me: PartyId,
    shares: Vec<SecretShare>,
}

impl fmt::Debug for DealerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DealerSecret {{ me: {:?}, shares: <redacted> }}", self.me)
    }
}

impl DealerSecret {
    /// The share this dealer gave itself.
    pub fn own_share(&self) -> Option<&SecretShare> {
        self.shares.iter().find(|s| s.index() == self.me)
    }

    /// Answer `complainer`'s complaint by revealing its share publicly.
    pub fn justify(&self, complainer: PartyId) -> Option<Justification> {
        self.shares.iter().find(|s| s.index() == complainer).map(|s| Justification { share: s.clone() })
    }
}

/// Step 1: deal a fresh random secret. Returns the state to keep, the
/// broadcast, and one confidential share per other party.
pub fn deal<R: RngCore + CryptoRng>(
    config: &DkgConfig,
    me: PartyId,
    rng: &mut R,
) -> Result<(DealerSecret, DkgBroadcast, BTreeMap<PartyId, DkgShare>), DkgError> {
    config.check_member(me)?;
    let mut secret = Scalar::random(rng);
    let dealing = shamir::deal(&secret, config.threshold, &config.parties, rng)?;
    let pok = prove_dlog(POK_DST, &config.pok_context(me), &secret, rng);
    secret.zeroize();
    let out = dealing.shares.iter().filter(|s| s.index() != me).map(|s| (s.index(), DkgShare(s.clone()))).collect();
    Ok((DealerSecret { me, shares: dealing.shares }, DkgBroadcast { commitments: dealing.commitments, pok }, out))
}

/// Step 2 (recipient `me`): check `dealer`'s broadcast and the share it sent us.
///
/// # Errors
/// Names the dealer: [`DkgError::InvalidProof`], [`DkgError::WrongThreshold`],
/// [`DkgError::InvalidShare`], or [`DkgError::Missing`] if `share` is `None`.
pub fn check_dealing(
    config: &DkgConfig,
    me: PartyId,
    dealer: PartyId,
    broadcast: &DkgBroadcast,
    share: Option<&DkgShare>,
) -> Result<(), DkgError> {
    check_broadcast(config, dealer, broadcast)?;
    let share = share.ok_or(DkgError::Missing { dealer, what: "share" })?;
    if share.0.index() != me {
        return Err(DkgError::InvalidShare { dealer, recipient: me });
    }
    broadcast.commitments.verify(dealer, &share.0).map_err(|_| DkgError::InvalidShare { dealer, recipient: me })
}

fn check_broadcast(config: &DkgConfig, dealer: PartyId, b: &DkgBroadcast) -> Result<(), DkgError> {
    config.check_member(dealer)?;
    if b.commitments.threshold() != config.threshold {
        return Err(DkgError::WrongThreshold { dealer, got: b.commitments.threshold(), threshold: config.threshold });
    }
    if !verify_dlog(POK_DST, &config.pok_context(dealer), &b.commitments.public_secret(), &b.pok) {
        return Err(DkgError::InvalidProof { dealer });
    }
    Ok(())
}

/// Step 3 (everyone): check `dealer`'s justification for `complainer`.
/// On success the complainer uses the revealed share; on failure the dealer
/// is disqualified.
pub fn check_justification(
    config: &DkgConfig,
    dealer: PartyId,
    complainer: PartyId,
    broadcast: &DkgBroadcast,
    justification: &Justification,
) -> Result<(), DkgError> {
    check_broadcast(config, dealer, broadcast)?;
    if justification.share.index() != complainer {
        return Err(DkgError::InvalidShare { dealer, recipient: complainer });
    }
    broadcast
        .commitments
        .verify(dealer, &justification.share)
        .map_err(|_| DkgError::InvalidShare { dealer, recipient: complainer })
}

/// The threshold-ElGamal public key: group key `Y`, threshold, and every
/// party's verification key `Y_i = x_i·G` (to check decryption shares).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdPublicKey {
    /// `t`.
    pub threshold: usize,
    /// `Y`.
    pub key: RistrettoPoint,
    /// `Y_i` per party.
    pub verification_keys: BTreeMap<PartyId, RistrettoPoint>,
}

/// A party's decryption key share `x_i`. Zeroized on drop; `Debug` redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DecryptionKeyShare {
    #[zeroize(skip)]
    party: PartyId,
    secret: Scalar,
}

impl fmt::Debug for DecryptionKeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DecryptionKeyShare {{ party: {:?}, secret: <redacted> }}", self.party)
    }
}

impl DecryptionKeyShare {
    /// The owner.
    pub fn party(&self) -> PartyId {
        self.party
    }

    pub(crate) fn secret(&self) -> &Scalar {
        &self.secret
    }

    /// Build from a raw share (trusted-dealer tests; key backup restore).
    pub fn from_share(share: &SecretShare) -> Self {
        Self { party: share.index(), secret: *share.value() }
    }
}

/// Step 4 (party `me`): combine the qualified dealers' contributions.
///
/// `broadcasts` must hold every qualified dealer's broadcast; `received`
/// the (possibly justified) share each other qualified dealer gave us.
/// Everything is re-verified; errors name the dealer.
pub fn finish(
    config: &DkgConfig,
    me: PartyId,
    own: &DealerSecret,
    qualified: &BTreeSet<PartyId>,
    broadcasts: &BTreeMap<PartyId, DkgBroadcast>,
    received: &BTreeMap<PartyId, DkgShare>,
) -> Result<(DecryptionKeyShare, ThresholdPublicKey), DkgError> {
    config.check_member(me)?;
    if qualified.len() < config.threshold {
        return Err(DkgError::TooFewQualified { qualified: qualified.len(), threshold: config.threshold });
    }
    let mut secret = Scalar::ZERO;
    let mut sum: Option<Commitments> = None;
    for &dealer in qualified {
        let b = broadcasts.get(&dealer).ok_or(DkgError::Missing { dealer, what: "broadcast" })?;
        if dealer == me {
            check_broadcast(config, dealer, b)?;
            let s = own.own_share().ok_or(DkgError::Missing { dealer, what: "own share" })?;
            b.commitments.verify(dealer, s).map_err(|_| DkgError::InvalidShare { dealer, recipient: me })?;
            secret += s.value();
        } else {
            let s = received.get(&dealer);
            check_dealing(config, me, dealer, b, s)?;
            if let Some(s) = s {
                secret += s.0.value();
            }
        }
        sum = Some(match sum {
            None => b.commitments.clone(),
            Some(acc) => acc.add(&b.commitments, dealer)?,
        });
    }
    let sum = sum.ok_or(DkgError::TooFewQualified { qualified: 0, threshold: config.threshold })?;
    let mut verification_keys = BTreeMap::new();
    for &p in &config.parties {
        verification_keys.insert(p, sum.evaluate(p)?);
    }
    let public = ThresholdPublicKey { threshold: config.threshold, key: sum.public_secret(), verification_keys };
    let share = DecryptionKeyShare { party: me, secret };
    secret.zeroize();
    Ok((share, public))
}

// ---------------------------------------------------------------- wire

impl DkgBroadcast {
    /// Payload: commitments (`u32 t || t × 32`) then the 64-byte proof.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(4 + 32 * self.commitments.threshold() + 64);
        self.commitments.encode(&mut w);
        w.raw(&self.pok.to_bytes());
        w.into_bytes()
    }

    /// Strict decoding of a payload from `sender`, expecting `threshold` commitments.
    pub fn decode(bytes: &[u8], sender: PartyId, threshold: usize) -> Result<Self, DkgError> {
        let mut r = Reader::new(bytes, Some(sender));
        let commitments = Commitments::decode(&mut r, Some(threshold))?;
        let pok = Proof::from_bytes(&r.array("pok")?).ok_or_else(|| r.invalid("pok", "non-canonical scalar"))?;
        r.finish("DkgBroadcast")?;
        Ok(Self { commitments, pok })
    }
}

fn decode_share(bytes: &[u8], sender: PartyId, what: &'static str) -> Result<SecretShare, DkgError> {
    let mut r = Reader::new(bytes, Some(sender));
    let raw: [u8; SHARE_LEN] = r.array("share")?;
    r.finish(what)?;
    SecretShare::from_bytes(&raw).map_err(|_| {
        DkgError::Wire(WireError::InvalidField {
            sender: Some(sender),
            field: "share",
            reason: "zero index or non-canonical scalar",
        })
    })
}

impl DkgShare {
    /// Payload (secret; encrypt it): the 36-byte share.
    pub fn encode(&self) -> zeroize::Zeroizing<Vec<u8>> {
        zeroize::Zeroizing::new(self.0.to_bytes().to_vec())
    }

    /// Strict decoding of a payload from `sender`.
    pub fn decode(bytes: &[u8], sender: PartyId) -> Result<Self, DkgError> {
        decode_share(bytes, sender, "DkgShare").map(Self)
    }
}

impl Justification {
    /// Payload: the 36-byte revealed share.
    pub fn encode(&self) -> Vec<u8> {
        self.share.to_bytes().to_vec()
    }

    /// Strict decoding of a payload from `sender`.
    pub fn decode(bytes: &[u8], sender: PartyId) -> Result<Self, DkgError> {
        decode_share(bytes, sender, "Justification").map(|share| Self { share })
    }
}

impl Complaint {
    /// Payload: the accused dealer's id (u32 BE).
    pub fn encode(&self) -> Vec<u8> {
        self.dealer.0.to_be_bytes().to_vec()
    }

    /// Strict decoding of a payload from `sender`.
    pub fn decode(bytes: &[u8], sender: PartyId) -> Result<Self, DkgError> {
        let mut r = Reader::new(bytes, Some(sender));
        let dealer = PartyId(r.u32("dealer")?);
        r.finish("Complaint")?;
        if !dealer.is_site() {
            return Err(r_invalid(sender, "dealer", "not a site id"));
        }
        Ok(Self { dealer })
    }
}

fn r_invalid(sender: PartyId, field: &'static str, reason: &'static str) -> DkgError {
    DkgError::Wire(WireError::InvalidField { sender: Some(sender), field, reason })
}

impl ThresholdPublicKey {
    /// Payload: `u32 t || 32-byte Y || u32 n || n × (u32 party || 32-byte Y_i)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(44 + 36 * self.verification_keys.len());
        w.u32(self.threshold as u32);
        w.raw(self.key.compress().as_bytes());
        w.u32(self.verification_keys.len() as u32);
        for (p, y) in &self.verification_keys {
            w.u32(p.0);
            w.raw(y.compress().as_bytes());
        }
        w.into_bytes()
    }

    /// Strict decoding (ascending distinct site ids, valid points, `2 <= t <= n`).
    pub fn decode(bytes: &[u8], sender: Option<PartyId>) -> Result<Self, DkgError> {
        let mut r = Reader::new(bytes, sender);
        let threshold = r.u32("threshold")? as usize;
        let key = crate::elgamal::proof::decode_point(r.array("key")?)
            .ok_or_else(|| r.invalid("key", "not a valid ristretto255 point"))?;
        let n = r.count_u32("verification_keys.len", shamir::MAX_THRESHOLD)?;
        let mut verification_keys = BTreeMap::new();
        let mut last = 0u32;
        for _ in 0..n {
            let p = r.u32("party")?;
            if p <= last || !PartyId(p).is_site() {
                return Err(r.invalid("party", "ids must be ascending site ids").into());
            }
            last = p;
            let y = crate::elgamal::proof::decode_point(r.array("verification_key")?)
                .ok_or_else(|| r.invalid("verification_key", "not a valid ristretto255 point"))?;
            verification_keys.insert(PartyId(p), y);
        }
        if threshold < 2 || threshold > n {
            return Err(r.invalid("threshold", "must satisfy 2 <= t <= n").into());
        }
        r.finish("ThresholdPublicKey")?;
        Ok(Self { threshold, key, verification_keys })
    }
}

/// Run the whole DKG in one process with all parties honest (tests, demos).
pub fn run_locally<R: RngCore + CryptoRng>(
    config: &DkgConfig,
    rng: &mut R,
) -> Result<(BTreeMap<PartyId, DecryptionKeyShare>, ThresholdPublicKey), DkgError> {
    let mut secrets = BTreeMap::new();
    let mut broadcasts = BTreeMap::new();
    let mut inbox: BTreeMap<PartyId, BTreeMap<PartyId, DkgShare>> = BTreeMap::new();
    for &p in config.parties() {
        let (s, b, out) = deal(config, p, rng)?;
        secrets.insert(p, s);
        broadcasts.insert(p, b);
        for (to, share) in out {
            inbox.entry(to).or_default().insert(p, share);
        }
    }
    let qualified: BTreeSet<PartyId> = config.parties().iter().copied().collect();
    let mut keys = BTreeMap::new();
    let mut public = None;
    for (&p, s) in &secrets {
        let received = inbox.remove(&p).unwrap_or_default();
        let (k, pk) = finish(config, p, s, &qualified, &broadcasts, &received)?;
        keys.insert(p, k);
        public = Some(pk);
    }
    let public = public.ok_or(DkgError::InvalidConfig { reason: "no parties" })?;
    Ok((keys, public))
}

//! Threshold exponential ElGamal on ristretto255 for encrypted counts.
//!
//! * [`encrypt`]: `Enc(m) = (r·G, m·G + r·Y)` for a `u64` count `m` under the
//!   group key `Y` from [`crate::dkg`]. Ciphertexts add component-wise
//!   ([`Ciphertext::homomorphic_add`], `+`, [`sum`]): `Enc(a) + Enc(b) = Enc(a + b)`.
//! * [`decryption_share`]: party `i` publishes `D_i = x_i·c1` with a
//!   Chaum–Pedersen proof that `log_G(Y_i) = log_{c1}(D_i)`, bound by a
//!   Fiat–Shamir transcript to the session context, the party and the
//!   ciphertext.
//! * [`decrypt`]: verify every share (a bad one is reported with its
//!   sender), Lagrange-combine any `t` valid ones to `x·c1`, and recover `m`
//!   from `m·G = c2 − x·c1` by baby-step giant-step within a stated bound
//!   ([`bsgs::BsgsTable`]); a value beyond the bound is an error.
//!
//! Semantic security rests on DDH in ristretto255. The scheme is
//! additively homomorphic and malleable (no CCA security); ciphertexts must
//! travel in signed envelopes. Encryptions are not accompanied by a proof of
//! plaintext range; a site can encrypt any value (the bound check only
//! catches sums beyond the bound).

pub mod bsgs;
pub mod proof;

use crate::dkg::{DecryptionKeyShare, ThresholdPublicKey};
use crate::error::{ShamirError, WireError};
use crate::shamir::Lagrange;
use crate::wire::{PartyId, Reader, Writer};
use bsgs::BsgsTable;
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use proof::{decode_point, prove_dleq, verify_dleq, Proof};
use rand::{CryptoRng, RngCore};
use thiserror::Error;
use zeroize::Zeroize;

const DLEQ_DST: &[u8] = b"SEH-ElGamal-v1/ristretto255/decryption-share-DLEQ";

/// Maximum ciphertexts in one batch message.
pub const MAX_BATCH: usize = 1 << 20;

/// Threshold-ElGamal errors. Peer-caused variants name the party.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ElGamalError {
    /// Bad parameters (API misuse).
    #[error("invalid ElGamal parameters: {reason}")]
    InvalidParameters {
        /// What is wrong.
        reason: &'static str,
    },
    /// The decrypted value is not in `0..=bound`.
    #[error("decrypted value is outside 0..={bound}")]
    OutOfRange {
        /// The bound used.
        bound: u64,
    },
    /// Fewer than `t` valid decryption shares.
    #[error("{valid} valid decryption shares, threshold is {threshold}; invalid from {culprits:?}")]
    NotEnoughValidShares {
        /// Valid shares.
        valid: usize,
        /// Threshold.
        threshold: usize,
        /// Parties whose shares failed verification.
        culprits: Vec<PartyId>,
    },
    /// A decryption share's proof does not verify.
    #[error("invalid decryption share from {party}")]
    InvalidDecryptionShare {
        /// The sender.
        party: PartyId,
    },
    /// A share came from a party without a verification key, or twice.
    #[error("unexpected decryption share from {party}: {reason}")]
    UnexpectedParty {
        /// The sender.
        party: PartyId,
        /// Why.
        reason: &'static str,
    },
    /// Shamir-level failure.
    #[error(transparent)]
    Shamir(#[from] ShamirError),
    /// Wire decoding failure.
    #[error(transparent)]
    Wire(#[from] WireError),
}

impl ElGamalError {
    /// The parties at fault, if peers misbehaved.
    pub fn culprits(&self) -> Vec<PartyId> {
        match self {
            ElGamalError::NotEnoughValidShares { culprits, .. } => culprits.clone(),
            ElGamalError::InvalidDecryptionShare { party } | ElGamalError::UnexpectedParty { party, .. } => {
                vec![*party]
            }
            ElGamalError::Wire(w) => w.culprit().into_iter().collect(),
            _ => vec![],
        }
    }
}

/// An ElGamal ciphertext `(c1, c2) = (r·G, m·G + r·Y)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ciphertext {
    /// `r·G`.
    pub c1: RistrettoPoint,
    /// `m·G + r·Y`.
    pub c2: RistrettoPoint,
}

impl Ciphertext {
    /// The encryption of 0 with randomness 0 (the neutral element of `+`).
    pub fn zero() -> Self {
        Self { c1: RistrettoPoint::default(), c2: RistrettoPoint::default() }
    }

    /// Homomorphic addition: decrypts to the sum of the plaintexts.
    pub fn homomorphic_add(&self, other: &Ciphertext) -> Ciphertext {
        Ciphertext { c1: self.c1 + other.c1, c2: self.c2 + other.c2 }
    }

    /// Re-randomize (same plaintext, fresh randomness), e.g. before forwarding.
    pub fn rerandomize<R: RngCore + CryptoRng>(&self, key: &ThresholdPublicKey, rng: &mut R) -> Ciphertext {
        self.homomorphic_add(&encrypt(key, 0, rng))
    }

    /// 64 bytes: compressed `c1 || c2`.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(self.c1.compress().as_bytes());
        out[32..].copy_from_slice(self.c2.compress().as_bytes());
        out
    }

    /// Strict decoding of [`Self::to_bytes`] (canonical points).
    pub fn from_bytes(bytes: &[u8; 64], sender: Option<PartyId>) -> Result<Self, ElGamalError> {
        let mut r = Reader::new(bytes, sender);
        let c1 = decode_point(r.array("c1")?).ok_or_else(|| r.invalid("c1", "not a valid ristretto255 point"))?;
        let c2 = decode_point(r.array("c2")?).ok_or_else(|| r.invalid("c2", "not a valid ristretto255 point"))?;
        r.finish("Ciphertext")?;
        Ok(Self { c1, c2 })
    }
}

impl std::ops::Add for Ciphertext {
    type Output = Ciphertext;
    fn add(self, rhs: Ciphertext) -> Ciphertext {
        self.homomorphic_add(&rhs)
    }
}

/// The homomorphic sum of `cts` ([`Ciphertext::zero`] if empty).
pub fn sum<'a>(cts: impl IntoIterator<Item = &'a Ciphertext>) -> Ciphertext {
    cts.into_iter().fold(Ciphertext::zero(), |acc, c| acc.homomorphic_add(c))
}

/// Encrypt the count `m` under the group key.
pub fn encrypt<R: RngCore + CryptoRng>(key: &ThresholdPublicKey, m: u64, rng: &mut R) -> Ciphertext {
    let mut r = Scalar::random(rng);
    let ct = Ciphertext {
        c1: RISTRETTO_BASEPOINT_TABLE * &r,
        c2: RISTRETTO_BASEPOINT_TABLE * &Scalar::from(m) + key.key * r,
    };
    r.zeroize();
    ct
}

/// A decryption share `D_i = x_i·c1` with its DLEQ proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecryptionShare {
    /// `x_i·c1`.
    pub d: RistrettoPoint,
    /// Proof that `log_G(Y_i) = log_{c1}(D_i)`.
    pub proof: Proof,
}

fn share_context(context: &[u8], party: PartyId, ct: &Ciphertext) -> Vec<u8> {
    let mut c = Vec::with_capacity(context.len() + 76);
    c.extend_from_slice(&(context.len() as u64).to_be_bytes());
    c.extend_from_slice(context);
    c.extend_from_slice(&party.0.to_be_bytes());
    c.extend_from_slice(&ct.to_bytes());
    c
}

/// Party `key.party()`'s decryption share of `ct` in session `context`.
pub fn decryption_share<R: RngCore + CryptoRng>(
    key: &DecryptionKeyShare,
    ct: &Ciphertext,
    context: &[u8],
    rng: &mut R,
) -> DecryptionShare {
    let d = ct.c1 * key.secret();
    let proof = prove_dleq(DLEQ_DST, &share_context(context, key.party(), ct), key.secret(), &ct.c1, rng);
    DecryptionShare { d, proof }
}

/// Check `party`'s share of `ct`.
///
/// # Errors
/// [`ElGamalError::UnexpectedParty`] if `party` has no verification key;
/// [`ElGamalError::InvalidDecryptionShare`] if the proof fails.
pub fn verify_share(
    key: &ThresholdPublicKey,
    ct: &Ciphertext,
    party: PartyId,
    share: &DecryptionShare,
    context: &[u8],
) -> Result<(), ElGamalError> {
    let y = key
        .verification_keys
        .get(&party)
        .ok_or(ElGamalError::UnexpectedParty { party, reason: "no verification key" })?;
    if verify_dleq(DLEQ_DST, &share_context(context, party, ct), y, &ct.c1, &share.d, &share.proof) {
        Ok(())
    } else {
        Err(ElGamalError::InvalidDecryptionShare { party })
    }
}

/// A successful threshold decryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decryption {
    /// The plaintext (sum of counts).
    pub value: u64,
    /// Parties whose shares were invalid and ignored (exclude them next time).
    pub culprits: Vec<PartyId>,
    /// The parties whose shares were combined.
    pub used: Vec<PartyId>,
}

/// Verify `shares` (keyed by authenticated sender), combine the first `t`
/// valid ones and decode the plaintext within `table.bound()`.
///
/// # Errors
/// [`ElGamalError::NotEnoughValidShares`] (naming the culprits) if fewer than
/// `t` shares verify; [`ElGamalError::OutOfRange`] if the plaintext exceeds
/// the bound.
pub fn decrypt(
    key: &ThresholdPublicKey,
    ct: &Ciphertext,
    shares: &[(PartyId, DecryptionShare)],
    context: &[u8],
    table: &BsgsTable,
) -> Result<Decryption, ElGamalError> {
    let mut culprits = Vec::new();
    let mut valid: Vec<(PartyId, RistrettoPoint)> = Vec::new();
    for (party, share) in shares {
        if valid.iter().any(|(p, _)| p == party) {
            return Err(ElGamalError::UnexpectedParty { party: *party, reason: "duplicate share" });
        }
        match verify_share(key, ct, *party, share, context) {
            Ok(()) => valid.push((*party, share.d)),
            Err(ElGamalError::InvalidDecryptionShare { party }) => culprits.push(party),
            Err(e) => return Err(e),
        }
    }
    if valid.len() < key.threshold {
        return Err(ElGamalError::NotEnoughValidShares { valid: valid.len(), threshold: key.threshold, culprits });
    }
    valid.truncate(key.threshold);
    let used: Vec<PartyId> = valid.iter().map(|(p, _)| *p).collect();
    let lagrange = Lagrange::new(&used)?;
    let xc1 = lagrange.combine_points(&valid)?;
    let value = table.decode(&(ct.c2 - xc1))?;
    Ok(Decryption { value, culprits, used })
}

/// A batch of decryption shares (one per ciphertext, same order), as sent
/// by one party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptionShareBatch(pub Vec<DecryptionShare>);

impl DecryptionShareBatch {
    /// Shares of every ciphertext in `cts`.
    pub fn create<R: RngCore + CryptoRng>(
        key: &DecryptionKeyShare,
        cts: &[Ciphertext],
        context: &[u8],
        rng: &mut R,
    ) -> Self {
        Self(cts.iter().map(|ct| decryption_share(key, ct, context, rng)).collect())
    }

    /// Payload: `u32 count || count × (32-byte D || 64-byte proof)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(4 + 96 * self.0.len());
        w.u32(self.0.len() as u32);
        for s in &self.0 {
            w.raw(s.d.compress().as_bytes());
            w.raw(&s.proof.to_bytes());
        }
        w.into_bytes()
    }

    /// Strict decoding of a payload from `sender`.
    pub fn decode(bytes: &[u8], sender: PartyId) -> Result<Self, ElGamalError> {
        let mut r = Reader::new(bytes, Some(sender));
        let n = r.count_u32("shares.len", MAX_BATCH)?;
        let mut out = Vec::with_capacity(n.min(bytes.len() / 96 + 1));
        for _ in 0..n {
            let d = decode_point(r.array("d")?).ok_or_else(|| r.invalid("d", "not a valid ristretto255 point"))?;
            let proof =
                Proof::from_bytes(&r.array("proof")?).ok_or_else(|| r.invalid("proof", "non-canonical scalar"))?;
            out.push(DecryptionShare { d, proof });
        }
        r.finish("DecryptionShareBatch")?;
        Ok(Self(out))
    }
}

/// Encode a list of ciphertexts: `u32 count || count × 64 bytes`.
pub fn encode_ciphertexts(cts: &[Ciphertext]) -> Vec<u8> {
    let mut w = Writer::with_capacity(4 + 64 * cts.len());
    w.u32(cts.len() as u32);
    for c in cts {
        w.raw(&c.to_bytes());
    }
    w.into_bytes()
}

/// Strict decoding of [`encode_ciphertexts`]' output from `sender`.
pub fn decode_ciphertexts(bytes: &[u8], sender: Option<PartyId>) -> Result<Vec<Ciphertext>, ElGamalError> {
    let mut r = Reader::new(bytes, sender);
    let n = r.count_u32("ciphertexts.len", MAX_BATCH)?;
    let mut out = Vec::with_capacity(n.min(bytes.len() / 64 + 1));
    for _ in 0..n {
        let c1 = decode_point(r.array("c1")?).ok_or_else(|| r.invalid("c1", "not a valid ristretto255 point"))?;
        let c2 = decode_point(r.array("c2")?).ok_or_else(|| r.invalid("c2", "not a valid ristretto255 point"))?;
        out.push(Ciphertext { c1, c2 });
    }
    r.finish("ciphertexts")?;
    Ok(out)
}

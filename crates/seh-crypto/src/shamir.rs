//! t-of-n Shamir secret sharing over the ristretto255 scalar field with Feldman
//! commitments (verifiable secret sharing).
//!
//! A dealer picks a random polynomial `f(x) = a_0 + a_1 x + … + a_{t-1} x^{t-1}`
//! with `a_0` the secret, gives party `i` (a [`PartyId`], never 0) the share
//! `f(i)`, and publishes the commitments `C_j = a_j·G` ([`Commitments`]).
//! A recipient checks `f(i)·G == Σ_j i^j·C_j`; a share that fails is rejected
//! with [`ShamirError::InvalidShare`] naming dealer and recipient. Any `t`
//! shares recover `a_0` by Lagrange interpolation at 0; any `t−1` shares are
//! consistent with every possible secret (information-theoretic hiding of the
//! shares; the commitments hide `a_0` only computationally, as `a_0·G`).
//!
//! Used by SecAgg+ (shares of mask seeds) and by the DKG / threshold ElGamal /
//! FROST modules (shares of signing and decryption keys). Commitments of several
//! dealers can be added ([`Commitments::add`]) to obtain the commitments of the
//! summed sharing, as a Pedersen/Feldman DKG needs.
//!
//! Secrets ([`SecretShare`], polynomial coefficients) are zeroized on drop and
//! print `<redacted>`.

use crate::error::ShamirError;
use crate::wire::{PartyId, Reader, Writer};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{Identity, VartimeMultiscalarMul};
use rand::{CryptoRng, RngCore};
use std::collections::BTreeSet;
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Maximum threshold accepted when decoding commitments (bounds allocation).
pub const MAX_THRESHOLD: usize = 1 << 16;
/// Encoded length of a [`SecretShare`]: 4-byte index and 32-byte scalar.
pub const SHARE_LEN: usize = 36;

/// The x-coordinate of `party` as a field element. Errors for party 0.
pub fn index_scalar(party: PartyId) -> Result<Scalar, ShamirError> {
    if party.0 == 0 {
        return Err(ShamirError::ZeroIndex);
    }
    Ok(Scalar::from(u64::from(party.0)))
}

/// One party's share `f(index)` of a secret. Zeroized on drop; `Debug` prints
/// only the index.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretShare {
    #[zeroize(skip)]
    index: PartyId,
    value: Scalar,
}

impl fmt::Debug for SecretShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretShare").field("index", &self.index).field("value", &"<redacted>").finish()
    }
}

impl SecretShare {
    /// A share with the given index and value (e.g. the sum of shares received
    /// from several dealers in a DKG). Errors for index 0.
    pub fn new(index: PartyId, value: Scalar) -> Result<SecretShare, ShamirError> {
        index_scalar(index)?;
        Ok(SecretShare { index, value })
    }

    /// The holder's id (the evaluation point).
    pub fn index(&self) -> PartyId {
        self.index
    }

    /// The share value `f(index)`. Handle as a secret.
    pub fn value(&self) -> &Scalar {
        &self.value
    }

    /// `index (u32 BE) || value (32 bytes, canonical)`, wrapped to be zeroized.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SHARE_LEN]> {
        let mut out = Zeroizing::new([0u8; SHARE_LEN]);
        out[..4].copy_from_slice(&self.index.0.to_be_bytes());
        out[4..].copy_from_slice(self.value.as_bytes());
        out
    }

    /// Inverse of [`SecretShare::to_bytes`]; rejects index 0 and non-canonical scalars.
    pub fn from_bytes(bytes: &[u8; SHARE_LEN]) -> Result<SecretShare, ShamirError> {
        let mut idx = [0u8; 4];
        idx.copy_from_slice(&bytes[..4]);
        let index = PartyId(u32::from_be_bytes(idx));
        let mut v = Zeroizing::new([0u8; 32]);
        v.copy_from_slice(&bytes[4..]);
        let value: Option<Scalar> = Scalar::from_canonical_bytes(*v).into();
        let value = value.ok_or(ShamirError::NonCanonicalScalar { recipient: index })?;
        SecretShare::new(index, value)
    }
}

/// Feldman commitments `C_j = a_j·G` to a sharing polynomial; `len()` is the threshold.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Commitments {
    points: Vec<RistrettoPoint>,
    /// Compressed encodings of `points` (computed once: compression costs an inversion).
    compressed: Vec<CompressedRistretto>,
}

impl Commitments {
    /// Commitments from points (`points[j] = a_j·G`). Errors if empty.
    pub fn from_points(dealer: PartyId, points: Vec<RistrettoPoint>) -> Result<Commitments, ShamirError> {
        if points.is_empty() {
            return Err(ShamirError::MalformedCommitments { dealer, reason: "no commitments" });
        }
        Ok(Commitments::with_points(points))
    }

    fn with_points(points: Vec<RistrettoPoint>) -> Commitments {
        let compressed = points.iter().map(RistrettoPoint::compress).collect();
        Commitments { points, compressed }
    }

    /// The threshold `t` (number of coefficients).
    pub fn threshold(&self) -> usize {
        self.points.len()
    }

    /// The committed points.
    pub fn points(&self) -> &[RistrettoPoint] {
        &self.points
    }

    /// `C_0 = secret·G`: the public key when the secret is a private key.
    pub fn public_secret(&self) -> RistrettoPoint {
        self.points.first().copied().unwrap_or_else(RistrettoPoint::identity)
    }

    /// `f(index)·G = Σ_j index^j·C_j`: the public image of `index`'s share.
    pub fn evaluate(&self, index: PartyId) -> Result<RistrettoPoint, ShamirError> {
        let x = index_scalar(index)?;
        Ok(RistrettoPoint::vartime_multiscalar_mul(powers(x, self.points.len()), &self.points))
    }

    /// Check `share` against these commitments made by `dealer`.
    pub fn verify(&self, dealer: PartyId, share: &SecretShare) -> Result<(), ShamirError> {
        let expected = self.evaluate(share.index)?;
        if RISTRETTO_BASEPOINT_TABLE * share.value() == expected {
            Ok(())
        } else {
            Err(ShamirError::InvalidShare { dealer, recipient: share.index })
        }
    }

    /// Coefficient-wise sum: the commitments of the sum of two sharings with the
    /// same threshold (DKG). Errors if the thresholds differ.
    pub fn add(&self, other: &Commitments, other_dealer: PartyId) -> Result<Commitments, ShamirError> {
        if self.points.len() != other.points.len() {
            return Err(ShamirError::MalformedCommitments { dealer: other_dealer, reason: "threshold differs" });
        }
        Ok(Commitments::with_points(self.points.iter().zip(&other.points).map(|(a, b)| a + b).collect()))
    }

    /// Encode as `u32 t || t × 32-byte compressed points`.
    pub fn encode(&self, w: &mut Writer) {
        w.u32(self.points.len() as u32);
        for c in &self.compressed {
            w.raw(c.as_bytes());
        }
    }

    /// Strict decode (errors name the reader's claimed sender). If
    /// `expected_threshold` is `Some(t)`, the count must equal `t`.
    pub fn decode(
        r: &mut Reader<'_>,
        expected_threshold: Option<usize>,
    ) -> Result<Commitments, crate::error::WireError> {
        let t = r.count_u32("commitments.len", MAX_THRESHOLD)?;
        if t == 0 || expected_threshold.is_some_and(|e| e != t) {
            return Err(r.invalid("commitments.len", "commitment count differs from the threshold"));
        }
        let mut points = Vec::with_capacity(t);
        let mut compressed = Vec::with_capacity(t);
        for _ in 0..t {
            let c = CompressedRistretto(r.array("commitment")?);
            let p = c.decompress().ok_or_else(|| r.invalid("commitment", "not a valid ristretto255 point"))?;
            points.push(p);
            compressed.push(c);
        }
        Ok(Commitments { points, compressed })
    }
}

/// Check many `(dealer, commitments, share)` triples at once with a random
/// linear combination (one multiscalar multiplication). On failure, falls back
/// to checking one by one and reports the first bad share with its dealer.
pub fn verify_batch<R: RngCore + CryptoRng>(
    items: &[(PartyId, &Commitments, &SecretShare)],
    rng: &mut R,
) -> Result<(), ShamirError> {
    let total: usize = items.iter().map(|(_, c, _)| c.points.len()).sum();
    let mut scalars = Vec::with_capacity(total + 1);
    let mut points = Vec::with_capacity(total + 1);
    let mut base = Scalar::ZERO;
    for (_, c, share) in items {
        let rho = Scalar::from(rng.next_u64()) + Scalar::from(rng.next_u64()) * Scalar::from(1u128 << 64);
        base += rho * share.value();
        let x = index_scalar(share.index)?;
        let mut xp = -rho;
        for p in &c.points {
            scalars.push(xp);
            points.push(*p);
            xp *= x;
        }
    }
    scalars.push(base);
    points.push(curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT);
    base.zeroize();
    if RistrettoPoint::vartime_multiscalar_mul(&scalars, &points) == RistrettoPoint::identity() {
        return Ok(());
    }
    for (dealer, c, share) in items {
        c.verify(*dealer, share)?;
    }
    // Unreachable in practice (batch failed but each passed) — report nothing
    // rather than blame an honest dealer.
    Ok(())
}

fn powers(x: Scalar, n: usize) -> Vec<Scalar> {
    let mut out = Vec::with_capacity(n);
    let mut p = Scalar::ONE;
    for _ in 0..n {
        out.push(p);
        p *= x;
    }
    out
}

/// A dealer's output: public commitments plus one share per recipient (in the
/// order of the `recipients` argument of [`deal`]).
#[derive(Debug, Clone)]
pub struct Dealing {
    /// Feldman commitments (publish to every recipient).
    pub commitments: Commitments,
    /// Secret shares (send each privately to its recipient).
    pub shares: Vec<SecretShare>,
}

/// Share `secret` t-of-n among `recipients` (distinct, non-zero ids).
///
/// Errors: [`ShamirError::InvalidThreshold`] unless `1 <= threshold <= recipients.len()`,
/// [`ShamirError::ZeroIndex`], [`ShamirError::DuplicateIndex`].
pub fn deal<R: RngCore + CryptoRng>(
    secret: &Scalar,
    threshold: usize,
    recipients: &[PartyId],
    rng: &mut R,
) -> Result<Dealing, ShamirError> {
    check_indices(recipients)?;
    if threshold == 0 || threshold > recipients.len() {
        return Err(ShamirError::InvalidThreshold { threshold, parties: recipients.len() });
    }
    let mut coeffs: Zeroizing<Vec<Scalar>> = Zeroizing::new(Vec::with_capacity(threshold));
    coeffs.push(*secret);
    for _ in 1..threshold {
        coeffs.push(Scalar::random(rng));
    }
    let points: Vec<RistrettoPoint> = coeffs.iter().map(|a| RISTRETTO_BASEPOINT_TABLE * a).collect();
    let mut shares = Vec::with_capacity(recipients.len());
    for &r in recipients {
        let x = index_scalar(r)?;
        let mut acc = Scalar::ZERO;
        for a in coeffs.iter().rev() {
            acc = acc * x + a;
        }
        shares.push(SecretShare { index: r, value: acc });
        acc.zeroize();
    }
    Ok(Dealing { commitments: Commitments::with_points(points), shares })
}

fn check_indices(ids: &[PartyId]) -> Result<(), ShamirError> {
    let mut seen = BTreeSet::new();
    for &id in ids {
        index_scalar(id)?;
        if !seen.insert(id) {
            return Err(ShamirError::DuplicateIndex { index: id });
        }
    }
    Ok(())
}

/// Lagrange coefficients at `x = 0` for a set of distinct non-zero indices:
/// `λ_i = Π_{j≠i} x_j / (x_j − x_i)`. Reusable for many reconstructions over
/// the same index set (one field inversion in all).
#[derive(Clone, Debug)]
pub struct Lagrange {
    indices: Vec<PartyId>,
    coeffs: Vec<Scalar>,
}

impl Lagrange {
    /// Coefficients for `indices` (distinct, non-zero).
    pub fn new(indices: &[PartyId]) -> Result<Lagrange, ShamirError> {
        check_indices(indices)?;
        let xs: Vec<Scalar> = indices.iter().map(|&i| index_scalar(i)).collect::<Result<_, _>>()?;
        let mut nums = Vec::with_capacity(xs.len());
        let mut dens = Vec::with_capacity(xs.len());
        for (i, xi) in xs.iter().enumerate() {
            let mut num = Scalar::ONE;
            let mut den = Scalar::ONE;
            for (j, xj) in xs.iter().enumerate() {
                if i != j {
                    num *= xj;
                    den *= xj - xi;
                }
            }
            nums.push(num);
            dens.push(den);
        }
        Scalar::batch_invert(&mut dens);
        let coeffs = nums.iter().zip(&dens).map(|(n, d)| n * d).collect();
        Ok(Lagrange { indices: indices.to_vec(), coeffs })
    }

    /// The index set.
    pub fn indices(&self) -> &[PartyId] {
        &self.indices
    }

    /// `λ_i` for `index`, if it is in the set.
    pub fn coefficient(&self, index: PartyId) -> Option<Scalar> {
        self.indices.iter().position(|&i| i == index).and_then(|k| self.coeffs.get(k).copied())
    }

    /// `Σ λ_i·s_i` over `shares`, whose indices must be exactly this set (any order).
    pub fn combine(&self, shares: &[&SecretShare]) -> Result<Zeroizing<Scalar>, ShamirError> {
        if shares.len() != self.indices.len() {
            return Err(ShamirError::NotEnoughShares { threshold: self.indices.len(), got: shares.len() });
        }
        let mut acc = Zeroizing::new(Scalar::ZERO);
        for s in shares {
            let l = self.coefficient(s.index).ok_or(ShamirError::DuplicateIndex { index: s.index })?;
            *acc += l * s.value;
        }
        Ok(acc)
    }

    /// `Σ λ_i·P_i`: interpolate public points (e.g. decryption shares) at 0.
    pub fn combine_points(&self, points: &[(PartyId, RistrettoPoint)]) -> Result<RistrettoPoint, ShamirError> {
        if points.len() != self.indices.len() {
            return Err(ShamirError::NotEnoughShares { threshold: self.indices.len(), got: points.len() });
        }
        let mut scalars = Vec::with_capacity(points.len());
        for (i, _) in points {
            scalars.push(self.coefficient(*i).ok_or(ShamirError::DuplicateIndex { index: *i })?);
        }
        Ok(RistrettoPoint::vartime_multiscalar_mul(scalars, points.iter().map(|(_, p)| *p)))
    }
}

/// Recover the secret from the first `threshold` of `shares` (distinct indices).
///
/// Errors: [`ShamirError::NotEnoughShares`] if fewer than `threshold` are given,
/// [`ShamirError::DuplicateIndex`], [`ShamirError::InvalidThreshold`] for `threshold == 0`.
/// Reconstruction does not detect wrong shares: verify them against the
/// dealer's [`Commitments`] first.
pub fn reconstruct(shares: &[SecretShare], threshold: usize) -> Result<Zeroizing<Scalar>, ShamirError> {
    if threshold == 0 {
        return Err(ShamirError::InvalidThreshold { threshold, parties: shares.len() });
    }
    let used = shares.get(..threshold).ok_or(ShamirError::NotEnoughShares { threshold, got: shares.len() })?;
    let idx: Vec<PartyId> = used.iter().map(|s| s.index).collect();
    let lag = Lagrange::new(&idx)?;
    let refs: Vec<&SecretShare> = used.iter().collect();
    lag.combine(&refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn debug_is_redacted() {
        let s = SecretShare::new(PartyId(3), Scalar::from(12345u64)).unwrap();
        let d = format!("{s:?}");
        assert!(d.contains("redacted") && !d.contains("12345"), "{d}");
    }

    #[test]
    fn share_bytes_round_trip_and_reject_zero_index() {
        let s = SecretShare::new(PartyId(7), Scalar::from(99u64)).unwrap();
        assert_eq!(SecretShare::from_bytes(&s.to_bytes()).unwrap(), s);
        let mut b = *s.to_bytes();
        b[..4].copy_from_slice(&[0; 4]);
        assert_eq!(SecretShare::from_bytes(&b), Err(ShamirError::ZeroIndex));
        let mut b = *s.to_bytes();
        b[4..].copy_from_slice(&[0xff; 32]);
        assert!(matches!(SecretShare::from_bytes(&b), Err(ShamirError::NonCanonicalScalar { .. })));
    }

    #[test]
    fn batch_verify_finds_culprit() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let ids: Vec<PartyId> = (1..=5).map(PartyId).collect();
        let d1 = deal(&Scalar::from(5u64), 3, &ids, &mut rng).unwrap();
        let d2 = deal(&Scalar::from(6u64), 3, &ids, &mut rng).unwrap();
        let ok = [(PartyId(1), &d1.commitments, &d1.shares[1]), (PartyId(2), &d2.commitments, &d2.shares[1])];
        verify_batch(&ok, &mut rng).unwrap();
        let bad_share = SecretShare::new(PartyId(2), d2.shares[1].value() + Scalar::ONE).unwrap();
        let bad = [(PartyId(1), &d1.commitments, &d1.shares[1]), (PartyId(2), &d2.commitments, &bad_share)];
        assert_eq!(
            verify_batch(&bad, &mut rng),
            Err(ShamirError::InvalidShare { dealer: PartyId(2), recipient: PartyId(2) })
        );
    }
}

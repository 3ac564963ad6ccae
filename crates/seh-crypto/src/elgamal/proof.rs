//! Non-interactive zero-knowledge proofs over ristretto255 (Fiat–Shamir with
//! a SHA-512 transcript): Schnorr proof of knowledge of a discrete log and
//! Chaum–Pedersen proof of equality of discrete logs (DLEQ).
//!
//! Every challenge hashes a domain tag, the caller's context (session id,
//! party id, …) and all public values, each length-prefixed, so a proof made
//! for one statement or session does not verify for another.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha512};
use zeroize::Zeroize;

/// A Fiat–Shamir transcript: SHA-512 over length-prefixed items.
#[derive(Clone)]
pub(crate) struct Transcript(Sha512);

impl Transcript {
    pub(crate) fn new(dst: &[u8]) -> Self {
        let mut t = Self(Sha512::new());
        t.append(b"dst", dst);
        t
    }

    pub(crate) fn append(&mut self, label: &[u8], data: &[u8]) {
        self.0.update((label.len() as u32).to_be_bytes());
        self.0.update(label);
        self.0.update((data.len() as u64).to_be_bytes());
        self.0.update(data);
    }

    pub(crate) fn point(&mut self, label: &[u8], p: &RistrettoPoint) {
        self.append(label, p.compress().as_bytes());
    }

    pub(crate) fn challenge(self) -> Scalar {
        Scalar::from_hash(self.0)
    }
}

/// A proof `(c, s)`: 64 bytes, both canonical scalars.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Proof {
    /// Challenge.
    pub c: Scalar,
    /// Response.
    pub s: Scalar,
}

impl Proof {
    /// `c || s` (little-endian scalars).
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(self.c.as_bytes());
        out[32..].copy_from_slice(self.s.as_bytes());
        out
    }

    /// Decode; `None` unless both scalars are canonical.
    pub fn from_bytes(bytes: &[u8; 64]) -> Option<Self> {
        let mut c = [0u8; 32];
        let mut s = [0u8; 32];
        c.copy_from_slice(&bytes[..32]);
        s.copy_from_slice(&bytes[32..]);
        let c: Option<Scalar> = Scalar::from_canonical_bytes(c).into();
        let s: Option<Scalar> = Scalar::from_canonical_bytes(s).into();
        Some(Self { c: c?, s: s? })
    }
}

/// Decode a compressed point, rejecting non-canonical encodings.
pub(crate) fn decode_point(bytes: [u8; 32]) -> Option<RistrettoPoint> {
    CompressedRistretto(bytes).decompress()
}

/// Prove knowledge of `x` with `X = x·G`, bound to `context`.
pub(crate) fn prove_dlog<R: RngCore + CryptoRng>(dst: &[u8], context: &[u8], x: &Scalar, rng: &mut R) -> Proof {
    let public = RISTRETTO_BASEPOINT_TABLE * x;
    let mut k = Scalar::random(rng);
    let commit = RISTRETTO_BASEPOINT_TABLE * &k;
    let c = dlog_challenge(dst, context, &public, &commit);
    let s = k - c * x;
    k.zeroize();
    Proof { c, s }
}

/// Verify a [`prove_dlog`] proof for `public`.
pub(crate) fn verify_dlog(dst: &[u8], context: &[u8], public: &RistrettoPoint, proof: &Proof) -> bool {
    let commit = RistrettoPoint::vartime_double_scalar_mul_basepoint(&proof.c, public, &proof.s);
    dlog_challenge(dst, context, public, &commit) == proof.c
}

fn dlog_challenge(dst: &[u8], context: &[u8], public: &RistrettoPoint, commit: &RistrettoPoint) -> Scalar {
    let mut t = Transcript::new(dst);
    t.append(b"context", context);
    t.point(b"public", public);
    t.point(b"commit", commit);
    t.challenge()
}

/// Prove `log_G(Y) = log_H(D)` (= `x`), bound to `context`.
pub(crate) fn prove_dleq<R: RngCore + CryptoRng>(
    dst: &[u8],
    context: &[u8],
    x: &Scalar,
    h: &RistrettoPoint,
    rng: &mut R,
) -> Proof {
    let y = RISTRETTO_BASEPOINT_TABLE * x;
    let d = h * x;
    let mut k = Scalar::random(rng);
    let a1 = RISTRETTO_BASEPOINT_TABLE * &k;
    let a2 = h * k;
    let c = dleq_challenge(dst, context, &y, h, &d, &a1, &a2);
    let s = k - c * x;
    k.zeroize();
    Proof { c, s }
}

/// Verify a [`prove_dleq`] proof that `log_G(y) = log_h(d)`.
pub(crate) fn verify_dleq(
    dst: &[u8],
    context: &[u8],
    y: &RistrettoPoint,
    h: &RistrettoPoint,
    d: &RistrettoPoint,
    proof: &Proof,
) -> bool {
    let a1 = RistrettoPoint::vartime_double_scalar_mul_basepoint(&proof.c, y, &proof.s);
    let a2 = RistrettoPoint::vartime_multiscalar_mul([proof.s, proof.c], [*h, *d]);
    dleq_challenge(dst, context, y, h, d, &a1, &a2) == proof.c
}

use curve25519_dalek::traits::VartimeMultiscalarMul;

fn dleq_challenge(
    dst: &[u8],
    context: &[u8],
    y: &RistrettoPoint,
    h: &RistrettoPoint,
    d: &RistrettoPoint,
    a1: &RistrettoPoint,
    a2: &RistrettoPoint,
) -> Scalar {
    let mut t = Transcript::new(dst);
    t.append(b"context", context);
    t.point(b"y", y);
    t.point(b"h", h);
    t.point(b"d", d);
    t.point(b"a1", a1);
    t.point(b"a2", a2);
    t.challenge()
}

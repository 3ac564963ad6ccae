//! Baby-step giant-step recovery of a bounded discrete log: given `M = m·G`
//! with `0 <= m <= bound`, find `m`.
//!
//! With `w = ⌈√(bound+1)⌉` the table holds `i·G` for `0 <= i < w` and a lookup
//! tries `M − j·w·G` for `0 <= j <= bound / w`: `O(√bound)` time and memory.
//! Build one [`BsgsTable`] and reuse it for many decryptions with the same bound.

use super::ElGamalError;
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use std::collections::HashMap;

/// Largest bound accepted (2^48: a table of 2^24 entries, about 1 GiB).
pub const MAX_BOUND: u64 = 1 << 48;

/// A baby-step table for a fixed bound.
#[derive(Clone)]
pub struct BsgsTable {
    bound: u64,
    width: u64,
    /// Compressed `i·G` → `i`.
    baby: HashMap<[u8; 32], u32>,
    /// `−w·G`.
    giant_step: RistrettoPoint,
}

impl std::fmt::Debug for BsgsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BsgsTable {{ bound: {}, width: {} }}", self.bound, self.width)
    }
}

impl BsgsTable {
    /// A table for values in `0..=bound`.
    ///
    /// # Errors
    /// [`ElGamalError::InvalidParameters`] if `bound > MAX_BOUND`.
    pub fn new(bound: u64) -> Result<Self, ElGamalError> {
        if bound > MAX_BOUND {
            return Err(ElGamalError::InvalidParameters { reason: "decoding bound exceeds 2^48" });
        }
        // width = ceil(sqrt(bound + 1)) >= 1; bound + 1 <= 2^48 + 1 cannot overflow.
        let n = bound + 1;
        let root = n.isqrt();
        let width = if root * root == n { root } else { root + 1 };
        // Baby steps i·G for i in 0..width, compressed in batches: the batch
        // compressor doubles, so feed it i·(G/2).
        let half_g = RISTRETTO_BASEPOINT_POINT * Scalar::from(2u8).invert();
        let mut baby = HashMap::with_capacity(width as usize);
        let mut halves = Vec::with_capacity(4096);
        let mut acc = RistrettoPoint::default();
        let mut i: u64 = 0;
        while i < width {
            halves.clear();
            let start = i;
            while i < width && halves.len() < 4096 {
                halves.push(acc);
                acc += half_g;
                i += 1;
            }
            for (k, c) in RistrettoPoint::double_and_compress_batch(&halves).into_iter().enumerate() {
                baby.insert(c.to_bytes(), (start + k as u64) as u32);
            }
        }
        let giant_step = -(RISTRETTO_BASEPOINT_POINT * Scalar::from(width));
        Ok(Self { bound, width, baby, giant_step })
    }

    /// The bound this table decodes up to (inclusive).
    pub fn bound(&self) -> u64 {
        self.bound
    }

    /// Find `m` in `0..=bound` with `point = m·G`.
    ///
    /// # Errors
    /// [`ElGamalError::OutOfRange`] if there is none (the plaintext exceeds the
    /// bound, or the ciphertext / shares are inconsistent).
    pub fn decode(&self, point: &RistrettoPoint) -> Result<u64, ElGamalError> {
        let mut cur = *point;
        let giants = self.bound / self.width;
        for j in 0..=giants {
            if let Some(&i) = self.baby.get(cur.compress().as_bytes()) {
                let m = j * self.width + u64::from(i);
                if m <= self.bound {
                    return Ok(m);
                }
            }
            cur += self.giant_step;
        }
        Err(ElGamalError::OutOfRange { bound: self.bound })
    }
}

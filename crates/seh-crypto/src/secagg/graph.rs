//! Neighbour graphs for SecAgg+: who shares masks and key shares with whom.

use crate::error::SecAggError;
use crate::wire::PartyId;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// The communication graph over the sorted party list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Graph {
    /// Everyone is everyone's neighbour (the original SecAgg; fine up to ~100 parties).
    Complete,
    /// The Harary graph `H_{k,n}`: party at position `i` (in sorted order) is
    /// joined to positions `i ± 1 … i ± ⌊k/2⌋` (mod n) and, for odd `k`, to
    /// `i + n/2`. Odd `k` needs even `n`. `k`-regular and `k`-connected.
    Harary {
        /// Degree `k` (`2 ≤ k < n`).
        degree: usize,
    },
    /// A Harary graph over a pseudo-random relabelling of the parties drawn
    /// from a seed all parties share (fixed after the parties are known, so no
    /// one can choose their neighbours). The relabelling is a Fisher–Yates
    /// shuffle driven by ChaCha20 with 64-bit multiply-shift reduction; it is
    /// part of the protocol and must not change between versions.
    Random {
        /// Degree `k`.
        degree: usize,
        /// Shared seed.
        seed: [u8; 32],
    },
}

impl Graph {
    /// Check the graph fits `n` parties; returns the degree.
    pub(crate) fn validate(&self, n: usize) -> Result<usize, SecAggError> {
        let k = match self {
            Graph::Complete => return Ok(n - 1),
            Graph::Harary { degree } | Graph::Random { degree, .. } => *degree,
        };
        if k < 2 || k >= n {
            return Err(SecAggError::InvalidParameter {
                field: "graph.degree",
                reason: format!("degree {k} must be in 2..{n}"),
            });
        }
        if k % 2 == 1 && n % 2 == 1 {
            return Err(SecAggError::InvalidParameter {
                field: "graph.degree",
                reason: format!("odd degree {k} needs an even number of parties, got {n}"),
            });
        }
        Ok(k)
    }

    /// Neighbours of `party` among `sorted` (excluding itself), ascending.
    pub(crate) fn neighbours(&self, sorted: &[PartyId], party: PartyId) -> Vec<PartyId> {
        let n = sorted.len();
        let Ok(pos) = sorted.binary_search(&party) else { return Vec::new() };
        let (k, order): (usize, Vec<usize>) = match self {
            Graph::Complete => return sorted.iter().copied().filter(|&p| p != party).collect(),
            Graph::Harary { degree } => (*degree, (0..n).collect()),
            Graph::Random { degree, seed } => (*degree, permutation(n, seed)),
        };
        // `order[j]` is the sorted index of the party at ring position j.
        let mut ring_of = vec![0usize; n];
        for (j, &i) in order.iter().enumerate() {
            ring_of[i] = j;
        }
        let me = ring_of[pos];
        let mut out = Vec::with_capacity(k);
        for d in 1..=k / 2 {
            out.push(sorted[order[(me + d) % n]]);
            out.push(sorted[order[(me + n - d) % n]]);
        }
        if k % 2 == 1 {
            out.push(sorted[order[(me + n / 2) % n]]);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

fn permutation(n: usize, seed: &[u8; 32]) -> Vec<usize> {
    let mut rng = ChaCha20Rng::from_seed(*seed);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = ((u128::from(rng.next_u64()) * (i as u128 + 1)) >> 64) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u32) -> Vec<PartyId> {
        (1..=n).map(PartyId).collect()
    }

    fn check_regular_symmetric(g: &Graph, n: u32, k: usize) {
        let p = ids(n);
        for &u in &p {
            let nu = g.neighbours(&p, u);
            assert_eq!(nu.len(), k, "{g:?} {u}");
            assert!(!nu.contains(&u));
            for v in nu {
                assert!(g.neighbours(&p, v).contains(&u), "asymmetric {u} {v}");
            }
        }
    }

    #[test]
    fn graphs_are_regular_and_symmetric() {
        check_regular_symmetric(&Graph::Complete, 7, 6);
        check_regular_symmetric(&Graph::Harary { degree: 4 }, 11, 4);
        check_regular_symmetric(&Graph::Harary { degree: 5 }, 12, 5);
        check_regular_symmetric(&Graph::Random { degree: 6, seed: [3; 32] }, 30, 6);
        assert!(Graph::Harary { degree: 5 }.validate(11).is_err());
        assert!(Graph::Harary { degree: 11 }.validate(11).is_err());
        assert_ne!(
            Graph::Random { degree: 4, seed: [1; 32] }.neighbours(&ids(40), PartyId(1)),
            Graph::Random { degree: 4, seed: [2; 32] }.neighbours(&ids(40), PartyId(1))
        );
    }
}

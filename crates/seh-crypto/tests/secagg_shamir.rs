//! Feldman VSS over ristretto255: share → reconstruct, verification naming the
//! culprit, and information-theoretic hiding of t−1 shares.

use curve25519_dalek::scalar::Scalar;
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_crypto::error::ShamirError;
use seh_crypto::shamir::{deal, reconstruct, Commitments, Lagrange, SecretShare};
use seh_crypto::wire::{PartyId, Reader, Writer};

fn ids(n: u32) -> Vec<PartyId> {
    (1..=n).map(PartyId).collect()
}

/// Interpolate the polynomial through `points` and return its coefficients (degree < points.len()).
fn interpolate_coeffs(points: &[(Scalar, Scalar)]) -> Vec<Scalar> {
    let n = points.len();
    let mut out = vec![Scalar::ZERO; n];
    for (i, (xi, yi)) in points.iter().enumerate() {
        // basis polynomial l_i(x) = Π_{j≠i} (x − x_j)/(x_i − x_j)
        let mut basis = vec![Scalar::ONE];
        let mut den = Scalar::ONE;
        for (j, (xj, _)) in points.iter().enumerate() {
            if i != j {
                let mut next = vec![Scalar::ZERO; basis.len() + 1];
                for (k, b) in basis.iter().enumerate() {
                    next[k + 1] += b;
                    next[k] -= b * xj;
                }
                basis = next;
                den *= xi - xj;
            }
        }
        let f = yi * den.invert();
        for (k, b) in basis.iter().enumerate() {
            out[k] += b * f;
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_t_subset_reconstructs(n in 1u32..=20, t_frac in 0.0f64..1.0, seed: u64) {
        let t = 1 + ((n as f64 - 1.0) * t_frac) as usize;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let secret = Scalar::random(&mut rng);
        let d = deal(&secret, t, &ids(n), &mut rng).unwrap();
        prop_assert_eq!(d.commitments.threshold(), t);
        for s in &d.shares {
            d.commitments.verify(PartyId(1000), s).unwrap();
        }
        for _ in 0..3 {
            let mut subset = d.shares.clone();
            subset.shuffle(&mut rng);
            subset.truncate(t);
            prop_assert_eq!(*reconstruct(&subset, t).unwrap(), secret);
        }
        // too few shares is an error, not a wrong answer
        if t > 1 {
            prop_assert_eq!(
                reconstruct(&d.shares[..t - 1], t),
                Err(ShamirError::NotEnoughShares { threshold: t, got: t - 1 })
            );
        }
    }

    /// Any t−1 shares are consistent with every secret: for a random other
    /// secret there is a degree-(t−1) polynomial through it and the t−1 shares
    /// (so the shares carry no information). Negative control: t shares pin the
    /// secret — the interpolant through them and a different secret has degree t.
    #[test]
    fn fewer_than_t_shares_reveal_nothing(n in 2u32..=12, t_frac in 0.0f64..1.0, seed: u64) {
        let t = 2 + ((n as f64 - 2.0) * t_frac) as usize;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let secret = Scalar::random(&mut rng);
        let other = Scalar::random(&mut rng);
        let d = deal(&secret, t, &ids(n), &mut rng).unwrap();
        let pts = |k: usize| -> Vec<(Scalar, Scalar)> {
            d.shares[..k].iter().map(|s| (Scalar::from(u64::from(s.index().0)), *s.value())).collect()
        };
        // t−1 shares + (0, other): t points → a polynomial of degree ≤ t−1 with f(0)=other
        let mut p = pts(t - 1);
        p.push((Scalar::ZERO, other));
        let c = interpolate_coeffs(&p);
        prop_assert_eq!(c.len(), t);
        prop_assert_eq!(c[0], other);
        // ...and it reproduces the observed shares: indistinguishable from a dealing of `other`
        for s in &d.shares[..t - 1] {
            let x = Scalar::from(u64::from(s.index().0));
            let y = c.iter().rev().fold(Scalar::ZERO, |acc, a| acc * x + a);
            prop_assert_eq!(y, *s.value());
        }
        // negative control: t shares + (0, other) need degree t (leading coefficient ≠ 0)
        let mut p = pts(t);
        p.push((Scalar::ZERO, other));
        let c = interpolate_coeffs(&p);
        prop_assert_ne!(c[t], Scalar::ZERO);
        // while t shares + (0, secret) have degree t−1
        let mut p = pts(t);
        p.push((Scalar::ZERO, secret));
        prop_assert_eq!(interpolate_coeffs(&p)[t], Scalar::ZERO);
    }
}

#[test]
fn tampered_share_names_dealer_and_recipient() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let d = deal(&Scalar::from(42u64), 3, &ids(5), &mut rng).unwrap();
    let tampered = SecretShare::new(PartyId(4), d.shares[3].value() + Scalar::ONE).unwrap();
    assert_eq!(
        d.commitments.verify(PartyId(9), &tampered),
        Err(ShamirError::InvalidShare { dealer: PartyId(9), recipient: PartyId(4) })
    );
    // a correct value presented under another index also fails
    let moved = SecretShare::new(PartyId(5), *d.shares[3].value()).unwrap();
    assert!(d.commitments.verify(PartyId(9), &moved).is_err());
}

#[test]
fn commitments_encode_strictly_and_add_for_dkg() {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let a = deal(&Scalar::from(2u64), 3, &ids(4), &mut rng).unwrap();
    let b = deal(&Scalar::from(5u64), 3, &ids(4), &mut rng).unwrap();
    let mut w = Writer::default();
    a.commitments.encode(&mut w);
    let bytes = w.into_bytes();
    assert_eq!(bytes.len(), 4 + 3 * 32);
    let mut r = Reader::new(&bytes, Some(PartyId(1)));
    assert_eq!(Commitments::decode(&mut r, Some(3)).unwrap(), a.commitments);
    r.finish("commitments").unwrap();
    assert!(Commitments::decode(&mut Reader::new(&bytes, None), Some(4)).is_err());
    let mut bad = bytes.clone();
    bad[4..36].copy_from_slice(&[0xff; 32]);
    assert!(Commitments::decode(&mut Reader::new(&bad, None), None).is_err());

    // summed shares verify against summed commitments and reconstruct the summed secret
    let sum_c = a.commitments.add(&b.commitments, PartyId(2)).unwrap();
    let summed: Vec<SecretShare> = a
        .shares
        .iter()
        .zip(&b.shares)
        .map(|(x, y)| SecretShare::new(x.index(), x.value() + y.value()).unwrap())
        .collect();
    for s in &summed {
        sum_c.verify(PartyId(0), s).unwrap();
    }
    assert_eq!(*reconstruct(&summed[1..], 3).unwrap(), Scalar::from(7u64));
}

#[test]
fn parameter_errors() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let s = Scalar::ONE;
    assert_eq!(deal(&s, 0, &ids(3), &mut rng).unwrap_err(), ShamirError::InvalidThreshold { threshold: 0, parties: 3 });
    assert_eq!(deal(&s, 4, &ids(3), &mut rng).unwrap_err(), ShamirError::InvalidThreshold { threshold: 4, parties: 3 });
    assert_eq!(deal(&s, 1, &[PartyId(0)], &mut rng).unwrap_err(), ShamirError::ZeroIndex);
    assert_eq!(
        deal(&s, 1, &[PartyId(2), PartyId(2)], &mut rng).unwrap_err(),
        ShamirError::DuplicateIndex { index: PartyId(2) }
    );
    assert!(Lagrange::new(&[PartyId(1), PartyId(1)]).is_err());
}

#[test]
fn lagrange_combines_points_like_scalars() {
    use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT as G;
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let secret = Scalar::random(&mut rng);
    let d = deal(&secret, 3, &ids(6), &mut rng).unwrap();
    let chosen = [&d.shares[5], &d.shares[0], &d.shares[2]];
    let lag = Lagrange::new(&chosen.iter().map(|s| s.index()).collect::<Vec<_>>()).unwrap();
    assert_eq!(*lag.combine(&chosen).unwrap(), secret);
    let pts: Vec<_> = chosen.iter().map(|s| (s.index(), G * s.value())).collect();
    assert_eq!(lag.combine_points(&pts).unwrap(), G * secret);
    assert_eq!(d.commitments.public_secret(), G * secret);
}

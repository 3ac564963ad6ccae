//! Run the whole key-generation protocol of [`super::keygen`] in one process:
//! for tests, benchmarks and `seh demo`, where every holder lives here anyway.
//! A real federation runs the same steps at each site.

use super::error::HeError;
use super::keygen::{
    common_random_poly, joint_seed, seed_commit, CollectivePublicKey, HeContext, KeyShareDeal, PartySecret,
    ThresholdKeyShare,
};
use crate::wire::{PartyId, SessionId};
use rand::{CryptoRng, RngCore};

/// Every holder's secrets, the collective key and the threshold key shares.
#[derive(Debug)]
pub struct LocalFederation {
    /// The collective public key.
    pub public_key: CollectivePublicKey,
    /// One threshold key share per holder, in holder order.
    pub shares: Vec<ThresholdKeyShare>,
    /// The parties' ternary secrets (kept for relinearisation-key generation).
    pub secrets: Vec<PartySecret>,
    /// The joint seed of the common random polynomial.
    pub seed: [u8; 32],
}

/// Run seed commit/reveal, public-key shares and Shamir dealing for `holders`
/// with threshold `threshold`, all in this process.
pub fn simulate_setup<R: RngCore + CryptoRng>(
    ctx: &HeContext,
    session: &SessionId,
    holders: &[PartyId],
    threshold: usize,
    rng: &mut R,
) -> Result<LocalFederation, HeError> {
    let (secrets, commitments): (Vec<_>, Vec<_>) = holders.iter().map(|&p| seed_commit(session, p, rng)).unzip();
    let reveals: Vec<_> = secrets.into_iter().map(|s| s.reveal()).collect();
    let seed = joint_seed(session, holders, &commitments, &reveals)?;
    let a = common_random_poly(ctx, &seed);
    let secrets = holders.iter().map(|&p| PartySecret::generate(ctx, p, rng)).collect::<Result<Vec<_>, _>>()?;
    let pk_shares = secrets.iter().map(|s| s.public_key_share(ctx, &a, rng)).collect::<Result<Vec<_>, _>>()?;
    let public_key = CollectivePublicKey::aggregate(ctx, &a, holders, threshold, &pk_shares)?;
    let mut inbox: Vec<Vec<KeyShareDeal>> = holders.iter().map(|_| Vec::new()).collect();
    for s in &secrets {
        for deal in s.deal(ctx, holders, threshold, rng)? {
            if let Some(i) = holders.iter().position(|h| *h == deal.to) {
                inbox[i].push(deal);
            }
        }
    }
    let shares = holders
        .iter()
        .zip(inbox)
        .map(|(&h, deals)| ThresholdKeyShare::combine(ctx, h, holders, threshold, deals))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LocalFederation { public_key, shares, secrets, seed })
}

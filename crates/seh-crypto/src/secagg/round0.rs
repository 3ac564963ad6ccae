//! Round 0 (client): generate the session's two X25519 key pairs and advertise
//! the public keys, signed with the client's Ed25519 identity.

use super::keys::{advert_message, mask_secret};
use super::{AdvertiseKeys, SecAggParams};
use crate::error::SecAggError;
use crate::wire::{PartyId, SigningKey};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::Signer;
use rand::{CryptoRng, RngCore};
use std::fmt;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Secret state after round 0; consumed by [`super::round1::share_keys`].
pub struct Round0Secret {
    pub(crate) params: SecAggParams,
    pub(crate) me: PartyId,
    pub(crate) enc_sk: StaticSecret,
    pub(crate) mask_scalar: Zeroizing<Scalar>,
    pub(crate) advert: AdvertiseKeys,
}

impl fmt::Debug for Round0Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Round0Secret").field("me", &self.me).field("keys", &"<redacted>").finish()
    }
}

/// Start a session as party `me`: draw the encryption key `c_u` and the masking
/// key `s_u` (a random scalar used as an X25519 secret so that it can be
/// Shamir-shared), and sign the advert with `identity`.
///
/// Errors: [`SecAggError::UnexpectedParty`] if `me` is not in `params`.
pub fn advertise<R: RngCore + CryptoRng>(
    params: &SecAggParams,
    me: PartyId,
    identity: &SigningKey,
    rng: &mut R,
) -> Result<(Round0Secret, AdvertiseKeys), SecAggError> {
    if !params.contains(me) {
        return Err(SecAggError::UnexpectedParty { party: me, reason: "not a participant of this aggregation" });
    }
    let enc_sk = StaticSecret::random_from_rng(&mut *rng);
    let mask_scalar = Zeroizing::new(Scalar::random(rng));
    let enc_pk = PublicKey::from(&enc_sk).to_bytes();
    let mask_pk = PublicKey::from(&mask_secret(&mask_scalar)).to_bytes();
    let signature = identity.sign(&advert_message(&params.session(), me, &enc_pk, &mask_pk)).to_bytes();
    let advert = AdvertiseKeys { party: me, enc_pk, mask_pk, signature };
    Ok((Round0Secret { params: params.clone(), me, enc_sk, mask_scalar, advert: advert.clone() }, advert))
}

//! Strict serialisation of the key-generation messages that travel between
//! sites ([`PublicKeyShare`], [`KeyShareDeal`]), so the runtime can run the
//! set-up of [`super::keygen`] over its relayed, signed channel. Same layout
//! style as the other codecs of this module: magic, parameter fingerprint,
//! parties, then the polynomial(s). A deal is secret: the caller encrypts its
//! bytes end to end to the recipient (and they are zeroized on drop).
//!
//! (Added by helper HE-RUN for the runtime; owned by the `he` module.)

use super::error::HeError;
use super::keygen::{HeContext, KeyShareDeal, PublicKeyShare};
use super::ring::{poly_len, read_poly, write_poly};
use crate::wire::{PartyId, Reader, Writer};
use zeroize::Zeroizing;

const PK_SHARE_MAGIC: &[u8; 8] = b"SEHHEPS1";
const DEAL_MAGIC: &[u8; 8] = b"SEHHEKD1";

impl PublicKeyShare {
    /// Serialise.
    pub fn to_bytes(&self, ctx: &HeContext) -> Vec<u8> {
        let mut w = Writer::with_capacity(44 + poly_len(&ctx.ring));
        w.raw(PK_SHARE_MAGIC).raw(&self.fingerprint).u32(self.party.0);
        write_poly(&mut w, &ctx.ring, &self.p0);
        w.into_bytes()
    }

    /// Strictly decode; `sender`, when given, is the authenticated author, who
    /// must be the party named inside.
    pub fn from_bytes(ctx: &HeContext, bytes: &[u8], sender: Option<PartyId>) -> Result<PublicKeyShare, HeError> {
        let what = "public-key share";
        let mut r = Reader::new(bytes, sender);
        if r.take("magic", 8)? != PK_SHARE_MAGIC {
            return Err(HeError::Malformed { what, party: sender, reason: "bad magic" });
        }
        let fingerprint: [u8; 32] = r.array("fingerprint")?;
        ctx.params.check_fingerprint(&fingerprint, what, sender)?;
        let party = PartyId(r.u32("party")?);
        if sender.is_some_and(|s| s != party) || !party.is_site() {
            return Err(HeError::Malformed { what, party: sender, reason: "share names another party" });
        }
        let p0 = read_poly(&mut r, &ctx.ring, what, sender)?;
        r.finish(what)?;
        Ok(PublicKeyShare { party, fingerprint, p0 })
    }
}

impl KeyShareDeal {
    /// Serialise (secret bytes: encrypt them to `to` before they leave the dealer).
    pub fn to_bytes(&self, ctx: &HeContext) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(48 + poly_len(&ctx.ring));
        w.raw(DEAL_MAGIC).raw(&self.fingerprint).u32(self.from.0).u32(self.to.0);
        write_poly(&mut w, &ctx.ring, &self.share);
        Zeroizing::new(w.into_bytes())
    }

    /// Strictly decode; `dealer`, when given, is the authenticated dealer, who
    /// must be the `from` named inside.
    pub fn from_bytes(ctx: &HeContext, bytes: &[u8], dealer: Option<PartyId>) -> Result<KeyShareDeal, HeError> {
        let what = "key-share deal";
        let mut r = Reader::new(bytes, dealer);
        if r.take("magic", 8)? != DEAL_MAGIC {
            return Err(HeError::Malformed { what, party: dealer, reason: "bad magic" });
        }
        let fingerprint: [u8; 32] = r.array("fingerprint")?;
        ctx.params.check_fingerprint(&fingerprint, what, dealer)?;
        let from = PartyId(r.u32("from")?);
        let to = PartyId(r.u32("to")?);
        if dealer.is_some_and(|d| d != from) || !from.is_site() || !to.is_site() {
            return Err(HeError::Malformed { what, party: dealer, reason: "deal names another dealer" });
        }
        let share = Zeroizing::new(read_poly(&mut r, &ctx.ring, what, dealer)?);
        r.finish(what)?;
        Ok(KeyShareDeal { from, to, fingerprint, share })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::he::{simulate_setup, HeParams, PartySecret, BFV_8192};
    use crate::wire::{SessionId, StudyId};
    use rand::SeedableRng;

    #[test]
    fn key_generation_messages_round_trip_and_reject_tampering() {
        let ctx = HeContext::new(HeParams::new(BFV_8192).unwrap()).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let holders = [PartyId(1), PartyId(2), PartyId(3)];
        let session = SessionId { study: StudyId([1; 16]), round: 1 };
        let fed = simulate_setup(&ctx, &session, &holders, 2, &mut rng).unwrap();
        let a = crate::he::keygen::common_random_poly(&ctx, &fed.seed);
        let s = PartySecret::generate(&ctx, PartyId(2), &mut rng).unwrap();
        let pk = s.public_key_share(&ctx, &a, &mut rng).unwrap();
        let bytes = pk.to_bytes(&ctx);
        assert_eq!(PublicKeyShare::from_bytes(&ctx, &bytes, Some(PartyId(2))).unwrap(), pk);
        assert!(PublicKeyShare::from_bytes(&ctx, &bytes, Some(PartyId(3))).is_err());
        assert!(PublicKeyShare::from_bytes(&ctx, &bytes[..bytes.len() - 1], None).is_err());
        let deals = s.deal(&ctx, &holders, 2, &mut rng).unwrap();
        let d = &deals[0];
        let b = d.to_bytes(&ctx);
        let back = KeyShareDeal::from_bytes(&ctx, &b, Some(PartyId(2))).unwrap();
        assert_eq!((back.from, back.to), (d.from, d.to));
        assert_eq!(*back.share, *d.share);
        assert!(KeyShareDeal::from_bytes(&ctx, &b, Some(PartyId(1))).is_err());
        let mut extra = b.to_vec();
        extra.push(0);
        assert!(KeyShareDeal::from_bytes(&ctx, &extra, None).is_err());
    }
}

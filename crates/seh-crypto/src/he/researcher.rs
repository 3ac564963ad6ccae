//! The researcher's own BFV key pair for public-key switching ([`ResearcherKey`],
//! [`ResearcherPublicKey`]): deterministic derivation from a 32-byte secret seed, a key-file
//! codec and a digest that names a public key in requests and audit records.
//!
//! Key file (`SEHHERK1`, 104 bytes): magic ‖ parameter fingerprint (32) ‖ secret seed (32) ‖
//! digest of the public key derived from it (32). The digest makes a corrupted or altered file
//! an error rather than a silently different key. The secret (seed, and the ternary key derived
//! from it) is zeroized on drop and never printed.
//!
//! Derivation: a ChaCha20 stream keyed by the seed (domain-separated) draws the ternary secret
//! `s'`, the uniform `a'` and the error `e'`, in that order; `p0' = −a'·s' + e'`, `p1' = a'`.
//! This is the same construction `ResearcherKey::generate` always used, with the seed that
//! keyed its generator kept instead of discarded.

use super::decrypt::{ResearcherKey, ResearcherPublicKey};
use super::error::HeError;
use super::keygen::HeContext;
use super::ring::rng_from_seed;
use crate::wire::{Reader, Writer};
use zeroize::Zeroizing;

const KEY_MAGIC: &[u8; 8] = b"SEHHERK1";
const SEED_LABEL: &str = "secur-e-health he researcher key v1";
const DIGEST_LABEL: &str = "secur-e-health he researcher public key digest v1";
/// Length of a serialised [`ResearcherKey`].
pub const KEY_FILE_LEN: usize = 8 + 32 + 32 + 32;

impl ResearcherKey {
    /// The key pair derived from `seed` (32 secret bytes). Deterministic: the same seed and
    /// parameter set always give the same key pair.
    pub fn from_seed(ctx: &HeContext, seed: &[u8; 32]) -> Result<ResearcherKey, HeError> {
        let mut r = rng_from_seed(seed, SEED_LABEL);
        let s = Zeroizing::new(ctx.ring.small_ntt(&ctx.ring.ternary(&mut r))?);
        let a = ctx.ring.uniform_ntt(&mut r);
        let mut p0 = -(&a * s.as_ref());
        p0 += &ctx.ring.error_ntt(ctx.params.set().variance, &mut r)?;
        let public = ResearcherPublicKey { fingerprint: *ctx.params.fingerprint(), p0, p1: a };
        Ok(ResearcherKey { ctx: ctx.clone(), seed: Zeroizing::new(*seed), s, public })
    }

    /// Serialise the secret key (the key file; [`KEY_FILE_LEN`] bytes, zeroized on drop).
    /// Store it readable by its owner only.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(KEY_FILE_LEN);
        w.raw(KEY_MAGIC).raw(self.ctx.params.fingerprint()).raw(self.seed.as_ref());
        w.raw(&self.public.digest(&self.ctx));
        Zeroizing::new(w.into_bytes())
    }

    /// Strictly decode a key file written by [`ResearcherKey::to_bytes`].
    ///
    /// Errors: [`HeError::Malformed`] (`what` = "researcher key") for a wrong magic, a short or
    /// long file, or a public-key digest that does not match the key the seed gives (a
    /// corrupted or altered file); [`HeError::ParameterMismatch`] for a key of another
    /// parameter set. No error contains key material.
    pub fn from_bytes(ctx: &HeContext, bytes: &[u8]) -> Result<ResearcherKey, HeError> {
        let what = "researcher key";
        let mut r = Reader::new(bytes, None);
        if r.take("magic", 8)? != KEY_MAGIC {
            return Err(HeError::Malformed { what, party: None, reason: "bad magic (not a researcher HE key)" });
        }
        let fingerprint: [u8; 32] = r.array("fingerprint")?;
        ctx.params.check_fingerprint(&fingerprint, what, None)?;
        let seed = Zeroizing::new(r.array::<32>("seed")?);
        let digest: [u8; 32] = r.array("public-key digest")?;
        r.finish(what)?;
        let key = ResearcherKey::from_seed(ctx, &seed)?;
        if key.public.digest(ctx) != digest {
            return Err(HeError::Malformed {
                what,
                party: None,
                reason: "public-key digest does not match the secret (corrupted or altered key file)",
            });
        }
        Ok(key)
    }
}

impl ResearcherPublicKey {
    /// A 32-byte digest naming this public key (BLAKE3 in key-derivation mode over
    /// [`ResearcherPublicKey::to_bytes`]); shown to sites, recorded in audit logs and checked
    /// by the researcher before decrypting.
    pub fn digest(&self, ctx: &HeContext) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key(DIGEST_LABEL);
        h.update(&self.to_bytes(ctx));
        *h.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::he::{simulate_setup, HeParams, BFV_16384, BFV_8192};
    use crate::wire::{PartyId, SessionId, StudyId};
    use rand::SeedableRng;

    fn ctx() -> HeContext {
        HeContext::new(HeParams::new(BFV_8192).unwrap()).unwrap()
    }

    #[test]
    fn key_files_round_trip_and_decrypt_the_same() {
        let ctx = ctx();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        let key = ResearcherKey::generate(&ctx, &mut rng).unwrap();
        let bytes = key.to_bytes();
        assert_eq!(bytes.len(), KEY_FILE_LEN);
        let back = ResearcherKey::from_bytes(&ctx, &bytes).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert_eq!(*back.s, *key.s);
        assert_eq!(back.to_bytes(), bytes);
        // Deterministic from the seed; another seed gives another key.
        assert_eq!(ResearcherKey::from_seed(&ctx, &[3; 32]).unwrap().public_key(), {
            ResearcherKey::from_seed(&ctx, &[3; 32]).unwrap().public_key()
        });
        let other = ResearcherKey::from_seed(&ctx, &[4; 32]).unwrap();
        assert_ne!(other.public_key().digest(&ctx), key.public_key().digest(&ctx));
        // A key-switched result decrypts with the restored key exactly.
        let holders = [PartyId(1), PartyId(2), PartyId(3)];
        let session = SessionId { study: StudyId([2; 16]), round: 1 };
        let mut fed = simulate_setup(&ctx, &session, &holders, 2, &mut rng).unwrap();
        let values: Vec<i64> = (0..50).map(|i| i * 37 - 900).collect();
        let ct = fed.public_key.encrypt_i64(&values, &mut rng).unwrap();
        let t = [PartyId(1), PartyId(3)];
        let req = ct.key_switch_request(&t, back.public_key());
        let shares: Vec<_> = fed
            .shares
            .iter_mut()
            .filter(|s| t.contains(&s.party()))
            .map(|s| s.share(&req, &mut rng).unwrap())
            .collect();
        let switched = ct.key_switch(&ctx, &t, &shares).unwrap();
        assert_eq!(key.decrypt(&switched).unwrap(), values);
        assert_ne!(other.decrypt(&switched).unwrap(), values, "another key gives garbage");
    }

    #[test]
    fn malformed_key_files_are_refused_with_typed_errors() {
        let ctx = ctx();
        let key = ResearcherKey::from_seed(&ctx, &[7; 32]).unwrap();
        let good = key.to_bytes().to_vec();
        let malformed = |b: &[u8]| match ResearcherKey::from_bytes(&ctx, b) {
            Err(HeError::Malformed { what, reason, .. }) => format!("{what}: {reason}"),
            Err(HeError::Wire(e)) => format!("wire: {e}"),
            other => panic!("expected a decoding error, got {other:?}"),
        };
        let mut bad = good.clone();
        bad[0] ^= 1;
        assert!(malformed(&bad).contains("bad magic"));
        for cut in [0, 7, 8, 40, 71, KEY_FILE_LEN - 1] {
            let e = malformed(&good[..cut]);
            assert!(!e.is_empty());
        }
        let mut longer = good.clone();
        longer.push(0);
        let _ = malformed(&longer);
        // A flipped seed or digest bit: the digest no longer matches.
        for at in [40, 71, 72, KEY_FILE_LEN - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            assert!(malformed(&bad).contains("does not match"), "byte {at}");
        }
        // Another parameter set.
        let big = HeContext::new(HeParams::new(BFV_16384).unwrap()).unwrap();
        assert!(matches!(ResearcherKey::from_bytes(&big, &good), Err(HeError::ParameterMismatch { .. })));
        // Errors and Debug carry no key material.
        let hex_seed: String = [7u8; 4].iter().map(|b| format!("{b:02x}")).collect();
        let dbg = format!("{key:?}");
        assert!(dbg.contains("<redacted>") && !dbg.contains(&hex_seed) && !dbg.contains("7, 7"), "{dbg}");
    }
}

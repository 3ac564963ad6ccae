//! Threshold homomorphic encryption: t-of-n BFV with collective keys,
//! encryption at the source, flooded threshold decryption and key switching to
//! the researcher.
//!
//! **Unreviewed cryptography.** Nothing here has had an external review; see
//! `docs/HE.md` for what is and is not claimed. The back-end is only reachable
//! through [`HeSum`] / explicit calls; nothing falls back to it or from it.
//!
//! Built on the `fhe` crate (BFV parameters, moduli generation, contexts) and
//! `fhe-math` (RNS polynomials, NTT, RNS scaling). The protocol steps `fhe`'s
//! `mbfv` module lacks are implemented here on `fhe-math` polynomials, each
//! citing its source:
//!
//! * t-out-of-n access structure by Shamir re-sharing of each party's secret
//!   ([`keygen`], Mouchet–Bertrand–Hubaux, ePrint 2022/780);
//! * the common random polynomial from a jointly derived seed (commit, then
//!   reveal; [`keygen::seed_commit`]);
//! * noise flooding in decryption and key-switching shares ([`decrypt`]);
//! * serialisation of every message (fhe 0.1.1 cannot serialise its `mbfv` shares).
//!
//! # Parameter sets ([`params`])
//!
//! | set | N | log2 q | t | σ² | flooding | λ_s | shares per key share | hides noise ≤ |
//! |---|---|---|---|---|---|---|---|---|
//! | `bfv-8192` (default) | 8192 | 186 (HES bound 218) | 61-bit prime | 11 | 2^116 | 40 | 2^16 | 2^48 |
//! | `bfv-16384` | 16384 | 434 (HES bound 438) | 61-bit prime | 11 | 2^240 | 40 | 2^20 | 2^167 (one product, [`relin`], [`product`]) |
//!
//! # Flow
//!
//! 1. Setup, all `n` holders online: [`keygen::seed_commit`] → [`keygen::joint_seed`]
//!    → [`PartySecret::public_key_share`] and [`PartySecret::deal`] →
//!    [`CollectivePublicKey::aggregate`] and [`ThresholdKeyShare::combine`].
//! 2. Sites encrypt ([`CollectivePublicKey::encrypt_f64`]); the coordinator adds
//!    ([`HeVector::add_assign`], [`HeVector::scale`]) and may keep the result in
//!    an [`EncryptedStore`].
//! 3. Any `t` holders answer a [`ShareRequest`] with a flooded
//!    [`DecryptionShare`]; the coordinator combines
//!    ([`HeVector::threshold_decrypt`]) or switches the result to the
//!    researcher's key ([`HeVector::key_switch`], [`ResearcherKey::decrypt`]).

pub mod cipher;
pub mod decrypt;
pub mod error;
pub mod keygen;
mod keygen_wire;
pub mod local;
pub mod params;
pub mod product;
pub mod relin;
pub mod researcher;
mod ring;
pub mod store;
pub mod sum;

pub use cipher::{check_fixed, HeVector};
pub use decrypt::{DecryptionShare, ResearcherKey, ResearcherPublicKey, ShareRequest};
pub use error::HeError;
pub use keygen::{
    CollectivePublicKey, HeContext, KeyShareDeal, PartySecret, PublicKeyShare, SeedCommitment, SeedReveal, SeedSecret,
    ThresholdKeyShare,
};
pub use local::{simulate_setup, LocalFederation};
pub use params::{HeParams, NoiseBudget, ParameterSet, BFV_16384, BFV_8192};
pub use product::{check_product_fixed, decode_product};
pub use relin::{
    CollectiveRelinKey, RelinKeyGenerator, RelinRound1Aggregate, RelinRound1Share, RelinRound2Share, RelinSession,
};
pub use store::EncryptedStore;
pub use sum::{HeCoordinator, HeSite, HeStep, HeSum};

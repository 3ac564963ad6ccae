//! A site's key-ceremony machine (`CeremonySite::handle`) fed coordinator-signed envelopes whose
//! step and payload are fuzzed, after a valid start (so the round-1 / round-2 bundle, roster sign
//! start, signing request and roster signed decoders are reached): never panics. Input: chunks of
//! `[selector, round, len u16 BE, payload]`; a chunk whose selector is 0xff is delivered unsealed.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use seh_crypto::wire::{PartyId, ProtocolId, SessionId, SigningKey, StudyId};
use seh_protocol::ceremony::site::CeremonySite;
use seh_protocol::ceremony::{step, CeremonyStart};
use seh_protocol::federation::Membership;
use seh_protocol::{hex, messages, setup};

const STEPS: [(ProtocolId, u8); 9] = [
    (ProtocolId::Dkg, step::ROUND1_ALL),
    (ProtocolId::Dkg, step::ROUND2_ALL),
    (ProtocolId::Dkg, step::SIGN_START),
    (ProtocolId::Frost, messages::frost_step::REQUEST),
    (ProtocolId::Dkg, step::SIGNED),
    (ProtocolId::Dkg, step::START),
    (ProtocolId::Control, messages::control::OFFER),
    (ProtocolId::Frost, messages::frost_step::COMMITMENT),
    (ProtocolId::Dkg, step::FAILED),
];

struct Fixture {
    members: Arc<Membership>,
    coordinator: SigningKey,
    site: SigningKey,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let names: Vec<String> = (1..=3).map(|i| format!("site-{i}")).collect();
        let (file, ids) = setup::identities("fuzz", "coordinator", &names, &[], 2, &mut rng).expect("identities");
        let members = Arc::new(Membership::from_file(file).expect("members"));
        Fixture { members, coordinator: ids.coordinator, site: ids.sites["site-1"].clone() }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let mut site = CeremonySite::new(f.members.clone(), "site-1", f.site.clone()).expect("site");
    let me = f.members.site_by_name("site-1").expect("site-1").party;
    let session = |round| SessionId { study: StudyId(*b"fuzz-ceremony-01"), round };
    let start = CeremonyStart { members_sha256: hex::encode(&f.members.members_digest().expect("digest")) };
    let seal = |(protocol, step): (ProtocolId, u8), round, payload: Vec<u8>| {
        messages::seal(&f.coordinator, protocol, step, PartyId::COORDINATOR, me, session(round), payload).expect("seal")
    };
    site.handle(&seal((ProtocolId::Dkg, step::START), 0, messages::to_payload(&start)));
    let mut rest = data;
    while let [sel, round, a, b, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        if *sel == 0xff {
            site.handle(payload);
        } else {
            site.handle(&seal(STEPS[usize::from(*sel) % STEPS.len()], u32::from(*round % 3), payload.to_vec()));
        }
    }
    let _ = site.take_enrolled();
});

//! The coordinator's key-ceremony machine (`CeremonyCoordinator::receive`) fed site-signed
//! envelopes whose sender, step and payload are fuzzed (relayed round-1 / round-2 messages, key
//! reports, failure reports, FROST commitments and shares, enrolled acks): never panics. Input:
//! chunks of `[sender, selector, round, len u16 BE, payload]`; selector 0xff delivers the payload
//! unsealed; the machine's timeout is triggered by selector 0xfe.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use seh_crypto::wire::{PartyId, ProtocolId, SessionId, SigningKey, StudyId};
use seh_protocol::ceremony::coord::CeremonyCoordinator;
use seh_protocol::ceremony::step;
use seh_protocol::federation::Membership;
use seh_protocol::{messages, setup};

const ID: [u8; 16] = *b"fuzz-ceremony-02";
const STEPS: [(ProtocolId, u8); 8] = [
    (ProtocolId::Dkg, step::ROUND1),
    (ProtocolId::Dkg, step::ROUND2),
    (ProtocolId::Dkg, step::KEYED),
    (ProtocolId::Dkg, step::FAILED),
    (ProtocolId::Frost, messages::frost_step::COMMITMENT),
    (ProtocolId::Frost, messages::frost_step::SHARE),
    (ProtocolId::Dkg, step::ENROLLED),
    (ProtocolId::Control, messages::control::DECISION),
];

struct Fixture {
    members: Arc<Membership>,
    coordinator: SigningKey,
    sites: Vec<(PartyId, SigningKey)>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let names: Vec<String> = (1..=3).map(|i| format!("site-{i}")).collect();
        let (file, ids) = setup::identities("fuzz", "coordinator", &names, &[], 2, &mut rng).expect("identities");
        let members = Arc::new(Membership::from_file(file).expect("members"));
        let sites = members.sites().map(|s| (s.party, ids.sites[&s.name].clone())).collect();
        Fixture { members, coordinator: ids.coordinator, sites }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let (mut coord, _) = CeremonyCoordinator::start(f.members.clone(), f.coordinator.clone(), ID).expect("start");
    let mut rest = data;
    while let [who, sel, round, a, b, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let (from, key) = &f.sites[usize::from(*who) % f.sites.len()];
        match *sel {
            0xfe => drop(coord.timeout()),
            0xff => drop(coord.receive(PartyId(u32::from(*who)), payload)),
            s => {
                let (protocol, step) = STEPS[usize::from(s) % STEPS.len()];
                let session = SessionId { study: StudyId(ID), round: u32::from(*round % 3) };
                let bytes = messages::seal(key, protocol, step, *from, PartyId::COORDINATOR, session, payload.to_vec())
                    .expect("seal");
                drop(coord.receive(*from, &bytes));
            }
        }
    }
});

//! The key ceremony in memory: five sites and a coordinator that only relays, driven through
//! the sans-IO machines (`ceremony::site::CeremonySite`, `ceremony::coord::CeremonyCoordinator`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_crypto::frost::dkg::Round2Package;
use seh_crypto::frost::{self, KeyShare};
use seh_crypto::wire::{Envelope, PartyId, ProtocolId, SessionId, SigningKey, StudyId};
use seh_protocol::ceremony::coord::{CeremonyAction, CeremonyCoordinator, CeremonyError, SignedRoster};
use seh_protocol::ceremony::site::{CeremonyOutput, CeremonySite};
use seh_protocol::ceremony::{decode_bundle, encode_bundle, step, KeyReport};
use seh_protocol::federation::{Federation, FederationFile, MemberEntry, Membership};
use seh_protocol::messages::{self, control, DecisionMsg};
use seh_protocol::{hex, setup, site_dkg};

const CEREMONY: [u8; 16] = *b"roster-ceremony1";

struct Fixture {
    file: FederationFile,
    members: Arc<Membership>,
    coordinator: SigningKey,
    sites: BTreeMap<PartyId, (String, SigningKey)>,
}

fn fixture(n: usize, t: u16, seed: u64) -> Fixture {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let names: Vec<String> = (1..=n).map(|i| format!("site-{i}")).collect();
    let (file, ids) =
        setup::identities("ceremony test", "coordinator", &names, &["alice".into()], t, &mut rng).unwrap();
    let members = Arc::new(Membership::from_file(file.clone()).unwrap());
    let sites = members.sites().map(|s| (s.party, (s.name.clone(), ids.sites[&s.name].clone()))).collect();
    Fixture { file, members, coordinator: ids.coordinator, sites }
}

/// Everything one run produced.
#[derive(Default)]
struct Run {
    outcome: Option<Result<SignedRoster, CeremonyError>>,
    /// Every byte string the coordinator received or sent.
    relay_view: Vec<Vec<u8>>,
    /// Per site: the persisted share, the persisted federation text, and whether every `KEYED`
    /// report left only after the share was persisted.
    shares: BTreeMap<PartyId, KeyShare>,
    files: BTreeMap<PartyId, String>,
    enrolled: BTreeMap<PartyId, (KeyShare, Federation)>,
    persisted_before_report: bool,
}

/// Runs the ceremony; `intercept(site, bytes)` sees every site → coordinator message and returns
/// what reaches the coordinator (`None`: dropped). The coordinator times out when nothing moves.
fn run(
    f: &Fixture,
    coordinator_members: Arc<Membership>,
    mut intercept: impl FnMut(PartyId, Vec<u8>) -> Option<Vec<u8>>,
) -> Run {
    let mut sites: BTreeMap<PartyId, CeremonySite> = f
        .sites
        .iter()
        .map(|(p, (name, key))| (*p, CeremonySite::new(f.members.clone(), name, key.clone()).unwrap()))
        .collect();
    let (mut coord, actions) =
        CeremonyCoordinator::start(coordinator_members, f.coordinator.clone(), CEREMONY).unwrap();
    let mut out = Run { persisted_before_report: true, ..Default::default() };
    let mut queue: VecDeque<CeremonyAction> = actions.into();
    let mut timeouts = 0;
    loop {
        let Some(action) = queue.pop_front() else {
            if coord.is_over() || timeouts > 8 {
                break;
            }
            timeouts += 1;
            queue.extend(coord.timeout());
            continue;
        };
        match action {
            CeremonyAction::Send(o) => {
                out.relay_view.push(o.bytes.clone());
                let site = sites.get_mut(&o.to).unwrap();
                for output in site.handle(&o.bytes) {
                    match output {
                        CeremonyOutput::Send { bytes, kind, .. } => {
                            if kind == format!("dkg/{}", step::KEYED) && !out.shares.contains_key(&o.to) {
                                out.persisted_before_report = false;
                            }
                            if let Some(bytes) = intercept(o.to, bytes) {
                                out.relay_view.push(bytes.clone());
                                queue.extend(coord.receive(o.to, &bytes));
                            }
                        }
                        CeremonyOutput::PersistShare(share) => {
                            out.shares.insert(o.to, *share);
                        }
                        CeremonyOutput::PersistFederation { text } => {
                            out.files.insert(o.to, text);
                        }
                        CeremonyOutput::Enrolled => {
                            out.enrolled.insert(o.to, site.take_enrolled().unwrap());
                        }
                        CeremonyOutput::Audit(_) => {}
                    }
                }
            }
            CeremonyAction::Log(_) => {}
            CeremonyAction::Done(r) => out.outcome = Some(Ok(*r)),
            CeremonyAction::Failed(e) => out.outcome = Some(Err(e)),
        }
    }
    out
}

fn honest(_: PartyId, b: Vec<u8>) -> Option<Vec<u8>> {
    Some(b)
}

/// Re-signs the envelope `bytes` of `party` after `edit` changed it (what a malicious site can do).
fn resign(bytes: &[u8], roster: &Membership, key: &SigningKey, edit: impl FnOnce(&mut Envelope)) -> Vec<u8> {
    let mut env = messages::open(bytes, roster.roster()).unwrap();
    edit(&mut env);
    messages::seal_envelope(key, env).unwrap()
}

#[test]
fn five_sites_threshold_three_agree_on_one_key_and_sign_the_roster() {
    let f = fixture(5, 3, 1);
    let r = run(&f, f.members.clone(), honest);
    let roster = r.outcome.unwrap().unwrap();
    assert!(r.persisted_before_report, "a site reported its key before persisting its share");
    // Every site holds a share of the one group key the signed file names.
    assert_eq!(r.enrolled.len(), 5);
    let group = roster.federation.group_key();
    for (p, (share, fed)) in &r.enrolled {
        assert_eq!(share.party(), Some(*p));
        assert_eq!(share.group_key(), group);
        assert_eq!(fed.group_key(), group);
        assert_eq!(r.shares[p].group_key(), group);
        assert_eq!(r.files[p], roster.text, "site {p} persisted another file");
    }
    // The signed file verifies, was signed by exactly t sites, and every site confirmed it.
    let fed = Federation::from_signed_json(roster.text.as_bytes()).unwrap();
    let sig = fed.roster_signature().unwrap();
    assert_eq!(sig.signers.len(), 3);
    assert_eq!(sig.ceremony, hex::encode(&CEREMONY));
    assert_eq!(roster.confirmed.len(), 5);
    assert_eq!(roster.group_key, hex::encode(&group.to_bytes()));
    // Any three shares sign a release under the group key.
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let three: Vec<&KeyShare> = [2u32, 4, 5].iter().map(|p| &r.enrolled[&PartyId(*p)].0).collect();
    let message = frost::document_message("result", b"a release");
    let s = frost::sign::sign_locally(&three, &fed.frost_group, &message, &mut rng).unwrap();
    frost::verify(&group, &message, &s).unwrap();
}

#[test]
fn a_site_sending_a_tampered_round2_share_is_named() {
    let f = fixture(5, 3, 3);
    let key2 = f.sites[&PartyId(2)].1.clone();
    let members = f.members.clone();
    let r = run(&f, f.members.clone(), |from, bytes| {
        if from != PartyId(2) {
            return Some(bytes);
        }
        let outer = messages::open(&bytes, members.roster()).unwrap();
        if (outer.protocol, outer.step) != (ProtocolId::Dkg, step::ROUND2) {
            return Some(bytes);
        }
        // Site 2 flips a byte of the sealed share it deals to site 1 and signs the result.
        let inner = resign(&outer.payload, &members, &key2, |env| {
            let len = u32::from_be_bytes(env.payload[4..8].try_into().unwrap()) as usize;
            env.payload[8 + len - 1] ^= 1;
        });
        Some(resign(&bytes, &members, &key2, |env| env.payload = inner))
    });
    match r.outcome.unwrap() {
        Err(CeremonyError::Reported { culprit, reporter, reason }) => {
            assert_eq!(culprit, "site-2", "{reason}");
            assert_eq!(reporter, "site-1");
            assert!(reason.contains("does not decrypt"), "{reason}");
        }
        other => panic!("expected site-2 named, got {other:?}"),
    }
    assert!(r.enrolled.is_empty());
}

#[test]
fn the_relay_never_sees_a_plaintext_share() {
    let f = fixture(5, 3, 4);
    let r = run(&f, f.members.clone(), honest);
    let roster = r.outcome.unwrap().unwrap();
    // Every round-2 part the coordinator relayed is ciphertext: none decodes as a share.
    let mut parts = 0;
    for bytes in &r.relay_view {
        let Ok(outer) = messages::open(bytes, f.members.roster()) else { continue };
        if (outer.protocol, outer.step) != (ProtocolId::Dkg, step::ROUND2) {
            continue;
        }
        let inner = messages::open(&outer.payload, f.members.roster()).unwrap();
        assert_eq!(inner.step, site_dkg::STEP_ROUND2);
        let mut rest = inner.payload.as_slice();
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[4..8].try_into().unwrap()) as usize;
            let part = &rest[8..8 + len];
            assert!(Round2Package::decode(part).is_err(), "a relayed round-2 part decodes as a share");
            parts += 1;
            rest = &rest[8 + len..];
        }
    }
    assert_eq!(parts, 5 * 4, "every dealer sealed one share per other site");
    // No site's signing share crosses the relay. Its position in the share encoding: 32-byte
    // windows that are not public and differ from another site's share at the same offset in
    // nearly every byte (random scalars do; headers, identifiers and the group key do not).
    let public = hex::decode(&roster.federation.membership().file().frost_group).unwrap();
    let seen: Vec<u8> = r.relay_view.concat();
    let secrets: Vec<Vec<u8>> = r.shares.values().map(|k| k.to_secret_bytes().unwrap().to_vec()).collect();
    for (i, secret) in secrets.iter().enumerate() {
        let other = &secrets[(i + 1) % secrets.len()];
        let mut private = 0;
        for (o, w) in secret.windows(32).enumerate() {
            let differs = other.get(o..o + 32).map_or(0, |x| x.iter().zip(w).filter(|(a, b)| a != b).count());
            if differs < 28 || public.windows(32).any(|p| p == w) {
                continue;
            }
            private += 1;
            assert!(!seen.windows(32).any(|s| s == w), "key material of site {} crossed the relay", i + 1);
        }
        assert!(private > 0, "no private part found in the share encoding");
    }
}

#[test]
fn a_roster_changed_after_signing_fails_verification() {
    let f = fixture(3, 2, 5);
    let roster = run(&f, f.members.clone(), honest).outcome.unwrap().unwrap();
    let signed: FederationFile = serde_json::from_str(&roster.text).unwrap();
    Federation::from_file(signed.clone()).unwrap().verify_roster().unwrap();
    let mut edits: Vec<(&str, FederationFile)> = Vec::new();
    let mut added = signed.clone();
    added.researchers.push(MemberEntry { name: "mallory".into(), key: signed.coordinator.key.clone() });
    edits.push(("researcher added", added));
    let mut swapped = signed.clone();
    swapped.sites[0].key = signed.coordinator.key.clone();
    edits.push(("site key swapped", swapped));
    let mut lowered = signed.clone();
    lowered.name = "another federation".into();
    edits.push(("renamed", lowered));
    let mut unsigned = signed.clone();
    unsigned.roster_signature = None;
    edits.push(("signature removed", unsigned));
    for (what, file) in edits {
        let err = Federation::from_file(file).unwrap().verify_roster().unwrap_err().to_string();
        assert!(err.contains("roster_signature"), "{what}: {err}");
    }
    // Whitespace is not content: the pretty text re-indented still verifies.
    let compact = serde_json::to_string(&signed).unwrap();
    Federation::from_signed_json(compact.as_bytes()).unwrap();
}

#[test]
fn sites_refuse_a_ceremony_on_another_roster() {
    let f = fixture(3, 2, 6);
    // The coordinator's file names an extra researcher: every site refuses at the start.
    let mut file = f.file.clone();
    file.researchers.push(MemberEntry { name: "mallory".into(), key: file.coordinator.key.clone() });
    let other = Arc::new(Membership::from_file(file).unwrap());
    let r = run(&f, other, honest);
    match r.outcome.unwrap() {
        Err(CeremonyError::Failed { reason, .. }) => assert!(reason.contains("roster differs"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(r.shares.is_empty());
}

#[test]
fn a_site_reporting_another_group_key_is_named() {
    let f = fixture(4, 3, 7);
    let key4 = f.sites[&PartyId(4)].1.clone();
    let members = f.members.clone();
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let (_, other_group) = frost::dkg::run_locally(4, 3, &mut rng).unwrap();
    let other = hex::encode(&other_group.encode().unwrap());
    let r = run(&f, f.members.clone(), |from, bytes| {
        let env = messages::open(&bytes, members.roster()).unwrap();
        if from == PartyId(4) && (env.protocol, env.step) == (ProtocolId::Dkg, step::KEYED) {
            let report = messages::to_payload(&KeyReport { group: other.clone() });
            return Some(resign(&bytes, &members, &key4, |e| e.payload = report));
        }
        Some(bytes)
    });
    match r.outcome.unwrap() {
        Err(CeremonyError::GroupKeyMismatch { sites }) => assert_eq!(sites, vec!["site-4".to_owned()]),
        other => panic!("expected site-4 named, got {other:?}"),
    }
}

#[test]
fn a_silent_site_is_named_and_relayed_messages_cannot_be_swapped() {
    let f = fixture(3, 2, 9);
    let r = run(&f, f.members.clone(), |from, b| (from != PartyId(3)).then_some(b));
    match r.outcome.unwrap() {
        Err(CeremonyError::Silent { sites, step }) => {
            assert_eq!(sites, vec!["site-3".to_owned()]);
            assert_eq!(step, "round-1");
        }
        other => panic!("expected site-3 named, got {other:?}"),
    }
    // Site 2 relays site 1's round-1 broadcast as its own: the coordinator names site 2.
    let members = f.members.clone();
    let key2 = f.sites[&PartyId(2)].1.clone();
    let mut first = None;
    let r = run(&f, f.members.clone(), |from, bytes| {
        let env = messages::open(&bytes, members.roster()).unwrap();
        if (env.protocol, env.step) != (ProtocolId::Dkg, step::ROUND1) {
            return Some(bytes);
        }
        if from == PartyId(1) {
            first = Some(env.payload.clone());
        } else if from == PartyId(2) {
            let stolen = first.clone().unwrap();
            return Some(resign(&bytes, &members, &key2, |e| e.payload = stolen));
        }
        Some(bytes)
    });
    match r.outcome.unwrap() {
        Err(CeremonyError::Misbehaved { site, .. }) => assert_eq!(site, "site-2"),
        other => panic!("expected site-2 named, got {other:?}"),
    }
}

#[test]
fn an_enrolling_site_refuses_studies_by_name() {
    let f = fixture(2, 2, 10);
    let (name, key) = f.sites[&PartyId(1)].clone();
    let mut site = CeremonySite::new(f.members.clone(), &name, key).unwrap();
    let session = SessionId { study: StudyId([9; 16]), round: 1 };
    let offer = messages::seal(
        &f.coordinator,
        ProtocolId::Control,
        control::OFFER,
        PartyId::COORDINATOR,
        PartyId(1),
        session,
        b"{}".to_vec(),
    )
    .unwrap();
    let out = site.handle(&offer);
    let reply = out
        .iter()
        .find_map(|o| match o {
            CeremonyOutput::Send { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .expect("a refusal is sent");
    let env = messages::open(&reply, f.members.roster()).unwrap();
    assert_eq!((env.protocol, env.step, env.session), (ProtocolId::Control, control::DECISION, session));
    let d: DecisionMsg = messages::from_payload("decision", &env.payload).unwrap();
    assert!(!d.accept);
    assert!(d.reason.contains("site-1") && d.reason.contains("enrolling"), "{}", d.reason);
    // The same offer again is a replay: audited, not answered twice.
    let again = site.handle(&offer);
    assert!(again.iter().all(|o| !matches!(o, CeremonyOutput::Send { .. })));
    // Bundles are strict.
    assert!(decode_bundle(&encode_bundle(&[vec![1]])[..5], PartyId(1)).is_err());
}

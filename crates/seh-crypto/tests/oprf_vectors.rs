//! RFC 9497 appendix A.1 (ristretto255-SHA512) test vectors: VOPRF mode
//! through `seh_crypto::oprf`, OPRF mode through the `voprf` crate's API.

use seh_crypto::oprf::{EvaluatedResponse, OprfKeyHolder, OprfPublicKey, PendingPseudonyms};
use serde_json::Value;
use voprf::{BlindedElement, EvaluationElement, OprfClient, OprfServer, Ristretto255};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn load() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/oprf_ristretto255_rfc9497.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn list(v: &Value, key: &str) -> Vec<Vec<u8>> {
    v[key].as_array().unwrap().iter().map(|s| unhex(s.as_str().unwrap())).collect()
}

#[test]
fn voprf_mode_vectors_through_wrappers() {
    let all = load();
    let mode = &all["modes"]["VOPRF"];
    let seed: [u8; 32] = unhex(mode["Seed"].as_str().unwrap()).try_into().unwrap();
    let info = unhex(mode["KeyInfo"].as_str().unwrap());
    let holder = OprfKeyHolder::from_seed(&seed, &info).unwrap();
    // DeriveKeyPair reproduces skSm and pkSm.
    // Stored form is skSm || pkSm.
    assert_eq!(holder.to_secret_bytes()[..32], unhex(mode["skSm"].as_str().unwrap())[..]);
    let pk_bytes: [u8; 32] = unhex(mode["pkSm"].as_str().unwrap()).try_into().unwrap();
    assert_eq!(holder.public_key().to_bytes(), pk_bytes);
    let pk = OprfPublicKey::from_bytes(pk_bytes).unwrap();

    let vectors = mode["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 3);
    for v in vectors {
        let inputs = list(v, "Input");
        let blinds = list(v, "Blind");
        let blinded = list(v, "BlindedElement");
        let evaluated = list(v, "EvaluationElement");
        let outputs = list(v, "Output");
        let proof = unhex(v["Proof"][0].as_str().unwrap());

        // Rebuild the site state from the vector's blinds and blinded elements.
        let mut state = (inputs.len() as u32).to_be_bytes().to_vec();
        for (b, e) in blinds.iter().zip(&blinded) {
            state.extend_from_slice(b);
            state.extend_from_slice(e);
        }
        let pending = PendingPseudonyms::from_secret_bytes(&state).unwrap();

        // The request a site sends, as a wire payload, decodes; the key
        // holder's evaluation equals the vector's (the proof is randomized).
        let mut req = vec![1u8];
        req.extend_from_slice(&(inputs.len() as u32).to_be_bytes());
        blinded.iter().for_each(|e| req.extend_from_slice(e));
        let request = seh_crypto::oprf::BlindedRequest::decode(&req).unwrap();
        assert_eq!(request.encode(), req);
        let ours = holder.evaluate(&request, &mut rand::rngs::OsRng).unwrap();
        let ours_enc = ours.encode();
        let mut expect_elems = Vec::new();
        evaluated.iter().for_each(|e| expect_elems.extend_from_slice(e));
        assert_eq!(&ours_enc[5..5 + 32 * inputs.len()], &expect_elems[..]);

        // The vector's response (elements + proof) finalizes to the vector's outputs.
        let mut resp = vec![2u8];
        resp.extend_from_slice(&(inputs.len() as u32).to_be_bytes());
        resp.extend_from_slice(&expect_elems);
        resp.extend_from_slice(&proof);
        let response = EvaluatedResponse::decode(&resp).unwrap();
        assert_eq!(response.encode(), resp);
        let got = pending.finalize(&inputs, &response, &pk).unwrap();
        for (g, o) in got.iter().zip(&outputs) {
            assert_eq!(g.0.to_vec(), *o);
        }
    }
}

#[test]
fn oprf_mode_vectors_through_crate_api() {
    let all = load();
    let mode = &all["modes"]["OPRF"];
    let seed = unhex(mode["Seed"].as_str().unwrap());
    let info = unhex(mode["KeyInfo"].as_str().unwrap());
    let server = OprfServer::<Ristretto255>::new_from_seed(&seed, &info).unwrap();
    assert_eq!(server.serialize().to_vec(), unhex(mode["skSm"].as_str().unwrap()));
    let vectors = mode["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 2);
    for v in vectors {
        let input = &list(v, "Input")[0];
        let blind = &list(v, "Blind")[0];
        let scalar = curve25519_dalek::scalar::Scalar::from_canonical_bytes(blind.clone().try_into().unwrap()).unwrap();
        let r = OprfClient::<Ristretto255>::deterministic_blind_unchecked(input, scalar).unwrap();
        assert_eq!(r.message.serialize().to_vec(), list(v, "BlindedElement")[0]);
        let be = BlindedElement::<Ristretto255>::deserialize(&list(v, "BlindedElement")[0]).unwrap();
        let ev = server.blind_evaluate(&be);
        assert_eq!(ev.serialize().to_vec(), list(v, "EvaluationElement")[0]);
        let ev2 = EvaluationElement::<Ristretto255>::deserialize(&list(v, "EvaluationElement")[0]).unwrap();
        let out = r.state.finalize(input, &ev2).unwrap();
        assert_eq!(out.to_vec(), list(v, "Output")[0]);
    }
}

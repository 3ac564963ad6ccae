//! A holder's check of the document it is asked to co-sign after a release from the encrypted
//! store ([`crate::he_cosign`]), against the release it accepted ([`SiteHe::release_offer`]).

use seh_crypto::wire::{PartyId, SessionId};

use super::SiteHe;
use crate::he_cosign::StoreReleaseDocument;

impl SiteHe {
    /// Checks a document this site is asked to co-sign after a release from the encrypted store:
    /// it names the release this site accepted in `session` — the study and its signed spec, the
    /// researcher's signed request, the stored round, exactly the summed sites (`name` maps a
    /// party to its site name), the target key (or none for a decryption) — and, for a key
    /// switch, carries a ciphertext digest and no result (for a decryption: a result, no
    /// ciphertext). `Err(reason)` names the first mismatch; never a value or a key.
    pub fn check_release_document(
        &self,
        study_id: &str,
        session: SessionId,
        doc: &StoreReleaseDocument,
        name: &dyn Fn(PartyId) -> String,
    ) -> Result<(), String> {
        let r = self
            .releases
            .get(study_id)
            .filter(|r| r.session == session)
            .ok_or("this site accepted no release from the encrypted store in this session")?;
        if doc.study_id != study_id || doc.spec_sha256 != r.spec_sha256 {
            return Err("the document names another study".into());
        }
        if doc.request_sha256 != r.request_sha256 {
            return Err("the document names another signed release request".into());
        }
        if doc.stored_round != r.round || doc.session_round != session.round {
            return Err("the document names another round".into());
        }
        let sites: Vec<String> = r.sites.iter().map(|p| name(PartyId(*p))).collect();
        if doc.contributors != sites {
            return Err("the document names other contributors than the sites summed".into());
        }
        let k = self.keys.get(study_id).ok_or("this site holds no threshold-HE key share for the study")?;
        let holders: Vec<String> = k.pk.holders().iter().map(|p| name(*p)).collect();
        let mut named = doc.decryptors.clone();
        named.sort();
        named.dedup();
        if named.len() != doc.decryptors.len()
            || named.len() < k.pk.threshold()
            || named.iter().any(|d| !holders.contains(d))
        {
            return Err(format!(
                "the document does not name t = {} distinct key holders as decryptors",
                k.pk.threshold()
            ));
        }
        match (&r.target, &doc.researcher_key, &doc.result, &doc.ciphertext_sha256) {
            (None, None, Some(_), None) => Ok(()),
            (Some(want), Some(got), None, Some(c)) if want == got && crate::hex::decode_array::<32>(c).is_some() => {
                Ok(())
            }
            (Some(_), _, _, _) => Err("the document is not the key switch to the offered researcher key".into()),
            (None, _, _, _) => Err("the document is not the decryption that was offered".into()),
        }
    }
}

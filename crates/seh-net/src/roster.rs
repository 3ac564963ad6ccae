//! The federation roster: who may connect, with which role and identity key.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use ed25519_dalek::VerifyingKey;
use rustls::pki_types::CertificateDer;

use crate::error::{NetError, RefusalReason};
use crate::identity::{ed25519_spki, NodeId, Role};

/// One roster entry.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Member {
    /// The node's role.
    pub role: Role,
    /// The node's Ed25519 identity key (also its mTLS certificate key).
    pub key: VerifyingKey,
    /// Revoked members are refused.
    pub revoked: bool,
}

/// The authenticated identity of a connected peer, as established from its certificate.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PeerInfo {
    /// The peer's node id.
    pub id: NodeId,
    /// The peer's role.
    pub role: Role,
    /// The peer's identity key.
    pub key: VerifyingKey,
}

/// The set of federation members. (Later: signed by a threshold of the sites.)
#[derive(Clone, Default, Debug)]
pub struct Roster {
    members: BTreeMap<NodeId, Member>,
}

impl Roster {
    /// An empty roster.
    pub fn new() -> Self {
        Roster::default()
    }

    /// Adds a member. Errors: [`NetError::Roster`] if the id or the key is already listed.
    pub fn add(&mut self, id: NodeId, role: Role, key: VerifyingKey) -> Result<(), NetError> {
        if self.members.contains_key(&id) {
            return Err(NetError::Roster("node id already on the roster"));
        }
        if self.members.values().any(|m| m.key == key) {
            return Err(NetError::Roster("key already on the roster"));
        }
        self.members.insert(id, Member { role, key, revoked: false });
        Ok(())
    }

    /// Marks a member revoked. Errors: [`NetError::Roster`] if the id is not listed.
    pub fn revoke(&mut self, id: &NodeId) -> Result<(), NetError> {
        let m = self.members.get_mut(id).ok_or(NetError::Roster("node id not on the roster"))?;
        m.revoked = true;
        Ok(())
    }

    /// The entry for `id`, if any.
    pub fn get(&self, id: &NodeId) -> Option<&Member> {
        self.members.get(id)
    }

    /// Checks that `id` with `key` is an unrevoked member with role `required`.
    pub fn authorize(&self, id: &NodeId, key: &VerifyingKey, required: Role) -> Result<PeerInfo, RefusalReason> {
        let m = self.members.get(id).filter(|m| m.key == *key).ok_or(RefusalReason::NotOnRoster)?;
        if m.revoked {
            return Err(RefusalReason::Revoked(id.to_string()));
        }
        if m.role != required {
            return Err(RefusalReason::WrongRole { node: id.to_string(), actual: m.role, required });
        }
        Ok(PeerInfo { id: id.clone(), role: m.role, key: *key })
    }

    /// Identifies the member a (chain-verified) leaf certificate belongs to: its key must be an
    /// unrevoked member's Ed25519 key and its DNS names exactly that member's id. Role is not
    /// checked here (each service checks its own).
    pub fn identify_certificate(&self, leaf: &CertificateDer<'_>) -> Result<PeerInfo, RefusalReason> {
        let cert = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| RefusalReason::UntrustedCertificate(format!("unparsable leaf: {e}")))?;
        let spki = cert.subject_public_key_info();
        let (id, m) = self
            .members
            .iter()
            .find(|(_, m)| ed25519_spki(&m.key).as_slice() == spki.as_ref())
            .ok_or(RefusalReason::NotOnRoster)?;
        if m.revoked {
            return Err(RefusalReason::Revoked(id.to_string()));
        }
        let mut names = cert.valid_dns_names();
        if names.next() != Some(id.as_str()) || names.next().is_some() {
            return Err(RefusalReason::NameMismatch(id.to_string()));
        }
        Ok(PeerInfo { id: id.clone(), role: m.role, key: m.key })
    }
}

/// A roster shared between the TLS verifier, the per-request guard and the application, so a
/// revocation takes effect for new connections and new calls at once.
#[derive(Clone, Default, Debug)]
pub struct RosterHandle(Arc<RwLock<Roster>>);

impl RosterHandle {
    /// Shares `roster`.
    pub fn new(roster: Roster) -> Self {
        RosterHandle(Arc::new(RwLock::new(roster)))
    }

    /// Runs `f` on the current roster (read-only).
    pub fn read<T>(&self, f: impl FnOnce(&Roster) -> T) -> T {
        // A panic while holding the lock cannot leave a Roster half-updated (updates are single
        // inserts/flag sets), so a poisoned lock is still safe to read.
        let guard = self.0.read().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    /// Runs `f` to change the roster.
    pub fn update<T>(&self, f: impl FnOnce(&mut Roster) -> T) -> T {
        let mut guard = self.0.write().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

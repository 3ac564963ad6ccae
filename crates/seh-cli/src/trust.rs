//! How a party's configuration says which TLS peers it trusts: with a `ca` file (a federation
//! from `seh keys init`), a peer's certificate must chain to that CA *and* carry a roster
//! member's key; without one (a federation whose parties made their own keys with `seh keys
//! gen`), the roster's pinned keys are the only anchor ([`seh_net::Trust::Roster`]).

use anyhow::{Context, Result};
use seh_net::{ClientTls, NodeId, RosterHandle, ServerTls, TlsCredentials, Trust};
use std::path::{Path, PathBuf};

/// The trust anchor of one configuration: the CA certificate's bytes, or none (roster).
#[derive(Debug)]
pub struct TrustSource(Option<Vec<u8>>);

impl TrustSource {
    /// Reads `ca` (resolved against the configuration file `config`) when one is configured.
    pub fn load(config: &Path, ca: Option<&PathBuf>) -> Result<Self> {
        match ca {
            None => Ok(TrustSource(None)),
            Some(p) => {
                let path = crate::coordinator_cmd::resolve(config, p);
                Ok(TrustSource(Some(std::fs::read(&path).with_context(|| format!("{}", path.display()))?)))
            }
        }
    }

    fn trust(&self) -> Trust<'_> {
        match &self.0 {
            Some(ca) => Trust::Ca(ca),
            None => Trust::Roster,
        }
    }

    /// The coordinator's server configuration.
    pub fn server(&self, creds: &TlsCredentials, roster: RosterHandle) -> Result<ServerTls> {
        Ok(seh_net::server_config_with(self.trust(), creds, roster)?)
    }

    /// A node's or researcher's client configuration for the coordinator `coordinator` with the
    /// roster key `key`.
    pub fn client(
        &self,
        creds: &TlsCredentials,
        coordinator: &NodeId,
        key: ed25519_dalek::VerifyingKey,
    ) -> Result<ClientTls> {
        Ok(ClientTls::with_trust(self.trust(), Some(creds), coordinator, Some(key))?)
    }
}

//! mTLS without a CA (`Trust::Roster`): each party signs its own certificate for its identity
//! key; the coordinator admits a client whose certificate carries an unrevoked roster member's key
//! and name, and a site admits only a coordinator carrying the pinned key and name.

use std::net::SocketAddr;
use std::sync::Arc;

use seh_net::{
    serve_researcher_api, serve_site_link, ClientTls, FederationCa, Frame, GrpcResearcherClient, GrpcSiteConnector,
    NetError, NodeId, NodeIdentity, PeerInfo, ResearcherClient, ResearcherHandler, Role, Roster, RosterHandle,
    SiteConnector, StudyStatus, TlsCredentials, Trust,
};

const LOOPBACK: &str = "127.0.0.1:0";

fn id(s: &str) -> NodeId {
    NodeId::parse(s).unwrap()
}

struct Pinned {
    roster: RosterHandle,
    coordinator: NodeIdentity,
    coordinator_creds: TlsCredentials,
}

impl Pinned {
    fn new() -> Self {
        let coordinator = NodeIdentity::generate(id("coordinator"));
        let coordinator_creds = coordinator.self_signed().unwrap();
        let mut roster = Roster::new();
        roster.add(id("coordinator"), Role::Coordinator, coordinator.verifying_key()).unwrap();
        Pinned { roster: RosterHandle::new(roster), coordinator, coordinator_creds }
    }

    fn member(&self, name: &str, role: Role) -> (NodeIdentity, TlsCredentials) {
        let node = NodeIdentity::generate(id(name));
        self.roster.update(|r| r.add(id(name), role, node.verifying_key())).unwrap();
        let creds = node.self_signed().unwrap();
        (node, creds)
    }

    fn server(&self) -> Arc<rustls::ServerConfig> {
        seh_net::server_config_with(Trust::Roster, &self.coordinator_creds, self.roster.clone()).unwrap()
    }

    fn client(&self, creds: &TlsCredentials, key: &NodeIdentity) -> ClientTls {
        ClientTls::with_trust(Trust::Roster, Some(creds), self.coordinator.id(), Some(key.verifying_key())).unwrap()
    }

    fn connector(&self, addr: SocketAddr, tls: ClientTls) -> GrpcSiteConnector {
        GrpcSiteConnector::new(addr, tls, self.coordinator.id().clone(), self.coordinator.verifying_key())
    }
}

async fn opens(fed: &Pinned, tls: ClientTls) -> Result<(), NetError> {
    let (listener, mut acceptor) =
        serve_site_link(LOOPBACK.parse().unwrap(), fed.server(), fed.roster.clone()).await.unwrap();
    let connector = fed.connector(listener.local_addr(), tls);
    let result = match connector.open().await {
        Ok(mut at_site) => {
            let at_coordinator = acceptor.accept().await.unwrap();
            at_coordinator.sink.send(Frame::new("s", 1, "work", vec![9; 10]).unwrap()).await.unwrap();
            let f = at_site.stream.recv().await.unwrap().unwrap();
            assert_eq!(f.payload(), &[9; 10][..]);
            Ok(())
        }
        Err(e) => {
            assert_eq!(listener.handler_calls(), 0, "a refused peer must never reach a handler");
            Err(e)
        }
    };
    listener.shutdown().await;
    result
}

#[tokio::test]
async fn self_signed_members_of_the_roster_connect() {
    let fed = Pinned::new();
    let (_site, creds) = fed.member("site-a", Role::Site);
    opens(&fed, fed.client(&creds, &fed.coordinator)).await.expect("a roster member connects");
}

#[tokio::test]
async fn strangers_impostors_and_revoked_members_are_refused() {
    let fed = Pinned::new();
    // A self-signed certificate for a key that is not on the roster.
    let stranger = NodeIdentity::generate(id("site-x"));
    let err = opens(&fed, fed.client(&stranger.self_signed().unwrap(), &fed.coordinator)).await.unwrap_err();
    assert!(err.to_string().contains("not on the federation roster"), "{err}");
    // A roster member's name with another key.
    let (_site, _) = fed.member("site-a", Role::Site);
    let impostor = NodeIdentity::generate(id("site-a"));
    let err = opens(&fed, fed.client(&impostor.self_signed().unwrap(), &fed.coordinator)).await.unwrap_err();
    assert!(err.to_string().contains("not on the federation roster"), "{err}");
    // A member's key in a certificate naming another member (the name must match the key's entry).
    let (b, _) = fed.member("site-b", Role::Site);
    let renamed = NodeIdentity::new(id("site-c"), b.signing_key().clone());
    let err = opens(&fed, fed.client(&renamed.self_signed().unwrap(), &fed.coordinator)).await.unwrap_err();
    assert!(matches!(err, NetError::Tls(_)), "{err}");
    // Revoked.
    let (r, r_creds) = fed.member("site-r", Role::Site);
    fed.roster.update(|x| x.revoke(r.id())).unwrap();
    assert!(opens(&fed, fed.client(&r_creds, &fed.coordinator)).await.is_err());
    // A certificate from a CA, for a key not on the roster, is no way in either.
    let ca = FederationCa::generate("some CA").unwrap();
    let other = NodeIdentity::generate(id("site-y"));
    assert!(opens(&fed, fed.client(&ca.issue(&other).unwrap(), &fed.coordinator)).await.is_err());
}

#[tokio::test]
async fn a_site_refuses_a_coordinator_without_the_pinned_key() {
    let fed = Pinned::new();
    let (_site, creds) = fed.member("site-a", Role::Site);
    // The site pins another key for the coordinator: the real coordinator is refused.
    let other = NodeIdentity::generate(id("coordinator"));
    let err = opens(&fed, fed.client(&creds, &other)).await.unwrap_err();
    assert!(matches!(err, NetError::Tls(_)), "{err}");
    // Roster trust without a pinned coordinator key is a configuration error, not an open door.
    let err = ClientTls::with_trust(Trust::Roster, Some(&creds), fed.coordinator.id(), None).unwrap_err();
    assert!(err.to_string().contains("coordinator's key"), "{err}");
}

struct Echo;

impl ResearcherHandler for Echo {
    async fn submit(&self, researcher: &PeerInfo, request: Frame) -> Result<String, NetError> {
        Ok(format!("{}-{}", request.study_id(), researcher.id))
    }
    async fn status(&self, _: &PeerInfo, study_id: &str) -> Result<StudyStatus, NetError> {
        Ok(StudyStatus { study_id: study_id.into(), state: "done".into(), round: 1, detail: String::new() })
    }
    async fn result(&self, _: &PeerInfo, study_id: &str) -> Result<Frame, NetError> {
        Frame::new(study_id, 1, "release", vec![1])
    }
}

#[tokio::test]
async fn researcher_api_under_roster_trust() {
    let fed = Pinned::new();
    let (_r, creds) = fed.member("researcher-1", Role::Researcher);
    let listener = serve_researcher_api(LOOPBACK.parse().unwrap(), fed.server(), fed.roster.clone(), Arc::new(Echo))
        .await
        .unwrap();
    let client =
        GrpcResearcherClient::connect(listener.local_addr(), &fed.client(&creds, &fed.coordinator)).await.unwrap();
    let got = client.submit(Frame::new("s1", 0, "study/submit", vec![]).unwrap()).await.unwrap();
    assert_eq!(got, "s1-researcher-1");
    listener.shutdown().await;
}

//! Transport tests on loopback (127.0.0.1, port 0) and in memory. The generic functions run
//! against both transports.

use std::net::SocketAddr;
use std::sync::Arc;

use seh_net::{
    serve_researcher_api, serve_site_link, ClientTls, FederationCa, Frame, GrpcResearcherClient, GrpcSiteConnector,
    MemoryNetwork, NetError, NodeId, NodeIdentity, PeerInfo, RefusalReason, ResearcherClient, ResearcherHandler, Role,
    Roster, RosterHandle, SessionAcceptor, SiteConnector, StudyStatus, TlsCredentials, TlsFailure,
};

const LOOPBACK: &str = "127.0.0.1:0";

fn id(s: &str) -> NodeId {
    NodeId::parse(s).unwrap()
}

struct Federation {
    ca: FederationCa,
    roster: RosterHandle,
    coordinator: NodeIdentity,
    coordinator_creds: TlsCredentials,
}

impl Federation {
    fn new() -> Self {
        let ca = FederationCa::generate("Secur-e-Health test federation").unwrap();
        let coordinator = NodeIdentity::generate(id("coordinator"));
        let coordinator_creds = ca.issue(&coordinator).unwrap();
        let mut roster = Roster::new();
        roster.add(id("coordinator"), Role::Coordinator, coordinator.verifying_key()).unwrap();
        Federation { ca, roster: RosterHandle::new(roster), coordinator, coordinator_creds }
    }

    /// A node on the roster with `role`, and its credentials.
    fn member(&self, name: &str, role: Role) -> (NodeIdentity, TlsCredentials) {
        let node = NodeIdentity::generate(id(name));
        self.roster.update(|r| r.add(id(name), role, node.verifying_key())).unwrap();
        let creds = self.ca.issue(&node).unwrap();
        (node, creds)
    }

    fn client_tls(&self, creds: Option<&TlsCredentials>) -> ClientTls {
        ClientTls::new(self.ca.cert_der(), creds, self.coordinator.id(), Some(self.coordinator.verifying_key()))
            .unwrap()
    }

    fn grpc_connector(&self, addr: SocketAddr, creds: Option<&TlsCredentials>) -> GrpcSiteConnector {
        GrpcSiteConnector::new(
            addr,
            self.client_tls(creds),
            self.coordinator.id().clone(),
            self.coordinator.verifying_key(),
        )
    }

    fn server_tls(&self) -> Arc<rustls::ServerConfig> {
        seh_net::server_config(self.ca.cert_der(), &self.coordinator_creds, self.roster.clone()).unwrap()
    }
}

/// Opens a session, pushes work down and results up, checks sender stamping and spoofing.
async fn exchange<C: SiteConnector>(connector: &C, acceptor: &mut SessionAcceptor, site: &NodeId) {
    let mut at_site = connector.open().await.unwrap();
    let mut at_coordinator = acceptor.accept().await.unwrap();
    assert_eq!(&at_coordinator.peer.id, site);
    assert_eq!(at_coordinator.peer.role, Role::Site);
    assert_eq!(at_site.peer.role, Role::Coordinator);

    for round in 0..3u64 {
        let work = Frame::new("study-1", round, "work", vec![round as u8; 100]).unwrap();
        at_coordinator.sink.send(work).await.unwrap();
    }
    for round in 0..3u64 {
        let f = at_site.stream.recv().await.unwrap().unwrap();
        assert_eq!(
            (f.study_id(), f.round(), f.kind(), f.payload()),
            ("study-1", round, "work", &[round as u8; 100][..])
        );
    }

    let result = Frame::new("study-1", 2, "secagg/masked", vec![7; 70_000]).unwrap().to(id("site-b"));
    at_site.sink.send(result).await.unwrap();
    let f = at_coordinator.stream.recv().await.unwrap().unwrap();
    assert_eq!(f.sender(), Some(site), "coordinator stamps the authenticated sender");
    assert_eq!(f.recipient(), Some(&id("site-b")));
    assert_eq!(f.payload(), &[7; 70_000][..]);

    // A relayed frame keeps its original sender on the way down.
    let relayed = Frame::new("study-1", 2, "secagg/share", vec![1]).unwrap().from_sender(id("site-b"));
    at_coordinator.sink.send(relayed).await.unwrap();
    assert_eq!(at_site.stream.recv().await.unwrap().unwrap().sender(), Some(&id("site-b")));

    // A site may not speak for another site.
    let spoofed = Frame::new("study-1", 2, "result", vec![]).unwrap().from_sender(id("site-b"));
    at_site.sink.send(spoofed).await.unwrap();
    let err = at_coordinator.stream.recv().await.unwrap().unwrap_err();
    assert!(matches!(err, NetError::InvalidFrame { field: "sender", .. }), "{err}");
}

/// Opening must fail.
async fn refused<C: SiteConnector>(connector: &C) -> NetError {
    match connector.open().await {
        Ok(_) => panic!("session opened for a refused node"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn memory_round_trip_and_refusals() {
    let fed = Federation::new();
    let (site, _) = fed.member("site-a", Role::Site);
    let (researcher, _) = fed.member("researcher-1", Role::Researcher);
    let (net, mut acceptor) =
        MemoryNetwork::new(fed.roster.clone(), fed.coordinator.id().clone(), fed.coordinator.verifying_key());
    exchange(&net.site_connector(site.id().clone(), site.verifying_key()), &mut acceptor, site.id()).await;

    let stranger = NodeIdentity::generate(id("site-x"));
    let err = refused(&net.site_connector(id("site-x"), stranger.verifying_key())).await;
    assert!(matches!(err, NetError::Refused(RefusalReason::NotOnRoster)), "{err}");
    // Right id, wrong key.
    let err = refused(&net.site_connector(id("site-a"), stranger.verifying_key())).await;
    assert!(matches!(err, NetError::Refused(RefusalReason::NotOnRoster)), "{err}");
    let err = refused(&net.site_connector(researcher.id().clone(), researcher.verifying_key())).await;
    assert!(matches!(err, NetError::Refused(RefusalReason::WrongRole { .. })), "{err}");
    fed.roster.update(|r| r.revoke(site.id())).unwrap();
    let err = refused(&net.site_connector(site.id().clone(), site.verifying_key())).await;
    assert!(matches!(err, NetError::Refused(RefusalReason::Revoked(_))), "{err}");
}

#[tokio::test]
async fn grpc_mtls_round_trip() {
    let fed = Federation::new();
    let (site, creds) = fed.member("site-a", Role::Site);
    let (listener, mut acceptor) =
        serve_site_link(LOOPBACK.parse().unwrap(), fed.server_tls(), fed.roster.clone()).await.unwrap();
    assert!(listener.local_addr().ip().is_loopback());
    exchange(&fed.grpc_connector(listener.local_addr(), Some(&creds)), &mut acceptor, site.id()).await;
    assert_eq!(listener.handler_calls(), 1);
    assert!(listener.refusals().is_empty());
    listener.shutdown().await;
}

/// Runs one refused connection attempt and checks it never reached a handler. Returns what the
/// client was told and the reasons the listener recorded.
async fn grpc_refusal(
    fed: &Federation,
    creds: Option<&TlsCredentials>,
    tls: Option<ClientTls>,
) -> (NetError, Vec<RefusalReason>) {
    let (listener, _acceptor) =
        serve_site_link(LOOPBACK.parse().unwrap(), fed.server_tls(), fed.roster.clone()).await.unwrap();
    let connector = match tls {
        Some(tls) => GrpcSiteConnector::new(
            listener.local_addr(),
            tls,
            fed.coordinator.id().clone(),
            fed.coordinator.verifying_key(),
        ),
        None => fed.grpc_connector(listener.local_addr(), creds),
    };
    let mut feed = listener.refusal_log().feed();
    let err = refused(&connector).await;
    // The handshake task records the refusal and feeds it to the audit consumer (bounded wait).
    let fed_refusal = tokio::time::timeout(std::time::Duration::from_secs(10), feed.recv())
        .await
        .expect("the refusal reaches the feed")
        .expect("feed open");
    let reasons = listener.refusals();
    assert_eq!(reasons.last(), Some(&fed_refusal));
    assert_eq!(listener.refusal_log().dropped(), 0);
    assert_eq!(listener.handler_calls(), 0, "a refused peer must never reach a handler");
    (err, reasons.into_iter().map(|r| r.reason).collect())
}

#[tokio::test]
async fn grpc_refuses_without_client_certificate() {
    let fed = Federation::new();
    let (err, reasons) = grpc_refusal(&fed, None, None).await;
    assert_eq!(reasons, vec![RefusalReason::NoClientCertificate]);
    // The client is told why, not just "transport error".
    assert!(matches!(err, NetError::Tls(TlsFailure::NoClientCertificate)), "{err}");
    assert!(err.to_string().contains("no client certificate"), "{err}");
}

#[tokio::test]
async fn grpc_refuses_certificate_from_another_ca() {
    let fed = Federation::new();
    let (site, _) = fed.member("site-a", Role::Site);
    // Same node, same key, but certified by a rogue CA.
    let rogue = FederationCa::generate("rogue").unwrap();
    let rogue_creds = rogue.issue(&site).unwrap();
    let (err, reasons) = grpc_refusal(&fed, Some(&rogue_creds), None).await;
    assert!(matches!(reasons.as_slice(), [RefusalReason::UntrustedCertificate(_)]), "{reasons:?}");
    assert!(matches!(err, NetError::Tls(TlsFailure::UnknownIssuer)), "{err}");
    assert!(err.to_string().contains("not issued by the federation CA"), "{err}");
}

#[tokio::test]
async fn grpc_refuses_off_roster_revoked_and_wrong_role() {
    let fed = Federation::new();
    // Valid federation certificate, but the node is not on the roster.
    let stranger = NodeIdentity::generate(id("site-x"));
    let stranger_creds = fed.ca.issue(&stranger).unwrap();
    let (err, reasons) = grpc_refusal(&fed, Some(&stranger_creds), None).await;
    assert_eq!(reasons, vec![RefusalReason::NotOnRoster]);
    assert!(matches!(err, NetError::Tls(TlsFailure::NotAdmitted { .. })), "{err}");
    assert!(err.to_string().contains("not on the federation roster"), "{err}");

    // A certificate for a roster member's id but another key.
    let (_site, _) = fed.member("site-a", Role::Site);
    let impostor = NodeIdentity::generate(id("site-a"));
    let (err, reasons) = grpc_refusal(&fed, Some(&fed.ca.issue(&impostor).unwrap()), None).await;
    assert_eq!(reasons, vec![RefusalReason::NotOnRoster]);
    assert!(matches!(err, NetError::Tls(TlsFailure::NotAdmitted { .. })), "{err}");

    // Revoked member.
    let (revoked, revoked_creds) = fed.member("site-r", Role::Site);
    fed.roster.update(|r| r.revoke(revoked.id())).unwrap();
    let (err, reasons) = grpc_refusal(&fed, Some(&revoked_creds), None).await;
    assert_eq!(reasons, vec![RefusalReason::Revoked("site-r".into())]);
    assert!(matches!(err, NetError::Tls(TlsFailure::NotAdmitted { .. })), "{err}");

    // A researcher may not open a site link (handshake passes, the per-call guard refuses).
    let (_r, researcher_creds) = fed.member("researcher-1", Role::Researcher);
    let (err, reasons) = grpc_refusal(&fed, Some(&researcher_creds), None).await;
    assert!(matches!(reasons.as_slice(), [RefusalReason::WrongRole { required: Role::Site, .. }]), "{reasons:?}");
    // Past the handshake the guard's reason travels in the gRPC status.
    assert!(
        matches!(&err, NetError::Rpc { code, message } if code == "PermissionDenied" && message.contains("role")),
        "{err}"
    );
}

#[tokio::test]
async fn site_refuses_a_coordinator_with_another_key() {
    let fed = Federation::new();
    let (_site, creds) = fed.member("site-a", Role::Site);
    let (listener, _acceptor) =
        serve_site_link(LOOPBACK.parse().unwrap(), fed.server_tls(), fed.roster.clone()).await.unwrap();
    let other = NodeIdentity::generate(id("coordinator"));
    let tls =
        ClientTls::new(fed.ca.cert_der(), Some(&creds), fed.coordinator.id(), Some(other.verifying_key())).unwrap();
    let connector = GrpcSiteConnector::new(listener.local_addr(), tls, id("coordinator"), other.verifying_key());
    let err = connector.open().await.expect_err("a coordinator with another key must be refused");
    assert!(matches!(err, NetError::Tls(TlsFailure::UntrustedCoordinator(_))), "{err}");
    assert_eq!(listener.handler_calls(), 0);
}

/// A trivial coordinator-side researcher handler.
struct Studies;

impl ResearcherHandler for Studies {
    async fn submit(&self, researcher: &PeerInfo, request: Frame) -> Result<String, NetError> {
        assert_eq!(request.sender(), Some(&researcher.id));
        Ok(format!("{}-{}", request.study_id(), researcher.id))
    }
    async fn status(&self, _: &PeerInfo, study_id: &str) -> Result<StudyStatus, NetError> {
        Ok(StudyStatus { study_id: study_id.into(), state: "running".into(), round: 4, detail: "waiting".into() })
    }
    async fn result(&self, _: &PeerInfo, study_id: &str) -> Result<Frame, NetError> {
        Frame::new(study_id, 9, "release", vec![0xee; 32])
    }
}

async fn researcher_calls<C: ResearcherClient>(client: &C) {
    let id = client.submit(Frame::new("cox-1", 0, "study-request", vec![1, 2]).unwrap()).await.unwrap();
    assert_eq!(id, "cox-1-researcher-1");
    let status = client.status(&id).await.unwrap();
    assert_eq!((status.state.as_str(), status.round), ("running", 4));
    let result = client.result(&id).await.unwrap();
    assert_eq!((result.kind(), result.payload()), ("release", &[0xee; 32][..]));
}

#[tokio::test]
async fn researcher_api_on_both_transports() {
    let fed = Federation::new();
    let (researcher, creds) = fed.member("researcher-1", Role::Researcher);
    let (site, site_creds) = fed.member("site-a", Role::Site);
    let handler = Arc::new(Studies);

    let (net, _acceptor) =
        MemoryNetwork::new(fed.roster.clone(), fed.coordinator.id().clone(), fed.coordinator.verifying_key());
    researcher_calls(&net.researcher_client(researcher.id().clone(), researcher.verifying_key(), handler.clone()))
        .await;
    let as_site = net.researcher_client(site.id().clone(), site.verifying_key(), handler.clone());
    assert!(matches!(as_site.status("x").await, Err(NetError::Refused(RefusalReason::WrongRole { .. }))));

    let listener =
        serve_researcher_api(LOOPBACK.parse().unwrap(), fed.server_tls(), fed.roster.clone(), handler).await.unwrap();
    let client = GrpcResearcherClient::connect(listener.local_addr(), &fed.client_tls(Some(&creds))).await.unwrap();
    researcher_calls(&client).await;
    assert_eq!(listener.handler_calls(), 3);

    // A site certificate passes the handshake but the guard refuses the call.
    let as_site =
        GrpcResearcherClient::connect(listener.local_addr(), &fed.client_tls(Some(&site_creds))).await.unwrap();
    assert!(as_site.status("x").await.is_err());
    assert_eq!(listener.handler_calls(), 3);

    // Revocation takes effect on the next call of an already-open connection.
    fed.roster.update(|r| r.revoke(researcher.id())).unwrap();
    let err = client.status("cox-1").await.unwrap_err();
    assert!(matches!(&err, NetError::Rpc { code, .. } if code == "PermissionDenied"), "{err}");
    assert_eq!(listener.handler_calls(), 3);
}

//! In-memory transport for tests and simulation: tokio channels, same roster rules, same
//! [`Session`] type, no sockets.

use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use tokio::sync::mpsc;

use crate::error::NetError;
use crate::frame::{stamp_inbound, Frame};
use crate::identity::{NodeId, Role};
use crate::roster::{PeerInfo, RosterHandle};
use crate::session::{
    FrameSink, FrameStream, ResearcherClient, ResearcherHandler, Session, SessionAcceptor, SiteConnector, StudyStatus,
    CHANNEL_DEPTH,
};

/// An in-memory "coordinator address": sites open sessions here; the coordinator accepts them
/// from the [`SessionAcceptor`] returned by [`MemoryNetwork::new`].
#[derive(Clone, Debug)]
pub struct MemoryNetwork {
    roster: RosterHandle,
    coordinator: PeerInfo,
    sessions: mpsc::Sender<Session>,
}

impl MemoryNetwork {
    /// A network whose coordinator is `coordinator_id` with `coordinator_key`, admitting sites on
    /// `roster` (checked at each `open`, as the TLS handshake does).
    pub fn new(roster: RosterHandle, coordinator_id: NodeId, coordinator_key: VerifyingKey) -> (Self, SessionAcceptor) {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let coordinator = PeerInfo { id: coordinator_id, role: Role::Coordinator, key: coordinator_key };
        (MemoryNetwork { roster, coordinator, sessions: tx }, SessionAcceptor(rx))
    }

    /// A connector for the node `id` holding identity key `key` (its public half).
    pub fn site_connector(&self, id: NodeId, key: VerifyingKey) -> MemorySiteConnector {
        MemorySiteConnector { network: self.clone(), id, key }
    }

    /// A researcher client for `id`/`key`, calling `handler` directly.
    pub fn researcher_client<H: ResearcherHandler>(
        &self,
        id: NodeId,
        key: VerifyingKey,
        handler: Arc<H>,
    ) -> MemoryResearcherClient<H> {
        MemoryResearcherClient { roster: self.roster.clone(), id, key, handler }
    }
}

/// A site's in-memory connector.
#[derive(Clone, Debug)]
pub struct MemorySiteConnector {
    network: MemoryNetwork,
    id: NodeId,
    key: VerifyingKey,
}

impl SiteConnector for MemorySiteConnector {
    async fn open(&self) -> Result<Session, NetError> {
        let site =
            self.network.roster.read(|r| r.authorize(&self.id, &self.key, Role::Site)).map_err(NetError::Refused)?;
        let (up_tx, mut up_rx) = mpsc::channel::<Frame>(CHANNEL_DEPTH);
        let (up_checked_tx, up_checked_rx) = mpsc::channel(CHANNEL_DEPTH);
        let (down_tx, mut down_rx) = mpsc::channel::<Frame>(CHANNEL_DEPTH);
        let (down_out_tx, down_out_rx) = mpsc::channel(CHANNEL_DEPTH);
        // Site → coordinator: the same sender stamping as the gRPC listener.
        let site_id = site.id.clone();
        tokio::spawn(async move {
            while let Some(frame) = up_rx.recv().await {
                let frame = stamp_inbound(frame, &site_id);
                let failed = frame.is_err();
                if up_checked_tx.send(frame).await.is_err() || failed {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(frame) = down_rx.recv().await {
                if down_out_tx.send(Ok(frame)).await.is_err() {
                    break;
                }
            }
        });
        let coordinator_side = Session { peer: site, sink: FrameSink(down_tx), stream: FrameStream(up_checked_rx) };
        self.network.sessions.send(coordinator_side).await.map_err(|_| NetError::Closed)?;
        Ok(Session { peer: self.network.coordinator.clone(), sink: FrameSink(up_tx), stream: FrameStream(down_out_rx) })
    }
}

/// A researcher's in-memory client: roster check (role researcher), then the handler.
#[derive(Debug)]
pub struct MemoryResearcherClient<H> {
    roster: RosterHandle,
    id: NodeId,
    key: VerifyingKey,
    handler: Arc<H>,
}

impl<H: ResearcherHandler> MemoryResearcherClient<H> {
    fn peer(&self) -> Result<PeerInfo, NetError> {
        self.roster.read(|r| r.authorize(&self.id, &self.key, Role::Researcher)).map_err(NetError::Refused)
    }
}

impl<H: ResearcherHandler> ResearcherClient for MemoryResearcherClient<H> {
    async fn submit(&self, request: Frame) -> Result<String, NetError> {
        let peer = self.peer()?;
        let request = stamp_inbound(request, &peer.id)?;
        self.handler.submit(&peer, request).await
    }

    async fn status(&self, study_id: &str) -> Result<StudyStatus, NetError> {
        let peer = self.peer()?;
        self.handler.status(&peer, study_id).await
    }

    async fn result(&self, study_id: &str) -> Result<Frame, NetError> {
        let peer = self.peer()?;
        self.handler.result(&peer, study_id).await
    }
}

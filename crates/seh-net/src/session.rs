//! Transport-agnostic sessions and the traits both transports implement.

use std::future::Future;

use tokio::sync::mpsc;

use crate::error::NetError;
use crate::frame::Frame;
use crate::roster::PeerInfo;

/// Frames buffered per direction before a sender waits.
pub(crate) const CHANNEL_DEPTH: usize = 64;

/// Sending half of a session.
#[derive(Clone, Debug)]
pub struct FrameSink(pub(crate) mpsc::Sender<Frame>);

impl FrameSink {
    /// Queues `frame` for the peer. Errors: [`NetError::Closed`] once the session has ended.
    pub async fn send(&self, frame: Frame) -> Result<(), NetError> {
        self.0.send(frame).await.map_err(|_| NetError::Closed)
    }
}

/// Receiving half of a session.
#[derive(Debug)]
pub struct FrameStream(pub(crate) mpsc::Receiver<Result<Frame, NetError>>);

impl FrameStream {
    /// The next frame; `None` when the peer closed the session. An `Err` (invalid frame or stream
    /// failure) is the last item.
    pub async fn recv(&mut self) -> Option<Result<Frame, NetError>> {
        self.0.recv().await
    }
}

/// One open site ↔ coordinator stream, as seen from one end.
#[derive(Debug)]
pub struct Session {
    /// The authenticated party at the other end.
    pub peer: PeerInfo,
    /// Frames to the peer.
    pub sink: FrameSink,
    /// Frames from the peer.
    pub stream: FrameStream,
}

/// The coordinator's side: sessions opened by authenticated sites, in arrival order.
#[derive(Debug)]
pub struct SessionAcceptor(pub(crate) mpsc::Receiver<Session>);

impl SessionAcceptor {
    /// The next session; `None` once the listener has stopped.
    pub async fn accept(&mut self) -> Option<Session> {
        self.0.recv().await
    }
}

/// The site's side of a transport: dial out and open the session.
pub trait SiteConnector: Send + Sync {
    /// Opens a session to the coordinator. Errors: [`NetError::Refused`] or [`NetError::Rpc`] when
    /// this node is refused, [`NetError::Io`] when the coordinator is unreachable.
    fn open(&self) -> impl Future<Output = Result<Session, NetError>> + Send;
}

/// Researcher-facing study status.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StudyStatus {
    /// Study id.
    pub study_id: String,
    /// Coarse state: `queued`, `running`, `done`, `refused`, `failed`.
    pub state: String,
    /// Current round.
    pub round: u64,
    /// Human-readable detail (never data values).
    pub detail: String,
}

/// What the coordinator implements to serve researchers (both transports call it).
pub trait ResearcherHandler: Send + Sync + 'static {
    /// A signed study request from `researcher`; returns the study id.
    fn submit(&self, researcher: &PeerInfo, request: Frame) -> impl Future<Output = Result<String, NetError>> + Send;
    /// Status of a study.
    fn status(
        &self,
        researcher: &PeerInfo,
        study_id: &str,
    ) -> impl Future<Output = Result<StudyStatus, NetError>> + Send;
    /// The released result envelope of a study.
    fn result(&self, researcher: &PeerInfo, study_id: &str) -> impl Future<Output = Result<Frame, NetError>> + Send;
}

/// The researcher's client (both transports implement it).
pub trait ResearcherClient: Send + Sync {
    /// Submits a signed study request; returns the study id.
    fn submit(&self, request: Frame) -> impl Future<Output = Result<String, NetError>> + Send;
    /// Asks for a study's status.
    fn status(&self, study_id: &str) -> impl Future<Output = Result<StudyStatus, NetError>> + Send;
    /// Fetches the released result.
    fn result(&self, study_id: &str) -> impl Future<Output = Result<Frame, NetError>> + Send;
}

//! The coordinator's gRPC listeners: one per trust boundary (sites, researchers), each behind
//! the mTLS handshake (roster checked there) and a per-call roster guard (role, revocation).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status, Streaming};

use crate::error::{NetError, RefusalReason};
use crate::frame::{stamp_inbound, Frame, MAX_PAYLOAD_BYTES};
use crate::identity::Role;
use crate::proto;
use crate::proto::researcher_api_server::{ResearcherApi, ResearcherApiServer};
use crate::proto::site_link_server::{SiteLink, SiteLinkServer};
use crate::roster::{PeerInfo, RosterHandle};
use crate::session::{FrameSink, FrameStream, ResearcherHandler, Session, SessionAcceptor, CHANNEL_DEPTH};
use crate::tls::refusal_from_handshake;
use crate::tuning;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a refused connection is kept open so its alert is delivered.
const LINGER_TIME: Duration = Duration::from_secs(1);
/// Most bytes read and discarded from a refused connection.
const LINGER_MAX_BYTES: usize = 64 << 10;
/// Refusals kept in memory (oldest dropped first).
const MAX_REFUSALS_KEPT: usize = 1024;
/// Refusals waiting unread in a [`RefusalLog::feed`].
pub const REFUSAL_FEED_DEPTH: usize = 256;

/// One refused connection or call.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Refusal {
    /// Remote address (for handshake refusals) if known.
    pub remote: Option<SocketAddr>,
    /// Why.
    pub reason: RefusalReason,
}

/// Refusals recorded by a listener, for the operator and the audit log.
#[derive(Clone, Default, Debug)]
pub struct RefusalLog {
    kept: Arc<Mutex<Vec<Refusal>>>,
    feed: Arc<Mutex<Option<mpsc::Sender<Refusal>>>>,
    dropped: Arc<AtomicU64>,
}

impl RefusalLog {
    fn push(&self, refusal: Refusal) {
        if let Some(feed) = self.feed.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            // Never wait on the consumer: a flood of refused connections must not stall accepting.
            if feed.try_send(refusal.clone()).is_err() {
                self.dropped.fetch_add(1, Ordering::SeqCst);
            }
        }
        let mut v = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() == MAX_REFUSALS_KEPT {
            v.remove(0);
        }
        v.push(refusal);
    }

    /// A copy of the refusals so far (the latest 1024).
    pub fn snapshot(&self) -> Vec<Refusal> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every refusal from now on, as it happens (for the audit log). Replaces an earlier feed.
    /// At most [`REFUSAL_FEED_DEPTH`] wait unread; more are counted in [`RefusalLog::dropped`].
    pub fn feed(&self) -> mpsc::Receiver<Refusal> {
        let (tx, rx) = mpsc::channel(REFUSAL_FEED_DEPTH);
        *self.feed.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        rx
    }

    /// Refusals that did not fit in the feed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }
}

impl Refusal {
    /// The node the refused party is or claimed to be, when the reason names it.
    pub fn node(&self) -> Option<&str> {
        match &self.reason {
            RefusalReason::Revoked(n) | RefusalReason::NameMismatch(n) => Some(n),
            RefusalReason::WrongRole { node, .. } => Some(node),
            _ => None,
        }
    }
}

/// A running listener. Dropping it (or calling [`Listener::shutdown`]) stops accepting.
#[derive(Debug)]
pub struct Listener {
    local_addr: SocketAddr,
    refusals: RefusalLog,
    handler_calls: Arc<AtomicU64>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Listener {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
    /// Connections and calls refused so far.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.refusals.snapshot()
    }
    /// The listener's refusal log (see [`RefusalLog::feed`] to follow it).
    pub fn refusal_log(&self) -> &RefusalLog {
        &self.refusals
    }
    /// How many times a service handler was entered (refused peers never enter one).
    pub fn handler_calls(&self) -> u64 {
        self.handler_calls.load(Ordering::SeqCst)
    }
    /// Stops accepting and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A TLS stream whose peer passed the roster check; tonic hands its [`PeerInfo`] to every call.
struct AuthenticatedStream {
    inner: TlsStream<TcpStream>,
    peer: PeerInfo,
}

impl Connected for AuthenticatedStream {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for AuthenticatedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for AuthenticatedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Closes a refused connection so that the TLS alert already sent reaches the client: closing a
/// socket with unread data (the client's first HTTP/2 bytes) makes the kernel send a reset that
/// discards the alert, and the client would see only "connection closed". So: half-close, then
/// read and discard briefly (bounded in time and bytes) until the client closes.
async fn linger(mut socket: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = socket.shutdown().await;
    let mut buf = [0u8; 4096];
    let mut left = LINGER_MAX_BYTES;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while left > 0 {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// Accepts TCP connections, runs the TLS handshake (roster check included) with a timeout, and
/// yields only authenticated streams. Refusals are recorded.
fn authenticated_incoming(
    tcp: TcpListener,
    tls: Arc<ServerConfig>,
    roster: RosterHandle,
    refusals: RefusalLog,
) -> ReceiverStream<Result<AuthenticatedStream, std::io::Error>> {
    let (tx, rx) = mpsc::channel(16);
    let acceptor = TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let (socket, remote) = tokio::select! {
                accepted = tcp.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(_) => continue,
                },
                () = tx.closed() => return,
            };
            // Small protocol messages must not wait for the peer's delayed ACK (Nagle).
            let _ = socket.set_nodelay(true);
            let (acceptor, tx, roster, refusals) = (acceptor.clone(), tx.clone(), roster.clone(), refusals.clone());
            tokio::spawn(async move {
                let refuse = |reason| refusals.push(Refusal { remote: Some(remote), reason });
                let accept = acceptor.accept(socket).into_fallible();
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err((e, socket))) => {
                        refuse(refusal_from_handshake(&e));
                        return linger(socket).await;
                    }
                    Err(_) => return refuse(RefusalReason::Handshake("timed out".into())),
                };
                let leaf = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).cloned();
                let peer = match leaf.map(|l| roster.read(|r| r.identify_certificate(&l))) {
                    Some(Ok(peer)) => peer,
                    Some(Err(reason)) => return refuse(reason),
                    None => return refuse(RefusalReason::NoClientCertificate),
                };
                let _ = tx.send(Ok(AuthenticatedStream { inner: stream, peer })).await;
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Per-call guard: the peer (from the handshake) must still be an unrevoked member with `role`.
#[derive(Clone)]
struct RosterGuard {
    roster: RosterHandle,
    role: Role,
    refusals: RefusalLog,
}

impl Interceptor for RosterGuard {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(peer) = request.extensions().get::<PeerInfo>().cloned() else {
            self.refusals.push(Refusal { remote: None, reason: RefusalReason::NoClientCertificate });
            return Err(Status::unauthenticated("no authenticated peer"));
        };
        match self.roster.read(|r| r.authorize(&peer.id, &peer.key, self.role)) {
            Ok(_) => Ok(request),
            Err(reason) => {
                let status = Status::permission_denied(reason.to_string());
                self.refusals.push(Refusal { remote: None, reason });
                Err(status)
            }
        }
    }
}

fn peer_of<T>(request: &Request<T>) -> Result<PeerInfo, Status> {
    request.extensions().get::<PeerInfo>().cloned().ok_or_else(|| Status::unauthenticated("no authenticated peer"))
}

fn invalid(e: NetError) -> Status {
    Status::invalid_argument(e.to_string())
}

struct SiteLinkService {
    sessions: mpsc::Sender<Session>,
    calls: Arc<AtomicU64>,
}

type EnvelopeStream = Pin<Box<dyn Stream<Item = Result<proto::Envelope, Status>> + Send>>;

#[tonic::async_trait]
impl SiteLink for SiteLinkService {
    type OpenStream = EnvelopeStream;

    async fn open(&self, request: Request<Streaming<proto::Envelope>>) -> Result<Response<EnvelopeStream>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let peer = peer_of(&request)?;
        let mut inbound = request.into_inner();
        let (in_tx, in_rx) = mpsc::channel(CHANNEL_DEPTH);
        let (out_tx, out_rx) = mpsc::channel::<Frame>(CHANNEL_DEPTH);
        let site = peer.id.clone();
        tokio::spawn(async move {
            while let Some(item) = inbound.next().await {
                let frame =
                    item.map_err(NetError::from).and_then(Frame::try_from).and_then(|f| stamp_inbound(f, &site));
                let failed = frame.is_err();
                if in_tx.send(frame).await.is_err() || failed {
                    break;
                }
            }
        });
        let session = Session { peer, sink: FrameSink(out_tx), stream: FrameStream(in_rx) };
        self.sessions.send(session).await.map_err(|_| Status::unavailable("coordinator is shutting down"))?;
        let outbound = ReceiverStream::new(out_rx).map(|f| Ok(proto::Envelope::from(f)));
        Ok(Response::new(Box::pin(outbound)))
    }
}

struct ResearcherService<H> {
    handler: Arc<H>,
    calls: Arc<AtomicU64>,
}

fn status_of(e: NetError) -> Status {
    match e {
        NetError::InvalidFrame { .. } => Status::invalid_argument(e.to_string()),
        NetError::Refused(r) => Status::permission_denied(r.to_string()),
        NetError::Rpc { code, message } if code == "NotFound" => Status::not_found(message),
        other => Status::internal(other.to_string()),
    }
}

#[tonic::async_trait]
impl<H: ResearcherHandler> ResearcherApi for ResearcherService<H> {
    async fn submit_study(&self, request: Request<proto::Envelope>) -> Result<Response<proto::StudyRef>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let peer = peer_of(&request)?;
        let frame = Frame::try_from(request.into_inner()).and_then(|f| stamp_inbound(f, &peer.id)).map_err(invalid)?;
        let study_id = self.handler.submit(&peer, frame).await.map_err(status_of)?;
        Ok(Response::new(proto::StudyRef { study_id }))
    }

    async fn get_status(&self, request: Request<proto::StudyRef>) -> Result<Response<proto::StudyStatus>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let peer = peer_of(&request)?;
        let s = self.handler.status(&peer, &request.into_inner().study_id).await.map_err(status_of)?;
        Ok(Response::new(proto::StudyStatus { study_id: s.study_id, state: s.state, round: s.round, detail: s.detail }))
    }

    async fn get_result(&self, request: Request<proto::StudyRef>) -> Result<Response<proto::Envelope>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let peer = peer_of(&request)?;
        let frame = self.handler.result(&peer, &request.into_inner().study_id).await.map_err(status_of)?;
        Ok(Response::new(frame.into()))
    }
}

/// The HTTP/2 server with windows that fit one whole frame (see `tuning`).
fn server_builder() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .initial_stream_window_size(tuning::STREAM_WINDOW)
        .initial_connection_window_size(tuning::CONNECTION_WINDOW)
        .max_frame_size(tuning::MAX_FRAME_SIZE)
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), NetError> {
    let tcp = TcpListener::bind(addr).await.map_err(|source| NetError::Io { op: "bind", source })?;
    let local = tcp.local_addr().map_err(|source| NetError::Io { op: "local_addr", source })?;
    Ok((tcp, local))
}

/// Starts the site-facing `SiteLink` listener on `addr` (use port 0 in tests).
///
/// Only unrevoked roster members with role [`Role::Site`] get a session; each opened stream
/// arrives on the returned [`SessionAcceptor`]. Must be called inside a tokio runtime.
pub async fn serve_site_link(
    addr: SocketAddr,
    tls: Arc<ServerConfig>,
    roster: RosterHandle,
) -> Result<(Listener, SessionAcceptor), NetError> {
    let (tcp, local_addr) = bind(addr).await?;
    let refusals = RefusalLog::default();
    let calls = Arc::new(AtomicU64::new(0));
    let (session_tx, session_rx) = mpsc::channel(CHANNEL_DEPTH);
    let guard = RosterGuard { roster: roster.clone(), role: Role::Site, refusals: refusals.clone() };
    let service = SiteLinkServer::new(SiteLinkService { sessions: session_tx, calls: calls.clone() })
        .max_decoding_message_size(MAX_PAYLOAD_BYTES + 4096);
    let service = InterceptedService::new(service, guard);
    let incoming = authenticated_incoming(tcp, tls, roster, refusals.clone());
    let (shutdown, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let stop = async {
            let _ = rx.await;
        };
        let _ = server_builder().serve_with_incoming_shutdown(service, incoming, stop).await;
    });
    let listener = Listener { local_addr, refusals, handler_calls: calls, shutdown: Some(shutdown), task };
    Ok((listener, SessionAcceptor(session_rx)))
}

/// Starts the researcher-facing `ResearcherApi` listener on `addr`, answering with `handler`.
/// Only unrevoked roster members with role [`Role::Researcher`] reach the handler.
pub async fn serve_researcher_api<H: ResearcherHandler>(
    addr: SocketAddr,
    tls: Arc<ServerConfig>,
    roster: RosterHandle,
    handler: Arc<H>,
) -> Result<Listener, NetError> {
    let (tcp, local_addr) = bind(addr).await?;
    let refusals = RefusalLog::default();
    let calls = Arc::new(AtomicU64::new(0));
    let guard = RosterGuard { roster: roster.clone(), role: Role::Researcher, refusals: refusals.clone() };
    let service = ResearcherApiServer::new(ResearcherService { handler, calls: calls.clone() })
        .max_decoding_message_size(MAX_PAYLOAD_BYTES + 4096);
    let service = InterceptedService::new(service, guard);
    let incoming = authenticated_incoming(tcp, tls, roster, refusals.clone());
    let (shutdown, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let stop = async {
            let _ = rx.await;
        };
        let _ = server_builder().serve_with_incoming_shutdown(service, incoming, stop).await;
    });
    Ok(Listener { local_addr, refusals, handler_calls: calls, shutdown: Some(shutdown), task })
}

//! The dialing side over gRPC/mTLS: a site's [`SiteConnector`] and a researcher's
//! [`ResearcherClient`]. Nodes only dial out.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use ed25519_dalek::VerifyingKey;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

use crate::error::{message_chain, tls_failure_in, NetError, TlsFailure};
use crate::frame::{Frame, MAX_PAYLOAD_BYTES};
use crate::identity::{NodeId, Role};
use crate::proto;
use crate::proto::researcher_api_client::ResearcherApiClient;
use crate::proto::site_link_client::SiteLinkClient;
use crate::roster::PeerInfo;
use crate::session::{FrameSink, FrameStream, ResearcherClient, Session, SiteConnector, StudyStatus, CHANNEL_DEPTH};
use crate::tls::ClientTls;
use crate::tuning;

/// The TLS failure a connection's reader saw, if any. TLS 1.3 delivers the coordinator's refusal
/// of our certificate as an alert after our side of the handshake; HTTP/2 may then report only
/// "connection closed" to the pending call, so the reader keeps the alert here.
#[derive(Clone, Debug, Default)]
struct FailureSlot(Arc<Mutex<Option<TlsFailure>>>);

impl FailureSlot {
    /// `err`, or the TLS failure behind it when the transport hid it.
    fn refine(&self, err: NetError) -> NetError {
        if matches!(err, NetError::Tls(_)) {
            return err;
        }
        match self.0.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(t) => NetError::Tls(t),
            None => err,
        }
    }
}

/// The client's TLS stream, recording the first TLS failure a read reports.
struct RecordingStream {
    inner: TlsStream<TcpStream>,
    slot: FailureSlot,
}

impl AsyncRead for RecordingStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let out = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Err(e)) = &out {
            if let Some(t) = tls_failure_in(e) {
                self.slot.0.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(t);
            }
        }
        out
    }
}

impl AsyncWrite for RecordingStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Opens an HTTP/2 channel to `addr` over mTLS configured by `tls`; the slot receives a TLS
/// failure the connection sees later.
async fn connect(addr: SocketAddr, tls: &ClientTls) -> Result<(Channel, FailureSlot), NetError> {
    let connector = TlsConnector::from(tls.config.clone());
    let server_name = tls.server_name.clone();
    let slot = FailureSlot::default();
    let conn_slot = slot.clone();
    let make = tower::service_fn(move |_uri| {
        let (connector, server_name, slot) = (connector.clone(), server_name.clone(), conn_slot.clone());
        async move {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let stream = connector.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(RecordingStream { inner: stream, slot }))
        }
    });
    // The URI is only used for the :authority header; the connector decides where to dial.
    Endpoint::from_static("http://coordinator.invalid")
        .initial_stream_window_size(tuning::STREAM_WINDOW)
        .initial_connection_window_size(tuning::CONNECTION_WINDOW)
        .max_frame_size(tuning::MAX_FRAME_SIZE)
        .connect_with_connector(make)
        .await
        .map(|channel| (channel, slot))
        .map_err(|e| match tls_failure_in(&e) {
            Some(t) => NetError::Tls(t),
            None => NetError::Rpc { code: "Unavailable".into(), message: message_chain(&e) },
        })
}

/// A site's connection to the coordinator's `SiteLink` listener.
#[derive(Clone, Debug)]
pub struct GrpcSiteConnector {
    addr: SocketAddr,
    tls: ClientTls,
    coordinator: PeerInfo,
}

impl GrpcSiteConnector {
    /// Dials `addr` with `tls`; the coordinator is `coordinator_id` with key `coordinator_key`
    /// (the same values `tls` was built to expect).
    pub fn new(addr: SocketAddr, tls: ClientTls, coordinator_id: NodeId, coordinator_key: VerifyingKey) -> Self {
        GrpcSiteConnector {
            addr,
            tls,
            coordinator: PeerInfo { id: coordinator_id, role: Role::Coordinator, key: coordinator_key },
        }
    }
}

impl SiteConnector for GrpcSiteConnector {
    async fn open(&self) -> Result<Session, NetError> {
        let (channel, slot) = connect(self.addr, &self.tls).await?;
        let mut client = SiteLinkClient::new(channel).max_decoding_message_size(MAX_PAYLOAD_BYTES + 4096);
        let (out_tx, out_rx) = mpsc::channel::<Frame>(CHANNEL_DEPTH);
        let outbound = ReceiverStream::new(out_rx).map(proto::Envelope::from);
        let mut inbound = client.open(outbound).await.map_err(|s| slot.refine(NetError::from(s)))?.into_inner();
        let (in_tx, in_rx) = mpsc::channel(CHANNEL_DEPTH);
        tokio::spawn(async move {
            while let Some(item) = inbound.next().await {
                let frame = item.map_err(|s| slot.refine(NetError::from(s))).and_then(Frame::try_from);
                let failed = frame.is_err();
                if in_tx.send(frame).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Session { peer: self.coordinator.clone(), sink: FrameSink(out_tx), stream: FrameStream(in_rx) })
    }
}

/// A researcher's connection to the coordinator's `ResearcherApi` listener.
#[derive(Clone, Debug)]
pub struct GrpcResearcherClient {
    client: ResearcherApiClient<Channel>,
    slot: FailureSlot,
}

impl GrpcResearcherClient {
    /// Dials `addr` with `tls` (built with the researcher's credentials).
    pub async fn connect(addr: SocketAddr, tls: &ClientTls) -> Result<Self, NetError> {
        let (channel, slot) = connect(addr, tls).await?;
        Ok(GrpcResearcherClient {
            client: ResearcherApiClient::new(channel).max_decoding_message_size(MAX_PAYLOAD_BYTES + 4096),
            slot,
        })
    }
}

impl GrpcResearcherClient {
    fn fail(&self, status: tonic::Status) -> NetError {
        self.slot.refine(NetError::from(status))
    }
}

impl ResearcherClient for GrpcResearcherClient {
    async fn submit(&self, request: Frame) -> Result<String, NetError> {
        let reply = self.client.clone().submit_study(proto::Envelope::from(request)).await.map_err(|s| self.fail(s))?;
        Ok(reply.into_inner().study_id)
    }

    async fn status(&self, study_id: &str) -> Result<StudyStatus, NetError> {
        let s = self
            .client
            .clone()
            .get_status(proto::StudyRef { study_id: study_id.to_owned() })
            .await
            .map_err(|s| self.fail(s))?
            .into_inner();
        Ok(StudyStatus { study_id: s.study_id, state: s.state, round: s.round, detail: s.detail })
    }

    async fn result(&self, study_id: &str) -> Result<Frame, NetError> {
        let e = self
            .client
            .clone()
            .get_result(proto::StudyRef { study_id: study_id.to_owned() })
            .await
            .map_err(|s| self.fail(s))?
            .into_inner();
        Frame::try_from(e)
    }
}

//! The dialing side over gRPC/mTLS: a site's [`SiteConnector`] and a researcher's
//! [`ResearcherClient`]. Nodes only dial out.

use std::net::SocketAddr;

use ed25519_dalek::VerifyingKey;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

use crate::error::NetError;
use crate::frame::{Frame, MAX_PAYLOAD_BYTES};
use crate::identity::{NodeId, Role};
use crate::proto;
use crate::proto::researcher_api_client::ResearcherApiClient;
use crate::proto::site_link_client::SiteLinkClient;
use crate::roster::PeerInfo;
use crate::session::{FrameSink, FrameStream, ResearcherClient, Session, SiteConnector, StudyStatus, CHANNEL_DEPTH};
use crate::tls::ClientTls;

/// Opens an HTTP/2 channel to `addr` over mTLS configured by `tls`.
async fn connect(addr: SocketAddr, tls: &ClientTls) -> Result<Channel, NetError> {
    let connector = TlsConnector::from(tls.config.clone());
    let server_name = tls.server_name.clone();
    let make = tower::service_fn(move |_uri| {
        let (connector, server_name) = (connector.clone(), server_name.clone());
        async move {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let stream = connector.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    // The URI is only used for the :authority header; the connector decides where to dial.
    Endpoint::from_static("http://coordinator.invalid").connect_with_connector(make).await.map_err(|e| {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        NetError::Rpc { code: "Unavailable".into(), message }
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
        let channel = connect(self.addr, &self.tls).await?;
        let mut client = SiteLinkClient::new(channel).max_decoding_message_size(MAX_PAYLOAD_BYTES + 4096);
        let (out_tx, out_rx) = mpsc::channel::<Frame>(CHANNEL_DEPTH);
        let outbound = ReceiverStream::new(out_rx).map(proto::Envelope::from);
        let mut inbound = client.open(outbound).await?.into_inner();
        let (in_tx, in_rx) = mpsc::channel(CHANNEL_DEPTH);
        tokio::spawn(async move {
            while let Some(item) = inbound.next().await {
                let frame = item.map_err(NetError::from).and_then(Frame::try_from);
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
}

impl GrpcResearcherClient {
    /// Dials `addr` with `tls` (built with the researcher's credentials).
    pub async fn connect(addr: SocketAddr, tls: &ClientTls) -> Result<Self, NetError> {
        let channel = connect(addr, tls).await?;
        Ok(GrpcResearcherClient {
            client: ResearcherApiClient::new(channel).max_decoding_message_size(MAX_PAYLOAD_BYTES + 4096),
        })
    }
}

impl ResearcherClient for GrpcResearcherClient {
    async fn submit(&self, request: Frame) -> Result<String, NetError> {
        let reply = self.client.clone().submit_study(proto::Envelope::from(request)).await?;
        Ok(reply.into_inner().study_id)
    }

    async fn status(&self, study_id: &str) -> Result<StudyStatus, NetError> {
        let s = self.client.clone().get_status(proto::StudyRef { study_id: study_id.to_owned() }).await?.into_inner();
        Ok(StudyStatus { study_id: s.study_id, state: s.state, round: s.round, detail: s.detail })
    }

    async fn result(&self, study_id: &str) -> Result<Frame, NetError> {
        let e = self.client.clone().get_result(proto::StudyRef { study_id: study_id.to_owned() }).await?.into_inner();
        Frame::try_from(e)
    }
}

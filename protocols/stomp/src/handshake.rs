//! CONNECT (or STOMP) to CONNECTED: version, heart-beats, login, vhost.
//!
//! The flow: read frames until the first real one (heart-beat EOLs before it are skipped; the
//! driver's handshake timeout bounds them); it must be CONNECT or STOMP, anything else is
//! refused unprocessed. Negotiate the version and heart-beats, authenticate (argon2 on a
//! blocking thread), pick the vhost from `host`, open the core connection and session, then
//! answer CONNECTED and hand the driver a [`StompSession`] with its event inbox.
//!
//! Invariants:
//! - Every refusal is an ERROR frame with a `message` (ERROR for a version mismatch lists the
//!   supported versions in `version`) before the close.
//! - Before CONNECTED the codec's pre-CONNECT frame limit holds; it is raised only once the
//!   client is accepted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use mqgate_core::auth::Principal;
use mqgate_core::names::{ConnectionId, VhostName};
use mqgate_core::outbox::EventReceiver;
use mqgate_session::login::{self, Credentials, LoginError, LoginPolicy};
use mqgate_session::{Accepted, CloseReason, FramedIo, Handshake};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::codec::{Frame, Inbound, Outbound as Out, ServerFrame, StompCodec};
use crate::errors::{self, SUPPORTED_VERSIONS};
use crate::serve::StompContext;
use crate::session::{negotiate_version, ConnectParams, Negotiated, StompSession};

/// Heart-beat EOLs skipped before CONNECT at most (each is one byte; the handshake timeout
/// bounds the time).
const MAX_LEADING_BEATS: usize = 1024;

/// One connection's STOMP handshake.
#[derive(Debug)]
pub struct StompHandshake {
    ctx: StompContext,
    peer: SocketAddr,
    tls_common_name: Option<String>,
    connection_id: ConnectionId,
}

impl StompHandshake {
    /// A handshake for the connection `connection_id` from `peer`; `tls_common_name` is the
    /// verified client certificate's CN, if any.
    pub fn new(
        ctx: StompContext,
        peer: SocketAddr,
        tls_common_name: Option<String>,
        connection_id: ConnectionId,
    ) -> Self {
        Self {
            ctx,
            peer,
            tls_common_name,
            connection_id,
        }
    }
}

/// A refusal: the ERROR frame and why the connection closes.
type Refused = (ServerFrame, CloseReason);

fn rejected(message: &str, receipt: Option<&str>, detail: &str) -> Refused {
    tracing::info!(%message, %detail, "CONNECT refused");
    (
        errors::error_frame(message, receipt, detail),
        CloseReason::HandshakeRejected(format!("{message}: {detail}")),
    )
}

impl Handshake for StompHandshake {
    type Session = StompSession;
    type Inbox = EventReceiver;

    async fn run<T>(
        self,
        io: &mut FramedIo<T, StompCodec>,
    ) -> Result<Accepted<StompSession, EventReceiver>, CloseReason>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut beats = 0;
        let frame = loop {
            match io.read_frame().await? {
                Inbound::Frame(frame) => break frame,
                Inbound::HeartBeat if beats < MAX_LEADING_BEATS => beats += 1,
                Inbound::HeartBeat => {
                    return Err(refuse(
                        io,
                        rejected("no CONNECT frame", None, "only heart-beats before CONNECT"),
                    ))
                }
                Inbound::Invalid(error) => return Err(refuse(io, errors::codec_refusal(&error))),
            }
        };
        if !frame.command.is_connect() {
            let detail = format!(
                "the first frame must be CONNECT or STOMP, got {}",
                frame.command
            );
            return Err(refuse(
                io,
                rejected("not connected", frame.header("receipt"), &detail),
            ));
        }
        match self.accept(&frame).await {
            Ok((session, inbox, negotiated)) => {
                io.codec_mut().set_version(negotiated.version);
                io.feed(Out::Frame(
                    negotiated.connected_frame(session.session_id(), session.user()),
                ))?;
                io.codec_mut().set_connected();
                io.set_max_frame_size(self.ctx.settings.max_frame_size);
                Ok(Accepted { session, inbox })
            }
            Err(refused) => Err(refuse(io, refused)),
        }
    }
}

/// Feeds the refusal's ERROR frame and gives the close reason.
fn refuse<T>(io: &mut FramedIo<T, StompCodec>, (frame, reason): Refused) -> CloseReason
where
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    match io.feed(Out::Frame(frame)) {
        Ok(()) => reason,
        Err(encode) => encode,
    }
}

impl StompHandshake {
    async fn accept(
        &self,
        frame: &Frame,
    ) -> Result<(StompSession, EventReceiver, Negotiated), Refused> {
        let settings = &self.ctx.settings;
        let receipt = frame.header("receipt");
        let Some(version) = negotiate_version(frame) else {
            let (mut error, reason) = rejected(
                "unsupported version",
                receipt,
                &format!("Supported protocol versions are {SUPPORTED_VERSIONS}"),
            );
            error = error.with_header("version", SUPPORTED_VERSIONS);
            return Err((error, reason));
        };
        let negotiated = Negotiated::new(version, frame, settings).map_err(|value| {
            rejected(
                "invalid heart-beat header",
                receipt,
                &format!("heart-beat must be two non-negative integers, got '{value}'"),
            )
        })?;
        let vhost_text = match frame.header("host") {
            Some(host) if !host.is_empty() => host,
            _ => settings.default_vhost.as_str(),
        };
        let principal = self.authenticate(frame).await?;
        let vhost = VhostName::new(vhost_text).map_err(|error| {
            rejected("invalid host", receipt, &format!("'{vhost_text}': {error}"))
        })?;
        let access = match self.ctx.broker.vhost(&vhost) {
            Some(_) => principal.check_vhost_access(&vhost),
            None => Err(principal.vhost_denied(&vhost)),
        };
        access.map_err(|denied| rejected("access refused", receipt, &denied.to_string()))?;
        let connection = self
            .ctx
            .broker
            .connect_with_id(self.connection_id, &vhost, Some(principal.user().clone()))
            .map_err(|error| rejected("server unavailable", receipt, &error.to_string()))?;
        let params = ConnectParams {
            negotiated,
            settings: Arc::clone(settings),
            user: principal.user().clone(),
            session_id: self.session_id(),
        };
        let (session, inbox) = StompSession::open(params, connection);
        tracing::info!(
            session = %session.session_id(),
            user = %principal.user(),
            %vhost,
            version = %version,
            "STOMP client connected"
        );
        Ok((session, inbox, negotiated))
    }

    fn session_id(&self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or(0);
        format!("session-{}-{nanos:08x}", self.connection_id.0)
    }

    async fn authenticate(&self, frame: &Frame) -> Result<Principal, Refused> {
        let credentials = frame.header("login").map(|user| Credentials {
            user: user.to_owned(),
            password: frame.header("passcode").unwrap_or_default().to_owned(),
        });
        let policy = LoginPolicy {
            users: &self.ctx.users,
            anonymous: self.ctx.anonymous.as_ref(),
            certificate_login: self.ctx.settings.certificate_login,
            peer: self.peer.ip(),
            tls_common_name: self.tls_common_name.as_deref(),
        };
        login::authenticate(credentials, policy)
            .await
            .map_err(|error| {
                let message = match error {
                    LoginError::Unavailable(_) => "server unavailable",
                    _ => "access refused",
                };
                rejected(message, frame.header("receipt"), &error.to_string())
            })
    }
}

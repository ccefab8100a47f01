//! What CONNECT negotiates (version, heart-beats) and opening the session on the core.
//!
//! Invariants:
//! - A CONNECT without `accept-version` speaks 1.0; with one, the highest version both sides
//!   support wins, and none in common is refused with the supported list.
//! - Heart-beats are a 1.1+ feature: a 1.0 connection never beats, whatever it sent.

use std::sync::Arc;
use std::time::Duration;

use mqgate_core::message::Origin;
use mqgate_core::names::UserName;
use mqgate_core::outbox::EventReceiver;
use mqgate_core::Connection;
use tokio::time::Instant;

use crate::codec::{Frame, ServerCommand, ServerFrame, StompVersion};
use crate::settings::StompSettings;

use super::heartbeat::{self, Heartbeat};
use super::send::SendState;
use super::subscribe::SubscriptionState;
use super::transaction::TransactionState;
use super::StompSession;

/// The version a CONNECT asks for: 1.0 without `accept-version`, else the highest listed one
/// this server speaks; `None` when none is.
pub fn negotiate_version(frame: &Frame) -> Option<StompVersion> {
    match frame.header("accept-version") {
        None => Some(StompVersion::V1_0),
        Some(list) => list.split(',').filter_map(StompVersion::from_header).max(),
    }
}

/// What the handshake agreed with the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The protocol version.
    pub version: StompVersion,
    /// How often the server sends heart-beats (`None`: never).
    pub heartbeat_send: Option<Duration>,
    /// How often the server expects the client's (`None`: never).
    pub heartbeat_expect: Option<Duration>,
}

impl Negotiated {
    /// Negotiates heart-beats for `version` from the CONNECT's `heart-beat` header. `Err` holds
    /// the text of an invalid header.
    pub fn new(
        version: StompVersion,
        frame: &Frame,
        settings: &StompSettings,
    ) -> Result<Self, String> {
        let (heartbeat_send, heartbeat_expect) = match (version, frame.header("heart-beat")) {
            (StompVersion::V1_0, _) | (_, None) => (None, None),
            (_, Some(value)) => {
                let offer = heartbeat::parse_header(value).ok_or_else(|| value.to_owned())?;
                heartbeat::negotiate(offer, settings.min_heartbeat)
            }
        };
        Ok(Self {
            version,
            heartbeat_send,
            heartbeat_expect,
        })
    }

    /// The CONNECTED frame announcing this agreement.
    pub fn connected_frame(&self, session_id: &str, user: &UserName) -> ServerFrame {
        let mut frame = ServerFrame::new(ServerCommand::Connected)
            .with_header("version", self.version.as_str())
            .with_header("session", session_id)
            .with_header("server", concat!("mqgate/", env!("CARGO_PKG_VERSION")));
        if self.version != StompVersion::V1_0 {
            frame = frame.with_header(
                "heart-beat",
                heartbeat::header_value(self.heartbeat_send, self.heartbeat_expect),
            );
        }
        frame.with_header("user-name", user.as_str())
    }
}

/// What [`StompSession::open`] needs.
#[derive(Debug)]
pub struct ConnectParams {
    /// The negotiated version and heart-beats.
    pub negotiated: Negotiated,
    /// The adapter's settings.
    pub settings: Arc<StompSettings>,
    /// The authenticated user.
    pub user: UserName,
    /// The `session` header of CONNECTED.
    pub session_id: String,
}

impl StompSession {
    /// Opens the core session on `connection`; returns the session and its event inbox.
    pub fn open(params: ConnectParams, connection: Connection) -> (Self, EventReceiver) {
        let (core, inbox) = connection.open_session();
        let ConnectParams {
            negotiated,
            settings,
            user,
            session_id,
        } = params;
        let flow_blocked = core.is_flow_blocked();
        let session = Self {
            version: negotiated.version,
            heartbeat: Heartbeat::new(
                negotiated.heartbeat_send,
                negotiated.heartbeat_expect,
                settings.heartbeat_grace_factor,
                Instant::now(),
            ),
            sends: SendState::new(settings.max_unconfirmed_sends),
            subs: SubscriptionState::default(),
            transactions: TransactionState::default(),
            settings,
            user,
            origin: Origin::new(format!("stomp/{}", core.connection().0)),
            session_id,
            core,
            connection: Some(connection),
            flow_blocked,
            publishing_paused: false,
        };
        (session, inbox)
    }
}

//! One STOMP connection after CONNECTED: a synchronous state machine between frames and the core.
//!
//! Split by concern: `connect` (what the handshake negotiated, and opening the session),
//! `send` (SEND, the engine's confirmations, receipts that wait for them, DISCONNECT),
//! `subscribe` (SUBSCRIBE/UNSUBSCRIBE and MESSAGE frames), `reply` (`/temp-queue/` reply
//! queues), `ack` (ACK/NACK), `transaction` (BEGIN/COMMIT/ABORT) and `heartbeat`.
//!
//! Invariants:
//! - The session never writes to the socket: it pushes frames into the driver's `Outbound`.
//! - A SEND's RECEIPT follows the engine's confirmation, never precedes it; a DISCONNECT's (and
//!   a COMMIT's) RECEIPT follows every earlier SEND's confirmation.
//! - Every ERROR is followed by a close (`errors`).
//! - Where a header repeats, the first one counts for routing and for permission checks alike
//!   ([`Frame::header`]).
//! - Every collection is bounded by [`StompSettings`]: unconfirmed SENDs and pending receipts
//!   (reads pause at the limit), subscriptions, unacknowledged deliveries (by each
//!   subscription's prefetch), transactions and what they buffer.
//! - Reads pause for flow control only on connections that SEND while the engine blocks
//!   publishers, so subscribers keep acknowledging and draining queues.

mod ack;
mod connect;
mod heartbeat;
mod reply;
mod send;
mod subscribe;
mod transaction;

use std::sync::Arc;
use std::time::Duration;

use mqgate_core::message::Origin;
use mqgate_core::names::UserName;
use mqgate_core::outbox::{Event, FlowState};
use mqgate_core::{Connection, Session as CoreSession};
use mqgate_session::{CloseReason, Outbound, Session, Step};
use tokio::time::Instant;

use crate::codec::{
    Command, Frame, Inbound, Outbound as Out, ServerCommand, ServerFrame, StompCodec, StompVersion,
};
use crate::errors;
use crate::settings::StompSettings;

pub use connect::{negotiate_version, ConnectParams, Negotiated};

use heartbeat::{Beat, Heartbeat};
use send::SendState;
use subscribe::SubscriptionState;
use transaction::TransactionState;

/// One connected STOMP client's session.
pub struct StompSession {
    version: StompVersion,
    settings: Arc<StompSettings>,
    user: UserName,
    session_id: String,
    /// Marks this connection's publishes (the core's no-local rule compares it).
    origin: Origin,
    core: CoreSession,
    /// Held so the connection's exclusive queues live as long as the session; dropped after
    /// the core session closes.
    connection: Option<Connection>,
    heartbeat: Heartbeat,
    flow_blocked: bool,
    /// Set when this connection sent while the engine blocks publishers: its reads stay paused
    /// until the engine unblocks (RabbitMQ's rule: block connections that publish).
    publishing_paused: bool,
    sends: SendState,
    subs: SubscriptionState,
    transactions: TransactionState,
}

impl std::fmt::Debug for StompSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StompSession")
            .field("session", &self.session_id)
            .field("version", &self.version)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl StompSession {
    /// The negotiated protocol version.
    pub fn version(&self) -> StompVersion {
        self.version
    }

    /// The `session` header sent in CONNECTED.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The authenticated user.
    pub fn user(&self) -> &UserName {
        &self.user
    }

    fn on_client_frame(&mut self, frame: Frame, out: &mut Outbound<Out>) -> Step {
        match frame.command {
            Command::Send => self.on_send(frame, out),
            Command::Subscribe => self.on_subscribe(&frame, out),
            Command::Unsubscribe => self.on_unsubscribe(&frame, out),
            Command::Ack => self.on_ack(frame, false, out),
            Command::Nack => self.on_ack(frame, true, out),
            Command::Begin => self.on_begin(&frame, out),
            Command::Commit => self.on_commit(&frame, out),
            Command::Abort => self.on_abort(&frame, out),
            Command::Disconnect => self.on_disconnect(&frame, out),
            Command::Connect | Command::Stomp => errors::protocol_error(
                out,
                "already connected",
                frame.header("receipt"),
                "a second CONNECT or STOMP frame on a connected session",
            ),
        }
    }

    /// Pushes a RECEIPT when the frame asked for one.
    fn receipt(frame: &Frame, out: &mut Outbound<Out>) {
        if let Some(receipt) = frame.header("receipt") {
            out.push(receipt_frame(receipt));
        }
    }

    /// Releases core resources: open transactions are dropped, consumers removed, unacked
    /// deliveries requeued, private queues deleted with the connection.
    fn close_core(&mut self) {
        self.transactions.clear();
        self.subs.release(&mut self.core);
        self.core.close();
        self.connection = None;
    }
}

/// A RECEIPT frame for `receipt`.
pub(crate) fn receipt_frame(receipt: &str) -> Out {
    Out::Frame(ServerFrame::new(ServerCommand::Receipt).with_header("receipt-id", receipt))
}

impl Session for StompSession {
    type Codec = StompCodec;
    type InFrame = Inbound;
    type OutFrame = Out;
    type Event = Event;

    fn on_frame(&mut self, frame: Inbound, out: &mut Outbound<Out>) -> Step {
        let now = Instant::now();
        self.heartbeat.received(now);
        let before = out.len();
        let step = match frame {
            Inbound::Frame(frame) => self.on_client_frame(frame, out),
            Inbound::HeartBeat => Step::Continue,
            Inbound::Invalid(error) => errors::codec_failure(out, &error),
        };
        if out.len() > before {
            self.heartbeat.sent(now);
        }
        step
    }

    fn on_event(&mut self, event: Event, out: &mut Outbound<Out>) -> Step {
        let before = out.len();
        let step = match event {
            Event::Delivery(delivery) => self.on_delivery(delivery, out),
            Event::PublishSettled { id, outcome } => self.on_publish_settled(id, outcome, out),
            Event::ConsumerCancelled { consumer, reason } => {
                self.on_consumer_cancelled(&consumer, reason, out)
            }
            Event::Flow(state) => {
                self.flow_blocked = state == FlowState::Blocked;
                self.publishing_paused &= self.flow_blocked;
                Step::Continue
            }
            _ => Step::Continue,
        };
        if out.len() > before {
            self.heartbeat.sent(Instant::now());
        }
        step
    }

    fn on_tick(&mut self, now: Instant, out: &mut Outbound<Out>) -> Step {
        if self.reads_paused() {
            // The client's beats wait unread in the socket while we hold its reads back (flow
            // control): its silence is ours, not a dead client.
            self.heartbeat.received(now);
        }
        match self.heartbeat.check(now) {
            Beat::Idle => Step::Continue,
            Beat::Send => {
                out.push(Out::HeartBeat);
                Step::Continue
            }
            Beat::TimedOut => {
                tracing::info!(session = %self.session_id, "no heart-beat from the client in time");
                Step::Close(CloseReason::KeepaliveTimeout)
            }
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.heartbeat.tick_interval()
    }

    fn reads_paused(&self) -> bool {
        self.publishing_paused || self.sends.is_full() || self.sends.is_closing()
    }

    fn max_frame_size(&self) -> usize {
        self.settings.max_frame_size
    }

    fn on_shutdown(&mut self, out: &mut Outbound<Out>) {
        out.push(Out::Frame(errors::shutdown_frame()));
    }

    fn on_close(&mut self, reason: &CloseReason) {
        self.close_core();
        tracing::debug!(session = %self.session_id, %reason, "STOMP session closed");
    }
}

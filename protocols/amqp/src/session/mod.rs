//! One AMQP connection after connection.open-ok: a synchronous state machine between frames and
//! the core.
//!
//! Split by concern: `channel` (a channel's state, opening and closing, content assembly),
//! `declare` (exchange.* and queue.*), `consume` (basic.qos/consume/cancel/get, acks, recover),
//! `publish` (basic.publish, confirms, transactions), `deliver` (engine events to frames) and
//! `heartbeat`.
//!
//! Invariants:
//! - The session never writes to the socket: it pushes frames into the driver's `Outbound`.
//! - Every AMQP channel is one core session, so delivery tags, unacked messages, consumers,
//!   confirms and transactions are per channel as AMQP requires; closing a channel closes its
//!   core session, which requeues its unacked messages.
//! - A channel exception closes only that channel: the channel is `Closing` until the client's
//!   `channel.close-ok`, and every other frame on it is discarded meanwhile. A connection
//!   exception sends `connection.close` and discards everything but `close-ok` (or a
//!   `connection.close`) until the close timeout.
//! - A confirm-mode ack (or a transaction's commit-ok) follows the engine's confirmation, never
//!   precedes it.
//! - Reads pause for flow control only on connections that publish while the engine blocks
//!   publishers, and while the unconfirmed publishes reach their limit.

mod channel;
mod consume;
mod declare;
mod deliver;
mod heartbeat;
mod publish;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::{connection, AMQPClass};
use mqgate_core::message::Origin;
use mqgate_core::names::{UserName, VhostName};
use mqgate_core::outbox::{Event, FlowState};
use mqgate_core::{Connection, Session as CoreSession};
use mqgate_session::{CloseReason, Outbound, Session, Step};
use tokio::time::Instant;

use crate::codec::{AmqpCodec, Inbound, OutFrame};
use crate::errors::{self, AmqpError, Scope};
use crate::inbox::{ChannelEvent, ChannelRegistrar};
use crate::settings::AmqpSettings;

use channel::Channel;
use heartbeat::{Beat, Heartbeat};

/// What the client said it understands, from its `client-properties.capabilities`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCapabilities {
    /// It handles a server-sent `basic.cancel`.
    pub consumer_cancel_notify: bool,
    /// It handles `connection.blocked` / `connection.unblocked`.
    pub connection_blocked: bool,
    /// It expects `connection.close` 403 on a failed login rather than a dropped socket.
    pub authentication_failure_close: bool,
}

/// What tune/tune-ok and connection.open agreed.
#[derive(Debug, Clone)]
pub struct Negotiated {
    /// The highest channel number the client may open.
    pub channel_max: u16,
    /// The largest frame either side may send.
    pub frame_max: usize,
    /// The heartbeat interval in seconds; 0 for none.
    pub heartbeat: u16,
    /// The client's capabilities.
    pub capabilities: ClientCapabilities,
    /// The user it logged in as.
    pub user: UserName,
    /// The vhost it opened.
    pub vhost: VhostName,
}

/// The connection is closing after a `connection.close` the server sent.
#[derive(Debug)]
struct Closing {
    deadline: Instant,
    reason: CloseReason,
}

/// One open AMQP connection.
pub struct AmqpSession {
    settings: Arc<AmqpSettings>,
    negotiated: Negotiated,
    /// Marks this connection's publishes (never rendered; the core's bookkeeping).
    origin: Origin,
    /// Channel 0's core session: it hears flow control even while no channel is open.
    control: CoreSession,
    /// Held so the connection's exclusive queues live as long as the session; dropped after
    /// every core session closed.
    connection: Option<Connection>,
    registrar: ChannelRegistrar,
    channels: HashMap<u16, Channel>,
    next_generation: u64,
    heartbeat: Heartbeat,
    flow_blocked: bool,
    /// Set when this connection published while the engine blocks publishers: its reads stay
    /// paused until the engine unblocks (RabbitMQ's rule: block connections that publish).
    publishing_paused: bool,
    /// Publishes awaiting the engine (confirm mode and committing transactions), all channels.
    unconfirmed: usize,
    closing: Option<Closing>,
}

impl std::fmt::Debug for AmqpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSession")
            .field("user", &self.negotiated.user)
            .field("vhost", &self.negotiated.vhost)
            .field("channels", &self.channels.len())
            .finish_non_exhaustive()
    }
}

/// How long the socket stays open after a `connection.close` for input that cannot be read
/// any further (the client closes its side first, normally at once).
const UNREADABLE_CLOSE_LINGER: Duration = Duration::from_secs(1);

/// The generation of channel 0's registration.
const CONTROL_GENERATION: u64 = 0;

impl AmqpSession {
    /// Opens the session on `connection` (already authenticated and on its vhost); channel 0's
    /// core session is registered with `registrar` so flow control reaches the connection.
    pub fn open(
        settings: Arc<AmqpSettings>,
        negotiated: Negotiated,
        connection: Connection,
        registrar: ChannelRegistrar,
    ) -> Self {
        let (control, receiver) = connection.open_session_with_window(1);
        registrar.add(0, CONTROL_GENERATION, receiver);
        let origin = Origin::new(format!("amqp:{}:{}", negotiated.vhost, connection.id().0));
        // Not read from the engine: registering `control` sends it `Flow(Blocked)` when
        // publishers are blocked now, and that event is what tells the client.
        let flow_blocked = false;
        let heartbeat = Heartbeat::new(negotiated.heartbeat, Instant::now());
        Self {
            settings,
            negotiated,
            origin,
            control,
            connection: Some(connection),
            registrar,
            channels: HashMap::new(),
            next_generation: CONTROL_GENERATION + 1,
            heartbeat,
            flow_blocked,
            publishing_paused: false,
            unconfirmed: 0,
            closing: None,
        }
    }

    /// The user the connection logged in as.
    pub fn user(&self) -> &UserName {
        &self.negotiated.user
    }

    /// Open (or closing) channels.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    fn connection(&self) -> Option<&Connection> {
        self.connection.as_ref()
    }

    /// Sends `connection.close` and starts waiting for `close-ok`.
    fn close_connection(&mut self, error: &AmqpError, out: &mut Outbound<OutFrame>) -> Step {
        tracing::info!(code = error.code, text = %error.text, "closing AMQP connection");
        out.push(OutFrame::Method {
            channel: 0,
            method: AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: error.code,
                reply_text: error.reply_text(),
                class_id: error.class_id,
                method_id: error.method_id,
            })),
        });
        self.close_all_channels();
        self.closing = Some(Closing {
            deadline: Instant::now() + self.settings.close_timeout,
            reason: CloseReason::Protocol(error.text.clone()),
        });
        Step::Continue
    }

    /// Handles an error by its scope: closes `channel` or the whole connection.
    fn fail(&mut self, channel: u16, error: AmqpError, out: &mut Outbound<OutFrame>) -> Step {
        match error.scope() {
            Scope::Channel if channel != 0 => {
                self.close_channel_with(channel, &error, out);
                Step::Continue
            }
            _ => self.close_connection(&error, out),
        }
    }

    fn close_all_channels(&mut self) {
        for (_, mut channel) in self.channels.drain() {
            channel.close_core(&self.registrar);
            self.unconfirmed = self.unconfirmed.saturating_sub(channel.unconfirmed());
        }
    }

    fn on_connection_method(&mut self, method: AMQPClass, out: &mut Outbound<OutFrame>) -> Step {
        match method {
            AMQPClass::Connection(connection::AMQPMethod::Close(close)) => {
                tracing::debug!(code = close.reply_code, text = %close.reply_text, "client closed the connection");
                out.push(OutFrame::Method {
                    channel: 0,
                    method: AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                        connection::CloseOk {},
                    )),
                });
                self.close_all_channels();
                Step::Close(CloseReason::Disconnected)
            }
            // Harmless: a late answer, or a client echoing the server's flow notifications.
            AMQPClass::Connection(
                connection::AMQPMethod::CloseOk(_)
                | connection::AMQPMethod::Blocked(_)
                | connection::AMQPMethod::Unblocked(_),
            ) => Step::Continue,
            AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(_)) => {
                let error = AmqpError::new(
                    errors::NOT_IMPLEMENTED,
                    "connection.update-secret is not supported",
                )
                .caused_by(&method);
                self.close_connection(&error, out)
            }
            other => {
                let error = AmqpError::new(
                    errors::COMMAND_INVALID,
                    format!(
                        "unexpected method {}.{} on channel 0",
                        other.get_amqp_class_id(),
                        other.get_amqp_method_id()
                    ),
                )
                .caused_by(&other);
                self.close_connection(&error, out)
            }
        }
    }

    /// While the server's `connection.close` waits for its answer, only the answer counts.
    fn on_frame_while_closing(&mut self, frame: Inbound, out: &mut Outbound<OutFrame>) -> Step {
        let Some(closing) = self.closing.as_ref() else {
            return Step::Continue;
        };
        match frame {
            Inbound::Method {
                channel: 0,
                method: AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)),
            } => Step::Close(closing.reason.clone()),
            Inbound::Method {
                channel: 0,
                method: AMQPClass::Connection(connection::AMQPMethod::Close(_)),
            } => {
                out.push(OutFrame::Method {
                    channel: 0,
                    method: AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                        connection::CloseOk {},
                    )),
                });
                Step::Close(closing.reason.clone())
            }
            Inbound::Invalid(_) => Step::Close(closing.reason.clone()),
            _ => Step::Continue,
        }
    }

    fn on_event_for(&mut self, event: ChannelEvent, out: &mut Outbound<OutFrame>) -> Step {
        if let Event::Flow(state) = event.event {
            // Every core session hears flow control; channel 0's copy is the one that counts.
            if event.generation == CONTROL_GENERATION {
                self.on_flow(state, out);
            }
            return Step::Continue;
        }
        let Some(channel) = self.channels.get_mut(&event.channel) else {
            return Step::Continue;
        };
        if channel.generation() != event.generation || !channel.is_open() {
            return Step::Continue;
        }
        match self.on_channel_event(event.channel, event.event, out) {
            Ok(()) => Step::Continue,
            Err(error) => self.fail(event.channel, error, out),
        }
    }

    fn on_flow(&mut self, state: FlowState, out: &mut Outbound<OutFrame>) {
        let blocked = state == FlowState::Blocked;
        if blocked == self.flow_blocked {
            return;
        }
        self.flow_blocked = blocked;
        if !blocked {
            self.publishing_paused = false;
        }
        if !self.negotiated.capabilities.connection_blocked {
            return;
        }
        let method = if blocked {
            connection::AMQPMethod::Blocked(connection::Blocked {
                reason: "low on memory".into(),
            })
        } else {
            connection::AMQPMethod::Unblocked(connection::Unblocked {})
        };
        out.push(OutFrame::Method {
            channel: 0,
            method: AMQPClass::Connection(method),
        });
    }
}

impl Session for AmqpSession {
    type Codec = AmqpCodec;
    type InFrame = Inbound;
    type OutFrame = OutFrame;
    type Event = ChannelEvent;

    fn on_frame(&mut self, frame: Inbound, out: &mut Outbound<OutFrame>) -> Step {
        self.heartbeat.received(Instant::now());
        if self.closing.is_some() {
            return self.on_frame_while_closing(frame, out);
        }
        match frame {
            Inbound::Heartbeat => Step::Continue,
            Inbound::Invalid(error) => {
                // The byte stream cannot be resynchronised after a bad frame, so the client's
                // close-ok can never be read. The socket stays open a moment anyway (the codec
                // discards what arrives): closing it with unread input would reset the
                // connection and could destroy the close frame before the client reads it.
                let error = AmqpError::from_frame(&error);
                let step = self.close_connection(&error, out);
                if let Some(closing) = self.closing.as_mut() {
                    closing.deadline = Instant::now() + UNREADABLE_CLOSE_LINGER;
                }
                step
            }
            Inbound::ProtocolHeader { .. } => {
                let error = AmqpError::new(
                    errors::UNEXPECTED_FRAME,
                    "protocol header received after connection.open",
                );
                self.close_connection(&error, out)
            }
            Inbound::Method { channel: 0, method } => self.on_connection_method(method, out),
            Inbound::Header { channel: 0, .. } | Inbound::Body { channel: 0, .. } => {
                let error = AmqpError::new(
                    errors::UNEXPECTED_FRAME,
                    "content frame received on channel 0",
                );
                self.close_connection(&error, out)
            }
            frame => self.on_channel_frame(frame, out),
        }
    }

    fn on_event(&mut self, event: ChannelEvent, out: &mut Outbound<OutFrame>) -> Step {
        if self.closing.is_some() {
            return Step::Continue;
        }
        self.on_event_for(event, out)
    }

    fn on_tick(&mut self, now: Instant, out: &mut Outbound<OutFrame>) -> Step {
        if let Some(closing) = &self.closing {
            if now >= closing.deadline {
                return Step::Close(closing.reason.clone());
            }
            return Step::Continue;
        }
        match self.heartbeat.tick(now) {
            Beat::Idle => Step::Continue,
            Beat::Send => {
                out.push(OutFrame::Heartbeat);
                Step::Continue
            }
            Beat::Dead => {
                tracing::info!(
                    heartbeat = self.negotiated.heartbeat,
                    "missed heartbeats from client: closing"
                );
                Step::Close(CloseReason::KeepaliveTimeout)
            }
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        if self.closing.is_some() {
            return Some(Duration::from_millis(100));
        }
        self.heartbeat.tick_interval()
    }

    fn reads_paused(&self) -> bool {
        self.closing.is_none()
            && ((self.flow_blocked && self.publishing_paused)
                || self.unconfirmed >= self.settings.max_unconfirmed)
    }

    fn max_frame_size(&self) -> usize {
        self.negotiated.frame_max
    }

    fn on_shutdown(&mut self, out: &mut Outbound<OutFrame>) {
        let error = AmqpError::new(
            errors::CONNECTION_FORCED,
            "broker forced connection closure with reason 'shutdown'",
        );
        let _ = self.close_connection(&error, out);
    }

    fn on_close(&mut self, reason: &CloseReason) {
        tracing::debug!(%reason, channels = self.channels.len(), "AMQP connection closed");
        self.close_all_channels();
        self.control.close();
        self.registrar.remove(CONTROL_GENERATION);
        // Dropping the connection deletes its exclusive queues, after every session closed.
        self.connection = None;
    }
}

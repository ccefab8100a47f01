//! Channels: opening, closing, the per-channel state, and content assembly.
//!
//! Invariants:
//! - A channel number is reusable only after its close handshake finished: a channel the server
//!   closed stays `Closing` (discarding every frame but `close`/`close-ok`) until the client's
//!   `channel.close-ok`.
//! - Content arrives as a `basic.publish`, then one header frame, then body frames whose sizes
//!   add up exactly to the header's body size; anything else in between is a connection
//!   exception (505 UNEXPECTED_FRAME, for a body past its declared size too). The
//!   declared size is checked against the message size limit before any body byte is kept.
//! - A body is copied out of the read buffer (so a small queued message pins no read buffer),
//!   into a buffer that grows as frames arrive; the declared sizes of the bodies that span
//!   frames are bounded per connection by four times the message size limit.

use std::collections::HashMap;

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{basic, channel, AMQPClass};
use bytes::{Bytes, BytesMut};
use mqgate_core::Session as CoreSession;
use mqgate_session::{Outbound, Step};

use super::consume::ConsumerInfo;
use super::publish::Mode;
use super::AmqpSession;
use crate::codec::{Inbound, OutFrame};
use crate::errors::{self, AmqpError};
use crate::inbox::ChannelRegistrar;

/// Where a channel is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChannelState {
    /// Working.
    Open,
    /// The server sent `channel.close`; waiting for `close-ok`.
    Closing,
}

/// A publish waiting for its content.
#[derive(Debug)]
pub(super) struct PendingContent {
    pub(super) publish: basic::Publish,
    pub(super) header: Option<ContentHeader>,
}

/// A content header and the body bytes received so far.
#[derive(Debug)]
pub(super) struct ContentHeader {
    pub(super) properties: Box<AMQPProperties>,
    pub(super) body_size: u64,
    pub(super) body: Body,
}

/// Body bytes as they arrive.
#[derive(Debug)]
pub(super) enum Body {
    /// Nothing yet.
    Empty,
    /// One frame's slice of the read buffer.
    Single(Bytes),
    /// Several frames, copied together.
    Assembled(BytesMut),
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Empty => 0,
            Body::Single(bytes) => bytes.len(),
            Body::Assembled(bytes) => bytes.len(),
        }
    }

    fn append(&mut self, payload: Bytes) {
        *self = match std::mem::replace(self, Body::Empty) {
            // Copied, so a small message kept in a queue does not pin the read buffer it
            // arrived in.
            Body::Empty => Body::Single(Bytes::copy_from_slice(&payload)),
            Body::Single(first) => {
                let mut buffer = BytesMut::with_capacity(first.len() + payload.len());
                buffer.extend_from_slice(&first);
                buffer.extend_from_slice(&payload);
                Body::Assembled(buffer)
            }
            Body::Assembled(mut buffer) => {
                buffer.extend_from_slice(&payload);
                Body::Assembled(buffer)
            }
        };
    }

    /// The whole body.
    pub(super) fn into_bytes(self) -> Bytes {
        match self {
            Body::Empty => Bytes::new(),
            Body::Single(bytes) => bytes,
            Body::Assembled(buffer) => buffer.freeze(),
        }
    }
}

/// One open channel: a core session and what AMQP keeps per channel.
pub(super) struct Channel {
    pub(super) generation: u64,
    pub(super) core: CoreSession,
    pub(super) state: ChannelState,
    pub(super) content: Option<PendingContent>,
    pub(super) mode: Mode,
    pub(super) consumers: HashMap<String, ConsumerInfo>,
    /// The prefetch count given to consumers created from now on (`basic.qos`).
    pub(super) prefetch: u32,
    /// The last queue declared on the channel (what an empty queue name means).
    pub(super) last_queue: Option<mqgate_core::names::QueueName>,
    /// `basic.qos` with `global`: the most unacked deliveries sent on the whole channel.
    pub(super) global_prefetch: Option<u32>,
    /// Deliveries over the global prefetch, waiting for acks (each bounded by its consumer's
    /// prefetch, which is set to the global one).
    pub(super) held: std::collections::VecDeque<mqgate_core::outbox::Delivery>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("generation", &self.generation)
            .field("state", &self.state)
            .field("consumers", &self.consumers.len())
            .finish_non_exhaustive()
    }
}

impl Channel {
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    pub(super) fn is_open(&self) -> bool {
        self.state == ChannelState::Open
    }

    /// Publishes of this channel still awaiting the engine.
    pub(super) fn unconfirmed(&self) -> usize {
        self.mode.unconfirmed()
    }

    /// Closes the core session (requeueing unacked messages) and stops its events.
    pub(super) fn close_core(&mut self, registrar: &ChannelRegistrar) {
        self.core.close();
        registrar.remove(self.generation);
        self.consumers.clear();
        self.content = None;
        // The core session requeued them with every other unacked delivery.
        self.held.clear();
    }
}

/// How many maximum-size messages one connection may be receiving at once, summed over its
/// channels (only bodies larger than a frame count: the others complete in one frame).
const ASSEMBLY_LIMIT_IN_MESSAGES: u64 = 4;

fn method_frame(channel: u16, method: AMQPClass) -> OutFrame {
    OutFrame::Method { channel, method }
}

impl AmqpSession {
    /// Sends `channel.close` for a channel exception and stops the channel's work.
    pub(super) fn close_channel_with(
        &mut self,
        number: u16,
        error: &AmqpError,
        out: &mut Outbound<OutFrame>,
    ) {
        let Some(channel) = self.channels.get_mut(&number) else {
            return;
        };
        tracing::info!(channel = number, code = error.code, text = %error.text, "closing AMQP channel");
        self.unconfirmed = self.unconfirmed.saturating_sub(channel.unconfirmed());
        channel.close_core(&self.registrar);
        channel.mode = Mode::Plain;
        channel.state = ChannelState::Closing;
        out.push(method_frame(
            number,
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: error.code,
                reply_text: error.reply_text(),
                class_id: error.class_id,
                method_id: error.method_id,
            })),
        ));
    }

    /// The declared sizes of the multi-frame bodies being received, over every channel.
    fn declared_bytes_assembling(&self) -> u64 {
        let frame_max = self.negotiated.frame_max as u64;
        self.channels
            .values()
            .filter_map(|channel| channel.content.as_ref()?.header.as_ref())
            .map(|header| header.body_size)
            .filter(|&size| size > frame_max)
            .sum()
    }

    /// A frame for channel `number` (not 0).
    pub(super) fn on_channel_frame(
        &mut self,
        frame: Inbound,
        out: &mut Outbound<OutFrame>,
    ) -> Step {
        let number = match &frame {
            Inbound::Method { channel, .. }
            | Inbound::Header { channel, .. }
            | Inbound::Body { channel, .. } => *channel,
            _ => return Step::Continue,
        };
        if number > self.negotiated.channel_max {
            let error = AmqpError::new(
                errors::NOT_ALLOWED,
                format!(
                    "channel id {number} is above the negotiated channel_max ({})",
                    self.negotiated.channel_max
                ),
            );
            return self.close_connection(&error, out);
        }
        let state = self.channels.get(&number).map(|channel| channel.state);
        match (state, frame) {
            (None, Inbound::Method { method, .. }) => {
                if matches!(method, AMQPClass::Channel(channel::AMQPMethod::Open(_))) {
                    let max = self.negotiated.channel_max;
                    if self.channels.len() >= usize::from(max) {
                        let error = AmqpError::new(
                            errors::NOT_ALLOWED,
                            format!(
                                "number of channels opened ({}) has reached the negotiated channel_max ({max})",
                                self.channels.len()
                            ),
                        )
                        .caused_by(&method);
                        return self.close_connection(&error, out);
                    }
                    self.open_channel(number, out);
                    Step::Continue
                } else {
                    let error = AmqpError::new(
                        errors::CHANNEL_ERROR,
                        format!("expected 'channel.open' on channel {number}"),
                    )
                    .caused_by(&method);
                    self.close_connection(&error, out)
                }
            }
            (None, _) => {
                let error = AmqpError::new(
                    errors::CHANNEL_ERROR,
                    format!("content frame on channel {number}, which is not open"),
                );
                self.close_connection(&error, out)
            }
            (Some(ChannelState::Closing), Inbound::Method { method, .. }) => {
                match method {
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                        self.channels.remove(&number);
                    }
                    AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                        self.channels.remove(&number);
                        out.push(method_frame(
                            number,
                            AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                        ));
                    }
                    _ => {}
                }
                Step::Continue
            }
            (Some(ChannelState::Closing), _) => Step::Continue,
            (Some(ChannelState::Open), frame) => {
                let outcome = match frame {
                    Inbound::Method { method, .. } => {
                        self.on_open_channel_method(number, method, out)
                    }
                    Inbound::Header {
                        class_id,
                        body_size,
                        properties,
                        ..
                    } => self.on_content_header(number, class_id, body_size, properties, out),
                    Inbound::Body { payload, .. } => self.on_content_body(number, payload, out),
                    _ => Ok(()),
                };
                match outcome {
                    Ok(()) => Step::Continue,
                    Err(error) => self.fail(number, error, out),
                }
            }
        }
    }

    fn open_channel(&mut self, number: u16, out: &mut Outbound<OutFrame>) {
        let Some(connection) = self.connection() else {
            return;
        };
        let (core, receiver) =
            connection.open_session_with_window(self.settings.channel_window_bytes);
        let generation = self.next_generation;
        self.next_generation += 1;
        self.registrar.add(number, generation, receiver);
        self.channels.insert(
            number,
            Channel {
                generation,
                core,
                state: ChannelState::Open,
                content: None,
                mode: Mode::Plain,
                consumers: HashMap::new(),
                prefetch: 0,
                last_queue: None,
                global_prefetch: None,
                held: std::collections::VecDeque::new(),
            },
        );
        out.push(method_frame(
            number,
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
        ));
    }

    fn on_open_channel_method(
        &mut self,
        number: u16,
        method: AMQPClass,
        out: &mut Outbound<OutFrame>,
    ) -> Result<(), AmqpError> {
        let method_id = method.get_amqp_method_id();
        if self
            .channels
            .get(&number)
            .is_some_and(|channel| channel.content.is_some())
        {
            return Err(AmqpError::new(
                errors::UNEXPECTED_FRAME,
                format!(
                    "expected content header for class 60 on channel {number}, got a method frame instead"
                ),
            )
            .caused_by(&method));
        }
        match method {
            AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                if let Some(mut channel) = self.channels.remove(&number) {
                    self.unconfirmed = self.unconfirmed.saturating_sub(channel.unconfirmed());
                    channel.close_core(&self.registrar);
                }
                out.push(method_frame(
                    number,
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                ));
                Ok(())
            }
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => Ok(()),
            AMQPClass::Channel(channel::AMQPMethod::Open(_)) => Err(AmqpError::new(
                errors::CHANNEL_ERROR,
                format!("second 'channel.open' seen on channel {number}"),
            )
            .caused_by(&method)),
            AMQPClass::Channel(channel::AMQPMethod::Flow(ref flow)) => {
                if !flow.active {
                    return Err(
                        AmqpError::new(errors::NOT_IMPLEMENTED, "active=false").caused_by(&method)
                    );
                }
                out.push(method_frame(
                    number,
                    AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
                        active: true,
                    })),
                ));
                Ok(())
            }
            AMQPClass::Access(amq_protocol::protocol::access::AMQPMethod::Request(_)) => {
                out.push(method_frame(
                    number,
                    AMQPClass::Access(amq_protocol::protocol::access::AMQPMethod::RequestOk(
                        amq_protocol::protocol::access::RequestOk {},
                    )),
                ));
                Ok(())
            }
            AMQPClass::Exchange(method) => self.on_exchange_method(number, method, out),
            AMQPClass::Queue(method) => self.on_queue_method(number, method, out),
            AMQPClass::Basic(method) => self.on_basic_method(number, method, method_id, out),
            AMQPClass::Tx(method) => self.on_tx_method(number, method, out),
            AMQPClass::Confirm(method) => self.on_confirm_method(number, method, out),
            other => Err(AmqpError::new(
                errors::COMMAND_INVALID,
                format!(
                    "method {}.{} is not allowed on channel {number}",
                    other.get_amqp_class_id(),
                    other.get_amqp_method_id()
                ),
            )
            .caused_by(&other)),
        }
    }

    fn on_content_header(
        &mut self,
        number: u16,
        class_id: u16,
        body_size: u64,
        properties: Box<AMQPProperties>,
        out: &mut Outbound<OutFrame>,
    ) -> Result<(), AmqpError> {
        let max = self.settings.max_message_size;
        // Bodies that span frames are held until complete: bound their sum per connection, so
        // a client cannot park a partial maximum-size body on every channel.
        if body_size <= max && body_size > self.negotiated.frame_max as u64 {
            let assembling = self.declared_bytes_assembling();
            let limit = max.saturating_mul(ASSEMBLY_LIMIT_IN_MESSAGES);
            if assembling.saturating_add(body_size) > limit {
                return Err(AmqpError::new(
                    errors::NOT_ALLOWED,
                    format!(
                        "content bodies being received at once would exceed {limit} bytes ({ASSEMBLY_LIMIT_IN_MESSAGES} times the max message size)"
                    ),
                ));
            }
        }
        let Some(channel) = self.channels.get_mut(&number) else {
            return Ok(());
        };
        let Some(content) = channel.content.as_mut().filter(|c| c.header.is_none()) else {
            return Err(AmqpError::new(
                errors::UNEXPECTED_FRAME,
                format!("expected method frame on channel {number}, got a content header instead"),
            ));
        };
        if class_id != 60 {
            return Err(AmqpError::new(
                errors::UNEXPECTED_FRAME,
                format!("content header for class {class_id}, expected 60 (basic)"),
            ));
        }
        if body_size > max {
            channel.content = None;
            return Err(AmqpError::new(
                errors::PRECONDITION_FAILED,
                format!("message size {body_size} is larger than configured max size {max}"),
            ));
        }
        content.header = Some(ContentHeader {
            properties,
            body_size,
            body: Body::Empty,
        });
        if body_size == 0 {
            return self.complete_publish(number, out);
        }
        Ok(())
    }

    fn on_content_body(
        &mut self,
        number: u16,
        payload: Bytes,
        out: &mut Outbound<OutFrame>,
    ) -> Result<(), AmqpError> {
        let Some(channel) = self.channels.get_mut(&number) else {
            return Ok(());
        };
        let Some(header) = channel
            .content
            .as_mut()
            .and_then(|content| content.header.as_mut())
        else {
            return Err(AmqpError::new(
                errors::UNEXPECTED_FRAME,
                format!("content body on channel {number} without a content header"),
            ));
        };
        let received = header.body.len() as u64 + payload.len() as u64;
        if received > header.body_size {
            return Err(AmqpError::new(
                errors::UNEXPECTED_FRAME,
                format!(
                    "content body of {received} bytes on channel {number} is larger than the {} declared",
                    header.body_size
                ),
            ));
        }
        // Grown as bytes arrive, not reserved from the declared size: a client that declares
        // a large body and stalls holds only what it sent.
        header.body.append(payload);
        if received == header.body_size {
            return self.complete_publish(number, out);
        }
        Ok(())
    }
}

//! Opening and closing a session's core state: the session queue, restored subscriptions, and
//! the persistent record kept while the client is offline.
//!
//! Invariants:
//! - One queue per MQTT session, named from the client id (`mqtt-session.<client id>`, or a
//!   hash of it when too long). A session that ends with its connection has an exclusive,
//!   auto-delete queue; a persistent one a durable queue. Both are bounded by `x-max-length`
//!   with the configured overflow; a persistent one also has `x-expires` as a backstop to the
//!   registry's expiry sweep.
//! - Clean start discards any earlier record and queue; otherwise a record whose queue still
//!   exists is resumed (session present), its subscriptions restored and its QoS 2 packet ids
//!   awaiting PUBCOMP put back in flight (their PUBREL is resent first, on
//!   [`MqttEvent::Resume`](super::MqttEvent::Resume)); a close stores them again.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use mqgate_core::declare::QueueDeclaration;
use mqgate_core::errors::DeclareQueueError;
use mqgate_core::message::Headers;
use mqgate_core::names::{ExchangeName, QueueName};
use mqgate_core::Connection;
use tokio::time::Instant;

use crate::convert::DEFAULT_EXCHANGE;
use crate::registry::{Claim, ClientId, SessionRecord};

use super::deliver::DeliverState;
use super::inbox::MqttInbox;
use super::keepalive::Keepalive;
use super::publish_in::InboundState;
use super::subscribe::SubscriptionState;
use super::{MqttSession, SessionParams};

/// The prefix of MQTT session queue names.
pub const SESSION_QUEUE_PREFIX: &str = "mqtt-session.";

/// The queue name for a client id.
pub fn session_queue_name(client: &ClientId) -> Result<QueueName, String> {
    let plain = format!("{SESSION_QUEUE_PREFIX}{client}");
    QueueName::new(&plain).or_else(|_| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        client.as_str().hash(&mut hasher);
        QueueName::new(format!("{SESSION_QUEUE_PREFIX}h{:016x}", hasher.finish()))
            .map_err(|error| error.to_string())
    })
}

impl MqttSession {
    /// Opens the session on `connection` for a client that holds `claim`. Returns the session,
    /// its inbox, and whether an earlier session was resumed (CONNACK's session present).
    pub fn open(
        params: SessionParams,
        connection: Connection,
        claim: Claim,
    ) -> Result<(MqttSession, MqttInbox, bool), String> {
        let (core, events) = connection.open_session();
        let exchange = ExchangeName::new(DEFAULT_EXCHANGE).map_err(|e| e.to_string())?;
        let queue = session_queue_name(&params.client_id)?;
        let key = claim.handle.key().clone();
        let registry = std::sync::Arc::clone(claim.handle.registry());
        let persistent = !params.expiry.is_zero();
        let window = match params.client_receive_maximum {
            Some(max) => max.min(params.settings.receive_maximum.max(1)),
            None => params.settings.default_inflight,
        }
        .max(1);
        let record = if params.clean_start {
            registry.discard_record(&key);
            None
        } else {
            registry.take_record(&key, std::time::Instant::now())
        };
        let queue_exists = core.vhost().queue(&queue).is_some();
        let session_present = record.is_some() && queue_exists;
        let flow_blocked = core.is_flow_blocked();
        let mut session = MqttSession {
            client_id: params.client_id.clone(),
            origin: key.origin(),
            version: params.version,
            exchange,
            core,
            connection: Some(connection),
            live: Some(claim.handle),
            expiry: params.expiry,
            resumed: session_present,
            keepalive: Keepalive::new(params.keepalive, Instant::now()),
            will: params.will,
            disconnected_cleanly: false,
            flow_blocked,
            publishing_paused: false,
            inbound: InboundState::new(
                params.settings.receive_maximum,
                params.settings.topic_alias_maximum,
            ),
            deliver: DeliverState::new(window, params.client_max_packet_size),
            // A resumed session keeps the durable queue it had, whatever expiry this
            // connection asks for; a zero expiry now only means it ends with this connection.
            subs: SubscriptionState::new(queue.clone(), persistent || session_present),
            settings: params.settings,
        };
        if queue_exists && !session_present {
            // A queue without a live record is left from a session that ended or expired.
            if let Err(error) = session.core.delete_queue(&queue, false, false) {
                tracing::debug!(client_id = %session.client_id, %error, "stale session queue not deleted");
            }
        }
        let mut inbox = MqttInbox::new(events, claim.control);
        if let Some(record) = record.filter(|_| session_present) {
            session.restore(record.subscriptions)?;
            if session
                .deliver
                .resume_awaiting_pubcomp(&record.awaiting_pubcomp)
            {
                inbox = inbox.resumed();
            }
        }
        Ok((session, inbox, session_present))
    }

    /// Declares the session queue (once) and starts its one consumer.
    pub(super) fn ensure_consumer(&mut self) -> Result<(), String> {
        if self.subs.consumer.is_some() {
            return Ok(());
        }
        let declaration = self.queue_declaration();
        match self.core.declare_queue(declaration.clone()) {
            Ok(_) => {}
            Err(DeclareQueueError::Inequivalent { .. }) if self.resumed => {
                // Made under other settings; its messages are the session's: keep it as it is.
                self.core
                    .declare_queue(QueueDeclaration {
                        passive: true,
                        ..declaration
                    })
                    .map_err(|e| e.to_string())?;
            }
            Err(DeclareQueueError::Inequivalent { .. }) => {
                // Settings changed since the queue was made: start it afresh.
                self.core
                    .delete_queue(&self.subs.queue, false, false)
                    .map_err(|e| e.to_string())?;
                self.core
                    .declare_queue(declaration)
                    .map_err(|e| e.to_string())?;
            }
            Err(error) => return Err(error.to_string()),
        }
        let request = mqgate_core::ConsumeRequest::manual(
            self.subs.queue.clone(),
            u32::from(self.deliver.window),
        );
        let tag = self.core.consume(request).map_err(|e| e.to_string())?;
        self.subs.consumer = Some(tag);
        Ok(())
    }

    fn queue_declaration(&self) -> QueueDeclaration {
        let persistent = self.subs.durable;
        let mut arguments = Headers::new();
        // Every session queue is bounded, live or offline; what a full one does is the
        // configured policy (by default a live subscriber holds its publishers' PUBACKs, an
        // offline one loses its oldest messages, counted). Its in-flight ones are bounded by
        // the window.
        arguments.insert(
            "x-max-length",
            i64::from(self.settings.session_queue_length),
        );
        arguments.insert(
            "x-overflow",
            self.settings.session_overflow.core_policy().as_str(),
        );
        if persistent {
            // The session's own expiry is enforced by the registry sweep
            // (`serve::sweep_expired_sessions`); `x-expires` is only the backstop, the same for
            // every session so that a reconnect asking for another expiry redeclares the queue
            // equivalently instead of losing it.
            let backstop =
                i64::try_from(self.settings.max_session_expiry.as_millis()).unwrap_or(i64::MAX);
            arguments.insert("x-expires", backstop.max(1));
        }
        QueueDeclaration {
            name: Some(self.subs.queue.clone()),
            durable: persistent,
            exclusive: !persistent,
            auto_delete: !persistent,
            passive: false,
            arguments,
        }
    }

    /// Releases the core state at close: stores or discards the persistent record, requeues
    /// what was unacknowledged, drops the connection (deleting exclusive queues), then lets go
    /// of the client id.
    pub(super) fn close_core(&mut self) {
        if let Some(live) = &self.live {
            let key = live.key().clone();
            let registry = live.registry();
            if self.expiry.is_zero() {
                registry.discard_record(&key);
                if self.subs.durable && self.subs.consumer.is_some() {
                    let _ = self.core.delete_queue(&self.subs.queue, false, false);
                }
            } else {
                let record = SessionRecord {
                    subscriptions: self.subs.list().to_vec(),
                    expiry: self.expiry,
                    offline_since: Some(std::time::Instant::now()),
                    awaiting_pubcomp: self.deliver.awaiting_pubcomp(),
                };
                if !registry.store_record(key, record) {
                    tracing::warn!(client_id = %self.client_id, "persistent session not kept: registry full");
                }
            }
        }
        self.core.close();
        self.connection.take();
        self.live.take();
    }

    /// The session's expiry (zero: ends with the connection).
    pub fn expiry(&self) -> Duration {
        self.expiry
    }
}

//! Connections and sessions: the handle an adapter holds for one client.
//!
//! A [`Connection`] is one client connection on one vhost; it owns the connection's exclusive
//! queues. A [`Session`] is one stream of work on it (an AMQP channel, a STOMP connection, an MQTT
//! session) with its own consumers, delivery tags and unacked deliveries, and its own outbox of
//! events ([`EventReceiver`]).
//!
//! Invariants:
//! - Closing (or dropping) a session removes its consumers first, then requeues every delivery it
//!   had not settled (flagged redelivered), so nothing it received unacked is lost.
//! - Dropping a connection deletes its exclusive queues; its sessions keep working on what they
//!   still hold but a new declare of those queues starts afresh.
//! - Methods take `&mut self`: a session is driven by one task, the adapter's state machine.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::confirm::ConfirmTracker;
use crate::declare::{BindingDeclaration, ExchangeDeclaration, QueueDeclaration, QueueDeclared};
use crate::errors::{
    BindError, ConsumeError, DeclareExchangeError, DeclareQueueError, DeleteExchangeError,
    DeleteQueueError, PublishError, QueueAccessError, UnknownDeliveryTag,
};
use crate::message::Message;
use crate::names::{ConnectionId, ConsumerTag, ExchangeName, QueueName, SessionId, UserName};
use crate::outbox::{
    AckMode, Delivery, DeliveryTag, EntryId, EventReceiver, Outbox, PublishId, Unacked,
    UnackedOwner,
};
use crate::queue::{ConsumerSpec, Queue, Removal};
use crate::services::Services;
use crate::vhost::{Routed, Vhost};

/// One client connection on one vhost.
#[derive(Debug)]
pub struct Connection {
    vhost: Arc<Vhost>,
    services: Arc<Services>,
    id: ConnectionId,
    user: Option<UserName>,
}

impl Connection {
    pub(crate) fn new(
        vhost: Arc<Vhost>,
        services: Arc<Services>,
        id: ConnectionId,
        user: Option<UserName>,
    ) -> Self {
        Self {
            vhost,
            services,
            id,
            user,
        }
    }

    /// The connection's id (owner of its exclusive queues).
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// The vhost it is bound to.
    pub fn vhost(&self) -> &Arc<Vhost> {
        &self.vhost
    }

    /// The authenticated user, if any.
    pub fn user(&self) -> Option<&UserName> {
        self.user.as_ref()
    }

    /// Opens a session with the broker's default transit window.
    pub fn open_session(&self) -> (Session, EventReceiver) {
        self.open_session_with_window(self.services.session_window_bytes)
    }

    /// Opens a session whose outbox holds at most `window` bytes of deliveries.
    pub fn open_session_with_window(&self, window: usize) -> (Session, EventReceiver) {
        let (outbox, receiver) = Outbox::new(self.services.next_session(), self.id, window);
        self.services.memory.register(&outbox);
        let session = Session {
            vhost: Arc::clone(&self.vhost),
            services: Arc::clone(&self.services),
            connection: self.id,
            outbox,
            consumers: HashMap::new(),
            next_consumer: 1,
            closed: false,
        };
        (session, receiver)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.vhost.connection_closed(self.id);
    }
}

/// How a consumer wants to read a queue.
#[derive(Debug, Clone)]
pub struct ConsumeRequest {
    /// The queue.
    pub queue: QueueName,
    /// Its tag; `None` for a generated `amq.ctag-...`.
    pub tag: Option<ConsumerTag>,
    /// Auto or manual acknowledgement.
    pub ack_mode: AckMode,
    /// Most unacked deliveries at once (manual ack); 0 = unlimited.
    pub prefetch: u32,
    /// Consumer priority (`x-priority`): higher is served first.
    pub priority: i32,
    /// No other consumer may read the queue meanwhile.
    pub exclusive: bool,
}

impl ConsumeRequest {
    /// A manual-ack consumer with the given prefetch and no special options.
    pub fn manual(queue: QueueName, prefetch: u32) -> Self {
        Self {
            queue,
            tag: None,
            ack_mode: AckMode::Manual,
            prefetch,
            priority: 0,
            exclusive: false,
        }
    }

    /// An auto-ack consumer with no special options.
    pub fn auto(queue: QueueName) -> Self {
        Self {
            ack_mode: AckMode::Auto,
            ..Self::manual(queue, 0)
        }
    }
}

/// One session: consumers, delivery tags, unacked deliveries, and publishing.
#[derive(Debug)]
pub struct Session {
    vhost: Arc<Vhost>,
    services: Arc<Services>,
    connection: ConnectionId,
    outbox: Arc<Outbox>,
    consumers: HashMap<ConsumerTag, Arc<Queue>>,
    next_consumer: u64,
    closed: bool,
}

impl Session {
    /// The session's id.
    pub fn id(&self) -> SessionId {
        self.outbox.session()
    }

    /// The connection it runs on.
    pub fn connection(&self) -> ConnectionId {
        self.connection
    }

    /// Its vhost.
    pub fn vhost(&self) -> &Arc<Vhost> {
        &self.vhost
    }

    /// True while the engine asks publishers to pause.
    pub fn is_flow_blocked(&self) -> bool {
        self.services.memory.is_blocked()
    }

    /// `exchange.declare`.
    pub fn declare_exchange(
        &mut self,
        declaration: ExchangeDeclaration,
    ) -> Result<(), DeclareExchangeError> {
        self.vhost.declare_exchange(declaration)
    }

    /// `exchange.delete`.
    pub fn delete_exchange(
        &mut self,
        name: &ExchangeName,
        if_unused: bool,
    ) -> Result<(), DeleteExchangeError> {
        self.vhost.delete_exchange(name, if_unused)
    }

    /// `queue.declare`; exclusive queues belong to this session's connection.
    pub fn declare_queue(
        &mut self,
        declaration: QueueDeclaration,
    ) -> Result<QueueDeclared, DeclareQueueError> {
        self.vhost.declare_queue(declaration, Some(self.connection))
    }

    /// `queue.delete`: returns the number of messages deleted.
    pub fn delete_queue(
        &mut self,
        name: &QueueName,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u32, DeleteQueueError> {
        self.vhost
            .delete_queue(name, Some(self.connection), if_unused, if_empty)
    }

    /// `queue.purge`: returns the number of messages removed.
    pub fn purge_queue(&mut self, name: &QueueName) -> Result<u32, QueueAccessError> {
        self.vhost.purge_queue(name, Some(self.connection))
    }

    /// `queue.bind`.
    pub fn bind_queue(&mut self, binding: BindingDeclaration) -> Result<(), BindError> {
        self.vhost.bind_queue(binding, Some(self.connection))
    }

    /// `queue.unbind`: returns whether the binding existed.
    pub fn unbind_queue(&mut self, binding: BindingDeclaration) -> Result<bool, BindError> {
        self.vhost.unbind_queue(binding, Some(self.connection))
    }

    /// `exchange.bind`.
    pub fn bind_exchange(&mut self, binding: BindingDeclaration) -> Result<(), BindError> {
        self.vhost.bind_exchange(binding)
    }

    /// `exchange.unbind`: returns whether the binding existed.
    pub fn unbind_exchange(&mut self, binding: BindingDeclaration) -> Result<bool, BindError> {
        self.vhost.unbind_exchange(binding)
    }

    /// Publishes `message` to its exchange. With `confirm`, the session later receives
    /// [`crate::outbox::Event::PublishSettled`] with that id.
    pub fn publish(
        &mut self,
        message: Message,
        mandatory: bool,
        confirm: Option<PublishId>,
    ) -> Result<Routed, PublishError> {
        let tracker = confirm.map(|id| ConfirmTracker::new(Arc::clone(&self.outbox), id));
        self.vhost.publish(Arc::new(message), mandatory, tracker)
    }

    /// `basic.consume`: returns the consumer's tag.
    pub fn consume(&mut self, request: ConsumeRequest) -> Result<ConsumerTag, ConsumeError> {
        let tag = match request.tag {
            Some(tag) if !tag.as_str().is_empty() => tag,
            _ => self.generate_tag(),
        };
        if self.consumers.contains_key(&tag) {
            return Err(ConsumeError::TagInUse {
                tag: tag.to_string(),
            });
        }
        let queue = self
            .vhost
            .queue_for(&request.queue, Some(self.connection))?;
        queue
            .consume(
                ConsumerSpec {
                    tag: tag.clone(),
                    outbox: Arc::clone(&self.outbox),
                    ack_mode: request.ack_mode,
                    prefetch: request.prefetch,
                    priority: request.priority,
                    exclusive: request.exclusive,
                },
                Instant::now(),
            )
            .map_err(|e| match e {
                crate::queue::ConsumeError::ExclusiveUse { queue } => {
                    ConsumeError::Refused(format!(
                        "queue '{queue}' in vhost '{}' in exclusive use",
                        self.vhost.name()
                    ))
                }
                other => ConsumeError::Refused(other.to_string()),
            })?;
        self.consumers.insert(tag.clone(), queue);
        Ok(tag)
    }

    fn generate_tag(&mut self) -> ConsumerTag {
        loop {
            let candidate = format!("amq.ctag-{}-{}", self.id().0, self.next_consumer);
            self.next_consumer += 1;
            if let Ok(tag) = ConsumerTag::new(candidate) {
                if !self.consumers.contains_key(&tag) {
                    return tag;
                }
            }
        }
    }

    /// `basic.cancel`: returns false if there was no such consumer. Its unacked deliveries stay
    /// unacked, to be settled by tag as usual.
    pub fn cancel(&mut self, tag: &ConsumerTag) -> bool {
        let Some(queue) = self.consumers.remove(tag) else {
            return false;
        };
        let removal = queue.cancel(self.id(), tag, Instant::now());
        self.apply_removal(&queue, removal);
        true
    }

    /// Forgets a consumer the engine cancelled (queue deleted); call on
    /// [`crate::outbox::Event::ConsumerCancelled`].
    pub fn forget_consumer(&mut self, tag: &ConsumerTag) {
        self.consumers.remove(tag);
    }

    /// The tags of the session's consumers.
    pub fn consumer_tags(&self) -> impl Iterator<Item = &ConsumerTag> {
        self.consumers.keys()
    }

    fn apply_removal(&self, queue: &Arc<Queue>, removal: Removal) {
        if removal.auto_delete {
            self.vhost.remove_queue(queue);
        }
    }

    /// `basic.ack`.
    pub fn ack(&mut self, tag: DeliveryTag, multiple: bool) -> Result<(), UnknownDeliveryTag> {
        let settled = self
            .outbox
            .take_unacked(tag, multiple)
            .ok_or(UnknownDeliveryTag { tag: tag.0 })?;
        self.settle_acked(settled.into_iter().map(|(_, unacked)| unacked));
        Ok(())
    }

    /// Acknowledges each of `tags` (not `multiple`), settling the run of deliveries from one
    /// queue under one lock of that queue: what an adapter that acks many deliveries one by one
    /// (MQTT QoS 0 sends, a batch of PUBACKs) calls once per batch. Returns how many tags were not
    /// awaiting an ack.
    pub fn ack_each(&mut self, tags: &[DeliveryTag]) -> usize {
        let (taken, unknown) = self.outbox.take_unacked_each(tags);
        self.settle_acked(taken.into_iter());
        unknown
    }

    /// Settles acknowledged deliveries, one call per run of deliveries from the same queue.
    fn settle_acked(&self, acked: impl Iterator<Item = Unacked>) {
        let mut run: Vec<EntryId> = Vec::new();
        let mut owner: Option<Arc<dyn UnackedOwner>> = None;
        for delivery in acked {
            if let Some(queue) = owner.take_if(|queue| !Arc::ptr_eq(queue, &delivery.queue)) {
                queue.settle_acks(self.id(), &run);
                run.clear();
            }
            owner.get_or_insert(delivery.queue);
            run.push(delivery.entry);
        }
        if let Some(queue) = owner {
            queue.settle_acks(self.id(), &run);
        }
    }

    /// `basic.nack`: requeue, or dead-letter (drop when the queue has no dead-letter exchange).
    pub fn nack(
        &mut self,
        tag: DeliveryTag,
        multiple: bool,
        requeue: bool,
    ) -> Result<(), UnknownDeliveryTag> {
        let settled = self
            .outbox
            .take_unacked(tag, multiple)
            .ok_or(UnknownDeliveryTag { tag: tag.0 })?;
        for (_, unacked) in settled {
            unacked.queue.settle_nack(self.id(), unacked.entry, requeue);
        }
        Ok(())
    }

    /// `basic.reject`: [`Session::nack`] of one delivery.
    pub fn reject(&mut self, tag: DeliveryTag, requeue: bool) -> Result<(), UnknownDeliveryTag> {
        self.nack(tag, false, requeue)
    }

    /// `basic.recover` (requeue): every unacked delivery goes back to its queue.
    pub fn recover(&mut self) {
        for (_, unacked) in self.outbox.drain_unacked(None) {
            unacked.queue.settle_nack(self.id(), unacked.entry, true);
        }
    }

    /// True while delivery `tag` awaits an ack, nack or reject.
    pub fn holds_unacked(&self, tag: DeliveryTag) -> bool {
        self.outbox.is_unacked(tag)
    }

    /// Deliveries awaiting acknowledgement.
    pub fn unacked_count(&self) -> usize {
        self.outbox.unacked_count()
    }

    /// `basic.get`: one message and the count left, or `None` if the queue is empty.
    pub fn get(
        &mut self,
        queue: &QueueName,
        ack_mode: AckMode,
    ) -> Result<Option<(Delivery, u32)>, QueueAccessError> {
        let queue = self.vhost.queue_for(queue, Some(self.connection))?;
        Ok(queue.get(&self.outbox, ack_mode, Instant::now()))
    }

    /// Closes the session: removes its consumers, then requeues what it had not settled.
    /// Idempotent; also run on drop.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.outbox.close();
        let now = Instant::now();
        let mut queues: Vec<Arc<Queue>> = Vec::new();
        for (_, queue) in self.consumers.drain() {
            if !queues.iter().any(|q| Arc::ptr_eq(q, &queue)) {
                queues.push(queue);
            }
        }
        for queue in &queues {
            let removal = queue.session_closed(self.id(), now);
            if removal.auto_delete {
                self.vhost.remove_queue(queue);
            }
        }
        for (_, unacked) in self.outbox.drain_unacked(None) {
            unacked.queue.settle_nack(self.id(), unacked.entry, true);
        }
        self.services.memory.unregister(self.id());
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

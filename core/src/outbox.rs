//! The outbox: how the engine hands events to one session, and how a session's pace bounds them.
//!
//! Every core session (an AMQP channel, a STOMP connection, an MQTT session) owns one [`Outbox`],
//! shared with the queues it consumes from. Queues push [`Event`]s into it from whatever thread runs
//! the publish; the session's task takes them with [`EventReceiver`].
//!
//! Invariants:
//! - The event queue ([`crate::event_queue`]) is unbounded, but what is in it is bounded: a delivery may enter only while
//!   the session's in-transit bytes are under its window ([`Outbox::try_reserve`]); the bytes are
//!   released when the session takes the event out. A queue that finds the window full parks the
//!   consumer and registers itself with [`Outbox::park`]; taking events out below half the window
//!   wakes every parked queue. So the queue holds at most one window (plus one message) of
//!   deliveries, whatever the publishers do, and a session that stops reading stops receiving.
//! - Delivery tags are per session, start at 1 and only grow, as AMQP requires per channel.
//! - Lock order: a queue's lock may be held while taking the outbox's `unacked` lock, never the
//!   reverse. Code that holds `unacked` releases it before calling into a queue.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use crate::event_queue::EventQueue;
use crate::message::Message;
use crate::names::{ConnectionId, ConsumerTag, QueueName, SessionId};

/// A session-scoped delivery tag (AMQP's per-channel delivery-tag), from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryTag(pub u64);

/// A queue-local id of one enqueued message: its position in the queue's history. Requeued messages
/// go back in order of this id, so they keep their place at the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(pub u64);

/// The publisher's id for a publish it wants confirmed (AMQP confirm sequence number, or any number
/// unique within the session for MQTT and STOMP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublishId(pub u64);

/// How a consumer acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// Delivered means done (AMQP no-ack, STOMP `ack:auto`, MQTT QoS 0).
    Auto,
    /// The session must ack, nack or reject each delivery.
    Manual,
}

/// One message handed to one consumer (or to a `get`).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The consumer it is for; `None` for a delivery returned by `get`.
    pub consumer: Option<ConsumerTag>,
    /// The session-scoped tag to ack it with.
    pub tag: DeliveryTag,
    /// The queue it came from.
    pub queue: QueueName,
    /// The message, shared with every other copy.
    pub message: Arc<Message>,
    /// True if it was delivered before (requeued).
    pub redelivered: bool,
    /// How many times it was handed out before this delivery (0 on the first).
    pub delivery_count: u32,
    /// Bytes charged against the session's transit window until the event is taken.
    pub weight: usize,
    /// When the message entered the queue it came from (the instant the queue was given with
    /// it); a requeued message keeps its original time. Adapters subtract the time spent
    /// queued from a message's expiry (MQTT 5 Message Expiry Interval).
    pub enqueued_at: Instant,
}

/// Why a publish was not confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishRejection {
    /// A target queue is full and its overflow policy is `reject-publish` or `reject-publish-dlx`.
    QueueFull,
    /// Storage failed to persist it.
    StorageFailed,
    /// A target queue was deleted before it was stored.
    QueueDeleted,
}

/// The outcome of a publish the session asked to have confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Every target queue holds it (durably, where that applies).
    Confirmed,
    /// It was refused; see the reason.
    Rejected(PublishRejection),
}

/// Why the engine cancelled a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelReason {
    /// The queue was deleted.
    QueueDeleted,
}

/// The engine's memory flow state, broadcast to every session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowState {
    /// Publishers must pause (stop reading from their sockets).
    Blocked,
    /// Publishers may continue.
    Unblocked,
}

/// What the engine tells a session.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A message for one of its consumers.
    Delivery(Delivery),
    /// A publish it asked to have confirmed was settled.
    PublishSettled {
        /// The id it gave the publish.
        id: PublishId,
        /// Confirmed or rejected.
        outcome: PublishOutcome,
    },
    /// The engine cancelled one of its consumers.
    ConsumerCancelled {
        /// The consumer.
        consumer: ConsumerTag,
        /// Why.
        reason: CancelReason,
    },
    /// Publishers must pause or may resume.
    Flow(FlowState),
}

/// Something that parks consumers on a full window and wants to hear when it drains.
pub trait WindowWaiter: Send + Sync {
    /// The session's window has room again: deliver to its parked consumers.
    fn window_opened(&self, session: SessionId);
}

/// What the outbox remembers about a manual-ack delivery until it is settled.
#[derive(Clone)]
pub struct Unacked {
    /// The queue holding the message (to ack, nack or requeue it there).
    pub queue: Arc<dyn UnackedOwner>,
    /// The message's id in that queue.
    pub entry: EntryId,
    /// The consumer it went to (`None` for `get`).
    pub consumer: Option<ConsumerTag>,
}

/// A queue as seen by the outbox when the session settles deliveries.
pub trait UnackedOwner: Send + Sync {
    /// The message was acknowledged: forget it.
    fn settle_ack(&self, session: SessionId, entry: EntryId);
    /// Several messages were acknowledged: forget them all (one lock, one dispatch for a queue).
    fn settle_acks(&self, session: SessionId, entries: &[EntryId]) {
        for entry in entries {
            self.settle_ack(session, *entry);
        }
    }
    /// The message was refused: requeue it, or dead-letter (or drop) it.
    fn settle_nack(&self, session: SessionId, entry: EntryId, requeue: bool);
}

/// One session's event channel, delivery tag counter and unacked deliveries. Shared by `Arc`.
pub struct Outbox {
    session: SessionId,
    connection: ConnectionId,
    events: EventQueue<Event>,
    next_tag: AtomicU64,
    unacked: Mutex<BTreeMap<DeliveryTag, Unacked>>,
    in_transit: AtomicUsize,
    window: usize,
    parked: Mutex<Vec<Weak<dyn WindowWaiter>>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("session", &self.session)
            .field("connection", &self.connection)
            .field("in_transit", &self.in_transit.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// A new outbox with a transit window of `window` bytes, and the receiving end for its session.
    pub fn new(
        session: SessionId,
        connection: ConnectionId,
        window: usize,
    ) -> (Arc<Self>, EventReceiver) {
        let outbox = Arc::new(Self {
            session,
            connection,
            events: EventQueue::new(),
            next_tag: AtomicU64::new(1),
            unacked: Mutex::new(BTreeMap::new()),
            in_transit: AtomicUsize::new(0),
            window: window.max(1),
            parked: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        let receiver = EventReceiver {
            outbox: Arc::clone(&outbox),
        };
        (outbox, receiver)
    }

    /// The session this outbox belongs to.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// The connection the session runs on.
    pub fn connection(&self) -> ConnectionId {
        self.connection
    }

    /// True once the session has closed: queues drop its consumers instead of delivering.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Marks the session closed; later sends are discarded by the caller's checks.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Reserves `weight` bytes of the transit window for one delivery. Fails when the window is
    /// full; a single message larger than the whole window passes when nothing else is in transit,
    /// so big messages are slow but never stuck.
    pub fn try_reserve(&self, weight: usize) -> bool {
        let mut current = self.in_transit.load(Ordering::Acquire);
        loop {
            if current > 0 && current.saturating_add(weight) > self.window {
                return false;
            }
            match self.in_transit.compare_exchange_weak(
                current,
                current + weight,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Registers a queue that parked a consumer of this session because `needed` bytes did not
    /// fit. Returns false if they would fit now (the session drained between the failed
    /// reservation and this call): the caller should dispatch again itself. Never calls the
    /// waiter back on this thread; the registration stands either way, and a later wake-up of a
    /// queue with nothing to do is harmless.
    pub fn park(&self, waiter: Weak<dyn WindowWaiter>, needed: usize) -> bool {
        self.parked.lock().push(waiter);
        let in_transit = self.in_transit.load(Ordering::Acquire);
        !(in_transit == 0 || in_transit.saturating_add(needed) <= self.window)
    }

    /// Bytes currently in transit to the session.
    pub fn in_transit(&self) -> usize {
        self.in_transit.load(Ordering::Acquire)
    }

    /// Allocates the next delivery tag.
    pub fn next_tag(&self) -> DeliveryTag {
        DeliveryTag(self.next_tag.fetch_add(1, Ordering::Relaxed))
    }

    /// Records a manual-ack delivery so the session can settle it by tag.
    pub fn track_unacked(&self, tag: DeliveryTag, unacked: Unacked) {
        self.unacked.lock().insert(tag, unacked);
    }

    /// Removes and returns the unacked deliveries named by `tag` (and every lower tag when
    /// `multiple`; tag 0 with `multiple` means all, as in AMQP). `None` if `tag` is unknown.
    pub fn take_unacked(
        &self,
        tag: DeliveryTag,
        multiple: bool,
    ) -> Option<Vec<(DeliveryTag, Unacked)>> {
        let mut unacked = self.unacked.lock();
        if multiple {
            if tag.0 != 0 && !unacked.contains_key(&tag) {
                return None;
            }
            let upper = if tag.0 == 0 { u64::MAX } else { tag.0 };
            let keys: Vec<DeliveryTag> = unacked
                .range(..=DeliveryTag(upper))
                .map(|(k, _)| *k)
                .collect();
            Some(
                keys.into_iter()
                    .filter_map(|k| unacked.remove(&k).map(|u| (k, u)))
                    .collect(),
            )
        } else {
            unacked.remove(&tag).map(|u| vec![(tag, u)])
        }
    }

    /// Removes the unacked deliveries `tags` (each on its own, not `multiple`), in order; tags
    /// not awaiting an ack are skipped and counted in the second value.
    pub fn take_unacked_each(&self, tags: &[DeliveryTag]) -> (Vec<Unacked>, usize) {
        let mut unacked = self.unacked.lock();
        let mut taken = Vec::with_capacity(tags.len());
        for tag in tags {
            if let Some(delivery) = unacked.remove(tag) {
                taken.push(delivery);
            }
        }
        let unknown = tags.len() - taken.len();
        (taken, unknown)
    }

    /// Removes every unacked delivery of one consumer (when it is cancelled) or of all (when the
    /// session closes, `consumer == None`).
    pub fn drain_unacked(&self, consumer: Option<&ConsumerTag>) -> Vec<(DeliveryTag, Unacked)> {
        let mut unacked = self.unacked.lock();
        match consumer {
            None => std::mem::take(&mut *unacked).into_iter().collect(),
            Some(tag) => {
                let keys: Vec<DeliveryTag> = unacked
                    .iter()
                    .filter(|(_, u)| u.consumer.as_ref() == Some(tag))
                    .map(|(k, _)| *k)
                    .collect();
                keys.into_iter()
                    .filter_map(|k| unacked.remove(&k).map(|u| (k, u)))
                    .collect()
            }
        }
    }

    /// True while `tag` is delivered and not yet settled.
    pub fn is_unacked(&self, tag: DeliveryTag) -> bool {
        self.unacked.lock().contains_key(&tag)
    }

    /// Number of deliveries awaiting acknowledgement.
    pub fn unacked_count(&self) -> usize {
        self.unacked.lock().len()
    }

    /// Sends an event. A session that is gone simply misses it; queues notice through
    /// [`Outbox::is_closed`] and requeue instead.
    pub fn send(&self, event: Event) {
        // Dropped if the receiver is gone: the session is closing and will requeue.
        self.events.push(event);
    }

    fn release(&self, weight: usize) {
        let before = self.in_transit.fetch_sub(weight, Ordering::AcqRel);
        let after = before.saturating_sub(weight);
        if after <= self.window / 2 && before > self.window / 2 {
            self.wake_parked();
        } else if after == 0 {
            // A wake-up may have been skipped by a racing `park`; draining to zero re-checks.
            self.wake_parked();
        }
    }

    fn wake_parked(&self) {
        let waiters = std::mem::take(&mut *self.parked.lock());
        for waiter in waiters.iter().filter_map(Weak::upgrade) {
            waiter.window_opened(self.session);
        }
    }
}

/// The session's end of its outbox: takes events out and releases their transit bytes.
pub struct EventReceiver {
    outbox: Arc<Outbox>,
}

impl Drop for EventReceiver {
    fn drop(&mut self) {
        self.outbox.events.close_receiver();
    }
}

impl std::fmt::Debug for EventReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReceiver")
            .field("outbox", &self.outbox)
            .finish()
    }
}

impl EventReceiver {
    /// Waits for the next event. Cancel-safe: an event is never lost by dropping the future.
    pub async fn recv(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next event, for inboxes that merge several receivers (one per AMQP
    /// channel). Cancel-safe like [`recv`](EventReceiver::recv).
    pub fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Event>> {
        let polled = self.outbox.events.poll_next(cx);
        if let std::task::Poll::Ready(event) = &polled {
            self.account(event);
        }
        polled.map(Some)
    }

    /// Takes the next event if one is ready.
    pub fn try_recv(&mut self) -> Option<Event> {
        let event = self.outbox.events.try_next()?;
        self.account(&event);
        Some(event)
    }

    fn account(&self, event: &Event) {
        if let Event::Delivery(delivery) = event {
            self.outbox.release(delivery.weight);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(AtomicUsize);
    impl WindowWaiter for Counter {
        fn window_opened(&self, _session: SessionId) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn delivery(weight: usize) -> Event {
        Event::Delivery(Delivery {
            consumer: None,
            tag: DeliveryTag(1),
            queue: QueueName::new("q").unwrap(),
            message: Arc::new(Message::new(
                crate::names::ExchangeName::default_exchange(),
                "q",
                "x",
            )),
            redelivered: false,
            delivery_count: 0,
            weight,
            enqueued_at: Instant::now(),
        })
    }

    #[test]
    fn window_bounds_transit_and_wakes_parked_queues() {
        let (outbox, mut receiver) = Outbox::new(SessionId(1), ConnectionId(1), 100);
        assert!(outbox.try_reserve(60));
        outbox.send(delivery(60));
        assert!(!outbox.try_reserve(60), "window of 100 is full");
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waiter: Arc<dyn WindowWaiter> = counter.clone();
        assert!(outbox.park(Arc::downgrade(&waiter), 60), "still full");
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        assert!(receiver.try_recv().is_some());
        assert_eq!(outbox.in_transit(), 0);
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "drain woke the parked queue"
        );
    }

    #[test]
    fn oversized_message_passes_when_window_is_empty() {
        let (outbox, _receiver) = Outbox::new(SessionId(1), ConnectionId(1), 10);
        assert!(outbox.try_reserve(1000));
        assert!(!outbox.try_reserve(1));
    }

    #[test]
    fn tags_grow_from_one() {
        let (outbox, _receiver) = Outbox::new(SessionId(1), ConnectionId(1), 10);
        assert_eq!(outbox.next_tag(), DeliveryTag(1));
        assert_eq!(outbox.next_tag(), DeliveryTag(2));
    }
}

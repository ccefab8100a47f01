//! Queue behaviour tests: real outboxes, receivers, storage and memory monitor; time passed in.

mod concurrency;
mod delivery;
mod hold;
mod lifecycle;
mod limits;

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::confirm::Completion;
use crate::memory::MemoryMonitor;
use crate::message::{FieldValue, Headers, Message};
use crate::metrics::Metrics;
use crate::names::{ConnectionId, ConsumerTag, ExchangeName, QueueName, SessionId, VhostName};
use crate::outbox::{AckMode, Delivery, DeliveryTag, Event, EventReceiver, Outbox};
use crate::storage::{MemoryStorage, QueueKey};

use super::{
    ConsumerSpec, DeadLetter, DeadLetterSink, DeathReason, EnqueueOutcome, Queue, QueueArguments,
    QueueConfig, QueueEnv,
};

/// Records every dead letter as (queue, reason, body).
#[derive(Default)]
struct RecordingSink(Mutex<Vec<(String, DeathReason, String)>>);

impl DeadLetterSink for RecordingSink {
    fn dead_letter(&self, from: &QueueConfig, letters: Vec<DeadLetter>) {
        let mut seen = self.0.lock();
        for letter in letters {
            seen.push((
                from.key.queue.to_string(),
                letter.reason,
                body(&letter.message),
            ));
        }
    }
}

/// The broker-wide services, and a clock origin.
struct Harness {
    metrics: Arc<Metrics>,
    memory: Arc<MemoryMonitor>,
    storage: Arc<MemoryStorage>,
    sink: Arc<RecordingSink>,
    t0: Instant,
}

impl Harness {
    fn new() -> Self {
        let metrics = Arc::new(Metrics::default());
        Self {
            memory: Arc::new(MemoryMonitor::new(1 << 30, Arc::clone(&metrics))),
            metrics,
            storage: Arc::new(MemoryStorage::new()),
            sink: Arc::new(RecordingSink::default()),
            t0: Instant::now(),
        }
    }

    fn env(&self) -> QueueEnv {
        QueueEnv {
            metrics: Arc::clone(&self.metrics),
            memory: Arc::clone(&self.memory),
            storage: self.storage.clone(),
            dead_letters: self.sink.clone(),
        }
    }

    /// `ms` milliseconds after the origin.
    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn config(&self, name: &str, arguments: &[(&str, FieldValue)]) -> QueueConfig {
        let mut declared = Headers::new();
        for (key, value) in arguments {
            declared.insert(*key, value.clone());
        }
        QueueConfig {
            key: QueueKey {
                vhost: VhostName::default_vhost(),
                queue: QueueName::new(name).unwrap(),
            },
            durable: false,
            exclusive_owner: None,
            auto_delete: false,
            arguments: QueueArguments::parse(&declared).unwrap(),
            declared_arguments: declared,
        }
    }

    fn queue(&self, arguments: &[(&str, FieldValue)]) -> Arc<Queue> {
        Queue::new(self.config("q", arguments), self.env(), self.t0)
    }

    fn dead_letters(&self) -> Vec<(DeathReason, String)> {
        self.sink
            .0
            .lock()
            .iter()
            .map(|(_, reason, body)| (*reason, body.clone()))
            .collect()
    }

    fn read(&self, counter: impl Fn(&Metrics) -> &std::sync::atomic::AtomicU64) -> u64 {
        Metrics::read(counter(&self.metrics))
    }
}

fn int(value: i64) -> FieldValue {
    FieldValue::I64(value)
}

fn message(body: &str) -> Arc<Message> {
    Arc::new(Message::new(
        ExchangeName::default_exchange(),
        "q",
        body.to_owned(),
    ))
}

fn body(message: &Message) -> String {
    String::from_utf8_lossy(&message.body).into_owned()
}

fn publish(queue: &Queue, text: &str, now: Instant) -> EnqueueOutcome {
    queue.enqueue(message(text), Completion::detached(), now)
}

/// One core session: its outbox and receiver.
struct Client {
    outbox: Arc<Outbox>,
    receiver: EventReceiver,
}

impl Client {
    fn new(id: u64) -> Self {
        Self::with_window(id, 1 << 20)
    }

    fn with_window(id: u64, window: usize) -> Self {
        let (outbox, receiver) = Outbox::new(SessionId(id), ConnectionId(id), window);
        Self { outbox, receiver }
    }

    fn session(&self) -> SessionId {
        self.outbox.session()
    }

    fn spec(&self, tag: &str, ack_mode: AckMode, prefetch: u32) -> ConsumerSpec {
        ConsumerSpec {
            tag: ConsumerTag::new(tag).unwrap(),
            outbox: Arc::clone(&self.outbox),
            ack_mode,
            prefetch,
            priority: 0,
            exclusive: false,
        }
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.receiver.try_recv()).collect()
    }

    fn deliveries(&mut self) -> Vec<Delivery> {
        self.events()
            .into_iter()
            .filter_map(|event| match event {
                Event::Delivery(delivery) => Some(delivery),
                _ => None,
            })
            .collect()
    }

    fn bodies(&mut self) -> Vec<String> {
        self.deliveries().iter().map(|d| body(&d.message)).collect()
    }

    fn ack(&self, tag: DeliveryTag) {
        for (_, unacked) in self.outbox.take_unacked(tag, false).unwrap() {
            unacked.queue.settle_ack(self.session(), unacked.entry);
        }
    }

    fn nack(&self, tag: DeliveryTag, requeue: bool) {
        for (_, unacked) in self.outbox.take_unacked(tag, false).unwrap() {
            unacked
                .queue
                .settle_nack(self.session(), unacked.entry, requeue);
        }
    }
}

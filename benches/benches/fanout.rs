//! In-process fan-out through the core engine (`mqgate_core`), no adapter and no socket: what a
//! publish costs the engine and what each delivery costs it, as seen by the sessions.
//!
//! Setup (outside the timing): one broker with the default vhost, one publisher connection and
//! session, and N = 1, 10, 100 subscriber connections, each with one session (transit window of
//! 64 MiB, so no consumer is ever parked on a full window) and one auto-ack consumer.
//! - `fanout`: each subscriber has its own exclusive queue bound to `amq.topic` with
//!   `sensors.*.temp`; every message goes to all N queues.
//! - `cluster`: one shared queue bound the same way, N competing consumers on it; every message
//!   goes to one of them.
//!
//! One iteration publishes [`FANOUT_MESSAGES`] (or [`CLUSTER_MESSAGES`]) messages of 100 bytes
//! with routing key `sensors.device42.temp` (no confirms, not mandatory), then drains every
//! subscriber's `EventReceiver` with `try_recv` and counts the deliveries. Delivery is
//! synchronous inside `publish`, so once the publishes return every delivery is waiting in an
//! outbox. Throughput is deliveries (`Throughput::Elements`): N × messages for `fanout`, messages
//! for `cluster`.
//!
//! Run: `cargo bench -p mqgate-benches --bench fanout` (about 30 seconds on 2 cores, once built).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mqgate_core::declare::{BindingDeclaration, QueueDeclaration};
use mqgate_core::message::{Headers, Message};
use mqgate_core::names::{ExchangeName, QueueName, VhostName};
use mqgate_core::outbox::{Event, EventReceiver};
use mqgate_core::{Broker, BrokerConfig, Connection, ConsumeRequest, Session};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

const SUBSCRIBERS: [usize; 3] = [1, 10, 100];
/// Messages published per `fanout` iteration (up to 10,000 deliveries at N = 100).
const FANOUT_MESSAGES: usize = 100;
/// Messages published per `cluster` iteration.
const CLUSTER_MESSAGES: usize = 1_000;
const BODY_SIZE: usize = 100;
/// Each subscriber session's transit window: far more than one iteration's deliveries.
const WINDOW: usize = 64 << 20;
const EXCHANGE: &str = "amq.topic";
const PATTERN: &str = "sensors.*.temp";
const ROUTING_KEY: &str = "sensors.device42.temp";

struct Subscriber {
    // Field order is drop order: the session (consumer and outbox) goes before its connection.
    _session: Session,
    events: EventReceiver,
    _connection: Connection,
}

/// A broker, one publisher, and N subscribers that have started consuming.
struct Setup {
    subscribers: Vec<Subscriber>,
    publisher: Session,
    _publisher_events: EventReceiver,
    _publisher_connection: Connection,
    _broker: Arc<Broker>,
    exchange: ExchangeName,
    body: Bytes,
}

fn bind(session: &mut Session, queue: &QueueName) {
    session
        .bind_queue(BindingDeclaration {
            source: ExchangeName::new(EXCHANGE).expect("valid name"),
            destination: queue.as_str().to_owned(),
            routing_key: PATTERN.to_owned(),
            arguments: Headers::new(),
        })
        .expect("bind");
}

impl Setup {
    /// `shared`: one queue for all subscribers (competing consumers) instead of one each.
    fn new(subscribers: usize, shared: bool) -> Self {
        let broker = Broker::new(BrokerConfig::default());
        let vhost = VhostName::default_vhost();
        broker.add_vhost(vhost.clone());
        let publisher_connection = broker.connect(&vhost, None).expect("vhost exists");
        let (mut publisher, publisher_events) = publisher_connection.open_session();

        let shared_queue = QueueName::new("bench.shared").expect("valid name");
        if shared {
            publisher
                .declare_queue(QueueDeclaration::named(shared_queue.clone()))
                .expect("declare");
            bind(&mut publisher, &shared_queue);
        }
        let subscribers = (0..subscribers)
            .map(|i| {
                let connection = broker.connect(&vhost, None).expect("vhost exists");
                let (mut session, events) = connection.open_session_with_window(WINDOW);
                let queue = if shared {
                    shared_queue.clone()
                } else {
                    let queue = QueueName::new(format!("bench.sub{i}")).expect("valid name");
                    session
                        .declare_queue(QueueDeclaration {
                            exclusive: true,
                            ..QueueDeclaration::named(queue.clone())
                        })
                        .expect("declare");
                    bind(&mut session, &queue);
                    queue
                };
                session
                    .consume(ConsumeRequest::auto(queue))
                    .expect("consume");
                Subscriber {
                    _session: session,
                    events,
                    _connection: connection,
                }
            })
            .collect();
        Self {
            subscribers,
            publisher,
            _publisher_events: publisher_events,
            _publisher_connection: publisher_connection,
            _broker: broker,
            exchange: ExchangeName::new(EXCHANGE).expect("valid name"),
            body: Bytes::from(vec![b'x'; BODY_SIZE]),
        }
    }

    /// As [`round`](Self::round), untimed: the deliveries each subscriber received.
    fn check(&mut self, messages: usize) -> Vec<usize> {
        for _ in 0..messages {
            let message = Message::new(self.exchange.clone(), ROUTING_KEY, self.body.clone());
            self.publisher
                .publish(message, false, None)
                .expect("publish");
        }
        self.subscribers
            .iter_mut()
            .map(|subscriber| {
                std::iter::from_fn(|| subscriber.events.try_recv())
                    .filter(|event| matches!(event, Event::Delivery(_)))
                    .count()
            })
            .collect()
    }

    /// Publishes `messages` messages, then drains every subscriber; returns the deliveries.
    fn round(&mut self, messages: usize) -> usize {
        for _ in 0..messages {
            let message = Message::new(self.exchange.clone(), ROUTING_KEY, self.body.clone());
            black_box(
                self.publisher
                    .publish(message, false, None)
                    .expect("publish"),
            );
        }
        let mut deliveries = 0;
        for subscriber in &mut self.subscribers {
            while let Some(event) = subscriber.events.try_recv() {
                if let Event::Delivery(delivery) = event {
                    black_box(&delivery);
                    deliveries += 1;
                }
            }
        }
        deliveries
    }
}

fn bench(c: &mut Criterion, name: &str, shared: bool, messages: usize) {
    let mut group = c.benchmark_group("fanout");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for subscribers in SUBSCRIBERS {
        let mut setup = Setup::new(subscribers, shared);
        let expected = if shared {
            messages
        } else {
            messages * subscribers
        };
        let per_subscriber = setup.check(messages);
        let delivered: usize = per_subscriber.iter().sum();
        assert_eq!(delivered, expected, "{name}/{subscribers}");
        let (least, most) = (
            per_subscriber.iter().min().copied().unwrap_or(0),
            per_subscriber.iter().max().copied().unwrap_or(0),
        );
        eprintln!("{name}/{subscribers}: {least}..={most} deliveries per subscriber");
        eprintln!("{name}/{subscribers}: {messages} messages, {expected} deliveries per iteration");
        group.throughput(Throughput::Elements(expected as u64));
        group.bench_function(BenchmarkId::new(name, subscribers), |b| {
            b.iter(|| setup.round(messages));
        });
    }
    group.finish();
}

fn bench_fanout(c: &mut Criterion) {
    bench(c, "fanout", false, FANOUT_MESSAGES);
}

fn bench_cluster(c: &mut Criterion) {
    bench(c, "cluster", true, CLUSTER_MESSAGES);
}

criterion_group!(benches, bench_fanout, bench_cluster);
criterion_main!(benches);

//! An engine client on a running gateway's broker: the "other protocol" of the cross-protocol
//! tests until the AMQP adapter lands. It declares, binds and consumes as an AMQP consumer would,
//! and publishes as an AMQP publisher would. Every wait is bounded.

use mqgate::RunningGateway;
use mqgate_core::declare::{BindingDeclaration, QueueDeclaration};
use mqgate_core::message::{Headers, Message};
use mqgate_core::names::{ExchangeName, QueueName, VhostName};
use mqgate_core::outbox::{Delivery, Event, EventReceiver};
use mqgate_core::{Connection, ConsumeRequest, Session};

use super::gateway::{within, STEP};

/// An engine session on the gateway's broker (vhost `/`).
pub struct Engine {
    session: Session,
    events: EventReceiver,
    _connection: Connection,
}

impl Engine {
    /// Opens a session on `gateway`'s broker.
    pub fn open(gateway: &RunningGateway) -> Engine {
        let connection = gateway
            .broker()
            .connect(&VhostName::default_vhost(), None)
            .unwrap();
        let (session, events) = connection.open_session();
        Engine {
            session,
            events,
            _connection: connection,
        }
    }

    /// Declares an exclusive queue bound on `amq.topic` with `key`, consumes it (auto-ack), and
    /// returns its name.
    pub fn consume_topic(&mut self, key: &str) -> QueueName {
        let declared = self
            .session
            .declare_queue(QueueDeclaration {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclaration::default()
            })
            .unwrap();
        self.session
            .bind_queue(BindingDeclaration {
                source: amq_topic(),
                destination: declared.name.to_string(),
                routing_key: key.to_owned(),
                arguments: Headers::new(),
            })
            .unwrap();
        self.consume_queue(declared.name.as_str());
        declared.name
    }

    /// Consumes the existing queue `name` (auto-ack).
    pub fn consume_queue(&mut self, name: &str) {
        self.session
            .consume(ConsumeRequest::auto(QueueName::new(name).unwrap()))
            .unwrap();
    }

    /// The next delivery, within [`STEP`].
    pub async fn delivery(&mut self) -> Delivery {
        within(STEP, "an engine delivery", self.next_delivery()).await
    }

    /// The next delivery, unbounded: for callers that bound it themselves.
    pub async fn next_delivery(&mut self) -> Delivery {
        loop {
            match self.events.recv().await.expect("the engine session ended") {
                Event::Delivery(delivery) => return delivery,
                _ => continue,
            }
        }
    }

    /// Publishes `message`; it must reach at least one queue.
    pub fn publish(&mut self, message: Message) {
        let routed = self.session.publish(message, false, None).unwrap();
        assert!(routed.queues > 0, "the engine publish reached no queue");
    }
}

/// The exchange MQTT and STOMP topics live on.
pub fn amq_topic() -> ExchangeName {
    ExchangeName::new("amq.topic").unwrap()
}

//! The core engine in-process, without any protocol: declare a queue, bind it to `amq.topic`,
//! publish with confirmation, consume with manual acks.
//!
//! Run: `cargo run -p mqgate-examples --example core_pubsub`

use mqgate_core::declare::{BindingDeclaration, QueueDeclaration};
use mqgate_core::message::{Headers, Message};
use mqgate_core::names::{ExchangeName, QueueName, VhostName};
use mqgate_core::outbox::{Event, PublishId};
use mqgate_core::{Broker, BrokerConfig, ConsumeRequest};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = Broker::new(BrokerConfig::default());
    broker.add_vhost(VhostName::default_vhost());
    let connection = broker.connect(&VhostName::default_vhost(), None)?;
    let (mut session, mut events) = connection.open_session();

    let queue = QueueName::new("cities")?;
    session.declare_queue(QueueDeclaration::named(queue.clone()))?;
    session.bind_queue(BindingDeclaration {
        source: ExchangeName::new("amq.topic")?,
        destination: queue.to_string(),
        routing_key: "cities.*".into(),
        arguments: Headers::new(),
    })?;
    session.consume(ConsumeRequest::manual(queue, 10))?;

    let mut message = Message::new(ExchangeName::new("amq.topic")?, "cities.london", "rain");
    message.headers.insert("source", "example");
    session.publish(message, false, Some(PublishId(1)))?;

    for _ in 0..2 {
        match events.recv().await {
            Some(Event::PublishSettled { id, outcome }) => {
                println!("publish {} settled: {outcome:?}", id.0);
            }
            Some(Event::Delivery(delivery)) => {
                println!(
                    "received {:?} on {} with headers {:?}",
                    String::from_utf8_lossy(&delivery.message.body),
                    delivery.message.routing_key,
                    delivery.message.headers,
                );
                session.ack(delivery.tag, false)?;
            }
            other => println!("event: {other:?}"),
        }
    }
    Ok(())
}

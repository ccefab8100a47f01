//! AMQP 0-9-1 through lapin: publish to `amq.topic` with the routing key; consume from a
//! server-named exclusive queue bound to it.
//!
//! At QoS 1 the publishing channel is in confirm mode and up to `--window` confirms are
//! awaited at once (pipelined: a task awaits them in order while the publisher goes on); the
//! consumer acknowledges (cumulative `multiple` acks every half window, or after a short idle)
//! under a prefetch of `--window`. At QoS 0 there are no confirms and the consumer is
//! `no_ack`. lapin runs one I/O thread per connection, which bounds how many AMQP clients one
//! generator process should open.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures_core::Stream;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use lapin::{Confirmation, PublisherConfirm};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Confirms, Options, Subscription};
use crate::inbox::Inbox;
use crate::target::Target;

/// The exchange every benchmark message goes through.
const EXCHANGE: &str = "amq.topic";
/// A consumer with unacknowledged deliveries and nothing new for this long acks them.
const ACK_IDLE: Duration = Duration::from_millis(5);

/// `text` with everything but unreserved URI characters percent-encoded.
fn percent(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Connects and logs in on vhost `/`.
async fn connect(target: &Target, options: &Options) -> anyhow::Result<Connection> {
    let uri = format!(
        "amqp://{}:{}@{}/%2f",
        percent(&options.user),
        percent(&options.password),
        target.authority()
    );
    Connection::connect(&uri, ConnectionProperties::default())
        .await
        .with_context(|| format!("AMQP login at {target}"))
}

/// An AMQP publisher.
pub struct Publisher {
    connection: Connection,
    channel: Channel,
    routing_key: String,
    pending: Option<mpsc::Sender<PublisherConfirm>>,
    /// What the broker (QoS 1) or lapin (QoS 0) took.
    pub confirms: Arc<Confirms>,
    waiter: Option<JoinHandle<()>>,
}

impl Publisher {
    /// Connects, opens a channel (in confirm mode at QoS 1), to publish with `routing_key`.
    pub async fn connect(
        target: &Target,
        routing_key: String,
        options: &Options,
    ) -> anyhow::Result<Self> {
        let connection = connect(target, options).await?;
        let channel = connection.create_channel().await?;
        let confirms = Arc::new(Confirms::default());
        let (pending, waiter) = if options.qos > 0 {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            // The queue's capacity plus the one in the sender's hand is the window.
            let capacity = usize::from(options.window.max(2)) - 1;
            let (sender, mut queue) = mpsc::channel::<PublisherConfirm>(capacity);
            let confirms = confirms.clone();
            let waiter = tokio::spawn(async move {
                while let Some(confirm) = queue.recv().await {
                    match confirm.await {
                        Ok(Confirmation::Nack(_)) => confirms.refuse(1),
                        Ok(_) => confirms.confirm(1),
                        Err(error) => {
                            confirms.fail(format!("AMQP confirm: {error}"));
                            return;
                        }
                    }
                }
            });
            (Some(sender), Some(waiter))
        } else {
            (None, None)
        };
        Ok(Self {
            connection,
            channel,
            routing_key,
            pending,
            confirms,
            waiter,
        })
    }

    /// Publishes one message; at QoS 1 waits while the window of unconfirmed ones is full.
    pub async fn publish(&mut self, body: Bytes) -> anyhow::Result<()> {
        let confirm = self
            .channel
            .basic_publish(
                EXCHANGE.into(),
                self.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default(),
            )
            .await
            .context("basic.publish")?;
        match &self.pending {
            Some(pending) => pending
                .send(confirm)
                .await
                .map_err(|_| anyhow::anyhow!("AMQP confirms stopped")),
            None => {
                self.confirms.confirm(1);
                Ok(())
            }
        }
    }

    /// Closes the channel and the connection.
    pub async fn close(self) {
        drop(self.pending);
        if let Some(waiter) = self.waiter {
            waiter.abort();
        }
        let _ = self.channel.close(200, "bye".into()).await;
        let _ = self.connection.close(200, "bye".into()).await;
    }
}

/// The next item of `consumer`; `None` once the broker cancelled it.
async fn next_delivery(
    consumer: &mut lapin::Consumer,
) -> Option<lapin::Result<lapin::message::Delivery>> {
    poll_fn(|cx| Pin::new(&mut *consumer).poll_next(cx)).await
}

/// Connects, declares an exclusive server-named queue bound to `amq.topic` with
/// `routing_key`, and consumes from it; a task feeds `inbox` until `stop`.
pub async fn subscribe(
    target: &Target,
    routing_key: String,
    options: &Options,
    mut inbox: Inbox,
    stop: CancellationToken,
) -> anyhow::Result<Subscription> {
    let connection = connect(target, options).await?;
    let channel = connection.create_channel().await?;
    let acking = options.qos > 0;
    if acking {
        channel
            .basic_qos(options.window.max(1), BasicQosOptions::default())
            .await?;
    }
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .context("queue.declare")?;
    channel
        .queue_bind(
            queue.name().clone(),
            EXCHANGE.into(),
            routing_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .context("queue.bind")?;
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: !acking,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .context("basic.consume")?;
    let batch = u32::from(options.window.max(2) / 2);
    Ok(tokio::spawn(async move {
        let mut pending = 0u32;
        let mut last_tag = 0;
        let mut error = None;
        let multiple = BasicAckOptions { multiple: true };
        loop {
            let item = tokio::select! {
                _ = stop.cancelled() => break,
                item = tokio::time::timeout(ACK_IDLE, next_delivery(&mut consumer)) => item,
            };
            match item {
                Err(_idle) => {
                    if pending > 0 {
                        pending = 0;
                        if let Err(ack_error) = channel.basic_ack(last_tag, multiple).await {
                            error = Some(format!("basic.ack: {ack_error}"));
                            break;
                        }
                    }
                }
                Ok(Some(Ok(delivery))) => {
                    inbox.accept(&delivery.data);
                    if acking {
                        pending += 1;
                        last_tag = delivery.delivery_tag;
                        if pending >= batch {
                            pending = 0;
                            if let Err(ack_error) = channel.basic_ack(last_tag, multiple).await {
                                error = Some(format!("basic.ack: {ack_error}"));
                                break;
                            }
                        }
                    }
                }
                Ok(Some(Err(consume_error))) => {
                    error = Some(format!("AMQP consumer: {consume_error}"));
                    break;
                }
                Ok(None) => {
                    error = Some("the broker cancelled the consumer".to_owned());
                    break;
                }
            }
        }
        let _ =
            tokio::time::timeout(Duration::from_secs(1), connection.close(200, "bye".into())).await;
        (inbox, error)
    }))
}

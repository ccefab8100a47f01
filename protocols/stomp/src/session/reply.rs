//! `/temp-queue/<n>` in a SEND's `reply-to`: the connection's private reply queues.
//!
//! The flow (RabbitMQ's): the first SEND naming `/temp-queue/<n>` in `reply-to` declares a
//! server-named queue, exclusive to the connection and auto-delete, and consumes it with an
//! internal auto-ack subscription; the `reply-to` the receiver sees is rewritten to
//! `/reply-queue/<generated>`. A responder SENDing to that `/reply-queue/` publishes through the
//! default exchange to the queue, and the requester gets a MESSAGE with
//! `subscription:/temp-queue/<n>` and `destination:/reply-queue/<generated>`.
//!
//! Invariants:
//! - One queue per connection and temp-queue name, declared once; later SENDs reuse it.
//! - Reply queues count against `max_subscriptions` together with the subscriptions.
//! - They are never acknowledged by the client (auto-ack) and die with the connection.

use std::borrow::Cow;

use mqgate_core::names::{ConsumerTag, QueueName};
use mqgate_core::session::ConsumeRequest;

use crate::destination::{
    reply_queue_destination, temp_queue_declaration, Destination, TEMP_QUEUE_PREFIX,
};

use super::StompSession;

/// A decoded header.
type Header = (String, String);

/// An ERROR's (message, detail).
type Refusal = (String, String);

/// One `/temp-queue/<n>` of the connection.
#[derive(Debug)]
pub(crate) struct TempQueue {
    /// The generated queue.
    pub(crate) queue: QueueName,
    /// The internal subscription consuming it.
    pub(crate) consumer: ConsumerTag,
    /// `/temp-queue/<n>`, canonical: the MESSAGE frames' `subscription`.
    pub(crate) subscription: String,
}

impl StompSession {
    /// `headers` with the first `reply-to` rewritten when it names a `/temp-queue/` (declaring
    /// and consuming the queue on first use). `Err` is an ERROR's (message, detail).
    pub(super) fn resolve_reply_to<'h>(
        &mut self,
        headers: &'h [Header],
    ) -> Result<Cow<'h, [Header]>, Refusal> {
        let Some(index) = headers.iter().position(|(name, _)| name == "reply-to") else {
            return Ok(Cow::Borrowed(headers));
        };
        let value = &headers[index].1;
        if !value.starts_with(TEMP_QUEUE_PREFIX) {
            return Ok(Cow::Borrowed(headers));
        }
        let invalid = |detail: String| ("invalid reply-to".to_owned(), detail);
        let name = match Destination::parse(value) {
            Ok(Destination::TempQueue { name }) => name,
            Ok(other) => return Err(invalid(format!("'{other}' is not a temp queue"))),
            Err(error) => return Err(invalid(error.to_string())),
        };
        let queue = self.temp_queue(&name)?;
        let mut rewritten = headers.to_vec();
        rewritten[index].1 = reply_queue_destination(&queue);
        Ok(Cow::Owned(rewritten))
    }

    /// The queue of `/temp-queue/<name>`, made and consumed on first use.
    fn temp_queue(&mut self, name: &str) -> Result<QueueName, Refusal> {
        if let Some(temp) = self.subs.temp_queues.get(name) {
            return Ok(temp.queue.clone());
        }
        let held = self.subs.by_id.len() + self.subs.temp_queues.len();
        if held >= self.settings.max_subscriptions {
            return Err((
                "resource limit reached".to_owned(),
                format!(
                    "at most {} subscriptions and temp queues per connection",
                    self.settings.max_subscriptions
                ),
            ));
        }
        let engine = |detail: String| ("cannot create the temp queue".to_owned(), detail);
        let declared = self
            .core
            .declare_queue(temp_queue_declaration())
            .map_err(|error| engine(error.to_string()))?;
        let queue = declared.name;
        let tag = self.subs.next_tag("stomp-temp").map_err(engine)?;
        let request = ConsumeRequest {
            tag: Some(tag),
            ..ConsumeRequest::auto(queue.clone())
        };
        let consumer = match self.core.consume(request) {
            Ok(consumer) => consumer,
            Err(error) => {
                let _ = self.core.delete_queue(&queue, false, false);
                return Err(engine(error.to_string()));
            }
        };
        let subscription = Destination::TempQueue {
            name: name.to_owned(),
        }
        .to_string();
        self.subs
            .temp_by_consumer
            .insert(consumer.clone(), name.to_owned());
        self.subs.temp_queues.insert(
            name.to_owned(),
            TempQueue {
                queue: queue.clone(),
                consumer,
                subscription,
            },
        );
        tracing::debug!(session = %self.session_id, temp = name, %queue, "temp queue declared");
        Ok(queue)
    }
}

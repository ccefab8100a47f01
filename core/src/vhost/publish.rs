//! Publishing: routing through exchanges to queues, and routing dead letters.

use std::sync::{Arc, Weak};
use std::time::Instant;

use crate::confirm::{Completion, ConfirmTracker};
use crate::dead_letter::{dead_letter_copy, is_cycle};
use crate::errors::PublishError;
use crate::exchange::{Destination, Exchange};
use crate::message::Message;
use crate::metrics::Metrics;
use crate::names::{ExchangeName, QueueName};
use crate::queue::{DeadLetter, DeadLetterSink, Queue, QueueConfig};
use crate::retained::{is_retain_requested, RetainOutcome};

use super::{Routed, Vhost};

impl Vhost {
    /// Routes `message` from its exchange and enqueues it on every queue reached.
    ///
    /// `confirm` (when the publisher asked) is settled once every queue holds the message;
    /// an unroutable message is confirmed at once, as RabbitMQ does (after `basic.return` if
    /// mandatory, which the adapter sends from the returned [`Routed`]).
    ///
    /// A message with the header `x-retain` true is stored in [`Vhost::retained`] first (an
    /// empty body clears its key), so a subscriber that binds and then reads the store never
    /// misses it; a full store refuses it (counted in `retained_refused`) and it still routes.
    pub fn publish(
        &self,
        message: Arc<Message>,
        mandatory: bool,
        confirm: Option<ConfirmTracker>,
    ) -> Result<Routed, PublishError> {
        if is_retain_requested(&message.headers) {
            self.retain(&message);
        }
        let queues = self.route(&message)?;
        let metrics = &self.services.metrics;
        Metrics::bump(&metrics.published);
        if queues.is_empty() {
            if mandatory {
                Metrics::bump(&metrics.unroutable_returned);
            } else {
                Metrics::bump(&metrics.unroutable_dropped);
                tracing::debug!(
                    vhost = %self.name,
                    exchange = %message.exchange,
                    routing_key = %message.routing_key,
                    "unroutable message dropped"
                );
            }
        }
        let now = Instant::now();
        for queue in &queues {
            let completion = confirm
                .as_ref()
                .map_or_else(Completion::detached, ConfirmTracker::completion);
            queue.enqueue(Arc::clone(&message), completion, now);
        }
        if let Some(tracker) = confirm {
            tracker.finish();
        }
        Ok(Routed {
            queues: queues.len(),
        })
    }

    /// Stores a message asking for retention, if its exchange exists and is public (otherwise
    /// [`Vhost::route`] refuses the publish and nothing is kept).
    fn retain(&self, message: &Arc<Message>) {
        let routable = message.exchange.is_default()
            || self
                .exchange(&message.exchange)
                .is_some_and(|exchange| !exchange.internal);
        if !routable {
            return;
        }
        if let RetainOutcome::Refused(reason) = self.retained.store(message) {
            Metrics::bump(&self.services.metrics.retained_refused);
            tracing::warn!(
                vhost = %self.name,
                exchange = %message.exchange,
                routing_key = %message.routing_key,
                %reason,
                "retained message refused"
            );
        }
    }

    /// The queues `message` reaches from its exchange.
    pub fn route(&self, message: &Message) -> Result<Vec<Arc<Queue>>, PublishError> {
        let mut queues = Vec::new();
        if message.exchange.is_default() {
            if let Ok(name) = QueueName::new(&*message.routing_key) {
                queues.extend(self.queue(&name));
            }
            return Ok(queues);
        }
        let exchange =
            self.exchange(&message.exchange)
                .ok_or_else(|| PublishError::ExchangeNotFound {
                    exchange: message.exchange.clone(),
                    vhost: self.name.clone(),
                })?;
        if exchange.internal {
            return Err(PublishError::InternalExchange {
                exchange: message.exchange.clone(),
                vhost: self.name.clone(),
            });
        }
        let mut visited = Vec::new();
        self.walk(&exchange, message, &mut visited, &mut queues);
        // One copy per queue however many bindings lead there: deduplicated once here, in
        // order, rather than by a scan per binding (quadratic in the queues one key reaches).
        if queues.len() > 1 {
            let mut seen = std::collections::HashSet::with_capacity(queues.len());
            queues.retain(|queue| seen.insert(Arc::as_ptr(queue)));
        }
        Ok(queues)
    }

    fn walk(
        &self,
        exchange: &Arc<Exchange>,
        message: &Message,
        visited: &mut Vec<ExchangeName>,
        queues: &mut Vec<Arc<Queue>>,
    ) {
        if visited.contains(&exchange.name) {
            return;
        }
        visited.push(exchange.name.clone());
        let before = queues.len();
        let mut destinations = Vec::new();
        exchange.route(message, &mut destinations);
        for destination in destinations {
            match destination {
                Destination::Queue(name) => queues.extend(self.queue(&name)),
                Destination::Exchange(name) => {
                    if let Some(next) = self.exchange(&name) {
                        self.walk(&next, message, visited, queues);
                    }
                }
            }
        }
        if queues.len() == before {
            if let Some(alternate) = exchange.alternate.as_ref().and_then(|a| self.exchange(a)) {
                self.walk(&alternate, message, visited, queues);
            }
        }
    }

    fn dead_letter(&self, from: &QueueConfig, letters: Vec<DeadLetter>) {
        let metrics = &self.services.metrics;
        let Some(dlx) = from.arguments.dead_letter_exchange.as_ref() else {
            Metrics::add(&metrics.dead_letter_dropped, letters.len() as u64);
            return;
        };
        let now = Instant::now();
        for letter in letters {
            let copy = dead_letter_copy(
                &letter.message,
                &from.key.queue,
                letter.reason,
                dlx,
                from.arguments.dead_letter_routing_key.as_deref(),
            );
            let targets = match self.route(&copy) {
                Ok(targets) => targets,
                Err(error) => {
                    Metrics::bump(&metrics.dead_letter_dropped);
                    tracing::warn!(vhost = %self.name, queue = %from.key.queue, %error, "dead letter dropped");
                    continue;
                }
            };
            let copy = Arc::new(copy);
            let mut delivered = false;
            for target in targets {
                if is_cycle(&copy, target.name()) {
                    tracing::debug!(vhost = %self.name, queue = %target.name(), "dead-letter cycle dropped");
                    continue;
                }
                target.enqueue(Arc::clone(&copy), Completion::detached(), now);
                delivered = true;
            }
            if delivered {
                Metrics::bump(&metrics.dead_lettered);
            } else {
                Metrics::bump(&metrics.dead_letter_dropped);
                tracing::warn!(
                    vhost = %self.name,
                    queue = %from.key.queue,
                    dead_letter_exchange = %dlx,
                    "dead letter dropped: it reached no queue"
                );
            }
        }
    }
}

/// Routes a queue's dead letters through its vhost; holds the vhost weakly (queues live in it).
#[derive(Debug)]
pub(super) struct VhostDeadLetters {
    pub(super) vhost: Weak<Vhost>,
}

impl DeadLetterSink for VhostDeadLetters {
    fn dead_letter(&self, from: &QueueConfig, letters: Vec<DeadLetter>) {
        if let Some(vhost) = self.vhost.upgrade() {
            vhost.dead_letter(from, letters);
        }
    }
}

//! Consumer groups: many consumers behind one subscription.
//!
//! - **Clustering**: the members share one queue, so each message goes to one member (MQTT
//!   `$share/G/filter`, STOMP `/queue/`, AMQP competing consumers). A member that leaves with
//!   unacked messages has them requeued to the others.
//! - **Broadcast**: each member gets its own queue bound the same way, so every member gets every
//!   message.
//!
//! The group's queue name is derived from (group, exchange, pattern, tag filter) with a stable
//! hash, so every member of a clustering group finds the same queue whatever session it runs on,
//! and two different subscriptions never share one.

use std::hash::{Hash, Hasher};

use crate::declare::{BindingDeclaration, QueueDeclaration, TAG_FILTER_ARGUMENT};
use crate::errors::{BindError, ConsumeError, DeclareQueueError};
use crate::message::Headers;
use crate::names::{ConsumerTag, ExchangeName, QueueName};
use crate::outbox::AckMode;
use crate::session::{ConsumeRequest, Session};

/// How a group shares messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupMode {
    /// Each message to one member.
    Clustering,
    /// Every message to every member.
    Broadcast,
}

/// A subscription made on behalf of a group member.
#[derive(Debug, Clone)]
pub struct GroupSubscription {
    /// The group's name.
    pub group: String,
    /// Clustering or broadcast.
    pub mode: GroupMode,
    /// The exchange to subscribe to (e.g. `amq.topic`).
    pub exchange: ExchangeName,
    /// The binding key or topic pattern.
    pub pattern: String,
    /// A RocketMQ-style tag filter (`TagA || TagB`); `None` for all.
    pub tag_filter: Option<String>,
    /// Whether the clustering queue survives restarts (once storage exists).
    pub durable: bool,
    /// Auto or manual acknowledgement.
    pub ack_mode: AckMode,
    /// Prefetch for manual ack; 0 = unlimited.
    pub prefetch: u32,
}

/// Joining a group failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The group's queue could not be declared.
    #[error(transparent)]
    Declare(#[from] DeclareQueueError),
    /// The binding could not be made (e.g. bad pattern exchange or tag filter).
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The consumer could not be added.
    #[error(transparent)]
    Consume(#[from] ConsumeError),
    /// The group name makes a queue name that is too long.
    #[error("group name '{0}' is too long")]
    NameTooLong(String),
}

/// A member's place in its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMembership {
    /// The consumer reading for the member.
    pub consumer: ConsumerTag,
    /// The queue it reads.
    pub queue: QueueName,
}

fn subscription_hash(subscription: &GroupSubscription) -> u64 {
    // DefaultHasher with fixed keys is stable within one build, which is all the names need
    // (they are not persisted across versions: clustering queues are recreated on demand).
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    subscription.group.hash(&mut hasher);
    subscription.exchange.as_str().hash(&mut hasher);
    subscription.pattern.hash(&mut hasher);
    subscription.tag_filter.hash(&mut hasher);
    hasher.finish()
}

impl Session {
    /// Joins a consumer group: declares (or finds) the group's queue, binds it, and consumes it.
    pub fn join_group(
        &mut self,
        subscription: &GroupSubscription,
    ) -> Result<GroupMembership, GroupError> {
        let hash = subscription_hash(subscription);
        let text = match subscription.mode {
            GroupMode::Clustering => format!("mqgate.group.{}.{hash:016x}", subscription.group),
            GroupMode::Broadcast => format!(
                "mqgate.group.{}.{hash:016x}.{}",
                subscription.group,
                self.id().0
            ),
        };
        let name = QueueName::new(text)
            .map_err(|_| GroupError::NameTooLong(subscription.group.clone()))?;
        let broadcast = subscription.mode == GroupMode::Broadcast;
        self.declare_queue(QueueDeclaration {
            name: Some(name.clone()),
            durable: subscription.durable && !broadcast,
            exclusive: broadcast,
            auto_delete: true,
            passive: false,
            arguments: Headers::new(),
        })?;
        let mut arguments = Headers::new();
        if let Some(filter) = &subscription.tag_filter {
            arguments.insert(TAG_FILTER_ARGUMENT, filter.as_str());
        }
        self.bind_queue(BindingDeclaration {
            source: subscription.exchange.clone(),
            destination: name.to_string(),
            routing_key: subscription.pattern.clone(),
            arguments,
        })?;
        let consumer = self.consume(ConsumeRequest {
            ack_mode: subscription.ack_mode,
            ..ConsumeRequest::manual(name.clone(), subscription.prefetch)
        })?;
        Ok(GroupMembership {
            consumer,
            queue: name,
        })
    }
}

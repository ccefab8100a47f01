//! SUBSCRIBE and UNSUBSCRIBE: one binding per filter from `amq.topic` to the session queue,
//! shared subscriptions as core clustering groups, retained messages on subscribe.
//!
//! Invariants:
//! - At most `max_subscriptions` subscriptions; a filter subscribed again replaces its
//!   subscription (same binding, new options) rather than adding one.
//! - Retained messages are sent after the SUBACK, for plain (not shared) subscriptions, per
//!   Retain Handling (0 always, 1 only for a new subscription, 2 never), with the `$` rule.

use mqgate_core::declare::BindingDeclaration;
use mqgate_core::groups::{GroupMode, GroupSubscription};
use mqgate_core::message::Headers;
use mqgate_core::names::{ConsumerTag, QueueName};
use mqgate_core::outbox::AckMode;
use mqgate_session::{Outbound, Step};
use rumqttd::protocol::{
    Filter, Packet, RetainForwardRule, SubAck, Subscribe, SubscribeProperties, UnsubAck,
    UnsubAckReason, Unsubscribe,
};

use crate::codec::ProtocolVersion;
use crate::errors::{self, SubscribeFailure};
use crate::registry::Subscription;
use crate::topic::{parse_filter, routing_key_to_topic, topic_matches};

use super::deliver::publish_qos;
use super::{min_qos, MqttSession};

/// Subscriptions of one session and the core handles behind them.
#[derive(Debug)]
pub(crate) struct SubscriptionState {
    /// Every subscription, plain and shared; changed only through the methods below, which
    /// bump `version`.
    list: Vec<Subscription>,
    /// Bumped on every change of `list` (the delivery topic cache's key).
    version: u64,
    /// The session queue.
    pub(crate) queue: QueueName,
    /// Whether the queue outlives the connection.
    pub(crate) durable: bool,
    /// The consumer of the session queue, once subscribed.
    pub(crate) consumer: Option<ConsumerTag>,
    /// Consumers of shared subscriptions: (group, filter) by consumer tag.
    shared: Vec<(ConsumerTag, String, String)>,
}

impl SubscriptionState {
    pub(crate) fn new(queue: QueueName, durable: bool) -> Self {
        Self {
            list: Vec::new(),
            version: 0,
            queue,
            durable,
            consumer: None,
            shared: Vec::new(),
        }
    }

    /// Every subscription, plain and shared.
    pub(crate) fn list(&self) -> &[Subscription] {
        &self.list
    }

    /// Changes whenever the list does.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    fn push(&mut self, subscription: Subscription) {
        self.version += 1;
        self.list.push(subscription);
    }

    fn replace(&mut self, index: usize, subscription: Subscription) {
        self.version += 1;
        if let Some(slot) = self.list.get_mut(index) {
            *slot = subscription;
        }
    }

    fn remove(&mut self, index: usize) -> Subscription {
        self.version += 1;
        self.list.remove(index)
    }

    /// The shared subscription a consumer reads for.
    pub(crate) fn shared_subscription(&self, tag: &ConsumerTag) -> Option<&Subscription> {
        let (_, group, filter) = self.shared.iter().find(|(t, _, _)| t == tag)?;
        self.list
            .iter()
            .find(|s| s.group.as_ref() == Some(group) && &s.filter == filter)
    }

    pub(crate) fn forget_shared(&mut self, tag: &ConsumerTag) {
        self.shared.retain(|(t, _, _)| t != tag);
    }

    fn shared_tag(&self, group: &str, filter: &str) -> Option<ConsumerTag> {
        self.shared
            .iter()
            .find(|(_, g, f)| g == group && f == filter)
            .map(|(tag, _, _)| tag.clone())
    }
}

impl MqttSession {
    pub(super) fn on_subscribe(
        &mut self,
        subscribe: Subscribe,
        properties: Option<SubscribeProperties>,
        out: &mut Outbound<Packet>,
    ) -> Step {
        let identifier = properties.and_then(|p| p.id);
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut retained = Vec::new();
        for filter in subscribe.filters {
            match self.subscribe_one(&filter, identifier) {
                Ok((code, send_retained)) => {
                    codes.push(code);
                    if let Some(sub) = send_retained {
                        retained.push(sub);
                    }
                }
                Err(failure) => {
                    tracing::info!(client_id = %self.client_id, filter = %filter.path, ?failure, "subscription refused");
                    codes.push(errors::subscribe_failure(self.version, failure));
                }
            }
        }
        out.push(Packet::SubAck(
            SubAck {
                pkid: subscribe.pkid,
                return_codes: codes,
            },
            None,
        ));
        for sub in retained {
            self.send_retained_for(&sub, out);
        }
        Step::Continue
    }

    /// Subscribes one filter; returns the SUBACK code and the subscription if retained
    /// messages are due.
    fn subscribe_one(
        &mut self,
        filter: &Filter,
        identifier: Option<usize>,
    ) -> Result<(rumqttd::protocol::SubscribeReasonCode, Option<Subscription>), SubscribeFailure>
    {
        let parsed = parse_filter(&filter.path).map_err(|_| SubscribeFailure::InvalidFilter)?;
        if parsed.group.is_some() && filter.nolocal {
            return Err(SubscribeFailure::InvalidFilter);
        }
        let existing = self
            .subs
            .list()
            .iter()
            .position(|s| s.filter == parsed.filter && s.group == parsed.group);
        if existing.is_none() && self.subs.list().len() >= self.settings.max_subscriptions {
            return Err(SubscribeFailure::Quota);
        }
        let v5 = self.version == ProtocolVersion::V5;
        let subscription = Subscription {
            pattern: parsed.binding_pattern().into_owned(),
            filter: parsed.filter.clone(),
            qos: filter.qos,
            group: parsed.group.clone(),
            no_local: v5 && filter.nolocal,
            retain_as_published: v5 && filter.preserve_retain,
            identifier,
        };
        match &subscription.group {
            None => {
                self.ensure_consumer().map_err(|error| {
                    tracing::warn!(client_id = %self.client_id, %error, "session queue unavailable");
                    SubscribeFailure::Engine
                })?;
                if existing.is_none() {
                    self.core
                        .bind_queue(self.binding(&subscription.pattern))
                        .map_err(|error| {
                            tracing::warn!(client_id = %self.client_id, %error, "bind failed");
                            SubscribeFailure::Engine
                        })?;
                }
            }
            Some(group) => {
                if self.subs.shared_tag(group, &subscription.filter).is_none() {
                    let membership = self
                        .core
                        .join_group(&GroupSubscription {
                            group: group.clone(),
                            mode: GroupMode::Clustering,
                            exchange: self.exchange.clone(),
                            pattern: subscription.pattern.clone(),
                            tag_filter: None,
                            durable: self.subs.durable,
                            ack_mode: AckMode::Manual,
                            prefetch: u32::from(self.deliver.window),
                        })
                        .map_err(|error| {
                            tracing::warn!(client_id = %self.client_id, %error, "join group failed");
                            SubscribeFailure::Engine
                        })?;
                    self.subs.shared.push((
                        membership.consumer,
                        group.clone(),
                        subscription.filter.clone(),
                    ));
                }
            }
        }
        let send_retained = subscription.group.is_none()
            && match filter.retain_forward_rule {
                RetainForwardRule::OnEverySubscribe => true,
                RetainForwardRule::OnNewSubscribe => existing.is_none(),
                RetainForwardRule::Never => false,
            };
        match existing {
            Some(index) => self.subs.replace(index, subscription.clone()),
            None => self.subs.push(subscription.clone()),
        }
        Ok((
            errors::subscribe_granted(filter.qos),
            send_retained.then_some(subscription),
        ))
    }

    fn binding(&self, pattern: &str) -> BindingDeclaration {
        BindingDeclaration {
            source: self.exchange.clone(),
            destination: self.subs.queue.to_string(),
            routing_key: pattern.to_owned(),
            arguments: Headers::new(),
        }
    }

    fn send_retained_for(&mut self, sub: &Subscription, out: &mut Outbound<Packet>) {
        let messages = self
            .core
            .vhost()
            .retained()
            .matching(&self.exchange, &sub.pattern);
        let mut sent = 0;
        for message in messages {
            if sent >= self.settings.max_retained_per_subscribe {
                tracing::info!(client_id = %self.client_id, filter = %sub.filter, "retained messages over the per-subscribe limit not sent");
                break;
            }
            let topic = routing_key_to_topic(&message.routing_key).into_owned();
            if !topic_matches(&sub.filter, &topic) {
                continue;
            }
            let qos = min_qos(sub.qos, publish_qos(&message));
            self.send_retained(message, qos, sub.identifier, out);
            sent += 1;
        }
    }

    /// Re-creates the core side of restored subscriptions (a resumed persistent session).
    pub(super) fn restore(&mut self, subscriptions: Vec<Subscription>) -> Result<(), String> {
        for sub in subscriptions {
            match &sub.group {
                None => {
                    self.ensure_consumer()?;
                    self.core
                        .bind_queue(self.binding(&sub.pattern))
                        .map_err(|e| e.to_string())?;
                }
                Some(group) => {
                    let membership = self
                        .core
                        .join_group(&GroupSubscription {
                            group: group.clone(),
                            mode: GroupMode::Clustering,
                            exchange: self.exchange.clone(),
                            pattern: sub.pattern.clone(),
                            tag_filter: None,
                            durable: self.subs.durable,
                            ack_mode: AckMode::Manual,
                            prefetch: u32::from(self.deliver.window),
                        })
                        .map_err(|e| e.to_string())?;
                    self.subs
                        .shared
                        .push((membership.consumer, group.clone(), sub.filter.clone()));
                }
            }
            self.subs.push(sub);
        }
        Ok(())
    }

    pub(super) fn on_unsubscribe(
        &mut self,
        unsubscribe: Unsubscribe,
        out: &mut Outbound<Packet>,
    ) -> Step {
        let mut reasons = Vec::with_capacity(unsubscribe.filters.len());
        for path in &unsubscribe.filters {
            reasons.push(self.unsubscribe_one(path));
        }
        if self.version != ProtocolVersion::V5 {
            reasons.clear();
        }
        out.push(Packet::UnsubAck(
            UnsubAck {
                pkid: unsubscribe.pkid,
                reasons,
            },
            None,
        ));
        Step::Continue
    }

    fn unsubscribe_one(&mut self, path: &str) -> UnsubAckReason {
        let Ok(parsed) = parse_filter(path) else {
            return UnsubAckReason::TopicFilterInvalid;
        };
        let Some(index) = self
            .subs
            .list()
            .iter()
            .position(|s| s.filter == parsed.filter && s.group == parsed.group)
        else {
            return UnsubAckReason::NoSubscriptionExisted;
        };
        let sub = self.subs.remove(index);
        match &sub.group {
            None => {
                if let Err(error) = self.core.unbind_queue(self.binding(&sub.pattern)) {
                    tracing::warn!(client_id = %self.client_id, %error, "unbind failed");
                }
            }
            Some(group) => {
                if let Some(tag) = self.subs.shared_tag(group, &sub.filter) {
                    self.core.cancel(&tag);
                    self.subs.forget_shared(&tag);
                }
            }
        }
        UnsubAckReason::Success
    }
}

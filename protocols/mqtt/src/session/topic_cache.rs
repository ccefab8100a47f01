//! The last routing key's MQTT topic and the subscriptions it matches, per session.
//!
//! Every delivery needs its routing key as an MQTT topic (a converted copy), that topic checked,
//! and the session's plain subscriptions matched against it for the granted QoS. A subscriber
//! mostly sees the same few topics over and over (one in fan-in and fan-out), so the last answer
//! is kept and reused when the next delivery has the same routing key.
//!
//! Invariant: an entry is valid only for the subscription list it was computed from, and for
//! whether the message was the session's own (No Local); [`SubscriptionState`] bumps its
//! `version` on every change of the list and the entry records it.
//!
//! [`SubscriptionState`]: super::subscribe::SubscriptionState

use bytes::Bytes;
use mqgate_core::names::RoutingKeyText;
use rumqttd::protocol::QoS;

use crate::topic::{routing_key_to_topic, topic_matches, validate_topic_name};

use super::max_qos;
use crate::registry::Subscription;

/// What the plain (not shared) subscriptions grant a topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Matched {
    /// The best QoS of the matching subscriptions; `None` when none matches.
    pub(crate) granted: Option<QoS>,
    /// Some matching subscription has Retain As Published.
    pub(crate) retain_as_published: bool,
    /// The matching subscriptions' identifiers (v5).
    pub(crate) identifiers: Vec<usize>,
}

#[derive(Debug)]
struct Entry {
    key: RoutingKeyText,
    own: bool,
    version: u64,
    /// `None` when the routing key names no MQTT topic.
    topic: Option<Bytes>,
    matched: Matched,
}

/// One remembered routing key (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct TopicCache {
    last: Option<Entry>,
}

impl TopicCache {
    /// The MQTT topic of `key` (`None` if it names none) and what `subscriptions` (version
    /// `version`) grant it, for a message that is (`own`) or is not the session's own.
    pub(crate) fn lookup(
        &mut self,
        key: &RoutingKeyText,
        own: bool,
        version: u64,
        subscriptions: &[Subscription],
    ) -> (Option<Bytes>, &Matched) {
        let fresh = self.last.as_ref().is_some_and(|entry| {
            entry.version == version
                && entry.own == own
                && (std::sync::Arc::ptr_eq(&entry.key, key) || entry.key == *key)
        });
        if !fresh {
            self.last = None;
        }
        let entry = self
            .last
            .get_or_insert_with(|| compute(key, own, version, subscriptions));
        (entry.topic.clone(), &entry.matched)
    }
}

fn compute(key: &RoutingKeyText, own: bool, version: u64, subscriptions: &[Subscription]) -> Entry {
    let topic = routing_key_to_topic(key);
    let nameable = validate_topic_name(&topic).is_ok();
    let mut matched = Matched::default();
    if nameable {
        for sub in subscriptions.iter().filter(|s| s.group.is_none()) {
            if (sub.no_local && own) || !topic_matches(&sub.filter, &topic) {
                continue;
            }
            matched.granted = Some(matched.granted.map_or(sub.qos, |g| max_qos(g, sub.qos)));
            matched.retain_as_published |= sub.retain_as_published;
            matched.identifiers.extend(sub.identifier);
        }
    }
    Entry {
        key: RoutingKeyText::clone(key),
        own,
        version,
        topic: nameable.then(|| Bytes::copy_from_slice(topic.as_bytes())),
        matched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(filter: &str, qos: QoS, no_local: bool) -> Subscription {
        Subscription {
            filter: filter.to_owned(),
            pattern: String::new(),
            qos,
            group: None,
            no_local,
            retain_as_published: false,
            identifier: None,
        }
    }

    #[test]
    fn answers_follow_the_subscription_version_and_no_local() {
        let mut cache = TopicCache::default();
        let key = RoutingKeyText::from("a.b");
        let mut subs = vec![sub("a/#", QoS::AtMostOnce, true)];
        let (topic, matched) = cache.lookup(&key, false, 1, &subs);
        assert_eq!(topic.as_deref(), Some(&b"a/b"[..]));
        assert_eq!(matched.granted, Some(QoS::AtMostOnce));
        // Own message under No Local: nothing matches.
        assert_eq!(cache.lookup(&key, true, 1, &subs).1.granted, None);
        // A new subscription (new version) is seen at once; the stale answer is not reused.
        subs.push(sub("a/b", QoS::AtLeastOnce, false));
        assert_eq!(
            cache.lookup(&key, false, 2, &subs).1.granted,
            Some(QoS::AtLeastOnce)
        );
        // An equal key in another allocation hits the same entry.
        let again = RoutingKeyText::from("a.b");
        assert_eq!(
            cache.lookup(&again, false, 2, &subs).1.granted,
            Some(QoS::AtLeastOnce)
        );
    }

    #[test]
    fn a_key_that_names_no_topic_has_none() {
        let mut cache = TopicCache::default();
        let subs = vec![sub("#", QoS::AtLeastOnce, false)];
        let (topic, matched) = cache.lookup(&RoutingKeyText::from("a+b"), false, 0, &subs);
        assert_eq!(topic, None);
        assert_eq!(matched.granted, None);
    }
}

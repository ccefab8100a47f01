//! Dead-lettering: the `x-death` history RabbitMQ writes, and cycle detection.
//!
//! A dead-lettered message is a new [`Message`] sharing the original body, republished to the
//! queue's dead-letter exchange with `x-dead-letter-routing-key` (or its original key). Its headers
//! gain or update an `x-death` entry per (queue, reason) — count incremented and moved to the front,
//! as RabbitMQ does — plus `x-first-death-*` (set once) and `x-last-death-*`. A per-message
//! `expiration` moves into the entry as `original-expiration`, so the copy does not expire again.
//!
//! Cycle rule (RabbitMQ's): a dead letter is not delivered back to a queue already in its
//! `x-death` history unless some death in that history was a client rejection; such a copy is
//! dropped and counted, because otherwise expiry or overflow would loop it forever.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::message::{FieldValue, Headers, Message};
use crate::names::{ExchangeName, QueueName};
use crate::queue::DeathReason;

/// The header holding the dead-letter history.
pub const X_DEATH: &str = "x-death";

/// Builds the copy of `original` to republish after it died in `queue` for `reason`.
pub fn dead_letter_copy(
    original: &Message,
    queue: &QueueName,
    reason: DeathReason,
    dead_letter_exchange: &ExchangeName,
    dead_letter_routing_key: Option<&str>,
) -> Message {
    let mut copy = original.clone();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let original_expiration = copy.properties.expiration_ms.take();

    let mut deaths = match copy.headers.remove(X_DEATH) {
        Some(FieldValue::Array(items)) => items,
        _ => Vec::new(),
    };
    let existing = deaths.iter().position(|entry| match entry {
        FieldValue::Table(table) => {
            table.get("queue").and_then(FieldValue::as_str) == Some(queue.as_str())
                && table.get("reason").and_then(FieldValue::as_str) == Some(reason.as_str())
        }
        _ => false,
    });
    let entry = match existing.map(|index| deaths.remove(index)) {
        Some(FieldValue::Table(mut table)) => {
            let count = table.get("count").and_then(FieldValue::as_i64).unwrap_or(0);
            table.insert("count", FieldValue::I64(count + 1));
            table.insert("time", FieldValue::Timestamp(now));
            table
        }
        _ => {
            let mut table = Headers::new();
            table.insert("count", FieldValue::I64(1));
            table.insert("reason", reason.as_str());
            table.insert("queue", queue.as_str());
            table.insert("time", FieldValue::Timestamp(now));
            table.insert("exchange", original.exchange.as_str());
            table.insert(
                "routing-keys",
                FieldValue::Array(vec![FieldValue::Str(original.routing_key.to_string())]),
            );
            if let Some(ms) = original_expiration {
                table.insert("original-expiration", ms.to_string());
            }
            table
        }
    };
    deaths.insert(0, FieldValue::Table(entry));
    copy.headers.insert(X_DEATH, FieldValue::Array(deaths));
    copy.headers
        .push_if_absent("x-first-death-reason", reason.as_str());
    copy.headers
        .push_if_absent("x-first-death-queue", queue.as_str());
    copy.headers
        .push_if_absent("x-first-death-exchange", original.exchange.as_str());
    copy.headers.insert("x-last-death-reason", reason.as_str());
    copy.headers.insert("x-last-death-queue", queue.as_str());
    copy.headers
        .insert("x-last-death-exchange", original.exchange.as_str());

    copy.exchange = dead_letter_exchange.clone();
    if let Some(key) = dead_letter_routing_key {
        copy.routing_key = key.into();
    }
    copy
}

/// True if delivering this dead letter to `target` would close an automatic cycle.
pub fn is_cycle(message: &Message, target: &QueueName) -> bool {
    let Some(FieldValue::Array(deaths)) = message.headers.get(X_DEATH) else {
        return false;
    };
    let mut seen_target = false;
    for entry in deaths {
        if let FieldValue::Table(table) = entry {
            if table.get("reason").and_then(FieldValue::as_str)
                == Some(DeathReason::Rejected.as_str())
            {
                return false;
            }
            if table.get("queue").and_then(FieldValue::as_str) == Some(target.as_str()) {
                seen_target = true;
            }
        }
    }
    seen_target
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> (QueueName, ExchangeName) {
        (
            QueueName::new("work").unwrap(),
            ExchangeName::new("dlx").unwrap(),
        )
    }

    fn death(message: &Message, index: usize) -> Headers {
        match message.headers.get(X_DEATH) {
            Some(FieldValue::Array(items)) => match &items[index] {
                FieldValue::Table(t) => t.clone(),
                other => panic!("not a table: {other:?}"),
            },
            other => panic!("no x-death: {other:?}"),
        }
    }

    #[test]
    fn first_death_writes_rabbitmq_fields() {
        let (queue, dlx) = names();
        let mut original = Message::new(ExchangeName::new("orders").unwrap(), "new", "b");
        original.properties.expiration_ms = Some(500);
        let copy = dead_letter_copy(&original, &queue, DeathReason::Expired, &dlx, Some("dead"));
        let entry = death(&copy, 0);
        assert_eq!(entry.get("count"), Some(&FieldValue::I64(1)));
        assert_eq!(
            entry.get("reason").and_then(FieldValue::as_str),
            Some("expired")
        );
        assert_eq!(
            entry.get("queue").and_then(FieldValue::as_str),
            Some("work")
        );
        assert_eq!(
            entry.get("exchange").and_then(FieldValue::as_str),
            Some("orders")
        );
        assert_eq!(
            entry.get("routing-keys"),
            Some(&FieldValue::Array(vec![FieldValue::Str("new".into())]))
        );
        assert_eq!(
            entry
                .get("original-expiration")
                .and_then(FieldValue::as_str),
            Some("500")
        );
        assert_eq!(copy.properties.expiration_ms, None);
        assert_eq!(&*copy.routing_key, "dead");
        assert_eq!(copy.exchange, dlx);
        assert_eq!(copy.body, original.body, "body shared, not changed");
        assert_eq!(
            copy.headers
                .get("x-first-death-reason")
                .and_then(FieldValue::as_str),
            Some("expired")
        );
    }

    #[test]
    fn repeated_death_increments_and_moves_to_front() {
        let (queue, dlx) = names();
        let other = QueueName::new("other").unwrap();
        let original = Message::new(ExchangeName::new("orders").unwrap(), "k", "b");
        let once = dead_letter_copy(&original, &queue, DeathReason::Rejected, &dlx, None);
        let twice = dead_letter_copy(&once, &other, DeathReason::Expired, &dlx, None);
        let thrice = dead_letter_copy(&twice, &queue, DeathReason::Rejected, &dlx, None);
        assert_eq!(
            death(&thrice, 0).get("queue").and_then(FieldValue::as_str),
            Some("work")
        );
        assert_eq!(death(&thrice, 0).get("count"), Some(&FieldValue::I64(2)));
        assert_eq!(
            death(&thrice, 1).get("queue").and_then(FieldValue::as_str),
            Some("other")
        );
        assert_eq!(
            thrice
                .headers
                .get("x-first-death-queue")
                .and_then(FieldValue::as_str),
            Some("work")
        );
        assert_eq!(
            thrice
                .headers
                .get("x-last-death-reason")
                .and_then(FieldValue::as_str),
            Some("rejected")
        );
    }

    #[test]
    fn automatic_cycles_are_detected_but_rejections_break_them() {
        let (queue, dlx) = names();
        let original = Message::new(ExchangeName::new("x").unwrap(), "k", "b");
        let expired = dead_letter_copy(&original, &queue, DeathReason::Expired, &dlx, None);
        assert!(is_cycle(&expired, &queue));
        assert!(!is_cycle(&expired, &QueueName::new("elsewhere").unwrap()));
        let rejected = dead_letter_copy(&original, &queue, DeathReason::Rejected, &dlx, None);
        assert!(!is_cycle(&rejected, &queue));
        assert!(!is_cycle(&original, &queue));
    }
}

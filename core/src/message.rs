//! Messages: a routing key, a body shared by every copy, typed headers and the standard properties.
//!
//! Invariants:
//! - A [`Message`] is immutable once published and travels as `Arc<Message>`: fanning it out to N
//!   queues clones N pointers, never the body. Dead-lettering, which must add `x-death`, builds a new
//!   `Message` that still shares the original body [`Bytes`].
//! - Header values are typed ([`FieldValue`], AMQP's field-table types); adapters that carry text only
//!   stringify them with [`FieldValue::to_text`] rather than drop them.
//! - [`Message::origin`] is gateway bookkeeping, never rendered by any adapter: no header,
//!   property or frame field carries it to a client. An adapter sets it on publish to recognise
//!   its own clients' messages at delivery (MQTT No Local); copies (fan-out, dead letters,
//!   retained messages) keep it because they are clones.

use bytes::Bytes;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::names::{ExchangeName, RoutingKeyText};

/// The header that carries a message's tags (RocketMQ style), e.g. `TagA`.
pub const TAGS_HEADER: &str = "x-tags";

/// A typed header value: the AMQP 0-9-1 field-table types (RabbitMQ's dialect).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FieldValue {
    /// `t`
    Bool(bool),
    /// `b`
    I8(i8),
    /// `B`
    U8(u8),
    /// `s`
    I16(i16),
    /// `u`
    U16(u16),
    /// `I`
    I32(i32),
    /// `i`
    U32(u32),
    /// `l`
    I64(i64),
    /// `f`
    F32(f32),
    /// `d`
    F64(f64),
    /// `D`: a value scaled by 10^-scale.
    Decimal {
        /// Number of decimal digits.
        scale: u8,
        /// Unscaled value.
        value: u32,
    },
    /// `S`: text.
    Str(String),
    /// `x`: opaque bytes.
    Bytes(Bytes),
    /// `S` whose bytes are not UTF-8: AMQP allows it, so it is kept apart from [`Str`]
    /// (and from `x`) to go back out with its own type. Text protocols see it lossily decoded.
    ///
    /// [`Str`]: FieldValue::Str
    BinaryStr(Bytes),
    /// `T`: seconds since the Unix epoch.
    Timestamp(u64),
    /// `F`: a nested table.
    Table(Headers),
    /// `A`: an array.
    Array(Vec<FieldValue>),
    /// `V`: no value.
    Void,
}

impl FieldValue {
    /// The value as text, for protocols whose headers are text (STOMP, MQTT user properties).
    /// Numbers print as decimals, bytes as lossy UTF-8, tables and arrays in a JSON-like form.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) {
        // Writing to a String cannot fail, so the fmt::Results below are ignored.
        let _ = match self {
            FieldValue::Bool(v) => write!(out, "{v}"),
            FieldValue::I8(v) => write!(out, "{v}"),
            FieldValue::U8(v) => write!(out, "{v}"),
            FieldValue::I16(v) => write!(out, "{v}"),
            FieldValue::U16(v) => write!(out, "{v}"),
            FieldValue::I32(v) => write!(out, "{v}"),
            FieldValue::U32(v) => write!(out, "{v}"),
            FieldValue::I64(v) => write!(out, "{v}"),
            FieldValue::F32(v) => write!(out, "{v}"),
            FieldValue::F64(v) => write!(out, "{v}"),
            FieldValue::Decimal { scale, value } => write_decimal(out, *scale, *value),
            FieldValue::Str(v) => write!(out, "{v}"),
            FieldValue::Bytes(v) | FieldValue::BinaryStr(v) => {
                write!(out, "{}", String::from_utf8_lossy(v))
            }
            FieldValue::Timestamp(v) => write!(out, "{v}"),
            FieldValue::Void => Ok(()),
            FieldValue::Table(table) => {
                out.push('{');
                for (i, (key, value)) in table.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{key:?}:");
                    value.write_quoted(out);
                }
                out.push('}');
                Ok(())
            }
            FieldValue::Array(items) => {
                out.push('[');
                for (i, value) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    value.write_quoted(out);
                }
                out.push(']');
                Ok(())
            }
        };
    }

    fn write_quoted(&self, out: &mut String) {
        match self {
            FieldValue::Str(_) | FieldValue::Bytes(_) | FieldValue::BinaryStr(_) => {
                let _ = write!(out, "{:?}", self.to_text());
            }
            other => other.write_text(out),
        }
    }

    /// The value as text if it is a string (or UTF-8 bytes).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::Str(s) => Some(s),
            FieldValue::Bytes(b) | FieldValue::BinaryStr(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The value if it is an integer of any width (not a timestamp).
    pub fn as_integer(&self) -> Option<i64> {
        match *self {
            FieldValue::I8(v) => Some(v.into()),
            FieldValue::U8(v) => Some(v.into()),
            FieldValue::I16(v) => Some(v.into()),
            FieldValue::U16(v) => Some(v.into()),
            FieldValue::I32(v) => Some(v.into()),
            FieldValue::U32(v) => Some(v.into()),
            FieldValue::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a signed integer if it is an integer of any width or a timestamp.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            FieldValue::Timestamp(v) => i64::try_from(v).ok(),
            _ => self.as_integer(),
        }
    }
}

fn write_decimal(out: &mut String, scale: u8, value: u32) -> std::fmt::Result {
    if scale == 0 {
        return write!(out, "{value}");
    }
    let digits = format!("{value:0>width$}", width = usize::from(scale) + 1);
    let split = digits.len() - usize::from(scale);
    write!(out, "{}.{}", &digits[..split], &digits[split..])
}

impl From<&str> for FieldValue {
    fn from(value: &str) -> Self {
        FieldValue::Str(value.to_owned())
    }
}

impl From<String> for FieldValue {
    fn from(value: String) -> Self {
        FieldValue::Str(value)
    }
}

impl From<i64> for FieldValue {
    fn from(value: i64) -> Self {
        FieldValue::I64(value)
    }
}

impl From<bool> for FieldValue {
    fn from(value: bool) -> Self {
        FieldValue::Bool(value)
    }
}

/// An ordered table of named, typed values: message headers and declaration arguments.
///
/// Order is kept as the publisher wrote it. Keys are unique: [`Headers::insert`] replaces, and
/// [`Headers::push_if_absent`] keeps the first value, which is STOMP's rule for repeated headers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Headers(Vec<(String, FieldValue)>);

impl Headers {
    /// An empty table.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key`, replacing an existing value in place.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<FieldValue>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Adds `key` only if it is not present yet; returns whether it was added.
    pub fn push_if_absent(&mut self, key: impl Into<String>, value: impl Into<FieldValue>) -> bool {
        let key = key.into();
        if self.get(&key).is_some() {
            return false;
        }
        self.0.push((key, value.into()));
        true
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<FieldValue> {
        let index = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(index).1)
    }

    /// Entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FieldValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// An estimate of the memory the table holds, for memory accounting.
    pub fn weight(&self) -> usize {
        self.0
            .iter()
            .map(|(k, v)| k.len() + value_weight(v) + 16)
            .sum()
    }
}

fn value_weight(value: &FieldValue) -> usize {
    match value {
        FieldValue::Str(s) => s.len() + 8,
        FieldValue::Bytes(b) | FieldValue::BinaryStr(b) => b.len() + 8,
        FieldValue::Table(t) => t.weight() + 8,
        FieldValue::Array(items) => items.iter().map(value_weight).sum::<usize>() + 8,
        _ => 8,
    }
}

impl FromIterator<(String, FieldValue)> for Headers {
    fn from_iter<I: IntoIterator<Item = (String, FieldValue)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (k, v) in iter {
            headers.push_if_absent(k, v);
        }
        headers
    }
}

/// The standard message properties (AMQP's basic properties less `headers`, which is [`Headers`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Properties {
    /// MIME type of the body.
    pub content_type: Option<String>,
    /// Encoding of the body, e.g. `gzip`.
    pub content_encoding: Option<String>,
    /// Correlates a reply with its request.
    pub correlation_id: Option<String>,
    /// Where replies go (a queue name or a destination).
    pub reply_to: Option<String>,
    /// The publisher's message id.
    pub message_id: Option<String>,
    /// Seconds since the Unix epoch.
    pub timestamp: Option<u64>,
    /// Per-message TTL in milliseconds.
    pub expiration_ms: Option<u64>,
    /// Priority 0-255 (used up to the queue's `x-max-priority`).
    pub priority: Option<u8>,
    /// Delivery mode 2: keep on durable queues across restarts.
    pub persistent: bool,
    /// The publishing user, validated against the authenticated one by adapters.
    pub user_id: Option<String>,
    /// The publishing application.
    pub app_id: Option<String>,
    /// Application message type (`type`).
    pub message_type: Option<String>,
}

impl Properties {
    fn weight(&self) -> usize {
        [
            &self.content_type,
            &self.content_encoding,
            &self.correlation_id,
            &self.reply_to,
            &self.message_id,
            &self.user_id,
            &self.app_id,
            &self.message_type,
        ]
        .iter()
        .map(|field| field.as_ref().map_or(0, String::len))
        .sum()
    }
}

/// An opaque identity of whoever published a message, protocol-neutral: the adapter that sets it
/// chooses the text (MQTT: a key per vhost and client id, so it survives reconnects of the same
/// client id) and is the only one that compares it. Never rendered by any adapter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin(Arc<str>);

impl Origin {
    /// An origin from the adapter's key.
    pub fn new(key: impl Into<Arc<str>>) -> Self {
        Self(key.into())
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A published message. Build it, wrap it in an `Arc`, publish it; it never changes afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The exchange it was published to.
    pub exchange: ExchangeName,
    /// The routing key it was published with.
    pub routing_key: RoutingKeyText,
    /// Standard properties.
    pub properties: Properties,
    /// Application headers.
    pub headers: Headers,
    /// The payload, shared by every copy.
    pub body: Bytes,
    /// Who published it, for adapters that must recognise their own clients' messages (MQTT No
    /// Local). Never rendered by any adapter; `None` unless an adapter set it.
    pub origin: Option<Origin>,
}

/// Fixed overhead charged per message on top of its variable parts.
const MESSAGE_OVERHEAD: usize = 128;

impl Message {
    /// A message with no properties or headers.
    pub fn new(exchange: ExchangeName, routing_key: &str, body: impl Into<Bytes>) -> Self {
        Self {
            exchange,
            routing_key: RoutingKeyText::from(routing_key),
            properties: Properties::default(),
            headers: Headers::new(),
            body: body.into(),
            origin: None,
        }
    }

    /// Bytes charged against queue and memory limits: the body (what `x-max-length-bytes`
    /// counts, as in RabbitMQ) plus headers, properties and a fixed overhead.
    pub fn weight(&self) -> usize {
        self.body.len()
            + self.headers.weight()
            + self.properties.weight()
            + self.routing_key.len()
            + self
                .origin
                .as_ref()
                .map_or(0, |origin| origin.as_str().len())
            + MESSAGE_OVERHEAD
    }

    /// The message's tags from the `x-tags` header, split on `||` or `,` and trimmed.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.headers
            .get(TAGS_HEADER)
            .and_then(FieldValue::as_str)
            .into_iter()
            .flat_map(|text| text.split(['|', ',']))
            .map(str::trim)
            .filter(|tag| !tag.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_stringify() {
        assert_eq!(FieldValue::I32(-5).to_text(), "-5");
        assert_eq!(FieldValue::Decimal { scale: 2, value: 5 }.to_text(), "0.05");
        let mut table = Headers::new();
        table.insert("a", 1i64);
        table.insert("b", "x");
        assert_eq!(
            FieldValue::Array(vec![FieldValue::Table(table), FieldValue::Bool(true)]).to_text(),
            r#"[{"a":1,"b":"x"},true]"#
        );
    }

    #[test]
    fn first_header_wins_with_push_if_absent() {
        let mut headers = Headers::new();
        assert!(headers.push_if_absent("k", "first"));
        assert!(!headers.push_if_absent("k", "second"));
        assert_eq!(headers.get("k").and_then(FieldValue::as_str), Some("first"));
        headers.insert("k", "third");
        assert_eq!(headers.len(), 1);
        assert_eq!(headers.get("k").and_then(FieldValue::as_str), Some("third"));
    }

    #[test]
    fn origin_is_not_a_header_and_survives_clones() {
        let mut message = Message::new(ExchangeName::default_exchange(), "k", "body");
        let plain = message.weight();
        message.origin = Some(Origin::new("mqtt:/:client"));
        assert!(message.headers.is_empty());
        assert_eq!(message.weight(), plain + "mqtt:/:client".len());
        let copy = message.clone();
        assert_eq!(
            copy.origin.as_ref().map(Origin::as_str),
            Some("mqtt:/:client")
        );
    }

    #[test]
    fn tags_are_read_from_x_tags() {
        let mut message = Message::new(ExchangeName::default_exchange(), "k", "body");
        message.headers.insert(TAGS_HEADER, "TagA || TagB");
        assert_eq!(message.tags().collect::<Vec<_>>(), vec!["TagA", "TagB"]);
    }
}

//! Field values and field tables <-> core [`FieldValue`]s and [`Headers`].

use amq_protocol::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};
use bytes::Bytes;
use mqgate_core::message::{FieldValue, Headers};

/// A field value as a core value, recursively for tables and arrays (see the module table).
///
/// A LongString that is valid UTF-8 becomes `Str`; one that is not becomes `BinaryStr`, and
/// both go back out as LongStrings. The internal ShortString becomes `Str` (the only value whose
/// type changes across a round trip).
pub fn value_from_amqp(value: &AMQPValue) -> FieldValue {
    match value {
        AMQPValue::Boolean(v) => FieldValue::Bool(*v),
        AMQPValue::ShortShortInt(v) => FieldValue::I8(*v),
        AMQPValue::ShortShortUInt(v) => FieldValue::U8(*v),
        AMQPValue::ShortInt(v) => FieldValue::I16(*v),
        AMQPValue::ShortUInt(v) => FieldValue::U16(*v),
        AMQPValue::LongInt(v) => FieldValue::I32(*v),
        AMQPValue::LongUInt(v) => FieldValue::U32(*v),
        AMQPValue::LongLongInt(v) => FieldValue::I64(*v),
        AMQPValue::Float(v) => FieldValue::F32(*v),
        AMQPValue::Double(v) => FieldValue::F64(*v),
        AMQPValue::DecimalValue(DecimalValue { scale, value }) => FieldValue::Decimal {
            scale: *scale,
            value: *value,
        },
        AMQPValue::ShortString(text) => FieldValue::Str(text.as_str().to_owned()),
        AMQPValue::LongString(text) => match std::str::from_utf8(text.as_bytes()) {
            Ok(text) => FieldValue::Str(text.to_owned()),
            Err(_) => FieldValue::BinaryStr(Bytes::copy_from_slice(text.as_bytes())),
        },
        AMQPValue::FieldArray(items) => {
            FieldValue::Array(items.as_slice().iter().map(value_from_amqp).collect())
        }
        AMQPValue::Timestamp(seconds) => FieldValue::Timestamp(*seconds),
        AMQPValue::FieldTable(table) => FieldValue::Table(headers_from_table(table)),
        AMQPValue::ByteArray(bytes) => FieldValue::Bytes(Bytes::copy_from_slice(bytes.as_slice())),
        AMQPValue::Void => FieldValue::Void,
    }
}

/// A core value as a field value of the same type, recursively: `Str` is a LongString `S`,
/// `Bytes` a ByteArray `x`, every other type its namesake in the module table. Entries of a
/// nested table whose key is longer than 255 bytes are left out, as in [`table_from_headers`].
pub fn value_to_amqp(value: &FieldValue) -> AMQPValue {
    match value {
        FieldValue::Bool(v) => AMQPValue::Boolean(*v),
        FieldValue::I8(v) => AMQPValue::ShortShortInt(*v),
        FieldValue::U8(v) => AMQPValue::ShortShortUInt(*v),
        FieldValue::I16(v) => AMQPValue::ShortInt(*v),
        FieldValue::U16(v) => AMQPValue::ShortUInt(*v),
        FieldValue::I32(v) => AMQPValue::LongInt(*v),
        FieldValue::U32(v) => AMQPValue::LongUInt(*v),
        FieldValue::I64(v) => AMQPValue::LongLongInt(*v),
        FieldValue::F32(v) => AMQPValue::Float(*v),
        FieldValue::F64(v) => AMQPValue::Double(*v),
        FieldValue::Decimal { scale, value } => AMQPValue::DecimalValue(DecimalValue {
            scale: *scale,
            value: *value,
        }),
        FieldValue::Str(text) => AMQPValue::LongString(LongString::from(text.as_str())),
        FieldValue::Bytes(bytes) => AMQPValue::ByteArray(ByteArray::from(bytes.as_ref())),
        FieldValue::BinaryStr(bytes) => AMQPValue::LongString(LongString::from(bytes.as_ref())),
        FieldValue::Timestamp(seconds) => AMQPValue::Timestamp(*seconds),
        FieldValue::Table(table) => AMQPValue::FieldTable(table_from_headers(table)),
        FieldValue::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(value_to_amqp).collect::<Vec<_>>(),
        )),
        FieldValue::Void => AMQPValue::Void,
        // A value type the core may add later: carried as its text rather than dropped.
        other => AMQPValue::LongString(LongString::from(other.to_text())),
    }
}

/// A field table as core headers, values converted with [`value_from_amqp`], in the table's
/// (sorted) key order.
pub fn headers_from_table(table: &FieldTable) -> Headers {
    table
        .into_iter()
        .map(|(key, value)| (key.as_str().to_owned(), value_from_amqp(value)))
        .collect()
}

/// Core headers as a field table, values converted with [`value_to_amqp`]. A key longer than
/// 255 bytes cannot be a field name and its entry is left out; the table sorts the rest by key.
pub fn table_from_headers(headers: &Headers) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in headers.iter() {
        if let Ok(key) = ShortString::try_new(key) {
            table.insert(key, value_to_amqp(value));
        }
    }
    table
}

/// The arguments of `queue.declare`, `exchange.declare`, `queue.bind` or `basic.consume` as the
/// core reads them ([`headers_from_table`]).
pub fn arguments(table: &FieldTable) -> Headers {
    headers_from_table(table)
}

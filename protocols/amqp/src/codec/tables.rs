//! The field-table walker: bounds the nesting of field tables and checks every length in them
//! before `amq-protocol` parses a method or content header.
//!
//! `amq-protocol`'s table parser recurses once per nested table or array with no limit of its
//! own, so a 128 KiB frame of nested empty arrays could take it about 26,000 levels deep and
//! overflow the stack. The walker reads the same bytes first, without building anything:
//!
//! - it skips a method's fixed fields up to its table (the layouts below, checked against
//!   `amq-protocol`'s generated parser), or a content header's fields up to `headers`;
//! - every table ('F') or array ('A') value opens a level; a method's own table is level 1,
//!   and a level past [`MAX_TABLE_DEPTH`] is refused before it is read, so the walker's own
//!   recursion (one call per level) stays within that bound too;
//! - every declared length (short string, long string, byte array, table, array) must fit in
//!   what contains it, and every fixed-size value in what is left;
//! - every value type byte must be one `amq-protocol` reads.
//!
//! Fields after the table are left to `amq-protocol`, which reads them without recursion.

use super::MAX_TABLE_DEPTH;

/// Why the walker refused a method's or content header's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TableError {
    /// A field or value of `needed` bytes with only `left` bytes left in its container.
    Truncated {
        /// What was being read.
        what: &'static str,
        /// The bytes it needs (its declared length, or its fixed size).
        needed: usize,
        /// The bytes left in its table, array or payload.
        left: usize,
    },
    /// A value type byte `amq-protocol` does not read.
    UnknownType(u8),
    /// A table or array deeper than [`MAX_TABLE_DEPTH`].
    TooDeep,
}

/// A method argument before the field table.
#[derive(Debug, Clone, Copy)]
enum Field {
    Octet,
    Short,
    ShortStr,
    Table,
}

/// The fields of method `class_id.method_id` up to and including its field table, or nothing
/// for a method without one. As `amq-protocol` 10.6's generated parser reads them.
fn layout(class_id: u16, method_id: u16) -> &'static [Field] {
    use Field::{Octet, Short, ShortStr, Table};
    match (class_id, method_id) {
        // connection.start: octet version-major, octet version-minor, server-properties. A
        // client has no business sending it, but the parser would read it: walk it too.
        (10, 10) => &[Octet, Octet, Table],
        // connection.start-ok: client-properties first (mechanism, response, locale follow).
        (10, 11) => &[Table],
        // exchange.declare: reserved short, exchange, type, bits, arguments.
        (40, 10) => &[Short, ShortStr, ShortStr, Octet, Table],
        // exchange.bind, exchange.unbind: reserved short, destination, source, routing-key,
        // bits, arguments.
        (40, 30) | (40, 40) => &[Short, ShortStr, ShortStr, ShortStr, Octet, Table],
        // queue.declare: reserved short, queue, bits, arguments.
        (50, 10) => &[Short, ShortStr, Octet, Table],
        // queue.bind: reserved short, queue, exchange, routing-key, bits, arguments.
        (50, 20) => &[Short, ShortStr, ShortStr, ShortStr, Octet, Table],
        // queue.unbind: reserved short, queue, exchange, routing-key, arguments (no bits).
        (50, 50) => &[Short, ShortStr, ShortStr, ShortStr, Table],
        // basic.consume: reserved short, queue, consumer-tag, bits, arguments.
        (60, 20) => &[Short, ShortStr, ShortStr, Octet, Table],
        _ => &[],
    }
}

/// Walks the field tables of method `class_id.method_id`, whose arguments (the payload after
/// the two ids) are `arguments`.
pub(super) fn check_method(
    class_id: u16,
    method_id: u16,
    arguments: &[u8],
) -> Result<(), TableError> {
    let mut reader = Reader::new(arguments);
    for field in layout(class_id, method_id) {
        match field {
            Field::Octet => reader.skip(1, "octet field")?,
            Field::Short => reader.skip(2, "short field")?,
            Field::ShortStr => reader.short_string("short string field")?,
            Field::Table => walk_table(reader.long_bytes("field table")?, 1)?,
        }
    }
    Ok(())
}

/// Property flag of `content-type` (a short string).
const CONTENT_TYPE: u16 = 1 << 15;
/// Property flag of `content-encoding` (a short string).
const CONTENT_ENCODING: u16 = 1 << 14;
/// Property flag of `headers` (a field table), the third property.
const HEADERS: u16 = 1 << 13;

/// Walks the `headers` table of a content header frame's payload: class id, weight, body size,
/// property flags, then the properties before and including `headers`.
pub(super) fn check_content_header(payload: &[u8]) -> Result<(), TableError> {
    let mut reader = Reader::new(payload);
    reader.skip(2, "class id")?;
    reader.skip(2, "weight")?;
    reader.skip(8, "body size")?;
    let flags = reader.u16("property flags")?;
    if flags & CONTENT_TYPE != 0 {
        reader.short_string("content-type")?;
    }
    if flags & CONTENT_ENCODING != 0 {
        reader.short_string("content-encoding")?;
    }
    if flags & HEADERS != 0 {
        walk_table(reader.long_bytes("headers table")?, 1)?;
    }
    Ok(())
}

/// The entries of a table at `depth` (1 for a method's own table): name, then value.
fn walk_table(entries: &[u8], depth: usize) -> Result<(), TableError> {
    let mut reader = Reader::new(entries);
    while !reader.is_empty() {
        reader.short_string("field name")?;
        walk_value(&mut reader, depth)?;
    }
    Ok(())
}

/// The values of an array at `depth`.
fn walk_array(values: &[u8], depth: usize) -> Result<(), TableError> {
    let mut reader = Reader::new(values);
    while !reader.is_empty() {
        walk_value(&mut reader, depth)?;
    }
    Ok(())
}

/// One value (type byte, then its bytes) inside a table or array at `depth`.
fn walk_value(reader: &mut Reader<'_>, depth: usize) -> Result<(), TableError> {
    // The type bytes `amq_protocol_types::AMQPType::from_id` accepts (RabbitMQ's dialect:
    // 's' is a short int, 'l' and 'L' are long long ints, 'U' is the spec's short int).
    match reader.u8("field value type")? {
        b'V' => Ok(()),
        b't' | b'b' | b'B' => reader.skip(1, "one-byte value"),
        b's' | b'U' | b'u' => reader.skip(2, "two-byte value"),
        b'I' | b'i' | b'f' => reader.skip(4, "four-byte value"),
        b'D' => reader.skip(5, "decimal value"),
        b'l' | b'L' | b'd' | b'T' => reader.skip(8, "eight-byte value"),
        b'S' => reader.long_bytes("long string").map(drop),
        b'x' => reader.long_bytes("byte array").map(drop),
        b'F' => {
            let entries = reader.long_bytes("field table")?;
            walk_table(entries, nested(depth)?)
        }
        b'A' => {
            let values = reader.long_bytes("field array")?;
            walk_array(values, nested(depth)?)
        }
        other => Err(TableError::UnknownType(other)),
    }
}

/// The depth of a table or array inside one at `depth`, if allowed.
fn nested(depth: usize) -> Result<usize, TableError> {
    if depth >= MAX_TABLE_DEPTH {
        Err(TableError::TooDeep)
    } else {
        Ok(depth + 1)
    }
}

/// A cursor over a table, an array or a payload; every read checks what is left.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn truncated(&self, what: &'static str, needed: usize) -> TableError {
        TableError::Truncated {
            what,
            needed,
            left: self.rest.len(),
        }
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], TableError> {
        if len > self.rest.len() {
            return Err(self.truncated(what, len));
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    fn skip(&mut self, len: usize, what: &'static str) -> Result<(), TableError> {
        self.take(len, what).map(drop)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, TableError> {
        let (&byte, rest) = self
            .rest
            .split_first()
            .ok_or_else(|| self.truncated(what, 1))?;
        self.rest = rest;
        Ok(byte)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, TableError> {
        let (bytes, rest) = self
            .rest
            .split_first_chunk::<2>()
            .ok_or_else(|| self.truncated(what, 2))?;
        self.rest = rest;
        Ok(u16::from_be_bytes(*bytes))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, TableError> {
        let (bytes, rest) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or_else(|| self.truncated(what, 4))?;
        self.rest = rest;
        Ok(u32::from_be_bytes(*bytes))
    }

    /// A short string: one length octet, then that many bytes.
    fn short_string(&mut self, what: &'static str) -> Result<(), TableError> {
        let len = self.u8(what)?;
        self.skip(usize::from(len), what)
    }

    /// A long string, byte array, table or array: a 32-bit length, then that many bytes.
    fn long_bytes(&mut self, what: &'static str) -> Result<&'a [u8], TableError> {
        let len = self.u32(what)?;
        // A length that does not even fit a usize cannot fit in the container either.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.take(len, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(entries.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(entries);
        out
    }

    /// A queue.declare's arguments (after the ids) around `table`.
    fn queue_declare(table: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, 1, b'q', 0];
        out.extend_from_slice(table);
        out
    }

    /// `levels` arrays nested inside one another, as the single value of entry "k".
    fn nested_arrays(levels: usize) -> Vec<u8> {
        // Array k (1-based from the outside) holds array k+1: type byte and length, 5 bytes.
        let mut entries = vec![1, b'k'];
        for k in 1..=levels {
            entries.push(b'A');
            let inner = 5 * (levels - k);
            entries.extend_from_slice(&u32::try_from(inner).unwrap().to_be_bytes());
        }
        table(&entries)
    }

    #[test]
    fn every_fixed_size_type_and_length() {
        let mut entries = Vec::new();
        for (kind, size) in [
            (b't', 1),
            (b'b', 1),
            (b'B', 1),
            (b's', 2),
            (b'U', 2),
            (b'u', 2),
            (b'I', 4),
            (b'i', 4),
            (b'f', 4),
            (b'D', 5),
            (b'l', 8),
            (b'L', 8),
            (b'd', 8),
            (b'T', 8),
            (b'V', 0),
        ] {
            entries.extend_from_slice(&[1, kind, kind]);
            entries.extend(std::iter::repeat_n(7, size));
        }
        for kind in [b'S', b'x'] {
            entries.extend_from_slice(&[1, kind, kind, 0, 0, 0, 2, 1, 2]);
        }
        assert_eq!(
            check_method(50, 10, &queue_declare(&table(&entries))),
            Ok(())
        );
    }

    #[test]
    fn depth_cap_counts_the_methods_own_table() {
        // The method's table is level 1: 31 nested arrays reach level 32, 32 reach 33.
        let ok = queue_declare(&nested_arrays(MAX_TABLE_DEPTH - 1));
        assert_eq!(check_method(50, 10, &ok), Ok(()));
        let deep = queue_declare(&nested_arrays(MAX_TABLE_DEPTH));
        assert_eq!(check_method(50, 10, &deep), Err(TableError::TooDeep));
    }

    #[test]
    fn lengths_must_fit_their_container() {
        // The table's length past the payload.
        let mut args = queue_declare(&[0, 0, 3, 232, 1, b'a']);
        assert!(matches!(
            check_method(50, 10, &args),
            Err(TableError::Truncated {
                what: "field table",
                needed: 1000,
                left: 2
            })
        ));
        // A long string past its table, though inside the payload.
        args = queue_declare(&table(&[1, b'k', b'S', 0, 0, 0, 100, b'a', b'b']));
        args.extend_from_slice(&[0; 200]);
        assert!(matches!(
            check_method(50, 10, &args),
            Err(TableError::Truncated {
                what: "long string",
                ..
            })
        ));
        // A field name past its table.
        args = queue_declare(&table(&[9, b'a', b'b']));
        assert!(matches!(
            check_method(50, 10, &args),
            Err(TableError::Truncated {
                what: "field name",
                ..
            })
        ));
        // A fixed-size value cut by the table's end.
        args = queue_declare(&table(&[1, b'k', b'l', 1, 2, 3]));
        assert!(matches!(
            check_method(50, 10, &args),
            Err(TableError::Truncated { needed: 8, .. })
        ));
        // A u32 length of 0xFFFF_FFFF.
        args = queue_declare(&table(&[1, b'k', b'x', 255, 255, 255, 255]));
        assert!(matches!(
            check_method(50, 10, &args),
            Err(TableError::Truncated { .. })
        ));
    }

    #[test]
    fn unknown_value_type() {
        let args = queue_declare(&table(&[1, b'k', b'Z', 0, 0]));
        assert_eq!(
            check_method(50, 10, &args),
            Err(TableError::UnknownType(b'Z'))
        );
    }

    #[test]
    fn methods_without_tables_are_not_walked() {
        assert_eq!(check_method(60, 40, &[]), Ok(()));
        assert_eq!(check_method(99, 99, &[1, 2, 3]), Ok(()));
    }

    #[test]
    fn content_header_headers_after_two_short_strings() {
        let mut payload = vec![0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0xE0, 0];
        payload.extend_from_slice(&[4, b't', b'e', b'x', b't', 0]);
        payload.extend_from_slice(&nested_arrays(MAX_TABLE_DEPTH));
        assert_eq!(check_content_header(&payload), Err(TableError::TooDeep));
        // Without the headers flag the same bytes are not a table to walk.
        payload[12] = 0xC0;
        assert_eq!(check_content_header(&payload), Ok(()));
    }

    /// 100,000 nested tables, far more than fits a frame, on a 256 KiB stack: refused at
    /// level 33 without reading further.
    #[test]
    fn very_deep_nesting_on_a_small_stack() {
        let levels = 100_000;
        let mut entries = Vec::with_capacity(levels * 6 + 4);
        entries.extend_from_slice(&u32::try_from(levels * 6).unwrap().to_be_bytes());
        for k in 1..=levels {
            entries.extend_from_slice(&[0, b'F']);
            entries.extend_from_slice(&u32::try_from(6 * (levels - k)).unwrap().to_be_bytes());
        }
        let args = queue_declare(&entries);
        let result = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || check_method(50, 10, &args))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(result, Err(TableError::TooDeep));
    }
}
